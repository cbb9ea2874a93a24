import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { projectPath } from '../../../lib/constructs/candlekeep-function.ts';
import { closedPort, runCli } from '../../support/cli.ts';
import { API_KEY, load, parseCsv, useApi, walk } from '../api/support.ts';

const HOUR = 3_600_000;
const version = (JSON.parse(readFileSync(projectPath('package.json'), 'utf8')) as { version: string }).version;

describe('candlekeep --help and --version', () => {
  it('lists a command\'s options with their short flags, from -h or --help', async () => {
    for (const flag of ['--help', '-h']) {
      const out = await runCli(['candles', flag]);
      expect(out.code).toBe(0);
      expect(out.stdout).toMatch(/^usage: candlekeep candles --exchange <id> --symbol <BASE\/QUOTE> --interval <1m\.\.1w> \[options\]/);
      for (const line of [/-e, --exchange <id>/, /-s, --symbol <BASE\/QUOTE>/, /-i, --interval <1m\.\.1w>/, /--start <ISO\|ms>/, /--gaps <omit\|null\|ffill>/, /-l, --limit <n>/, /-a, --all/, /-j, --json/, /-c, --csv/, /-h, --help/]) {
        expect(out.stdout).toMatch(line);
      }
      expect(out.stdout).toContain('CANDLEKEEP_API_KEY');
    }
  });

  it('gives each subcommand its own help, also as `candlekeep help <command> <subcommand>`', async () => {
    const list = await runCli(['backtests', 'list', '--help']);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/--filter <name=value> +an API filter/);
    expect(list.stdout).toMatch(/--sort <key>/);
    const status = await runCli(['help', 'backfill', 'status']);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^usage: candlekeep backfill status \[options\] <id>/);
    const group = await runCli(['backtests', '--help']);
    expect(group.stdout).toMatch(/subcommands:\n  list +list runs/);
    expect(group.stdout).toContain('candlekeep backtests compare [options] <id> <id>');
  });

  it('prints the version with -V and --version, and the short flag table in the overview', async () => {
    for (const flag of ['-V', '--version']) {
      const out = await runCli([flag]);
      expect(out.code).toBe(0);
      expect(out.stdout.trim()).toBe(`candlekeep ${version} (Node.js ${process.versions.node})`);
    }
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('-e exchange, -s symbol, -i interval, -f from, -t to');
  });
});

