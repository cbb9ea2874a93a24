import type { Candle, Exchange } from '../../functions/candles/candle.ts';
import { INTERVAL_MS, bucketStart, type Interval } from '../../functions/candles/intervals.ts';

/** A market the fake lists, with its price scale. Prices are integers of 10^-priceDecimals. */
export interface FakeMarket {
  unified: string;
  base: string;
  quote: string;
  basePrice: number;
  priceDecimals: number;
}

/** The markets every test and the README name, listed first and always trading. */
const NAMED_MARKETS: readonly FakeMarket[] = [
  { unified: 'BTC/USDT', base: 'BTC', quote: 'USDT', basePrice: 61_000, priceDecimals: 2 },
  { unified: 'ETH/USDT', base: 'ETH', quote: 'USDT', basePrice: 3_100, priceDecimals: 2 },
  { unified: 'BTC/USD', base: 'BTC', quote: 'USD', basePrice: 60_900, priceDecimals: 2 },
  { unified: 'ETH/USD', base: 'ETH', quote: 'USD', basePrice: 3_090, priceDecimals: 2 },
  { unified: 'SOL/USDT', base: 'SOL', quote: 'USDT', basePrice: 142, priceDecimals: 3 },
];

// Assets the fake lists beyond the named markets, so discovery and "top N by volume" have several
// hundred symbols to choose from, as on the real exchanges. DOGE stays unlisted: tests use it as
// the market an exchange does not have.
const ASSETS = (
  'BNB XRP ADA TRX TON AVAX SHIB DOT LINK BCH NEAR MATIC LTC ICP UNI APT ETC XLM FIL ATOM ARB OP IMX HBAR VET INJ MKR GRT ' +
  'RNDR STX SUI SEI TIA AAVE ALGO EGLD FTM SAND MANA AXS THETA FLOW CHZ XTZ EOS NEO KAVA ZEC DASH XMR COMP SNX CRV LDO RUNE ' +
  'QNT KSM ENJ BAT ZIL ONE ICX IOTA WAVES CELO ANKR SKL STORJ OCEAN FET AGIX ROSE MINA GALA APE GMT DYDX BLUR PEPE FLOKI BONK ' +
  'WIF JUP PYTH JTO ORDI WLD ENA ETHFI STRK ZRO ZK NOT ARKM PENDLE LUNA CAKE SUSHI YFI BAL 1INCH ZRX KNC LRC CVX FXS RPL SSV ' +
  'GNO RSR BAND API3 UMA TRB COTI CTSI DENT HOT JASMY LPT MASK NKN OGN PERP REN RLC SXP WOO YGG AUDIO BICO C98 CELR DODO'
).split(' ');

function hashUnit(text: string): number {
  return randoms(`listing|${text}`, 1)[0] ?? 0;
}

/** Decimals that keep about six significant digits of a price. */
const decimalsFor = (price: number) => Math.min(8, Math.max(2, 5 - Math.floor(Math.log10(price))));

function generatedMarkets(): FakeMarket[] {
  const named = new Set(NAMED_MARKETS.map((m) => m.unified));
  const out: FakeMarket[] = [];
  ASSETS.forEach((base, i) => {
    // Prices from about 0.0001 to 5,000 USD, fixed per asset.
    const usd = Number((10 ** (-4 + hashUnit(base) * 7.7)).toPrecision(4));
    const quotes: [string, number][] = [['USDT', usd]];
    if (i < 110) quotes.push(['USD', usd]);
    if (i < 70) quotes.push(['BTC', usd / 61_000]);
    if (i < 40) quotes.push(['EUR', usd * 0.92]);
    for (const [quote, price] of quotes) {
      const unified = `${base}/${quote}`;
      if (named.has(unified)) continue;
      const priceDecimals = decimalsFor(price);
      out.push({ unified, base, quote, basePrice: Number(price.toFixed(priceDecimals)) || 10 ** -priceDecimals, priceDecimals });
    }
  });
  return out;
}

export const FAKE_MARKETS: readonly FakeMarket[] = [...NAMED_MARKETS, ...generatedMarkets()];

