import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * API keys and their scopes. A key is `ck_` and 32 random bytes (base64url): guessing one is out of
 * the question, so a plain SHA-256 is all the table needs to keep (no salt, no slow hash), and the
 * lookup is one index probe.
 */

/** What a route needs, each scope including the ones before it; `public` routes need no key. */
export const SCOPES = ['public', 'read', 'write', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** The scopes a key can have, weakest first. */
export const KEY_SCOPES = ['read', 'write', 'admin'] as const satisfies readonly Scope[];
export type KeyScope = (typeof KEY_SCOPES)[number];

export const isKeyScope = (s: unknown): s is KeyScope => typeof s === 'string' && (KEY_SCOPES as readonly string[]).includes(s);

/** Whether a key of scope `have` may call a route that needs `need` (`public` needs no key at all). */
export const scopeCovers = (have: KeyScope, need: Scope): boolean => SCOPES.indexOf(have) >= SCOPES.indexOf(need);

export const KEY_PREFIX = 'ck_';

/** A fresh key, to be shown once and stored only as its hash. */
export const generateApiKey = (): string => `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;

/** What the table stores of a key. */
export const hashApiKey = (key: string): Buffer => createHash('sha256').update(key, 'utf8').digest();

/** Compares a sent key with a configured one in time that does not depend on where they differ. */
export function sameKey(sent: string, expected: string): boolean {
  // Hashing first makes the lengths equal, so not even the length leaks.
  return timingSafeEqual(hashApiKey(sent), hashApiKey(expected));
}

/** Names start with a letter, so `keys revoke 12` is an id and `keys revoke notebook` a name. */
export const KEY_NAME = /^[A-Za-z][A-Za-z0-9._-]{0,63}$/;

/**
 * How long API Gateway reuses the authorizer's answer for a key: the bound on how long a revoked key
 * keeps working in AWS, and how often a busy key costs an authorizer call.
 */
export const AUTHORIZER_CACHE_SECONDS = 60;
