/** Whether a LocalStack answers at an endpoint, and waiting until it has finished booting. */
import { setTimeout as delay } from 'node:timers/promises';

export type LocalStackMode = 'external' | 'docker' | 'host';

export interface LocalStackHandle {
  endpoint: string;
  mode: LocalStackMode;
  /** Stops what this call started; a no-op for an instance we only reused. */
  stop(): Promise<void>;
  /** The LocalStack process this call started on the host, if it did. */
  pid?: number | undefined;
}

export const HEALTH_PATH = '/_localstack/health';
const INIT_PATH = '/_localstack/init';
const READY_STATES = new Set(['available', 'running']);

export interface Health {
  services: Record<string, string>;
  version?: string;
}

/** A handle on an instance someone else started: stopping it is not ours to do. */
export function externalHandle(endpoint: string): LocalStackHandle {
  return { endpoint, mode: 'external', stop: async () => {} };
}

export async function fetchHealth(endpoint: string): Promise<Health | undefined> {
  const probe = await probeHealth(endpoint);
  return 'health' in probe ? probe.health : undefined;
}

/**
 * One look at the health endpoint: the health, or why there was none in words a person can act on
 * (a LocalStack still booting accepts connections and closes them: undici says "other side closed").
 */
export async function probeHealth(endpoint: string): Promise<{ health: Health } | { error: string; refused: boolean }> {
  try {
    // Generous: a running instance busy with a CloudFormation deploy can take seconds to answer,
    // and a missed answer would start a second LocalStack.
    const res = await fetch(endpoint + HEALTH_PATH, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) return { error: `${HEALTH_PATH} answered HTTP ${res.status}`, refused: false };
    const body = (await res.json()) as Partial<Health> | null;
    return { health: { services: body?.services ?? {}, ...(body?.version ? { version: body.version } : {}) } };
  } catch (err) {
    // Refused: nothing listens there. Anything else (closed, reset, timed out): something does, not ready yet.
    return { error: fetchErrorText(err), refused: (err as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED' };
  }
}

/** fetch's own message is "fetch failed"; the reason (refused, reset, "other side closed") is its cause. */
function fetchErrorText(err: unknown): string {
  const e = err as Error & { cause?: { message?: string; code?: string } };
  const cause = e.cause?.message || e.cause?.code;
  return cause ? `${e.message}: ${cause}` : e.message;
}

/** The init endpoint says whether boot finished; older or foreign builds may lack it. */
async function initReady(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(endpoint + INIT_PATH, { signal: AbortSignal.timeout(2_000) });
    if (res.status === 404) return true;
    if (!res.ok) return false;
    const body = (await res.json()) as { completed?: { READY?: boolean } } | null;
    return body?.completed?.READY ?? true;
  } catch {
    return false;
  }
}

export async function waitUntilReady(
  endpoint: string,
  opts: { services: readonly string[]; deadline: number; aborted?: () => string | undefined },
): Promise<Health> {
  let last = 'no answer yet';
  const started = Date.now();
  for (;;) {
    const abortReason = opts.aborted?.();
    if (abortReason) throw new Error(abortReason);
    const probe = await probeHealth(endpoint);
    if ('error' in probe) last = `no answer: ${probe.error}`;
    else {
      const health = probe.health;
      const pending = opts.services.filter((s) => !READY_STATES.has(health.services[s] ?? ''));
      if (pending.length === 0 && (await initReady(endpoint))) return health;
      last = pending.length
        ? `waiting for ${pending.map((s) => `${s}=${health.services[s] ?? 'missing'}`).join(', ')}`
        : 'waiting for init READY';
    }
    if (Date.now() >= opts.deadline) {
      throw new Error(`LocalStack at ${endpoint} did not become ready within ${((Date.now() - started) / 1000).toFixed(1)} s (${last})`);
    }
    // The pause between polls, never past the deadline: a last look is always taken at it.
    await delay(Math.min(250, Math.max(0, opts.deadline - Date.now())));
  }
}

/** Reuses the instance at `endpoint` once it has booted (it may still be starting). */
export async function reuse(endpoint: string, readyTimeoutMs: number): Promise<LocalStackHandle> {
  await waitUntilReady(endpoint, { services: [], deadline: Date.now() + readyTimeoutMs });
  return externalHandle(endpoint);
}

/**
 * Services LocalStack reports as usable, from its health endpoint. Polled until it answers (a
 * LocalStack still booting, or busy, closes connections) and at most `timeoutMs`, then refused with
 * the endpoint and the last reason, rather than a bare "fetch failed".
 */
export async function localStackServices(endpoint: string, opts: { timeoutMs?: number } = {}): Promise<Set<string>> {
  const health = await waitUntilReady(endpoint.replace(/\/+$/, ''), { services: [], deadline: Date.now() + (opts.timeoutMs ?? 60_000) });
  return new Set(Object.entries(health.services).filter(([, s]) => READY_STATES.has(s)).map(([name]) => name));
}
