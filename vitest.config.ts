import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 300_000,
    teardownTimeout: 60_000,
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          // Pure logic and CDK assertions: no services.
          include: ['test/unit/**/*.test.ts', 'test/infra/**/*.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          // Brings up PostgreSQL (DATABASE_URL or embedded) and LocalStack (AWS_ENDPOINT_URL or
          // started here), creates a fresh database for this run and tears it all down afterwards.
          globalSetup: ['test/support/global-setup.ts'],
          setupFiles: ['test/support/setup-env.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'browser',
          // The web console in headless Chromium against `candlekeep serve`, on a fresh database of
          // its own; Chromium is found or installed first (dev/chromium.ts).
          include: ['test/browser/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts', 'test/support/browser-setup.ts'],
          setupFiles: ['test/support/setup-env.ts'],
        },
      },
    ],
  },
});
