import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { localStackServices, probeHealth, waitUntilReady } from '../../dev/localstack/health.ts';

/**
 * A stand-in for a LocalStack that is still booting: it accepts connections and closes them
 * without answering (what undici reports as "other side closed") until `closeFirst` requests have
 * come, then answers its health endpoint.
 */
async function bootingLocalStack(closeFirst: number): Promise<{ endpoint: string; requests: () => number; server: Server }> {
  let seen = 0;
  const server = createServer((req, res) => {
    seen += 1;
    if (seen <= closeFirst) {
      req.socket.destroy();
      return;
    }
    res.setHeader('content-type', 'application/json');
    if (req.url === '/_localstack/init') res.end(JSON.stringify({ completed: { READY: true } }));
    else res.end(JSON.stringify({ services: { sqs: 'running', s3: 'available', lambda: 'disabled' }, version: 'test' }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => seen, server };
}

let open: Server | undefined;
afterEach(async () => {
  await new Promise((r) => open?.close(r) ?? r(undefined));
  open = undefined;
});

describe('waiting for a LocalStack that is not up yet', () => {
  it('polls one that closes connections until it answers, then hands back its usable services', async () => {
    const ls = await bootingLocalStack(3);
    open = ls.server;
    expect(await localStackServices(ls.endpoint, { timeoutMs: 20_000 })).toEqual(new Set(['sqs', 's3']));
    expect(ls.requests()).toBeGreaterThan(3);
  });

  it('gives up at its deadline naming the endpoint and the last reason, not a bare "fetch failed"', async () => {
    const ls = await bootingLocalStack(Number.POSITIVE_INFINITY);
    open = ls.server;
    const started = Date.now();
    await expect(localStackServices(ls.endpoint, { timeoutMs: 600 })).rejects.toThrow(
      new RegExp(`^LocalStack at ${ls.endpoint} did not become ready within \\d+\\.\\d s \\(no answer: fetch failed: other side closed\\)$`),
    );
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('tells a port nobody listens on (refused) from one that is still booting', async () => {
    const ls = await bootingLocalStack(1);
    open = ls.server;
    expect(await probeHealth(ls.endpoint)).toEqual({ error: 'fetch failed: other side closed', refused: false });
    const { port } = ls.server.address() as AddressInfo;
    await new Promise((r) => ls.server.close(r));
    open = undefined;
    const refused = await probeHealth(`http://127.0.0.1:${port}`);
    expect(refused).toMatchObject({ refused: true, error: expect.stringMatching(/ECONNREFUSED/) });
    await expect(waitUntilReady(`http://127.0.0.1:${port}`, { services: [], deadline: Date.now() })).rejects.toThrow(/ECONNREFUSED/);
  });
});
