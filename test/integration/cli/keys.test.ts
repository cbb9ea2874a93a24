import { describe, expect, it } from 'vitest';
import { runCli } from '../../support/cli.ts';
import { uniqueName } from '../../support/db.ts';
import { useApi } from '../api/support.ts';

/**
 * `candlekeep keys` against the run's database (DATABASE_URL, as a user points it at theirs), and
 * the keys it makes used on the API the local server serves from that same database.
 */
const api = useApi();

describe('candlekeep keys', () => {
  it('creates a key shown once, lists it without the key, and revokes it by name: the API refuses it from then on', async () => {
    const name = uniqueName('notebook');
    const created = await runCli(['keys', 'create', '--name', name, '--scope', 'read']);
    expect(created.code, created.stderr).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^ck_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).toMatch(/shown this once/);

    expect((await api.get('/v1/markets', {}, { key })).status).toBe(200);
    const refused = await api.call('POST', '/v1/backtests', { key, body: {} });
    expect(refused.status).toBe(403);
    expect(refused.body.requiredScope).toBe('write');

    const list = await runCli(['keys', 'list']);
    expect(list.code).toBe(0);
    const row = list.stdout.split('\n').find((l) => l.includes(name));
    expect(row).toMatch(/^\s*\d+\s+\S+\s+read\s+\d{4}-\d\d-\d\dT[\d:]+Z\s+\d{4}-\d\d-\d\dT[\d:]+Z$/);
    const json = JSON.parse((await runCli(['keys', 'list', '--json'])).stdout) as { keys: { id: number; name: string; scope: string; lastUsedAt: string | null }[] };
    const listed = json.keys.find((k) => k.name === name)!;
    expect(listed).toMatchObject({ scope: 'read', lastUsedAt: expect.any(String) });
    expect(list.stdout + JSON.stringify(json)).not.toContain(key.slice(3));

    const revoked = await runCli(['keys', 'revoke', name]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain(`revoked key ${listed.id} "${name}" (read)`);
    expect((await api.get('/v1/markets', {}, { key })).status).toBe(401);
    expect((await runCli(['keys', 'list'])).stdout).not.toContain(name);
    const all = await runCli(['keys', 'list', '--all']);
    expect(all.stdout.split('\n').find((l) => l.includes(name))).toMatch(/Z\s+\d{4}-\d\d-\d\dT[\d:]+Z$/);
    const again = await runCli(['keys', 'revoke', String(listed.id)]);
    expect(again.stdout).toContain('was already revoked');
  });

  it('makes write and admin keys that can do what their scope says, as JSON for scripts', async () => {
    const made = async (scope: string) => {
      const out = await runCli(['keys', 'create', '--name', uniqueName(scope), '--scope', scope, '--json']);
      expect(out.code, out.stderr).toBe(0);
      return JSON.parse(out.stdout) as { id: number; key: string; scope: string; createdAt: string; revokedAt: null };
    };
    const write = await made('write');
    const admin = await made('admin');
    expect(write).toMatchObject({ scope: 'write', revokedAt: null, createdAt: expect.stringMatching(/Z$/) });
    expect((await api.call('DELETE', '/v1/markets', { key: write.key, query: { exchange: 'binance', symbol: 'NOPE/USDT' } })).status).toBe(403);
    expect((await api.call('DELETE', '/v1/markets', { key: admin.key, query: { exchange: 'binance', symbol: 'NOPE/USDT' } })).status).not.toBe(403);
  });

  it('says what is wrong with a bad scope, name or target, and refuses a second live key of one name', async () => {
    const scope = await runCli(['keys', 'create', '--name', 'x', '--scope', 'root']);
    expect(scope.code).toBe(2);
    expect(scope.stderr).toContain('--scope must be one of read, write, admin, not "root"');
    const name = await runCli(['keys', 'create', '--name', '9lives', '--scope', 'read']);
    expect(name.code).toBe(2);
    expect(name.stderr).toContain('start with a letter');
    const missing = await runCli(['keys', 'create', '--scope', 'read']);
    expect(missing.code).toBe(2);

    const taken = uniqueName('taken');
    expect((await runCli(['keys', 'create', '--name', taken, '--scope', 'read'])).code).toBe(0);
    const dup = await runCli(['keys', 'create', '--name', taken, '--scope', 'admin']);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain(`a live key is already named "${taken}"; revoke it first or choose another name`);
    expect(dup.stdout).toBe('');

    const nobody = await runCli(['keys', 'revoke', uniqueName('nobody')]);
    expect(nobody.code).toBe(1);
    expect(nobody.stderr).toMatch(/no live key named/);
    expect((await runCli(['keys', 'revoke'])).code).toBe(2);
  });
});
