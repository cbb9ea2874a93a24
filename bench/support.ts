/** What every benchmark script parses and prints the same way. */

/** A command-line option that must be a positive integer. */
export function positiveInt(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got ${value}`);
  return n;
}

/** Progress goes to stderr, so stdout's last line stays the JSON result. */
export const log = (msg: string): void => {
  process.stderr.write(`${msg}\n`);
};
