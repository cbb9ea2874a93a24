import { randomBytes } from 'node:crypto';
import { CreateSecretCommand, DeleteSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { setRolePassword } from '../../functions/store/databases.ts';
import { createPool, isAuthenticationFailure, lazyDatabaseUrl, lazyPool, SECRET_MAX_AGE_MS, type Db } from '../../functions/store/db.ts';
import { emptyDatabase, uniqueName } from '../support/db.ts';

// A password rotation as it happens to a deployed stack: the database stops taking the old
// credentials, someone stores the new URL in the secret, and the warm containers must follow
// without being recycled. Real PostgreSQL roles, a real (LocalStack) Secrets Manager secret, the
// container's own pool; only the clock is injected.

let secrets: SecretsManagerClient;
let admin: Db;

beforeAll(() => {
  secrets = new SecretsManagerClient({});
  admin = createPool(process.env.CANDLEKEEP_TEST_SERVER_URL!, { max: 1 });
});
afterAll(async () => {
  secrets?.destroy();
  await admin?.end();
});

/** A login role on the test server, dropped (sessions and all) after the test. */
async function role(): Promise<{ name: string; password: string }> {
  const name = uniqueName('ck_rot');
  const password = `pw-${randomBytes(6).toString('hex')}`;
  await admin.query(`CREATE ROLE ${name} LOGIN PASSWORD '${password}'`);
  onTestFinished(async () => {
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [name]);
    await admin.query(`DROP ROLE IF EXISTS ${name}`);
  });
  return { name, password };
}

function urlFor(database: string, user: string, password: string, applicationName: string): string {
  const u = new URL(process.env.CANDLEKEEP_TEST_SERVER_URL!);
  u.username = user;
  u.password = password;
  u.pathname = `/${database}`;
  u.search = `?application_name=${applicationName}`;
  return u.toString();
}

async function secretHolding(url: string): Promise<string> {
  const out = await secrets.send(new CreateSecretCommand({ Name: uniqueName('ck-rotation'), SecretString: JSON.stringify({ url }) }));
  onTestFinished(async () => {
    await secrets.send(new DeleteSecretCommand({ SecretId: out.ARN, ForceDeleteWithoutRecovery: true }));
  });
  return out.ARN!;
}

const rotate = (arn: string, url: string) => secrets.send(new PutSecretValueCommand({ SecretId: arn, SecretString: JSON.stringify({ url }) }));

/** A container's pool over the secret, as liveQueueDeps builds it, with its clock. */
function containerDb(arn: string, clock: { now: number }) {
  const env = { DATABASE_SECRET_ARN: arn, CANDLEKEEP_WS_PROXY: process.env.CANDLEKEEP_WS_PROXY };
  const db = lazyPool(env, { max: 1 }, lazyDatabaseUrl(env, { now: () => clock.now }));
  onTestFinished(async () => (await db().catch(() => undefined))?.end().catch(() => {}));
  return db;
}

const who = async (db: () => Promise<Db>) =>
  (await (await db()).query<{ u: string; app: string }>("SELECT current_user AS u, current_setting('application_name') AS app")).rows[0]!;

describe('a rotated database secret', () => {
  it(`is read again once it is ${SECRET_MAX_AGE_MS / 60_000} minutes old, and the warm pool follows the new URL`, async () => {
    const db = await emptyDatabase();
    const r = await role();
    const arn = await secretHolding(urlFor(db.name, r.name, r.password, 'before'));
    const clock = { now: 0 };
    const pool = containerDb(arn, clock);
    expect(await who(pool)).toEqual({ u: r.name, app: 'before' });

    // The password changes and the secret with it.
    const next = `pw-${randomBytes(6).toString('hex')}`;
    await setRolePassword(admin, r.name, next);
    await rotate(arn, urlFor(db.name, r.name, next, 'after'));

    clock.now = SECRET_MAX_AGE_MS - 1;
    expect((await who(pool)).app).toBe('before'); // still within its age: not read again
    clock.now = SECRET_MAX_AGE_MS;
    expect(await who(pool)).toEqual({ u: r.name, app: 'after' });
  });

  it('is read again at once when the database refuses the old credentials, well within that age', async () => {
    const db = await emptyDatabase();
    const [oldRole, newRole] = [await role(), await role()];
    const arn = await secretHolding(urlFor(db.name, oldRole.name, oldRole.password, 'old'));
    const clock = { now: 0 };
    const pool = containerDb(arn, clock);
    expect((await who(pool)).u).toBe(oldRole.name);

    // Neon-style rotation: new credentials in the secret, the old ones refused from now on (their
    // sessions end too). NOLOGIN is refused whatever the server's authentication method.
    await rotate(arn, urlFor(db.name, newRole.name, newRole.password, 'new'));
    await admin.query(`ALTER ROLE ${oldRole.name} NOLOGIN`);
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [oldRole.name]);

    clock.now = 1_000; // far within the secret's age
    const failures: unknown[] = [];
    let answer: { u: string; app: string } | undefined;
    for (let attempt = 0; attempt < 3 && !answer; attempt++) {
      try {
        answer = await who(pool);
      } catch (err) {
        failures.push(err);
      }
    }
    // The invocation that met the refusal failed (SQS or the next tick retries it); the next one works.
    expect(failures.some(isAuthenticationFailure)).toBe(true);
    expect(answer).toEqual({ u: newRole.name, app: 'new' });
  });
});
