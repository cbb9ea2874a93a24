import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { hostPort } from '../../dev/postgres.ts';
import { startRelay, type Relay } from '../../dev/ws-relay.ts';
import { configureLocalRelay, createPool } from '../../functions/store/db.ts';
import { pollUntil } from '../support/poll.ts';

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

/** Runs `fn` with a relay allowed to reach a TCP server standing in for the database, whose sockets `onSocket` handles. */
async function withTarget(onSocket: (socket: net.Socket) => void, fn: (address: string, relay: Relay) => Promise<void>) {
  const server = net.createServer((socket) => {
    // The relay resets it when the test closes the relay.
    socket.on('error', () => {});
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const r = await startRelay({ allow: [address] });
  try {
    await fn(address, r);
  } finally {
    await r.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

async function open(r: Relay, address: string): Promise<WebSocket> {
  const ws = new WebSocket(`ws://${r.address}/v1?address=${address}`);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return ws;
}

/**
 * Backpressure: 256 MB through the relay to or from a peer that does not read. The relay may
 * hold what the kernel's socket buffers hold (at most ~75 MB on Linux's defaults) and the 1 MB it
 * reads at a time, but it must stop reading rather than buffer the rest; once the peer reads
 * again, every byte arrives, in order.
 */
describe('the relay under backpressure', () => {
  const TOTAL = 256 * 1024 * 1024;
  // A multiple of the pattern's period (251), so every chunk holds the same bytes.
  const CHUNK = 251 * 4096;
  const chunk = Buffer.alloc(CHUNK, 0);
  for (let i = 0; i < CHUNK; i++) chunk[i] = i % 251;

  /** Counts bytes and checks each is (offset mod 251). */
  function checker() {
    let offset = 0;
    let bad = -1;
    return {
      take(data: Uint8Array) {
        for (let i = 0; i < data.length; i++) if (bad < 0 && data[i] !== (offset + i) % 251) bad = offset + i;
        offset += data.length;
      },
      get bytes() {
        return offset;
      },
      get firstBadOffset() {
        return bad;
      },
    };
  }

  /** Resolves once `progress()` has not moved for half a second: the flow has stalled. */
  async function stalled(progress: () => number): Promise<number> {
    let last = -1;
    let still = 0;
    for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 100));
      const now = progress();
      still = now === last ? still + 1 : 0;
      last = now;
      if (still >= 5) return now;
    }
    throw new Error(`the flow did not stall: ${last} bytes went through`);
  }

  it('stops reading the database while the client does not read, then delivers everything', async () => {
    let written = 0;
    const received = checker();
    await withTarget(
      (socket) => {
        // The database side: sends TOTAL bytes as fast as its socket takes them.
        const send = () => {
          while (written < TOTAL) {
            const n = Math.min(CHUNK, TOTAL - written);
            written += n;
            if (!socket.write(n === CHUNK ? chunk : chunk.subarray(0, n))) return socket.once('drain', send);
          }
          socket.end();
        };
        send();
      },
      async (address, r) => {
        const ws = await open(r, address);
        ws.pause();
        ws.on('message', (data: Buffer) => received.take(data));
        const accepted = await stalled(() => written);
        expect(accepted).toBeLessThan(TOTAL / 2);
        expect(received.bytes).toBe(0);
        ws.resume();
        const deadline = Date.now() + 60_000;
        while (received.bytes < TOTAL && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
        expect(received.bytes).toBe(TOTAL);
        expect(received.firstBadOffset).toBe(-1);
        ws.close();
      },
    );
  }, 120_000);

  it('stops reading the client while the database does not read, then delivers everything', async () => {
    const received = checker();
    let target: net.Socket | undefined;
    await withTarget(
      (socket) => {
        // The database side: takes nothing until told to.
        target = socket;
        socket.pause();
        socket.on('data', (data: Buffer) => received.take(data));
      },
      async (address, r) => {
        const ws = await open(r, address);
        // One message at a time, each once the last is written out: a callback per write, so
        // `sent` is what the relay's side has taken.
        let sent = 0;
        const sendNext = () => {
          const n = Math.min(CHUNK, TOTAL - sent);
          if (n > 0) {
            ws.send(n === CHUNK ? chunk : chunk.subarray(0, n), { binary: true }, (err) => {
              if (err) return;
              sent += n;
              sendNext();
            });
          }
        };
        sendNext();
        const accepted = await stalled(() => sent);
        expect(accepted).toBeLessThan(TOTAL / 2);
        expect(received.bytes).toBe(0);
        target!.resume();
        const deadline = Date.now() + 60_000;
        while (received.bytes < TOTAL && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
        expect(received.bytes).toBe(TOTAL);
        expect(received.firstBadOffset).toBe(-1);
        ws.close();
      },
    );
  }, 120_000);
});

/**
 * Closing: what one side sent before an orderly close reaches the other side even when that side
 * is not reading at the time. PostgreSQL says why it ends a connection (an ErrorResponse) and then
 * closes it; a relay that drops what it still holds turns that into "Connection terminated".
 */
describe('the relay at an orderly close', () => {
  // 4 of the relay's 64 KB reads: far fewer than the 16 buffers it lends out before it stops
  // reading (even were each read a quarter full), so it reads the end of the stream while these
  // bytes may still wait for the client.
  const SIZE = 4 * 64 * 1024;
  const payload = Buffer.alloc(SIZE);
  for (let i = 0; i < SIZE; i++) payload[i] = i % 251;

  it('delivers what the database sent before it closed to a client that was not reading, then closes with 1000', async () => {
    let targetClosed = false;
    await withTarget(
      (socket) => {
        socket.on('close', () => (targetClosed = true));
        socket.end(payload);
      },
      async (address, r) => {
        const ws = await open(r, address);
        ws.pause();
        const chunks: Buffer[] = [];
        let closeCode = 0;
        ws.on('message', (data: Buffer) => chunks.push(data));
        ws.on('close', (code) => (closeCode = code));
        // The relay has read the database's end of stream and closed its side to it.
        await pollUntil(() => targetClosed, { intervalMs: 10, description: 'the database side to close' });
        ws.resume();
        await pollUntil(() => closeCode !== 0, { intervalMs: 10, description: 'the WebSocket to close' });
        expect(Buffer.concat(chunks).equals(payload)).toBe(true);
        expect(closeCode).toBe(1000);
      },
    );
  });
});
