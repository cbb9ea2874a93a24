/** SQL fragments for epoch-ms parameters and columns: timestamps cross the wire as numbers, never as local-time text. */
export const ts = (param: string): string => `to_timestamp(${param}::float8 / 1000)`;
export const ms = (column: string): string => `(extract(epoch FROM ${column}) * 1000)::float8`;

/** `{1,2,3}`: an integer array literal, cheaper to build and send than thousands of parameters. */
export const bigintArray = (values: readonly number[]): string => `{${values.join(',')}}`;
