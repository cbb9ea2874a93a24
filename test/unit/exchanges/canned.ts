import { readFileSync } from 'node:fs';

export function fixture(name: string): string {
  return readFileSync(new URL(`../../fixtures/exchanges/${name}`, import.meta.url), 'utf8');
}

export interface Canned {
  fetch: typeof fetch;
  /** URLs requested, in order. */
  urls: URL[];
}

/** A fetch that answers every request with the same body; the adapter under test does the rest. */
export function answer(body: string, init: { status?: number; headers?: Record<string, string> } = {}): Canned {
  const urls: URL[] = [];
  const fetch: typeof globalThis.fetch = async (input) => {
    urls.push(new URL(input instanceof Request ? input.url : input.toString()));
    return new Response(body, { status: init.status ?? 200, headers: { 'content-type': 'application/json', ...init.headers } });
  };
  return { fetch, urls };
}

export const CLOUDFLARE_PAGE =
  '<!DOCTYPE html>\n<html lang="en-US"><head><title>Just a moment...</title></head><body>Checking your browser</body></html>';
