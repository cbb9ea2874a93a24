import { readFile } from 'node:fs/promises';
import type { Command } from '../cli/command.ts';
import { UsageError } from '../cli/command.ts';
import { redactSecrets } from '../functions/lambda-kit/redact.ts';

/** Subcommands, loaded on demand so `candlekeep --help` stays instant. */
const commands: Record<string, () => Promise<{ command: Command }>> = {
  migrate: () => import('../cli/commands/migrate.ts'),
  serve: () => import('../cli/commands/serve.ts'),
  candles: () => import('../cli/commands/candles.ts'),
  markets: () => import('../cli/commands/markets.ts'),
  backtests: () => import('../cli/commands/backtests.ts'),
  pull: () => import('../cli/commands/pull.ts'),
  backfill: () => import('../cli/commands/backfill.ts'),
  gaps: () => import('../cli/commands/gaps.ts'),
  redrive: () => import('../cli/commands/redrive.ts'),
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V') {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    console.log(`candlekeep ${pkg.version} (Node.js ${process.versions.node})`);
    return 0;
  }
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    const lines = await Promise.all(
      Object.entries(commands).map(async ([n, load]) => `  ${n.padEnd(12)} ${(await load()).command.summary}`),
    );
    console.log(`usage: candlekeep <command> [options]   (candlekeep --version)\n\ncommands:\n${lines.join('\n')}\n\nRun candlekeep <command> --help for a command's options.`);
    return name ? 0 : 2;
  }
  const load = commands[name];
  if (!load) {
    console.error(`candlekeep: unknown command "${name}"; run candlekeep --help for the list`);
    return 2;
  }
  const { command } = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`usage: ${command.usage}\n\n${command.summary}`);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`candlekeep ${name}: ${(err as Error).message}\nusage: ${command.usage}`);
      return 2;
    }
    // A driver's message can quote the connection string it was given.
    console.error(`candlekeep ${name}: ${redactSecrets((err as Error).message)}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
