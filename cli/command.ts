import { parseArgs, type ParseArgsOptionDescriptor } from 'node:util';
import { SHORT_FLAGS } from './options.ts';
import { closest } from './suggest.ts';

/**
 * One declaration per command: its summary, positional arguments and options. The same object
 * parses the command line, checks required options and prints `--help`, so a new command gets
 * its help, short flags and "did you mean" suggestions without writing any of them.
 */

/** One option as the user sees it: node's parseArgs descriptor plus what `--help` prints. */
export interface OptionSpec extends ParseArgsOptionDescriptor {
  /** One line for `--help`. */
  description: string;
  /** Placeholder of the value in `--help`, e.g. `<BASE/QUOTE>` (string options). */
  value?: string;
  /** Refused when missing, and shown in the usage line. */
  required?: boolean;
}
export type OptionSpecs = Record<string, OptionSpec>;

type Parsed<O extends OptionSpecs> = ReturnType<typeof parseArgs<{ options: O; strict: true; allowPositionals: true }>>;
type Values<O extends OptionSpecs> = Parsed<O>['values'];
/** The parsed values; a `required` option is never undefined. */
export type OptionValues<O extends OptionSpecs> = Omit<Values<O>, RequiredKeys<O>> & { [K in RequiredKeys<O>]-?: NonNullable<Values<O>[K]> };
type RequiredKeys<O extends OptionSpecs> = { [K in keyof O]: O[K] extends { required: true } ? K : never }[keyof O] & keyof Values<O>;

export interface CommandSpec<O extends OptionSpecs> {
  summary: string;
  /** Positional arguments for the usage line, e.g. `<id> <id> [...]`; without it positionals are refused. */
  args?: string;
  options: O;
  /** Lines printed after the options: examples, environment variables. */
  notes?: string[];
  run(input: { values: OptionValues<O>; positionals: string[] }): Promise<number>;
}

/** One CLI command (or subcommand), as the dispatcher and `--help` see it. */
export interface Command {
  summary: string;
  args?: string;
  options: OptionSpecs;
  notes?: string[];
  /** `backtests list`, `backfill status`: chosen by the first argument. */
  subcommands?: Record<string, Command>;
  /** Runs with the arguments after the command name; absent for a pure group of subcommands. */
  run?(argv: string[]): Promise<number>;
}

/** A usage mistake: printed with a pointer to `--help`, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Progress for long work goes to stderr, so stdout stays clean for --json and --csv. */
export const progress = (msg: string) => process.stderr.write(`${msg}\n`);

/** `-h, --help`, which every command takes. */
export const HELP_OPTION = { type: 'boolean', short: 'h', description: 'show this help' } as const satisfies OptionSpec;

export function defineCommand<const O extends OptionSpecs>(spec: CommandSpec<O>): Command {
  for (const [name, o] of Object.entries(spec.options)) {
    if (o.short !== undefined && SHORT_FLAGS[o.short] !== name) {
      throw new Error(`option --${name}: -${o.short} ${SHORT_FLAGS[o.short] ? `means --${SHORT_FLAGS[o.short]} in every command` : 'is not one of the short flags in cli/options.ts'}`);
    }
    if (name === 'help' || name === 'version') throw new Error(`option --${name} is the CLI's own`);
  }
  return {
    summary: spec.summary,
    ...(spec.args !== undefined ? { args: spec.args } : {}),
    options: spec.options,
    ...(spec.notes ? { notes: spec.notes } : {}),
    async run(argv) {
      const { values, positionals } = parseCommandLine(argv, spec.options, spec.args !== undefined);
      return spec.run({ values: values as OptionValues<O>, positionals });
    },
  };
}

/** A command made of subcommands (and optionally an action of its own when none is named). */
export function defineGroup(spec: { summary: string; subcommands: Record<string, Command>; default?: Command }): Command {
  return {
    summary: spec.summary,
    options: spec.default?.options ?? {},
    ...(spec.default?.args !== undefined ? { args: spec.default.args } : {}),
    ...(spec.default?.notes ? { notes: spec.default.notes } : {}),
    subcommands: spec.subcommands,
    ...(spec.default ? { run: spec.default.run } : {}),
  };
}

const withHelp = (options: OptionSpecs): OptionSpecs => ({ ...options, help: HELP_OPTION });

/** The option names a user may type for a command: `--name` and `-x` for each, plus help. */
function spelled(options: OptionSpecs): string[] {
  return Object.entries(withHelp(options)).flatMap(([name, o]) => [`--${name}`, ...(o.short ? [`-${o.short}`] : [])]);
}

/**
 * Parses argv against a declaration with node's parseArgs (strict: unknown options are refused),
 * then checks required options. A string option's value may start with a dash
 * (`--sort -metric.sharpe`) as long as it is not itself one of the command's options.
 */
