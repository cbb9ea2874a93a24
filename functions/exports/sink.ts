import { once } from 'node:events';
import type { Writable } from 'node:stream';

/** Writes one chunk, waiting for the stream to drain when its buffer is full (bounded memory). */
export async function writeChunk(out: Writable, chunk: Uint8Array | string): Promise<void> {
  if (!out.write(chunk)) await once(out, 'drain');
}
