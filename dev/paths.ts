import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The repository root and its gitignored state folder for local services. */
export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const STATE_DIR = path.join(REPO_ROOT, '.dev');
