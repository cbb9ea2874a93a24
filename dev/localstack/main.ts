/** `npx tsx dev/localstack/main.ts`: start (or find) LocalStack and keep it up until Ctrl-C. */
import { ensureLocalStack } from './index.ts';

async function main(): Promise<void> {
  const t0 = Date.now();
  const ls = await ensureLocalStack({ log: (m) => console.log(m) });
  console.log(`LocalStack ${ls.mode} at ${ls.endpoint} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  if (ls.mode === 'external') {
    console.log('It was already running; nothing to keep alive here.');
    return;
  }
  console.log('Press Ctrl-C to stop it.');
  // A pending timer keeps the process alive; the child process itself is unref'd.
  const keepAlive = setInterval(() => {}, 1 << 30);
  const shutdown = (signal: string): void => {
    console.log(`\n${signal}: stopping LocalStack`);
    ls.stop().then(
      () => {
        clearInterval(keepAlive);
        process.exit(0);
      },
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
