import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';

/*
 * The options several commands share, declared once, and the one way commands parse their
 * arguments: unknown options and (unless allowed) positionals are refused by node's parseArgs.
 */

/** Which series: the API (or the command's own check) validates the values and names a bad one. */
export const SERIES_OPTIONS = { exchange: { type: 'string' }, symbol: { type: 'string' }, interval: { type: 'string' } } as const;

/** Paging through a listing: page size, where to resume, or every page. */
export const PAGE_OPTIONS = { limit: { type: 'string' }, cursor: { type: 'string' }, all: { type: 'boolean', default: false } } as const;

/** How to print: a table for people by default (see outputMode). */
export const OUTPUT_OPTIONS = { json: { type: 'boolean', default: false }, csv: { type: 'boolean', default: false } } as const;

export function parseOptions<O extends ParseArgsOptionsConfig>(argv: string[], options: O) {
  return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
}

/** Like parseOptions, for commands that also take positional arguments (run ids, a file). */
export function parseWithPositionals<O extends ParseArgsOptionsConfig>(argv: string[], options: O) {
  return parseArgs({ args: argv, options, strict: true, allowPositionals: true });
}
