// Unit and integration tests (real PostgreSQL). Browser tests run under Playwright instead.
import { defineConfig } from 'vitest/config';

export default defineConfig({
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
