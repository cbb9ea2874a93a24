#!/usr/bin/env node
// `npx candlekeep ...`: runs the TypeScript CLI through tsx's loader, so no build step is needed.
// On a Node older than the project needs, it runs itself again under Node 24 (node-runtime.mjs).
import { fileURLToPath } from 'node:url';
import { isSupported, run } from './node-runtime.mjs';

if (isSupported(process.versions.node, process.env.CANDLEKEEP_NODE_MINIMUM)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./candlekeep.ts');
} else {
  try {
    process.exitCode = await run('node', [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
      minimum: process.env.CANDLEKEEP_NODE_MINIMUM,
    });
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
