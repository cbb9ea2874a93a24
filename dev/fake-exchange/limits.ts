/** Server-side rate limiters, as the exchanges describe them. Times are the fake's clock (ms). */
import type { ExchangeAdapter, PublishedLimit } from '../../functions/exchanges/types.ts';

/** A bucket as the exchange's declaration publishes it: the fake enforces what the exchanges publish. */
export function publishedLimit(adapter: ExchangeAdapter, bucket: string): PublishedLimit {
  const limit = adapter.limits.buckets[bucket];
  if (!limit) throw new Error(`${adapter.id} declares no bucket ${bucket}`);
  return limit;
}

export interface Limiter {
  /** Admits `weight` at `now` or returns how many ms until it could be admitted. */
  admit(now: number, weight: number): { ok: true; used: number } | { ok: false; retryAfterMs: number; used: number };
  reset(): void;
}

/** At most `limit` weight per `windowMs`. */
abstract class WindowLimiter implements Limiter {
  readonly limit: number;
  readonly windowMs: number;
  constructor(limit: number, windowMs: number) {
    this.limit = limit;
    this.windowMs = windowMs;
  }
  abstract admit(now: number, weight: number): ReturnType<Limiter['admit']>;
  abstract reset(): void;
}

/** Binance style: a weight counter that resets at each window boundary (aligned to the epoch). */
export class FixedWindow extends WindowLimiter {
  #windowStart = -1;
  #used = 0;
  admit(now: number, weight: number) {
    const start = Math.floor(now / this.windowMs) * this.windowMs;
    if (start !== this.#windowStart) {
      this.#windowStart = start;
      this.#used = 0;
    }
    if (this.#used + weight > this.limit) return { ok: false as const, retryAfterMs: start + this.windowMs - now, used: this.#used };
    this.#used += weight;
    return { ok: true as const, used: this.#used };
  }
  usedAt(now: number): number {
    return Math.floor(now / this.windowMs) * this.windowMs === this.#windowStart ? this.#used : 0;
  }
  reset(): void {
    this.#windowStart = -1;
    this.#used = 0;
  }
}

/** OKX / Bybit / Kraken style: at most `limit` requests in any `windowMs`. */
export class SlidingWindow extends WindowLimiter {
  #log: number[] = [];
  admit(now: number, weight: number) {
    this.#log = this.#log.filter((t) => t > now - this.windowMs);
    if (this.#log.length + weight > this.limit) {
      const oldest = this.#log[this.#log.length + weight - this.limit - 1] ?? now;
      return { ok: false as const, retryAfterMs: Math.max(1, oldest + this.windowMs - now), used: this.#log.length };
    }
    for (let i = 0; i < weight; i++) this.#log.push(now);
    return { ok: true as const, used: this.#log.length };
  }
  reset(): void {
    this.#log = [];
  }
}

/** Coinbase style: a bucket of `burst` tokens refilled at `perSecond`. `timeScale` speeds the refill. */
export class TokenBucket implements Limiter {
  #tokens: number;
  #at = -1;
  readonly burst: number;
  readonly refillPerMs: number;
  constructor(burst: number, perSecond: number, timeScale = 1) {
    this.burst = burst;
    this.refillPerMs = (perSecond * timeScale) / 1000;
    this.#tokens = burst;
  }
  admit(now: number, weight: number) {
    if (this.#at >= 0) this.#tokens = Math.min(this.burst, this.#tokens + (now - this.#at) * this.refillPerMs);
    this.#at = now;
    if (this.#tokens < weight) {
      return { ok: false as const, retryAfterMs: Math.ceil((weight - this.#tokens) / this.refillPerMs), used: this.burst - this.#tokens };
    }
    this.#tokens -= weight;
    return { ok: true as const, used: this.burst - this.#tokens };
  }
  reset(): void {
    this.#tokens = this.burst;
    this.#at = -1;
  }
}
