import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { hostPort } from '../../dev/postgres.ts';
import { startRelay, type Relay } from '../../dev/ws-relay.ts';
import { configureLocalRelay, createPool } from '../../functions/store/db.ts';

let relay: Relay;
let target: net.Server;
let targetAddress: string;
let accepted = 0;
const refusals: string[] = [];

beforeAll(async () => {
  // A TCP listener standing in for the database, so the test sees whether the relay ever connected.
  target = net.createServer((socket) => {
    accepted += 1;
    socket.end();
  });
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
  targetAddress = `127.0.0.1:${(target.address() as AddressInfo).port}`;
  relay = await startRelay({ allow: [targetAddress, hostPort(process.env.DATABASE_URL!)], log: (m) => refusals.push(m) });
});
afterAll(async () => {
  await relay.close();
  await new Promise<void>((resolve) => target.close(() => resolve()));
});

/** Opens a WebSocket to the relay for `address`; resolves with how the upgrade ended. */
function connect(address: string, headers: Record<string, string>): Promise<{ opened: boolean; status?: number; body?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${relay.address}/v1?address=${address}`, { headers });
    ws.once('open', () => {
      ws.close();
      resolve({ opened: true });
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ opened: false, status: res.statusCode ?? 0, body }));
    });
    ws.once('error', reject);
  });
}

describe('the local WebSocket relay', () => {
  it('refuses a browser-originated upgrade with 403 before connecting anywhere', async () => {
    const before = accepted;
    for (const address of [targetAddress, hostPort(process.env.DATABASE_URL!)]) {
      const answer = await connect(address, { Origin: 'https://evil.example' });
      expect(answer).toMatchObject({ opened: false, status: 403 });
      expect(answer.body).toMatch(/browser-originated connections are refused/);
    }
    expect(accepted - before).toBe(0);
    expect(relay.connections()).toBe(0);
    expect(refusals.some((m) => m.includes('https://evil.example'))).toBe(true);
  });

  it('refuses an Origin of "null" too (sandboxed pages, file:// URLs)', async () => {
    expect(await connect(targetAddress, { Origin: 'null' })).toMatchObject({ opened: false, status: 403 });
  });

  it('forwards a client without Origin, as the Neon driver in Node is', async () => {
    const before = accepted;
    expect(await connect(targetAddress, {})).toEqual({ opened: true });
    const deadline = Date.now() + 5_000;
    while (accepted === before && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    expect(accepted - before).toBe(1);

    configureLocalRelay(relay.address);
    const pool = createPool(process.env.DATABASE_URL!, { max: 1 });
    try {
      expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await pool.end();
    }
  });
});
