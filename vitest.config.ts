import { defineConfig } from 'vitest/config';

/**
 * Two projects: `unit` needs nothing but Node; `integration` gets one Redis for
 * the whole run from tests/setup/redis.ts and starts real gateway processes.
 * Both import the workspace packages' compiled output: `npm test` builds first.
 */
export default defineConfig({
  test: {
    // Integration files start their own gateway processes; two at a time suit a 2-core machine.
    maxWorkers: 2,
    minWorkers: 1,
    projects: [
      {
        test: {
          name: 'unit',
          include: ['packages/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts'],
          exclude: ['**/*.int.test.ts', '**/node_modules/**'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['tests/**/*.test.ts', 'packages/*/test/**/*.int.test.ts', 'services/*/test/**/*.int.test.ts'],
          exclude: ['**/node_modules/**'],
          globalSetup: ['tests/setup/redis.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