describe('candlekeep usage mistakes', () => {
  it('names the closest command, subcommand or option and exits with code 2', async () => {
    const command = await runCli(['candels']);
    expect(command).toMatchObject({ code: 2, stdout: '' });
    expect(command.stderr).toContain('unknown command "candels"; did you mean "candles"?');

    const sub = await runCli(['backtests', 'lst']);
    expect(sub.code).toBe(2);
    expect(sub.stderr).toContain('unknown subcommand "lst"; did you mean "list"?');

    const option = await runCli(['candles', '--exchnage', 'binance']);
    expect(option.code).toBe(2);
    expect(option.stderr).toContain('unknown option --exchnage; did you mean --exchange?');
    expect(option.stderr).toContain('Run candlekeep candles --help for its options.');

    const prefix = await runCli(['gaps', '--inter', '1h']);
    expect(prefix.code).toBe(2);
    expect(prefix.stderr).toContain('did you mean --interval?');
  });

  it('refuses a missing required option and a stray argument with code 2', async () => {
    const missing = await runCli(['candles', '-e', 'binance', '-s', 'BTC/USDT']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--interval is required');
    const stray = await runCli(['markets', 'binance']);
    expect(stray.code).toBe(2);
    expect(stray.stderr).toContain('unexpected argument "binance": this command takes only options');
  });
});

describe('candlekeep against the API', () => {
  const api = useApi();
  const symbol = `CLI${Date.now().toString(36).toUpperCase()}/USDT`;
  const start = Date.UTC(2024, 2, 1);
  const env = () => ({ CANDLEKEEP_URL: api.url, CANDLEKEEP_API_KEY: API_KEY });

  it('takes the short flags: -e -s -i -l -j, and -a -c for every page as CSV', async () => {
    await load(api, symbol, '1h', walk(start, 5, HOUR, 7));
    const page = await runCli(['candles', '-e', 'binance', '-s', symbol, '-i', '1h', '--start', '2024-03-01', '-l', '2', '-j'], env());
    expect(page.code).toBe(0);
    const json = JSON.parse(page.stdout) as { candles: { openTime: number }[]; nextCursor: string | null };
    expect(json.candles.map((c) => c.openTime)).toEqual([start, start + HOUR]);
    expect(json.nextCursor).toEqual(expect.any(String));

    const all = await runCli(['candles', '-e', 'binance', '-s', symbol, '-i', '1h', '-l', '2', '-a', '-c'], env());
    expect(all.code).toBe(0);
    expect(parseCsv(all.stdout)).toHaveLength(5);
  });

  it('takes an option value that starts with a dash, as the README writes --sort -metric.sharpe', async () => {
    const out = await runCli(['backtests', 'list', '--sort', '-metric.sharpe', '--filter', `strategy=none-${Date.now()}`, '-j'], env());
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({ runs: [], nextCursor: null });
  });
});

describe('candlekeep when an endpoint is unreachable', () => {
  it('names the API endpoint and the reason, never the key', async () => {
    const port = await closedPort();
    const key = 'k3y-that-must-not-show-0042';
    const out = await runCli(['markets'], { CANDLEKEEP_URL: `http://127.0.0.1:${port}`, CANDLEKEEP_API_KEY: key });
    expect(out.code).toBe(1);
    expect(out.stderr).toContain(`candlekeep markets: could not reach http://127.0.0.1:${port}/v1/markets: connection refused`);
    expect(out.stdout + out.stderr).not.toContain(key);
  });

  it('names the database endpoint and the reason, never the password', async () => {
    const port = await closedPort();
    const out = await runCli(['gaps', '-e', 'binance', '-s', 'BTC/USDT', '-i', '1h'], { DATABASE_URL: `postgres://appuser:Pa55w0rdXYZ@127.0.0.1:${port}/candlekeep` });
    expect(out.code).toBe(1);
    expect(out.stderr).toContain(`could not reach postgres://appuser@127.0.0.1:${port}/candlekeep: connection refused`);
    expect(out.stdout + out.stderr).not.toContain('Pa55w0rd');
  });
});

describe('candlekeep migrate', () => {
  it('says on the first line of stderr, before connecting, that without DATABASE_URL it migrates the embedded server', async () => {
    // A port where "a server" accepts and says nothing: the CLI must have warned before it gets anywhere.
    const silent = net.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    const env: NodeJS.ProcessEnv = { ...process.env, CANDLEKEEP_EMBEDDED_PG_PORT: String(port) };
    delete env.DATABASE_URL;
    const child = spawn(process.execPath, [projectPath('bin/candlekeep.js'), 'migrate'], { cwd: projectPath(''), env, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const firstLine = await new Promise<string>((resolve, reject) => {
        let text = '';
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
          text += chunk;
          if (text.includes('\n')) resolve(text.split('\n')[0]!);
        });
        child.once('exit', (code) => reject(new Error(`exited ${code} with stderr ${JSON.stringify(text)}`)));
      });
      expect(firstLine).toBe(
        `candlekeep migrate: DATABASE_URL is not set, so this migrates the EMBEDDED PostgreSQL on this machine (127.0.0.1:${port}, database candlekeep), not a deployed database`,
      );
    } finally {
      child.kill();
      silent.close();
    }
  });

  it('says nothing of the kind when DATABASE_URL is set', async () => {
    const out = await runCli(['migrate', '-j'], { DATABASE_URL: process.env.DATABASE_URL });
    expect(out.code).toBe(0);
    expect(out.stderr).not.toContain('EMBEDDED');
    expect(JSON.parse(out.stdout.trim().split('\n').at(-1)!)).toMatchObject({ applied: [] });
  });
});
