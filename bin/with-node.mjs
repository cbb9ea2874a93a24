#!/usr/bin/env node
// `node bin/with-node.mjs <command> [args...]`: what the npm scripts run their tools through, so
// `npm run dev` and `npm test` work on an older Node too (see node-runtime.mjs).
import { runAsMain } from './node-runtime.mjs';

const [command, ...args] = process.argv.slice(2);
if (!command) {
  process.stderr.write('usage: node bin/with-node.mjs <command> [args...]\n');
  process.exit(2);
}
await runAsMain(command, args);
