/**
 * Made-up candles for benchmarks and tests: a seeded random walk, the same on every machine, with
 * decimals that vary from bar to bar so rounding and aggregation mistakes show.
 */

/** A linear congruential generator in [0, 1): the same seed gives the same sequence everywhere. */
export function seededRandom(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

/** How far prices move and how finely values are written. */
export interface WalkShape {
  /** The close moves up to half of this from the open, either way. */
  step: number;
  /** Wicks reach up to this far beyond the body. */
  wick: number;
  /** The lowest a low may go (closes stay at 1 or above). */
  minLow: number;
  priceDecimals: number;
  volume: { max: number; decimals: number };
  quoteVolume: { max: number; decimals: number };
  maxTrades: number;
}

export interface WalkBar {
  /** Position in the walk, counting skipped bars. */
  index: number;
  open: string;
  high: string;
  low: string;
  close: string;
  volume: string;
  quoteVolume: string;
  trades: number;
}

export interface WalkOptions {
  rand: () => number;
  startPrice: number;
  count: number;
  shape: WalkShape;
  /** Bars to leave out (gaps); the price walks on through them. */
  skip?: (index: number) => boolean;
}

export function* randomWalk(opts: WalkOptions): Generator<WalkBar> {
  const { rand, shape } = opts;
  let price = opts.startPrice;
  for (let index = 0; index < opts.count; index++) {
    const open = price;
    const close = Math.max(1, open + (rand() - 0.5) * shape.step);
    const high = Math.max(open, close) + rand() * shape.wick;
    const low = Math.max(shape.minLow, Math.min(open, close) - rand() * shape.wick);
    price = close;
    if (opts.skip?.(index)) continue;
    yield {
      index,
      open: open.toFixed(shape.priceDecimals),
      high: high.toFixed(shape.priceDecimals),
      low: low.toFixed(shape.priceDecimals),
      close: close.toFixed(shape.priceDecimals),
      volume: (rand() * shape.volume.max).toFixed(shape.volume.decimals),
      quoteVolume: (rand() * shape.quoteVolume.max).toFixed(shape.quoteVolume.decimals),
      trades: Math.floor(rand() * shape.maxTrades),
    };
  }
}
