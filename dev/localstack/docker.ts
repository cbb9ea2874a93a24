/** LocalStack in a Docker container: the pinned image, able to run Lambda functions. */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { errorText } from './errors.ts';
import { fetchHealth, reuse, waitUntilReady, type LocalStackHandle } from './health.ts';
import { DEFAULT_ENDPOINT, LOCALSTACK_DOCKER_IMAGE, LOCALSTACK_SERVICES } from './pinned.ts';

const execFileAsync = promisify(execFile);

export async function dockerUsable(): Promise<boolean> {
  try {
    // `docker info` talks to the engine; the client alone being installed is not enough.
    await execFileAsync('docker', ['info', '--format', '{{.ServerVersion}}'], { timeout: 15_000 });
    return true;
  } catch {
    return false;
  }
}

export async function startDocker(opts: { log: (m: string) => void; readyTimeoutMs: number }): Promise<LocalStackHandle> {
  const image = process.env.LOCALSTACK_IMAGE ?? LOCALSTACK_DOCKER_IMAGE;
  const name = `candlekeep-localstack-${process.pid}-${Date.now().toString(36)}`;
  const args = [
    'run', '-d', '--rm', '--name', name,
    '-p', '127.0.0.1:4566:4566',
    // Lambda is added here because only a Docker-hosted LocalStack can run functions.
    '-e', `SERVICES=${[...LOCALSTACK_SERVICES, 'lambda'].join(',')}`,
    '-e', 'SQS_ENDPOINT_STRATEGY=path',
    '-e', 'DISABLE_EVENTS=1',
    // LocalStack starts Lambda containers through the engine's socket.
    '-v', '/var/run/docker.sock:/var/run/docker.sock',
  ];
  // Name-only `-e` copies the value from our env, so the token never shows up in `ps`.
  if (process.env.LOCALSTACK_AUTH_TOKEN) args.push('-e', 'LOCALSTACK_AUTH_TOKEN');
  args.push(image);

  opts.log(`LocalStack: starting Docker container ${name} from ${image} (pulls the image on first use)`);
  const started = Date.now();
  let containerId: string;
  try {
    // No timeout: the first run includes the image pull.
    const { stdout } = await execFileAsync('docker', args, { env: process.env });
    containerId = stdout.trim();
  } catch (err) {
    // Another run may have bound 4566 between our health check and now.
    if (await fetchHealth(DEFAULT_ENDPOINT)) return reuse(DEFAULT_ENDPOINT, opts.readyTimeoutMs);
    throw new Error(`docker run ${image} failed: ${errorText(err)}`);
  }

  const removeContainer = async (): Promise<void> => {
    await execFileAsync('docker', ['rm', '-f', containerId], { timeout: 60_000 }).catch(() => {});
  };
  // Follow the container's output while it boots: with --rm a container that exits (e.g. a newer
  // image without LOCALSTACK_AUTH_TOKEN: "license activation failed") takes its logs with it, and
  // the follower ending tells us at once instead of after the readiness deadline.
  const follower = spawn('docker', ['logs', '-f', containerId], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let containerGone = false;
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-6000);
  };
  follower.stdout.on('data', collect);
  follower.stderr.on('data', collect);
  follower.once('exit', () => {
    containerGone = true;
  });
  follower.once('error', () => {});
  try {
    await waitUntilReady(DEFAULT_ENDPOINT, {
      services: LOCALSTACK_SERVICES,
      deadline: Date.now() + opts.readyTimeoutMs,
      aborted: () => (containerGone ? `LocalStack container ${name} exited during startup` : undefined),
    });
  } catch (err) {
    await removeContainer();
    throw new Error(`${errorText(err)}\n--- docker logs ${name} ---\n${output.split('\n').slice(-30).join('\n')}`);
  } finally {
    follower.kill();
  }
  opts.log(`LocalStack: Docker container ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return { endpoint: DEFAULT_ENDPOINT, mode: 'docker', stop: removeContainer };
}
