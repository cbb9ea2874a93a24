import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { z } from 'zod';
import { Invalid } from '../errors.ts';

/**
 * Opaque pagination cursors: base64url JSON holding the position and a short hash of the query it
 * belongs to, then a dot and an HMAC-SHA256 tag over that text under a key only the API holds.
 * Reusing a cursor with different filters would silently skip or repeat rows, so that is refused;
 * a cursor the API did not sign is refused before its content is looked at, and the position of a
 * signed one is still validated like any other input (keys rotate, and a leaked key must not reach
 * SQL). Domain listings decode them too, so a bad one is an `Invalid` error rather than an HTTP answer.
 */
export function queryHash(parts: readonly unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 12);
}

/** Encodes and checks the cursors of one key. */
export interface CursorCodec {
  encode(position: unknown, hash: string): string;
  decode<T>(token: string, hash: string, position: z.ZodType<T>): T;
}

/** 128 bits of tag: forging one is out of reach, and cursors stay short enough for a URL. */
const TAG_BYTES = 16;
/** Keys shorter than this are refused: a guessable key would let anyone sign cursors. */
export const MIN_CURSOR_KEY_BYTES = 32;

const notIssued = () => new Invalid('invalid cursor: pass nextCursor from a previous page unchanged', 'cursor', 'invalid-cursor');

export function cursorCodec(key: Uint8Array): CursorCodec {
  if (key.length < MIN_CURSOR_KEY_BYTES) throw new Error(`the cursor key must be at least ${MIN_CURSOR_KEY_BYTES} bytes`);
  const tag = (payload: string) => createHmac('sha256', key).update(payload).digest().subarray(0, TAG_BYTES);
  return {
    encode(position, hash) {
      const payload = Buffer.from(JSON.stringify({ p: position, q: hash })).toString('base64url');
      return `${payload}.${tag(payload).toString('base64url')}`;
    },
    decode(token, hash, position) {
      const m = token.length <= 2048 ? /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{22})$/.exec(token) : null;
      if (!m) throw notIssued();
      const sent = Buffer.from(m[2]!, 'base64url');
      if (sent.length !== TAG_BYTES || !timingSafeEqual(sent, tag(m[1]!))) throw notIssued();
      let raw: unknown;
      try {
        raw = JSON.parse(Buffer.from(m[1]!, 'base64url').toString('utf8'));
      } catch {
        throw notIssued();
      }
      const r = raw as { p?: unknown; q?: unknown } | null;
      if (!r || typeof r !== 'object' || typeof r.q !== 'string') throw notIssued();
      if (r.q !== hash) {
        throw new Invalid(
          'cursor belongs to a different query: repeat the parameters of the request that returned it (only cursor changes between pages)',
          'cursor',
          'invalid-cursor',
        );
      }
      const parsed = position.safeParse(r.p);
      if (!parsed.success) throw notIssued();
      return parsed.data;
    },
  };
}

/** A key for this process only: cursors stop working when it restarts (what `candlekeep serve` and tests use unless given one). */
export const processCursorKey = (): Uint8Array => randomBytes(MIN_CURSOR_KEY_BYTES);

/** A cursor key derived from a secret the deployment already holds (the database URL), so every container signs alike. */
export const derivedCursorKey = (secret: string): Uint8Array => createHmac('sha256', secret).update('candlekeep cursor key v1').digest();
