/**
 * Callers whose requests leave late, on a clock of the test's own: a governor grants a request, then
 * the request takes a while to reach the exchange (its process starved of CPU, its connection slow
 * to open) and a while more to be answered. The exchange counts each request when it arrives; the
 * scenario returns those arrival times, so a test can check that the budget held at the exchange
 * whatever the delays. Runs the same against any BudgetStore, in memory or in PostgreSQL.
 */
import type { Exchange } from '../../functions/candles/candle.ts';
import { Governor, type BudgetStore } from '../../functions/exchanges/governor.ts';
import type { RateRule } from '../../functions/exchanges/types.ts';

/**
 * A virtual clock for several callers at once: time moves only when every running caller is asleep
 * on it, to the earliest wake-up. Work that is not sleep (a database round trip) takes no time on it.
 */
class VirtualClock {
  now: number;
  #timers: { at: number; seq: number; resolve: () => void }[] = [];
  #seq = 0;
  #running = 0;
  #idle: (() => void) | undefined;

  constructor(start: number) {
    this.now = start;
  }

  sleep = (ms: number): Promise<void> =>
    new Promise<void>((resolve) => {
      this.#timers.push({ at: this.now + Math.max(0, ms), seq: this.#seq++, resolve });
      this.#maybeAdvance();
    });

  /** Runs `callers` concurrently to completion, moving the clock as they sleep. */
  async run<T>(callers: (() => Promise<T>)[]): Promise<T[]> {
    this.#running = callers.length;
    return Promise.all(
      callers.map(async (caller) => {
        try {
          return await caller();
        } finally {
          this.#running -= 1;
          this.#maybeAdvance();
        }
      }),
    );
  }

  #maybeAdvance(): void {
    if (this.#idle) return;
    // Let every caller reach its next sleep (or finish) before deciding.
    this.#idle = () => undefined;
    setImmediate(() => {
      this.#idle = undefined;
      if (this.#running === 0 || this.#timers.length < this.#running) return;
      this.#timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.#timers.shift()!;
      this.now = Math.max(this.now, next.at);
      next.resolve();
    });
  }
}

export interface LateSendersOptions {
  /** Caller `i` has its own governor over `stores[i % stores.length]` (one store per process, as each Lambda has). */
  stores: BudgetStore[];
  exchange: Exchange;
  /** The budget bucket every request draws on (one request of weight 1 each). */
  key: string;
  rule: RateRule;
  start: number;
  callers: number;
  callsPerCaller: number;
  /** How long request `n` (in grant order) takes from its grant to the exchange. */
  sendDelayMs: (n: number) => number;
  /** From arrival to the answer reaching the caller. */
  latencyMs: number;
}

/** Every request's arrival at the exchange, in order. */
export async function lateSenders(o: LateSendersOptions): Promise<number[]> {
  const clock = new VirtualClock(o.start);
  const arrivals: number[] = [];
  let sent = 0;
  const fetch: typeof globalThis.fetch = async () => {
    await clock.sleep(o.sendDelayMs(sent++));
    arrivals.push(clock.now);
    await clock.sleep(o.latencyMs);
    return new Response('{}', { status: 200 });
  };
  const governorOver = (store: BudgetStore) =>
    new Governor(
      { now: () => clock.now, sleep: clock.sleep, fetch },
      { store, rules: { [o.key]: o.rule }, policies: { [o.exchange]: { route: () => ({ key: o.key, weight: 1 }) } }, maxWaitMs: 600_000 },
    );
  await clock.run(
    Array.from({ length: o.callers }, (_, c) => async () => {
      const governor = governorOver(o.stores[c % o.stores.length]!);
      for (let i = 0; i < o.callsPerCaller; i++) await (await governor.governedFetch(o.exchange, `https://${o.exchange}.example/`)).text();
    }),
  );
  return arrivals.sort((a, b) => a - b);
}

/** The shortest time between two arrivals `limit` requests apart: at least the exchange's window when its limit held. */
export function tightestWindow(arrivals: readonly number[], limit: number): number {
  let min = Infinity;
  for (let i = limit; i < arrivals.length; i++) min = Math.min(min, arrivals[i]! - arrivals[i - limit]!);
  return min;
}
