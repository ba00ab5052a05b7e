// Unit and integration tests (real PostgreSQL). Browser tests run under Playwright instead.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // One TypeScript configuration for every file the tests load: web/tsconfig.json extends what
  // `svelte-kit sync` generates, which a fresh clone has not run yet.
  tsconfig: 'tsconfig.json',
  test: {
    include: ['tests/unit/**/*.test.ts', 'tests/integration/**/*.test.ts'],
    globalSetup: ['tests/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: more workers only add contention.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