export function parseCommandLine(argv: string[], options: OptionSpecs, allowPositionals: boolean) {
  const known = new Set(spelled(options));
  const shorts = new Map(Object.entries(options).flatMap(([name, o]) => (o.short ? [[o.short, name] as const] : [])));
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      args.push(...argv.slice(i));
      break;
    }
    const name = arg.startsWith('--') ? arg.slice(2) : arg.length === 2 && arg[0] === '-' ? shorts.get(arg[1]!) : undefined;
    const next = argv[i + 1];
    if (name && options[name]?.type === 'string' && next !== undefined && next.startsWith('-') && next !== '-' && !known.has(next.split('=')[0]!)) {
      args.push(`--${name}=${next}`);
      i++;
    } else args.push(arg);
  }
  const parseOptions = Object.fromEntries(
    Object.entries(withHelp(options)).map(([name, o]) => [
      name,
      { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: o.multiple } : {}), ...(o.default !== undefined ? { default: o.default } : {}) },
    ]),
  ) as Record<string, ParseArgsOptionDescriptor>;
  let parsed;
  try {
    parsed = parseArgs({ args, options: parseOptions, strict: true, allowPositionals });
  } catch (err) {
    throw usageErrorFromParse(err, options);
  }
  if (parsed.values.help) throw new HelpRequested();
  delete (parsed.values as Record<string, unknown>).help;
  for (const [name, o] of Object.entries(options)) {
    if (o.required && parsed.values[name] === undefined) throw new UsageError(`--${name} is required`);
  }
  return parsed;
}

/** Thrown by parsing when -h/--help is among the arguments: the dispatcher prints the help. */
export class HelpRequested extends Error {
  override name = 'HelpRequested';
}

/** parseArgs' errors, reworded for people: an unknown option names the closest one the command has. */
function usageErrorFromParse(err: unknown, options: OptionSpecs): unknown {
  const e = err as { code?: string; message?: string };
  if (!e.code?.startsWith('ERR_PARSE_ARGS')) return err;
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const typed = /Unknown option '([^']+)'/.exec(e.message ?? '')?.[1] ?? '';
    const option = typed.split('=')[0]!;
    const guess = option.startsWith('--') ? closest(option, spelled(options).filter((s) => s.startsWith('--'))) : undefined;
    return new UsageError(`unknown option ${option}${guess ? `; did you mean ${guess}?` : ''}`);
  }
  if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    const arg = /Unexpected argument '([^']*)'/.exec(e.message ?? '')?.[1] ?? '';
    return new UsageError(`unexpected argument ${JSON.stringify(arg)}: this command takes only options`);
  }
  const missing = /Option '(?:-\w, )?(--[\w-]+)(?: <value>)?' argument missing/.exec(e.message ?? '');
  if (missing) return new UsageError(`${missing[1]} needs a value`);
  return new UsageError((e.message ?? String(err)).split('\n')[0]!);
}

// ---- help ------------------------------------------------------------------------------------

const optionLabel = (name: string, o: OptionSpec) =>
  `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value ?? '<value>'}` : ''}`;

/** The usage line: required options spelled out, the rest as [options]. */
export function usageLine(path: string, cmd: Command): string {
  const required = Object.entries(cmd.options)
    .filter(([, o]) => o.required)
    .map(([name, o]) => `--${name}${o.type === 'string' ? ` ${o.value ?? '<value>'}` : ''}`);
  const optional = Object.values(cmd.options).some((o) => !o.required);
  return ['candlekeep', path, ...required, ...(optional ? ['[options]'] : []), ...(cmd.args ? [cmd.args] : [])].join(' ');
}

/** The option table of `--help`, aligned. */
export function optionsHelp(options: OptionSpecs): string {
  const rows = Object.entries(withHelp(options)).map(([name, o]) => {
    const extra = [o.required ? 'required' : '', o.multiple ? 'repeatable' : '', o.default !== undefined && o.default !== false ? `default ${String(o.default)}` : '']
      .filter(Boolean)
      .join(', ');
    return [optionLabel(name, o), `${o.description}${extra ? ` (${extra})` : ''}`] as const;
  });
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, text]) => `  ${label.padEnd(width)}  ${text}`).join('\n');
}

/** `candlekeep <path> --help`: usage, summary, options, subcommands and notes. */
export function commandHelp(path: string, cmd: Command): string {
  const parts: string[] = [];
  const subs = Object.entries(cmd.subcommands ?? {});
  const usages = [...(cmd.run ? [usageLine(path, cmd)] : []), ...subs.map(([name, sub]) => usageLine(`${path} ${name}`, sub))];
  parts.push(`usage: ${usages.join('\n       ')}`, '', cmd.summary);
  if (cmd.run) parts.push('', 'options:', optionsHelp(cmd.options));
  if (subs.length) {
    const width = Math.max(...subs.map(([name]) => name.length));
    parts.push('', 'subcommands:', ...subs.map(([name, sub]) => `  ${name.padEnd(width)}  ${sub.summary}`));
    parts.push('', `Run candlekeep ${path} <subcommand> --help for a subcommand's options.`);
  }
  if (cmd.notes?.length) parts.push('', ...cmd.notes);
  return parts.join('\n');
}
