import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { Invalid } from '../errors.ts';

/**
 * Opaque pagination cursors: base64url JSON holding the position and a short hash of the query it
 * belongs to. Reusing a cursor with different filters would silently skip or repeat rows, so that
 * is refused. Positions are validated like any other input; a forged cursor can only move the page.
 * Domain listings decode them too, so a bad one is an `Invalid` error rather than an HTTP answer.
 */
export function queryHash(parts: readonly unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 12);
}

export function encodeCursor(position: unknown, hash: string): string {
  return Buffer.from(JSON.stringify({ p: position, q: hash })).toString('base64url');
}

const notIssued = () =>
  new Invalid('cursor is not a cursor this API issued; pass nextCursor from a previous page unchanged', 'cursor', 'invalid-cursor');

export function decodeCursor<T>(token: string, hash: string, position: z.ZodType<T>): T {
  let raw: unknown;
  try {
    if (token.length > 2048 || !/^[A-Za-z0-9_-]+$/.test(token)) throw new Error('shape');
    raw = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw notIssued();
  }
  const r = raw as { p?: unknown; q?: unknown } | null;
  if (!r || typeof r !== 'object' || typeof r.q !== 'string') {
    throw notIssued();
  }
  if (r.q !== hash) {
    throw new Invalid(
      'cursor belongs to a different query: repeat the parameters of the request that returned it (only cursor changes between pages)',
      'cursor',
      'invalid-cursor',
    );
  }
  const parsed = position.safeParse(r.p);
  if (!parsed.success) {
    throw notIssued();
  }
  return parsed.data;
}
