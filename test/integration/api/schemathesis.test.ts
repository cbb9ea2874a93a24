import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_EXAMPLES, DEFAULT_SEED, fuzzApi } from '../../../dev/schemathesis.ts';

/**
 * `npm run fuzz:api` as a test: schemathesis (every check, fixed seed) against `candlekeep serve` on
 * a freshly seeded database. No request may answer 5xx and no response may break the OpenAPI
 * document. The other checks' findings are in the summary; some cannot reach zero by design (a
 * forged cursor is refused although the document can only say "a string").
 */
describe('schemathesis against candlekeep serve', () => {
  it(`answers ${DEFAULT_MAX_EXAMPLES} examples per operation (seed ${DEFAULT_SEED}) without a server error or a response-schema violation`, { timeout: 900_000 }, async () => {
    const summary = await fuzzApi({ seed: DEFAULT_SEED, maxExamples: DEFAULT_MAX_EXAMPLES });
    console.log(`schemathesis summary: ${JSON.stringify(summary)}`);
    expect(summary.cases).toBeGreaterThanOrEqual(1000);
    // Every route the document had when this pass was set up; later ones count too.
    expect(summary.operations).toBeGreaterThanOrEqual(10);
    // What schemathesis said of each failure (with a curl to reproduce it) is in its report file.
    expect(summary, `schemathesis' report: ${summary.outputFile}`).toMatchObject({ serverErrors: 0, schemaViolations: 0 });
  });
});
