import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { SeriesKey } from '../../../functions/candles/candle.ts';
import { pollUntil } from '../../support/poll.ts';
import { queueDepth, sendBodies } from '../../support/sqs.ts';
import { reconcile } from '../e2e/support.ts';
import { HOUR, messagesOf, seeded, faultEnvironment } from './support.ts';

const WRITER_PROCESS = fileURLToPath(new URL('./writer-process.ts', import.meta.url));
const KILLS = 3;


const env = faultEnvironment({ database: 'ck_fault_kill', queues: { maxReceiveCount: 6, visibilityTimeout: 30 } });

interface WriterRun {
  /** The batch that was running when the process died, if it died mid-batch. */
  killedMidBatch: number | undefined;
  completed: number;
}

/**
 * Starts a writer process; with `killAtBatch`, SIGKILLs it 0–15 ms after that batch's handler
 * started (while it parses, upserts or deletes), otherwise runs it until the queue is empty.
 */
async function runWriter(killAtBatch: number | undefined, random: () => number): Promise<WriterRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER_PROCESS], {
    env: {
      ...process.env,
      QUEUE_URL: env.queues.queueUrl,
      DEAD_LETTER_QUEUE_URL: env.queues.dlqUrl,
      DATABASE_URL: env.db.url,
      POWERTOOLS_LOG_LEVEL: 'ERROR',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const started = new Set<number>();
  const ended = new Set<number>();
  createInterface({ input: child.stdout }).on('line', (line) => {
    const [word, n] = line.split(' ');
    if (word === 'BEGIN') {
      started.add(Number(n));
      if (Number(n) === killAtBatch) setTimeout(() => child.kill('SIGKILL'), Math.floor(random() * 15));
    } else if (word === 'END') ended.add(Number(n));
  });

  if (killAtBatch === undefined) {
    await pollUntil(async () => (await queueDepth(env.sqs, env.queues.queueUrl)) === 0, { timeoutMs: 60_000, intervalMs: 300, description: 'the queue to drain' });
    child.kill('SIGTERM');
  } else {
    // A queue that empties before the batch comes means there was nothing left to interrupt.
    const drained = pollUntil(async () => (await queueDepth(env.sqs, env.queues.queueUrl)) === 0, { timeoutMs: 60_000, intervalMs: 500 }).then(() => child.kill('SIGKILL'));
    await Promise.race([exited, drained]);
  }
  const code = await exited;
  if (killAtBatch === undefined && code !== 0) throw new Error(`writer process exited ${code}: ${stderr}`);
  const midBatch = killAtBatch !== undefined && started.has(killAtBatch) && !ended.has(killAtBatch);
  return { killedMidBatch: midBatch ? killAtBatch : undefined, completed: ended.size };
}

describe('fault: the writer process killed mid-batch', () => {
  it('loses nothing: a new writer resumes and every candle lands exactly once', { timeout: 150_000 }, async () => {
    const series: SeriesKey = { exchange: 'okx', symbol: 'ETH/USDT', interval: '1m' };
    const from = Date.UTC(2025, 3, 1);
    const expected = env.fake.expected('okx', 'ETH/USDT', '1m', from, from + 6 * 24 * HOUR - 1);
    const messages = messagesOf(series, expected, 40, from + 7 * 24 * HOUR);
    await sendBodies(env.sqs, env.queues.queueUrl, messages);

    const random = seeded(7);
    const kills: WriterRun[] = [];
    for (let attempt = 0; kills.filter((k) => k.killedMidBatch !== undefined).length < KILLS && attempt < KILLS * 3; attempt++) {
      kills.push(await runWriter(2 + Math.floor(random() * 2), random));
    }
    const midBatch = kills.filter((k) => k.killedMidBatch !== undefined).length;
    const last = await runWriter(undefined, random);
    process.stdout.write(
      `[writer killed] ${kills.length} writer process(es) SIGKILLed, ${midBatch} of them mid-batch; ` +
        `batches completed before the kills ${kills.map((k) => k.completed).join('/')}, by the last writer ${last.completed}\n`,
    );
    expect(midBatch).toBe(KILLS);

    await reconcile({
      label: 'writer killed mid-batch',
      db: env.pool,
      series: [{ key: series, expected }],
      messages,
      sqs: env.sqs,
      dlqUrl: env.queues.dlqUrl,
    });
  });
});
