import { selectInstruments } from '../../markets/discovery.ts';
import { COMMON, defineRoute, problems } from '../route.ts';
import { instrumentsPathSchema, instrumentsQuerySchema, instrumentsSchema, type Instruments } from '../schemas.ts';

export const instruments = defineRoute({
  method: 'GET',
  path: '/v1/exchanges/{exchange}/instruments',
  operationId: 'listInstruments',
  tag: 'markets',
  scope: 'read',
  summary: "An exchange's spot instruments, most traded first: what can be followed",
  description:
    "From the exchange's own listing (Binance exchangeInfo, OKX instruments, Bybit instruments-info, Coinbase products, Kraken AssetPairs) " +
    'and its 24h tickers, cached for 10 minutes. `top` ranks by 24h quote volume.',
  pathParams: instrumentsPathSchema,
  query: instrumentsQuerySchema,
  csv: (out: Instruments) => ({
    columns: ['symbol', 'native', 'base', 'quote', 'trading', 'status', 'quote_volume_24h'],
    rows: out.instruments.map((i) => [i.symbol, i.native, i.base, i.quote, i.trading, i.status, i.quoteVolume24h]),
  }),
  responses: { 200: { description: 'The selected instruments.', schema: instrumentsSchema }, ...problems(...COMMON) },
  async handle({ params, query: q, exchanges, reply }) {
    const listing = await selectInstruments(await exchanges(), params.exchange, { quote: q.quote, top: q.top, trading: q.trading });
    // `key` only joins the exchange's volume list to its instruments.
    return reply({ ...listing, instruments: listing.instruments.map(({ key: _key, ...i }) => i) });
  },
});
