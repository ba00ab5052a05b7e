// Fixtures for browser tests: the running server's address and its one-time setup link
// (see global-setup.ts), and a database handle for checking what the UI stored.
import { test as base, expect } from '@playwright/test';

/* eslint-disable no-empty-pattern -- Playwright reads fixture dependencies from the destructuring pattern. */

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run the browser tests with "npx playwright test"`);
  return value;
}

export const test = base.extend<object, { setupUrl: string; databaseUrl: string }>({
  baseURL: async ({}, use) => use(required('LOOM_E2E_BASE_URL')),
  setupUrl: [async ({}, use) => use(required('LOOM_E2E_SETUP_URL')), { scope: 'worker' }],
  databaseUrl: [async ({}, use) => use(required('LOOM_E2E_DATABASE_URL')), { scope: 'worker' }],
});

export { expect };
