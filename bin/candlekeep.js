#!/usr/bin/env node
// `npx candlekeep ...`: runs the TypeScript CLI through tsx's loader, so no build step is needed.
// On a Node older than the project needs, it runs itself again under Node 24 (node-runtime.mjs).
import { fileURLToPath } from 'node:url';
import { isSupported, runAsMain } from './node-runtime.mjs';

if (isSupported(process.versions.node, process.env.CANDLEKEEP_NODE_MINIMUM)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./candlekeep.ts');
} else {
  await runAsMain('node', [fileURLToPath(import.meta.url), ...process.argv.slice(2)]);
}