const byUnified = new Map(FAKE_MARKETS.map((m) => [m.unified, m]));
/** The market the fake lists under this unified symbol. */
export const fakeMarket = (unified: string): FakeMarket | undefined => byUnified.get(unified);

/** How one venue lists a market: trading or halted, and its 24h volumes (base, and quote in the quote currency). */
export interface FakeListing {
  market: FakeMarket;
  trading: boolean;
  /** 24h volume in the base asset, as decimal text with 8 decimals. */
  baseVolume: string;
  /** 24h volume in the quote currency, as decimal text with 2 decimals (8 for BTC quotes). */
  quoteVolume: string;
  /** Last price, as decimal text. */
  last: string;
}

/**
 * Every market as `exchange` lists it. Volumes span six orders of magnitude and differ per venue,
 * so each venue ranks its own top N; about one market in 40 is halted (the named ones never).
 */
export function fakeListings(exchange: Exchange): FakeListing[] {
  const named = new Set(NAMED_MARKETS.map((m) => m.unified));
  return FAKE_MARKETS.map((market) => {
    const [r1 = 0, r2 = 0] = randoms(`listing|${exchange}|${market.unified}`, 2);
    const usdVolume = named.has(market.unified) ? 2e9 / (1 + NAMED_MARKETS.findIndex((m) => m.unified === market.unified)) : 10 ** (3 + r1 * 6);
    const usdPerQuote = market.quote === 'BTC' ? 61_000 : market.quote === 'EUR' ? 1.087 : 1;
    const quoteVolume = usdVolume / usdPerQuote;
    const quoteDecimals = market.quote === 'BTC' ? 8 : 2;
    return {
      market,
      trading: named.has(market.unified) || r2 >= 0.025,
      baseVolume: (quoteVolume / market.basePrice).toFixed(8),
      quoteVolume: quoteVolume.toFixed(quoteDecimals),
      last: market.basePrice.toFixed(market.priceDecimals),
    };
  });
}

/** One generated candle in integer units: prices in 10^-priceDecimals, volume in 10^-8. */
export interface RawCandle {
  openTime: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  trades: number;
  closed: boolean;
}

// xmur3-style string hash followed by mulberry32: small, deterministic, good enough to look random.
function hash(text: string): number {
  let h = 1779033703 ^ text.length;
  for (let i = 0; i < text.length; i++) {
    h = Math.imul(h ^ text.charCodeAt(i), 3432918353);
    h = (h << 13) | (h >>> 19);
  }
  h = Math.imul(h ^ (h >>> 16), 2246822507);
  h = Math.imul(h ^ (h >>> 13), 3266489909);
  return (h ^= h >>> 16) >>> 0;
}

function randoms(key: string, n: number): number[] {
  let a = hash(key);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    out.push(((t ^ (t >>> 14)) >>> 0) / 4294967296);
  }
  return out;
}

const DAY = 86_400_000;

export class SeriesGenerator {
  readonly #seed: number;
  constructor(seed: number) {
    this.#seed = seed;
  }

  /** Price in integer ticks at time t: smooth waves so consecutive candles connect (close = next open). */
  level(exchange: Exchange, market: FakeMarket, t: number): number {
    const [p1 = 0, p2 = 0, p3 = 0] = randoms(`${this.#seed}|${exchange}|${market.unified}|phase`, 3);
    const wave =
      0.06 * Math.sin((2 * Math.PI * t) / (5.3 * DAY) + p1 * 6.28) +
      0.015 * Math.sin((2 * Math.PI * t) / (7.7 * 3_600_000) + p2 * 6.28) +
      0.004 * Math.sin((2 * Math.PI * t) / (23 * 60_000) + p3 * 6.28);
    return Math.round(market.basePrice * (1 + wave) * 10 ** market.priceDecimals);
  }

