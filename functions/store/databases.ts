/**
 * Statements on the server rather than on one database: creating and dropping the databases that
 * local runs and tests work in, and counting who else is connected. Names are checked here, since
 * a database name cannot travel as a bind parameter.
 */

/** What these statements need of a connection: the Neon pool and a plain `pg` client both fit. */
export interface AdminConnection {
  query(text: string, params?: unknown[]): Promise<{ rows: unknown[]; rowCount: number | null }>;
}

const NAME_RE = /^[a-z_][a-z0-9_]{0,62}$/;

function checkedName(name: string): string {
  if (!NAME_RE.test(name)) throw new Error(`database name ${name} must be lower_snake_case`);
  return name;
}

/** Creates the database unless it exists; `fresh` drops it first, disconnecting its sessions. */
export async function ensureDatabase(admin: AdminConnection, name: string, opts: { fresh?: boolean } = {}): Promise<void> {
  checkedName(name);
  if (opts.fresh) await dropDatabase(admin, name);
  const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  if (!rowCount) await admin.query(`CREATE DATABASE ${name}`);
}

export async function dropDatabase(admin: AdminConnection, name: string): Promise<void> {
  await admin.query(`DROP DATABASE IF EXISTS ${checkedName(name)} WITH (FORCE)`);
}

/** Client sessions on the server other than the asking one: a shared local server stays up while any remain. */
export async function otherClientSessions(admin: AdminConnection): Promise<number> {
  const { rows } = await admin.query(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
  );
  return Number((rows[0] as { n?: number } | undefined)?.n ?? 0);
}

/** Sets a role's password; ALTER ROLE takes no bind parameters, so the value is quoted as a literal here. */
export async function setRolePassword(admin: AdminConnection, role: string, password: string): Promise<void> {
  if (!NAME_RE.test(role)) throw new Error(`role name ${role} must be lower_snake_case`);
  await admin.query(`ALTER ROLE ${role} PASSWORD '${password.replace(/'/g, "''")}'`);
}
