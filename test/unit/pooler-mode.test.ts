import { describe, expect, it } from 'vitest';
import { poolerModeOf } from '../../functions/store/db.ts';

describe('poolerModeOf', () => {
  it.each([
    ['postgres://u:p@ep-cool-123456-pooler.eu-central-1.aws.neon.tech/neondb?sslmode=require', 'transaction'],
    ['postgres://u:p@ep-cool-123456.eu-central-1.aws.neon.tech/neondb?sslmode=require', 'session'],
    ['postgres://u:p@pgbouncer.internal:6432/app', 'transaction'],
    ['postgres://postgres@127.0.0.1:5432/postgres', 'session'],
    ['postgresql://u:p%40x@[::1]:6432/db', 'transaction'],
    ['postgres://u:p@db.example.com/app', 'session'],
  ] as const)('%s is %s', (url, mode) => {
    expect(poolerModeOf(url, {})).toBe(mode);
  });

  it('follows CANDLEKEEP_DB_POOLER over the host name, and refuses any other value', () => {
    expect(poolerModeOf('postgres://u:p@ep-x-pooler.neon.tech/db', { CANDLEKEEP_DB_POOLER: 'session' })).toBe('session');
    expect(poolerModeOf('postgres://u:p@127.0.0.1/db', { CANDLEKEEP_DB_POOLER: 'transaction' })).toBe('transaction');
    expect(() => poolerModeOf('postgres://u:p@127.0.0.1/db', { CANDLEKEEP_DB_POOLER: 'statement' })).toThrow(/session or transaction/);
  });
});
