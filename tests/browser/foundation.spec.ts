// The foundation end to end in a real browser: first-admin setup from the printed link, sign out and
// in, inviting a rater, the rater accepting the invitation and seeing only what a rater may see.
import type { Page } from '@playwright/test';
import { expect, test } from './fixtures.js';

const ADMIN = { email: 'admin@example.com', name: 'Ada Admin', password: 'admin password 12345' };
const RATER = { email: 'rater@example.com', name: 'Riley Rater', password: 'rater password 12345' };

async function navKeys(page: Page): Promise<string[]> {
  const keys = await page
    .locator('[data-nav]')
    .evaluateAll((links) => links.map((l) => l.getAttribute('data-nav')));
  return keys.filter((key): key is string => key !== null).sort();
}

async function signOut(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login$/);
  await expect(page.getByRole('heading', { name: 'Sign in to Loom' })).toBeVisible();
}

test('first admin sets up Loom, invites a rater, the rater joins and sees only rater pages', async ({
  page,
  browser,
  baseURL,
  setupUrl,
}) => {
  const pageErrors: Error[] = [];
  page.on('pageerror', (error) => pageErrors.push(error));

  // 1. The setup link printed by the server creates the first admin, who lands signed in.
  await page.goto(setupUrl);
  await expect(page.getByRole('heading', { name: 'Create the first administrator' })).toBeVisible();
  await page.getByLabel('Email').fill(ADMIN.email);
  await page.getByLabel('Name').fill(ADMIN.name);
  await page.getByLabel('Password', { exact: true }).fill(ADMIN.password);
  await page.getByLabel('Confirm password').fill(ADMIN.password);
  await page.getByRole('button', { name: 'Create administrator account' }).click();

  await expect(page).toHaveURL(/\/admin\/users$/);
  await expect(page.getByRole('heading', { name: 'Users', level: 1 })).toBeVisible();
  await expect(page.getByTestId('user-name')).toHaveText(ADMIN.name);
  expect(await navKeys(page)).toEqual(['account', 'audit', 'tokens', 'users']);
  await expect(page.getByTestId('users-table')).toContainText(ADMIN.email);

  // 2. Sign out, then sign in again with the new password; a wrong password is refused clearly.
  await signOut(page);
  await page.getByLabel('Email').fill(ADMIN.email);
  await page.getByLabel('Password').fill('not the password at all');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByTestId('login-error')).toBeVisible();
  await expect(page).toHaveURL(/\/login/);

  await page.getByLabel('Email').fill(ADMIN.email);
  await page.getByLabel('Password').fill(ADMIN.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/admin\/users$/);

  // 3. Invite a rater; the link is shown once.
  await page.locator('[data-nav="users"]').click();
  const inviteForm = page.locator('section', { has: page.getByRole('heading', { name: 'Invite a user' }) });
  await inviteForm.getByLabel('Email').fill(RATER.email);
  await inviteForm.getByLabel('Role').selectOption('RATER');
  await inviteForm.getByRole('button', { name: 'Create invite link' }).click();

  const linkField = page.getByTestId('invite-link');
  await expect(linkField).toBeVisible();
  await expect(page.getByText('This link will not be shown again.')).toBeVisible();
  const inviteUrl = new URL(await linkField.inputValue());
  expect(inviteUrl.pathname).toBe('/invite');
  expect(inviteUrl.searchParams.get('token')).toBeTruthy();
  await expect(page.getByTestId('invites-table')).toContainText(RATER.email);

  await signOut(page);
  expect(pageErrors).toEqual([]);

  // 4. The rater opens the link in a fresh browser context (no cookies) and picks a name and password.
  const raterContext = await browser.newContext({ baseURL });
  const rater = await raterContext.newPage();
  const raterErrors: Error[] = [];
  rater.on('pageerror', (error) => raterErrors.push(error));

  await rater.goto(`${inviteUrl.pathname}${inviteUrl.search}`);
  await expect(rater.getByRole('heading', { name: 'Join Loom' })).toBeVisible();
  await expect(rater.getByTestId('invite-email')).toHaveText(RATER.email);
  await expect(rater.getByLabel('Email')).toHaveCount(0);
  await rater.getByLabel('Name').fill(RATER.name);
  await rater.getByLabel('Password', { exact: true }).fill(RATER.password);
  await rater.getByLabel('Confirm password').fill(RATER.password);
  await rater.getByRole('button', { name: 'Create account' }).click();

  // 5. Signed in as a rater: the rater home and exactly the rater's navigation.
  await expect(rater).toHaveURL(/\/rate$/);
  await expect(rater.getByTestId('user-name')).toHaveText(RATER.name);
  await expect(rater.getByText('No comparisons are waiting for you right now')).toBeVisible();
  expect(await navKeys(rater)).toEqual(['account', 'rate']);

  // 6. Admin pages show the rater no user data.
  await rater.goto('/admin/users');
  await expect(rater.getByText('You do not have access')).toBeVisible();
  await expect(rater.getByTestId('users-table')).toHaveCount(0);
  await expect(rater.getByText(ADMIN.email)).toHaveCount(0);
  expect(await navKeys(rater)).toEqual(['account', 'rate']);

  // The invitation works once.
  const again = await browser.newContext({ baseURL });
  const second = await again.newPage();
  await second.goto(`${inviteUrl.pathname}${inviteUrl.search}`);
  await expect(second.getByRole('heading', { name: 'This invitation cannot be used' })).toBeVisible();
  await again.close();

  expect(raterErrors).toEqual([]);
  await raterContext.close();
});
