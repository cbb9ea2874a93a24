import { readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hostEnvironment, startHost } from '../../dev/localstack/host.ts';
import type { LocalStackHandle } from '../../dev/localstack/index.ts';
import { STATE_DIR } from '../../dev/paths.ts';

/**
 * LocalStack on the host must listen on loopback only. The shared instance other runs use is
 * left alone: this file starts a second one on a free port (its own state folder and log) from
 * the project's venv, and looks at the sockets it listens on.
 */
let handle: LocalStackHandle | undefined;
let port = 0;

afterAll(async () => {
  await handle?.stop();
  if (port) {
    await rm(join(STATE_DIR, `localstack-${port}-state`), { recursive: true, force: true });
    await rm(join(STATE_DIR, `localstack-${port}.log`), { force: true });
  }
});

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: p } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return p;
}

/** Local addresses of the sockets listening on `port`, from the kernel's tables (hex, as /proc writes them). */
async function listeningAddresses(p: number): Promise<string[]> {
  const hexPort = p.toString(16).toUpperCase().padStart(4, '0');
  const out: string[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const lines = (await readFile(table, 'utf8').catch(() => '')).split('\n').slice(1);
    for (const line of lines) {
      const [, local, , state] = line.trim().split(/\s+/);
      // 0A is TCP_LISTEN.
      if (local?.endsWith(`:${hexPort}`) && state === '0A') out.push(local.slice(0, local.lastIndexOf(':')));
    }
  }
  return out;
}

function connectResult(host: string, p: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port: p });
    s.setTimeout(3_000, () => {
      s.destroy();
      resolve('timeout');
    });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
}

describe('LocalStack on the host', () => {
  it('is told to bind loopback through a gateway that honours the host', () => {
    const env = hostEnvironment(4599, '/state', {});
    expect(env).toMatchObject({ GATEWAY_SERVER: 'hypercorn', GATEWAY_LISTEN: '127.0.0.1:4599', LOCALSTACK_HOST: '127.0.0.1:4599' });
  });

  it('listens on 127.0.0.1 only: no wildcard socket, and another address of this machine is refused', { timeout: 240_000 }, async () => {
    port = await freePort();
    handle = await startHost({ log: () => {}, stateDir: STATE_DIR, readyTimeoutMs: 180_000, port });
    expect(handle).toMatchObject({ mode: 'host', endpoint: `http://127.0.0.1:${port}` });

    const addresses = await listeningAddresses(port);
    expect(addresses.length).toBeGreaterThan(0);
    // 0100007F is 127.0.0.1 in /proc's little-endian hex; wildcards are all zeros (0.0.0.0 or ::).
    expect(addresses.every((a) => a === '0100007F'), `listening on ${addresses.join(', ')}`).toBe(true);

    expect(await connectResult('127.0.0.1', port)).toBe('connected');
    const other = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal);
    if (other) expect(await connectResult(other.address, port)).toBe('ECONNREFUSED');
  });
});
