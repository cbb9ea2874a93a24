import { MetricUnit } from '@aws-lambda-powertools/metrics';
import middy from '@middy/core';
import * as z from 'zod';
import { refreshDeadLetterLedger, type LedgerRefresh } from '../ingest/dead-letter-ledger.ts';
import type { QueueDeps } from '../lambda-kit/container.ts';
import { configReader } from '../lambda-kit/env.ts';
import { powertoolsFor, SERVICES, withPowertools } from '../lambda-kit/powertools.ts';
import { SeriesRegistry } from '../store/series.ts';

const configSchema = z
  .object({
    DEAD_LETTER_QUEUE_URL: z.url('DEAD_LETTER_QUEUE_URL must be the URL of the candles dead-letter queue'),
    /** Seconds each message stays hidden while a scan holds it; it is handed back as soon as the scan ends. */
    DEAD_LETTER_SCAN_VISIBILITY: z.coerce.number().int().min(1).max(43_200).default(120),
  })
  .transform((e) => ({ deadLetterQueueUrl: e.DEAD_LETTER_QUEUE_URL, visibilitySeconds: e.DEAD_LETTER_SCAN_VISIBILITY }));
export const readDeadLetterScanConfig = configReader(configSchema, SERVICES.deadLetterScan);
export type DeadLetterScanConfig = ReturnType<typeof readDeadLetterScanConfig>;

/** The schedule passes `{}`; anything else means it was wired to the wrong target. */
const scheduleEventSchema = z.looseObject({});

/**
 * Scheduled: reads the candles dead-letter queue without consuming it and records, per series and
 * range, what waits there, so gaps and the markets list can point at a redrive.
 */
export function createDeadLetterScanHandler(config: DeadLetterScanConfig, deps: QueueDeps) {
  const { logger, metrics } = powertoolsFor(SERVICES.deadLetterScan, deps);
  const registry = new SeriesRegistry();

  async function scan(event: unknown): Promise<LedgerRefresh> {
    if (!scheduleEventSchema.safeParse(event).success) throw new Error('the dead-letter scan expects its schedule\'s JSON object as the event');
    const db = await deps.db();
    const out = await refreshDeadLetterLedger({ db, sqs: deps.sqs, registry }, config.deadLetterQueueUrl, { visibilitySeconds: config.visibilitySeconds });
    metrics.addMetric('DeadLetteredMessages', MetricUnit.Count, out.messages);
    metrics.addMetric('DeadLetteredCandles', MetricUnit.Count, out.candles);
    logger.info('dead-letter queue scanned', { ...out });
    return out;
  }

  return withPowertools(middy(scan), { logger, metrics });
}
