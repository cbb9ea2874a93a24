import { NotFound } from '../errors.ts';
import { runsWithFingerprints } from '../store/backtests.ts';
import type { Queryable } from '../store/db.ts';
import { checkFingerprints } from './fingerprint.ts';
import { KNOWN_METRIC_NAMES, type Comparison } from './record.ts';
import { canonicalJson } from './runs.ts';

/** Parameters as dotted paths to their leaf values; arrays are leaves, compared whole. */
export function flattenParameters(value: Record<string, unknown>, prefix = '', out = new Map<string, unknown>()): Map<string, unknown> {
  for (const [k, v] of Object.entries(value)) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) {
      flattenParameters(v as Record<string, unknown>, path, out);
    } else out.set(path, v);
  }
  return out;
}

const metricOrder = (a: string, b: string) => {
  const ia = KNOWN_METRIC_NAMES.indexOf(a as (typeof KNOWN_METRIC_NAMES)[number]);
  const ib = KNOWN_METRIC_NAMES.indexOf(b as (typeof KNOWN_METRIC_NAMES)[number]);
  if (ia >= 0 || ib >= 0) return (ia < 0 ? Infinity : ia) - (ib < 0 ? Infinity : ib);
  return a < b ? -1 : a > b ? 1 : 0;
};

/**
 * Runs side by side: every metric any of them has, the parameters whose values differ (the ones
 * they share are only named), and whether the candles each run used have changed since.
 */
export async function compareBacktests(db: Queryable, ids: readonly string[]): Promise<Comparison> {
  const byId = new Map((await runsWithFingerprints(db, ids)).map((r) => [r.run.id, r]));
  const missing = ids.find((id) => !byId.has(id));
  if (missing) throw new NotFound(`no backtest run ${missing}`, 'ids');
  const ordered = ids.map((id) => byId.get(id)!);
  const runs = ordered.map((r) => r.run);

  const metricNames = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort(metricOrder);
  const metrics = metricNames.map((name) => ({ name, values: runs.map((r) => (Object.hasOwn(r.metrics, name) ? r.metrics[name]! : null)) }));

  const flat = runs.map((r) => flattenParameters(r.parameters));
  const names = [...new Set(flat.flatMap((f) => [...f.keys()]))].sort();
  const differing: Comparison['parameters']['differing'] = [];
  const identical: string[] = [];
  for (const name of names) {
    const values = flat.map((f) => (f.has(name) ? f.get(name) : null));
    const first = canonicalJson(values[0]);
    if (flat.every((f) => f.has(name)) && values.every((v) => canonicalJson(v) === first)) identical.push(name);
    else differing.push({ name, values });
  }

  const checks = await checkFingerprints(
    db,
    ordered.map((r) => r.fingerprint),
  );
  return {
    runs: runs.map(({ id, createdAt, strategy, strategyVersion, instruments, start, end, tags }) => ({
      id,
      createdAt,
      strategy,
      strategyVersion,
      instruments,
      start,
      end,
      tags,
    })),
    metrics,
    parameters: { differing, identical },
    data: runs.map((r, i) => ({ id: r.id, fingerprint: r.fingerprint.value, ...checks[i]! })),
  };
}
