import type { TestProject } from 'vitest/node';
import { ensureChromium } from '../../dev/chromium.ts';

/** The browser tests' Chromium: found, or installed once with apt-get (dev/chromium.ts). */
export default function setup(project: TestProject): void {
  project.provide('chromium', ensureChromium((msg) => process.stderr.write(`[test setup] ${msg}\n`)));
}

declare module 'vitest' {
  export interface ProvidedContext {
    chromium: string;
  }
}
