/** One CLI subcommand. `run` receives the arguments after the command name and returns an exit code. */
export interface Command {
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number>;
}

/** A usage mistake: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Progress for long work goes to stderr, so stdout stays clean for --json and --csv. */
export const progress = (msg: string) => process.stderr.write(`${msg}\n`);
