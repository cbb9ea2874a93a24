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
  try {
    // Generous: a running instance busy with a CloudFormation deploy can take seconds to answer,
    // and a missed answer would start a second LocalStack.
    const res = await fetch(endpoint + HEALTH_PATH, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) return undefined;
    const body = (await res.json()) as Partial<Health> | null;
    return { services: body?.services ?? {}, ...(body?.version ? { version: body.version } : {}) };
  } catch {
    return undefined;
  }
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
  for (;;) {
    const abortReason = opts.aborted?.();
    if (abortReason) throw new Error(abortReason);
    const health = await fetchHealth(endpoint);
    if (health) {
      const pending = opts.services.filter((s) => !READY_STATES.has(health.services[s] ?? ''));
      if (pending.length === 0 && (await initReady(endpoint))) return health;
      last = pending.length
        ? `waiting for ${pending.map((s) => `${s}=${health.services[s] ?? 'missing'}`).join(', ')}`
        : 'waiting for init READY';
    }
    if (Date.now() >= opts.deadline) {
      throw new Error(`LocalStack at ${endpoint} did not become ready in time (${last})`);
    }
    await delay(250);
  }
}

/** Reuses the instance at `endpoint` once it has booted (it may still be starting). */
export async function reuse(endpoint: string, readyTimeoutMs: number): Promise<LocalStackHandle> {
  await waitUntilReady(endpoint, { services: [], deadline: Date.now() + readyTimeoutMs });
  return externalHandle(endpoint);
}

/** Services LocalStack reports as usable, from its health endpoint. */
export async function localStackServices(endpoint: string): Promise<Set<string>> {
  const res = await fetch(`${endpoint.replace(/\/+$/, '')}${HEALTH_PATH}`, { signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`LocalStack health at ${endpoint} answered ${res.status}`);
  const body = (await res.json()) as { services?: Record<string, string> };
  return new Set(Object.entries(body.services ?? {}).filter(([, s]) => READY_STATES.has(s)).map(([name]) => name));
}
