import { readFile } from 'node:fs/promises';
import { commandHelp, HelpRequested, UsageError, type Command } from '../cli/command.ts';
import { commands } from '../cli/commands/index.ts';
import { SHORT_FLAGS } from '../cli/options.ts';
import { closest } from '../cli/suggest.ts';
import { redactSecrets } from '../functions/lambda-kit/redact.ts';


async function topHelp(): Promise<string> {
  const lines = await Promise.all(Object.entries(commands).map(async ([n, load]) => `  ${n.padEnd(12)} ${(await load()).command.summary}`));
  return [
    'usage: candlekeep <command> [options]',
    '       candlekeep <command> --help      a command\'s options',
    '       candlekeep -V, --version',
    '',
    'commands:',
    ...lines,
    '',
    `Short flags mean the same in every command that has the option: ${Object.entries(SHORT_FLAGS).map(([s, long]) => `-${s} ${long}`).join(', ')}.`,
  ].join('\n');
}

const unknown = (what: string, typed: string, names: string[], help: string) => {
  const guess = closest(typed, names);
  return `unknown ${what} "${typed}"${guess ? `; did you mean "${guess}"?` : ''} (${help})`;
};

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--version' || first === '-V') {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    console.log(`candlekeep ${pkg.version} (Node.js ${process.versions.node})`);
    return 0;
  }
  if (first === undefined || first === '--help' || first === '-h' || (first === 'help' && rest.length === 0)) {
    (first ? console.log : console.error)(await topHelp());
    return first ? 0 : 2;
  }
  // `candlekeep help backtests list` is `candlekeep backtests list --help`.
  const words = first === 'help' ? [...rest, '--help'] : argv;
  const [name, ...args] = words as [string, ...string[]];
  const load = commands[name];
  if (!load) {
    console.error(`candlekeep: ${unknown(name.startsWith('-') ? 'option' : 'command', name, Object.keys(commands), 'candlekeep --help lists them')}`);
    return 2;
  }
  // Walk down to the subcommand the arguments name (`backtests list`, `backfill status`).
  let cmd = (await load()).command;
  let path = name;
  while (cmd.subcommands && args[0] !== undefined && !args[0].startsWith('-')) {
    const sub = cmd.subcommands[args[0]];
    if (!sub) {
      if (cmd.run) break; // a command with its own action and positional arguments
      console.error(`candlekeep ${path}: ${unknown('subcommand', args[0], Object.keys(cmd.subcommands), `candlekeep ${path} --help lists them`)}`);
      return 2;
    }
    path += ` ${args.shift()}`;
    cmd = sub;
  }
  const showHelp = () => console.log(commandHelp(path, cmd));
  if (!cmd.run) {
    if (args.includes('--help') || args.includes('-h')) {
      showHelp();
      return 0;
    }
    console.error(`candlekeep ${path}: name a subcommand: ${Object.keys(cmd.subcommands ?? {}).join(', ')} (candlekeep ${path} --help)`);
    return 2;
  }
  try {
    return await cmd.run(args);
  } catch (err) {
    if (err instanceof HelpRequested) {
      showHelp();
      return 0;
    }
    if (err instanceof UsageError) {
      // `--help` wins over a mistake elsewhere on the line.
      if (args.includes('--help') || args.includes('-h')) {
        showHelp();
        return 0;
      }
      console.error(`candlekeep ${path}: ${err.message}\nRun candlekeep ${path} --help for its options.`);
      return 2;
    }
    // A driver's message can quote the connection string it was given.
    console.error(`candlekeep ${path}: ${redactSecrets((err as Error).message)}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
