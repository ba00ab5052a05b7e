// Fixtures for browser tests: the running server's address and its one-time setup link
// (see global-setup.ts), and `seed` to create accounts and read what the UI stored; `checkA11y` runs
// axe-core on the page as it is.
import { randomUUID } from 'node:crypto';
import { AxeBuilder } from '@axe-core/playwright';
import { test as base, expect, type Page } from '@playwright/test';
import { createPrisma, type PrismaClient } from '../../core/db/client.js';
import type { Role } from '../../core/schemas/common.js';
import { hashPassword } from '../../core/services/passwords.js';

/* eslint-disable no-empty-pattern -- Playwright reads fixture dependencies from the destructuring pattern. */

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run the browser tests with "npx playwright test"`);
  return value;
}

export interface SeededUser {
  id: string;
  email: string;
  password: string;
  name: string;
}

export interface Seed {
  /** The server's database, to set up data and check what the UI stored. */
  prisma: PrismaClient;
  createUser(role: Role, name?: string): Promise<SeededUser>;
}

export const test = base.extend<object, { setupUrl: string; databaseUrl: string; seed: Seed }>({
  baseURL: async ({}, use) => use(required('LOOM_E2E_BASE_URL')),
  setupUrl: [async ({}, use) => use(required('LOOM_E2E_SETUP_URL')), { scope: 'worker' }],
  databaseUrl: [async ({}, use) => use(required('LOOM_E2E_DATABASE_URL')), { scope: 'worker' }],
  seed: [
    async ({ databaseUrl }, use) => {
      const prisma = createPrisma(databaseUrl, { max: 3 });
      const password = 'browser test passphrase';
      const passwordHash = await hashPassword(password);
      await use({
        prisma,
        async createUser(role, name = `${role.toLowerCase()} ${randomUUID().slice(0, 6)}`) {
          const email = `${role.toLowerCase()}-${randomUUID().slice(0, 8)}@example.com`;
          const user = await prisma.user.create({
            data: { email, name, role, credential: { create: { passwordHash } } },
          });
          return { id: user.id, email, password, name };
        },
      });
      await prisma.$disconnect();
    },
    { scope: 'worker' },
  ],
});

export { expect };

/** Signs in through the sign-in page, as a person would. */
export async function uiSignIn(page: Page, user: SeededUser): Promise<void> {
  await page.goto('/login');
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('user-name')).toHaveText(user.name);
}

/**
 * Runs axe-core on the page as it is now and fails on any serious or critical violation (the rule,
 * what it asks and up to three elements that break it, in the failure message).
 */
export async function checkA11y(page: Page, where: string): Promise<void> {
  const { violations } = await new AxeBuilder({ page }).analyze();
  const serious = violations
    .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
    .map(
      (violation) =>
        `${violation.id} (${violation.impact}): ${violation.help}: ` +
        violation.nodes
          .slice(0, 3)
          .map((node) => node.target.join(' '))
          .join(' | '),
    );
  expect(serious, `accessibility violations on ${where}`).toEqual([]);
}

/** How far the page scrolls sideways (0 when it fits the viewport's width). */
export async function sidewaysScroll(page: Page): Promise<number> {
  return page.evaluate(() => {
    const view = globalThis as unknown as {
      innerWidth: number;
      document: { documentElement: { scrollWidth: number } };
    };
    return Math.max(0, view.document.documentElement.scrollWidth - view.innerWidth);
  });
}
