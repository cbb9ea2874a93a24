import { describe, expect, it } from 'vitest';
import { commandHelp, defineCommand, HelpRequested, parseCommandLine, UsageError, type Command } from '../../../cli/command.ts';
import { commands } from '../../../cli/commands/index.ts';
import { SHORT_FLAGS } from '../../../cli/options.ts';
import { closest } from '../../../cli/suggest.ts';

/** Every command and subcommand, with the words that reach it. */
async function everyCommand(): Promise<[string, Command][]> {
  const out: [string, Command][] = [];
  const walk = (path: string, cmd: Command) => {
    out.push([path, cmd]);
    for (const [name, sub] of Object.entries(cmd.subcommands ?? {})) walk(`${path} ${name}`, sub);
  };
  for (const [name, load] of Object.entries(commands)) walk(name, (await load()).command);
  return out;
}

describe('command declarations', () => {
  it('give every option of every command a description, and --help lists each with its short flag', async () => {
    for (const [path, cmd] of await everyCommand()) {
      const help = commandHelp(path, cmd);
      expect(help, path).toMatch(new RegExp(`^usage: candlekeep ${path}`));
      if (!cmd.run) continue;
      for (const [name, o] of Object.entries(cmd.options)) {
        expect(o.description, `${path} --${name}`).toMatch(/\w/);
        expect(help, `${path} --help lists --${name}`).toContain(`${o.short ? `-${o.short}, ` : ''}--${name}`);
      }
      expect(help).toContain('-h, --help');
    }
  });

  it('refuse a short flag that means another option elsewhere', () => {
    expect(() => defineCommand({ summary: 's', options: { symbols: { type: 'string', short: 's', description: 'x' } }, run: async () => 0 })).toThrow(
      'option --symbols: -s means --symbol in every command',
    );
    expect(() => defineCommand({ summary: 's', options: { zone: { type: 'string', short: 'z', description: 'x' } }, run: async () => 0 })).toThrow(/not one of the short flags/);
    expect(Object.keys(SHORT_FLAGS)).toContain('h');
  });
});

describe('parseCommandLine', () => {
  const options = { sort: { type: 'string', description: 'order' }, symbol: { type: 'string', short: 's', description: 'sym', required: true }, json: { type: 'boolean', short: 'j', description: 'json' } } as const;

  it('takes a value that starts with a dash unless it is one of the options', () => {
    expect(parseCommandLine(['-s', 'BTC/USDT', '--sort', '-metric.sharpe'], options, false).values).toMatchObject({ sort: '-metric.sharpe', symbol: 'BTC/USDT' });
    expect(() => parseCommandLine(['-s', 'X', '--sort', '-j'], options, false)).toThrow(UsageError);
  });

  it('refuses a missing required option, and reports --help anywhere on the line', () => {
    expect(() => parseCommandLine(['--sort', 'x'], options, false)).toThrow('--symbol is required');
    expect(() => parseCommandLine(['--sort', 'x', '-h'], options, false)).toThrow(HelpRequested);
  });

  it('suggests the closest option for a typo or a prefix', () => {
    expect(() => parseCommandLine(['--smybol', 'x'], options, false)).toThrow('unknown option --smybol; did you mean --symbol?');
    expect(() => parseCommandLine(['--verbose', 'x'], options, false)).toThrow(/^unknown option --verbose$/);
    expect(closest('--interv', ['--interval', '--exchange'])).toBe('--interval');
    expect(closest('quux', ['candles', 'markets'])).toBeUndefined();
  });
});
