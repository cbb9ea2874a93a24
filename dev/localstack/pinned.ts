/** The LocalStack the project runs, and where it is reached. */

/**
 * The last community release that runs without an auth token: later images exit with "license
 * activation failed" unless LOCALSTACK_AUTH_TOKEN is set.
 */
export const LOCALSTACK_VERSION = '4.14.0';
export const LOCALSTACK_DOCKER_IMAGE = `localstack/localstack:${LOCALSTACK_VERSION}`;
export const DEFAULT_PORT = 4566;
export const DEFAULT_ENDPOINT = `http://127.0.0.1:${DEFAULT_PORT}`;

/** Everything the project talks to; the host-mode readiness check waits for each of these. */
export const LOCALSTACK_SERVICES = [
  'sqs',
  'secretsmanager',
  'events',
  'scheduler',
  'cloudformation',
  's3',
  'apigateway',
  'iam',
  'sts',
  'ssm',
  'logs',
  'cloudwatch',
  'kms',
  'sns',
] as const;
