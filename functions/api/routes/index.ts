import { needsKey, type Route } from '../route.ts';
import { compareRuns, createRun, deleteRun, getRun, listRuns, runEquityCurve, runTrades } from './backtests.ts';
import { listBackfillsRoute, requestBackfillRoute } from './backfills.ts';
import { candles, latest } from './candles.ts';
import { instruments } from './exchanges.ts';
import { getExport, requestExport } from './exports.ts';
import { changeFollowedMarket, followedMarkets, followMarkets, gaps, markets, removeFollowedMarket } from './markets.ts';
import { health, openapi } from './meta.ts';

/**
 * Every route of the API, in the order the OpenAPI document lists them. This one table drives
 * dispatch, the OpenAPI document, the API Gateway methods of the CDK stack and the local server.
 */
export const ROUTES: readonly Route[] = [
  health,
  openapi,
  candles,
  latest,
  markets,
  followedMarkets,
  followMarkets,
  changeFollowedMarket,
  removeFollowedMarket,
  instruments,
  gaps,
  listBackfillsRoute,
  requestBackfillRoute,
  requestExport,
  getExport,
  createRun,
  listRuns,
  compareRuns,
  getRun,
  deleteRun,
  runTrades,
  runEquityCurve,
];

/** Method, path, scope and key requirement of every route: what the CDK stack and the local server build from. */
export const ROUTE_TABLE = ROUTES.map((r) => ({ method: r.method, path: r.path, scope: r.scope, apiKey: needsKey(r) }));
