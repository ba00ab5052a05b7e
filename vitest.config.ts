// Unit and integration tests (real PostgreSQL). Browser tests run under Playwright instead.
// Two projects: the server's and trainer's tests in Node, and the web app's logic (tests/unit/web),
// whose `.svelte.ts` modules use runes and so are compiled by the Svelte plugin, with Svelte's
// browser build (effects run, as in the app).
import { fileURLToPath } from 'node:url';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vitest/config';

const webTests = 'tests/unit/web/**/*.test.ts';

export default defineConfig({
  // One TypeScript configuration for every file the tests load: web/tsconfig.json extends what
  // `svelte-kit sync` generates, which a fresh clone has not run yet.
  tsconfig: 'tsconfig.json',
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: more workers only add contention.
    maxWorkers: 2,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'node',
          include: ['tests/unit/**/*.test.ts', 'tests/integration/**/*.test.ts'],
          exclude: [webTests],
          globalSetup: ['tests/support/global-setup.ts'],
        },
      },
      {
        extends: true,
        plugins: [svelte()],
        resolve: {
          conditions: ['browser'],
          alias: { $shared: fileURLToPath(new URL('core/schemas', import.meta.url)) },
        },
        test: { name: 'web', include: [webTests], environment: 'jsdom' },
      },
    ],
  },
});
