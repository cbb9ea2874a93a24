import { describe, expect, it } from 'vitest';
import { asDatabaseError, configureLocalRelay, createPool } from '../../functions/store/db.ts';

describe('database errors', () => {
  it('turns the driver\'s socket error event into an Error that names the cause', async () => {
    configureLocalRelay('127.0.0.1:1'); // nothing listens on port 1
    const pool = createPool('postgres://postgres@127.0.0.1:5432/postgres', { max: 1 });
    try {
      const err = await pool.query('SELECT 1').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/^database connection failed: .*ECONNREFUSED/);
      const viaConnect = await pool.connect().catch((e: unknown) => e);
      expect(viaConnect).toBeInstanceOf(Error);
    } finally {
      await pool.end();
    }
  });

  it('keeps real Errors as they are', () => {
    const original = new Error('relation "x" does not exist');
    expect(asDatabaseError(original)).toBe(original);
  });
});
