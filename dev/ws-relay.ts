import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

/**
 * A WebSocket-to-TCP relay so the Neon serverless driver (which speaks the Postgres wire protocol
 * inside WebSocket frames) can reach a plain local PostgreSQL. It forwards only to the `host:port`
 * addresses it is told to allow: anything else is refused before a TCP connection is made. It
 * refuses browsers (any request with an Origin header) with HTTP 403, whatever address they ask for.
 */
export interface RelayOptions {
  /** Addresses the relay may connect to, as `host:port`. */
  allow: readonly string[];
  /** Port to listen on (127.0.0.1); 0 picks a free one. */
  port?: number;
  log?: (msg: string) => void;
}

export interface Relay {
  /** `127.0.0.1:<port>`, the value for `neonConfig.wsProxy`. */
  readonly address: string;
  readonly port: number;
  /** Connections still open on either side (a client gone, its database side still closing, counts). */
  connections(): number;
  /** Drops every open connection but keeps listening (simulates a network blip). */
  dropConnections(): void;
  close(): Promise<void>;
}

/** Bytes of one read from the database, and reads that may be on their way to a client at once (1 MB). */
const RELAY_CHUNK = 64 * 1024;
const RELAY_CHUNKS = 16;

export async function startRelay(opts: RelayOptions): Promise<Relay> {
  const allowed = new Set(opts.allow.map((a) => a.toLowerCase()));
  const sockets = new Set<{ ws: WebSocket; tcp: net.Socket }>();
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: opts.port ?? 0,
    path: '/v1',
    // Browsers send Origin on every WebSocket upgrade and let any page open one to 127.0.0.1, so a
    // web page could otherwise reach the local PostgreSQL through the relay. The Neon driver in
    // Node sends none: any Origin means a browser, refused before a TCP connection is made.
    verifyClient: (info: { origin?: string }, done: (ok: boolean, code?: number, message?: string) => void) => {
      if (info.origin === undefined || info.origin === '') return done(true);
      opts.log?.(`relay: refused a browser connection from origin ${info.origin}`);
      done(false, 403, 'browser-originated connections are refused: this relay serves local tools only');
    },
  });

  wss.on('connection', (ws, req) => {
    const address = new URL(req.url ?? '/', 'http://relay').searchParams.get('address') ?? '';
    if (!allowed.has(address.toLowerCase())) {
      opts.log?.(`relay: refused ${address || '(no address)'}`);
      ws.close(1008, `address ${address || '(none)'} is not allowed by this relay`);
      return;
    }
    const sep = address.lastIndexOf(':');
    // Database to client: the server's bytes are read into a few reused buffers, each lent to the
    // WebSocket until its frame is written out, and reading pauses while all are out. A slow client
    // therefore holds the server back (TCP backpressure) instead of the relay buffering what the
    // server sends, and reading allocates nothing: a Buffer per read, garbage only a collection
    // would free, let this thread hold tens of MB of dead buffers through an export.
    const free: Buffer[] = [];
    let lent = 0;
    let held = false;
    const tcp = net.connect({
      host: address.slice(0, sep),
      port: Number(address.slice(sep + 1)),
      onread: {
        buffer: () => free.pop() ?? Buffer.allocUnsafeSlow(RELAY_CHUNK),
        callback: (n, buf) => {
          lent++;
          ws.send(buf.subarray(0, n), { binary: true }, () => {
            lent--;
            free.push(buf as Buffer);
            if (held && lent <= RELAY_CHUNKS / 2) {
              held = false;
              tcp.resume();
            }
          });
          // Every buffer is on its way to the client: read again once half have come back.
          if (lent >= RELAY_CHUNKS) {
            held = true;
            tcp.pause();
          }
          return true;
        },
      },
    });
    tcp.setNoDelay(true);
    const pair = { ws, tcp };
    sockets.add(pair);
    const pending: Buffer[] = [];
    let connected = false;
    tcp.on('connect', () => {
      connected = true;
      for (const chunk of pending) tcp.write(chunk);
      pending.length = 0;
    });
    // Client to database: when the server is slow to take what the client sends, the relay stops
    // reading the WebSocket until the socket drains, rather than buffering without bound.
    tcp.on('drain', () => ws.resume());
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      const chunk = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      if (!connected) pending.push(chunk);
      else if (!tcp.write(chunk)) ws.pause();
    });
    // A failure on either side drops both at once.
    const end = () => {
      sockets.delete(pair);
      tcp.destroy();
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.terminate();
    };
    tcp.on('error', (err) => {
      opts.log?.(`relay: tcp ${address}: ${err.message}`);
      end();
    });
    // An orderly close on either side closes the other once what it was given has gone out: the
    // database's last bytes (often an ErrorResponse saying why it closed) may still be queued for
    // a slow client, and terminating the WebSocket would drop them; ws.close() sends its close
    // frame after them. Likewise the client's last message (Terminate) reaches the database.
    tcp.on('close', (hadError) => {
      if (hadError || ws.readyState !== ws.OPEN) return end();
      sockets.delete(pair);
      ws.close(1000);
    });
    ws.on('close', () => {
      // Listed until the database's side has closed as well, so that close() still ends it.
      if (connected) tcp.end();
      else end();
    });
    ws.on('error', end);
  });

  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  const port = (wss.address() as AddressInfo).port;
  const dropConnections = () => {
    for (const { ws, tcp } of [...sockets]) {
      tcp.destroy();
      ws.terminate();
    }
    sockets.clear();
  };
  return {
    address: `127.0.0.1:${port}`,
    port,
    connections: () => sockets.size,
    dropConnections,
    close() {
      dropConnections();
      return new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