  /** The candle opening at `openTime`, as it looks at server time `now` (the forming one is partial). */
  candle(exchange: Exchange, market: FakeMarket, interval: Interval, openTime: number, now: number): RawCandle {
    const step = INTERVAL_MS[interval];
    const minutes = step / 60_000;
    const [r1 = 0, r2 = 0, r3 = 0, r4 = 0, r5 = 0, r6 = 0] = randoms(`${this.#seed}|${exchange}|${market.unified}|${interval}|${openTime}`, 6);
    const closed = openTime + step <= now;
    const frac = closed ? 1 : Math.max(0, (now - openTime) / step);
    const open = this.level(exchange, market, openTime);
    const close = this.level(exchange, market, closed ? openTime + step : now);
    const spread = Math.ceil(open * 0.0008 * Math.min(12, Math.sqrt(minutes)));
    const high = Math.max(open, close) + Math.floor(r1 * spread * frac);
    const low = Math.max(1, Math.min(open, close) - Math.floor(r2 * spread * frac));
    // Now and then a candle trades a dust amount, which JSON-number exchanges print as 5e-8.
    const fullVolume = r4 < 0.03 ? 1 + Math.floor(r5 * 9) : Math.floor((0.5 + r3 * 20) * Math.sqrt(minutes) * (60_000 / market.basePrice) * 1e8);
    return {
      openTime, open, high, low, close,
      volume: Math.floor(fullVolume * frac),
      trades: Math.floor((1 + r6 * 500 * Math.sqrt(minutes)) * frac),
      closed,
    };
  }
}

/** Open times of `interval` from `first` to `last` (inclusive, both aligned), stepping `direction`, at most `limit`, skipping `skip`. */
export function* bucketTimes(first: number, last: number, interval: Interval, direction: 1 | -1, skip?: (t: number) => boolean): Generator<number> {
  const step = INTERVAL_MS[interval];
  if (direction === 1) {
    for (let t = first; t <= last; t += step) if (!skip?.(t)) yield t;
  } else {
    for (let t = last; t >= first; t -= step) if (!skip?.(t)) yield t;
  }
}

export function take<T>(gen: Iterable<T>, limit: number): T[] {
  const out: T[] = [];
  if (limit <= 0) return out;
  for (const v of gen) {
    out.push(v);
    if (out.length >= limit) break;
  }
  return out;
}

/** The first bucket opening at or after `t`. */
export function bucketAtOrAfter(t: number, interval: Interval): number {
  const start = bucketStart(t, interval);
  return start < t ? start + INTERVAL_MS[interval] : start;
}

// ---- decimal text -------------------------------------------------------------------------

/** Integer `units` of 10^-decimals as plain decimal text with exactly `decimals` fraction digits. */
export function fixed(units: bigint | number, decimals: number): string {
  const v = BigInt(units);
  if (decimals === 0) return v.toString();
  const s = v.toString().padStart(decimals + 1, '0');
  return `${s.slice(0, -decimals)}.${s.slice(-decimals)}`;
}

/** Like `fixed` but without trailing zeros (and without a bare point). */
export function trimmed(units: bigint | number, decimals: number): string {
  return fixed(units, decimals).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
}

/** Re-expresses `units` of 10^-from as units of 10^-to, truncating. */
export function rescale(units: bigint | number, from: number, to: number): bigint {
  const v = BigInt(units);
  return to >= from ? v * 10n ** BigInt(to - from) : v / 10n ** BigInt(from - to);
}

/**
 * A generated candle as exchanges that print no trailing zeros send it: prices in the market's
 * decimals, volume in 10^-8, quote volume = volume × close.
 */
export function trimmedText(c: RawCandle, m: FakeMarket): Pick<Candle, 'open' | 'high' | 'low' | 'close' | 'volume'> & { quoteVolume: string } {
  const p = (v: number) => trimmed(v, m.priceDecimals);
  return {
    open: p(c.open), high: p(c.high), low: p(c.low), close: p(c.close), volume: trimmed(c.volume, 8),
    quoteVolume: trimmed(rescale(BigInt(c.volume) * BigInt(c.close), 8 + m.priceDecimals, 8), 8),
  };
}

/** JSON number text, the way a float-printing server writes tiny values: 5e-8. */
export function jsonNumber(units: bigint | number, decimals: number): string {
  const text = trimmed(units, decimals);
  const m = /^0\.(0{5,})([1-9]\d*)$/.exec(text);
  if (!m) return text;
  const [, zeros = '', digits = ''] = m;
  const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  return `${mantissa}e-${zeros.length + 1}`;
}

