import type * as z from 'zod';

/** An environment: `process.env` in a Lambda, a function's template environment locally, a literal in a test. */
export type Env = Readonly<Record<string, string | undefined>>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Parses a function's settings out of its environment, once, at start-up. A missing or malformed
 * variable throws a ConfigError naming it, so a bad deployment fails its cold start loudly instead
 * of misbehaving on the first event.
 */
export function readEnv<S extends z.ZodType>(schema: S, env: Env, service: string): z.output<S> {
  const parsed = schema.safeParse(env);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const name = issue.path.map(String).join('.');
    return name && !issue.message.includes(name) ? `${name}: ${issue.message}` : issue.message;
  });
  throw new ConfigError(`${service} configuration: ${problems.join('; ')}`);
}

/**
 * A resource made on first use and kept (a container's pool, a client whose SDK is loaded only
 * when needed). A failed attempt is not kept: the next call tries again.
 */
export function once<T>(make: () => Promise<T>): () => Promise<T> {
  let made: Promise<T> | undefined;
  return () => {
    made ??= make().catch((err: unknown) => {
      made = undefined;
      throw err;
    });
    return made;
  };
}

/** `readXConfig(env)` for a function: its settings' schema, named after its service in errors. */
export function configReader<S extends z.ZodType>(schema: S, service: string): (env: Env) => z.output<S> {
  return (env) => readEnv(schema, env, service);
}
