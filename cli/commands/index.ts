import type { Command } from '../command.ts';

/**
 * Every `candlekeep` command, by name, loaded on demand so `candlekeep --version` stays instant.
 * A new command is one module exporting `command` (defineCommand / defineGroup) and one line here;
 * its --help, short flags and typo suggestions come from its declaration.
 */
export const commands: Record<string, () => Promise<{ command: Command }>> = {
  migrate: () => import('./migrate.ts'),
  serve: () => import('./serve.ts'),
  keys: () => import('./keys.ts'),
  candles: () => import('./candles.ts'),
  markets: () => import('./markets.ts'),
  backtests: () => import('./backtests.ts'),
  pull: () => import('./pull.ts'),
  backfill: () => import('./backfill.ts'),
  gaps: () => import('./gaps.ts'),
  retention: () => import('./retention.ts'),
  redrive: () => import('./redrive.ts'),
  export: () => import('./export.ts'),
  import: () => import('./import.ts'),
};
