// The foundation end to end in a real browser: first-admin setup from the printed link, sign out and
// in, inviting a rater, the rater accepting the invitation and seeing only what a rater may see; then
// the admin pages at work (API tokens, roles, disabling, audit log, sessions). The second test uses
// the accounts the first one created, so they run in order.
import type { Page } from '@playwright/test';
import { expect, test } from './fixtures.js';

const ADMIN = { email: 'admin@example.com', name: 'Ada Admin', password: 'admin password 12345' };
const RATER = { email: 'rater@example.com', name: 'Riley Rater', password: 'rater password 12345' };

test.describe.configure({ mode: 'serial' });

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
  await expect
    .poll(() => navKeys(page))
    .toEqual(['account', 'audit', 'data', 'projects', 'rate', 'rounds', 'tokens', 'users']);
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
  // The token rides in the fragment, which the browser never sends to the server.
  expect(inviteUrl.search).toBe('');
  expect(new URLSearchParams(inviteUrl.hash.slice(1)).get('token')).toMatch(/^loom_inv_/);
  await expect(page.getByTestId('invites-table')).toContainText(RATER.email);

  await signOut(page);
  expect(pageErrors).toEqual([]);

  // 4. The rater opens the link in a fresh browser context (no cookies) and picks a name and password.
  const raterContext = await browser.newContext({ baseURL });
  const rater = await raterContext.newPage();
  const raterErrors: Error[] = [];
  rater.on('pageerror', (error) => raterErrors.push(error));

  await rater.goto(`${inviteUrl.pathname}${inviteUrl.hash}`);
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
  await expect.poll(() => navKeys(rater)).toEqual(['account', 'rate']);

  // 6. Admin pages show the rater no user data.
  await rater.goto('/admin/users');
  await expect(rater.getByText('You do not have access')).toBeVisible();
  await expect(rater.getByTestId('users-table')).toHaveCount(0);
  await expect(rater.getByText(ADMIN.email)).toHaveCount(0);
  await expect.poll(() => navKeys(rater)).toEqual(['account', 'rate']);

  // The invitation works once.
  const again = await browser.newContext({ baseURL });
  const second = await again.newPage();
  await second.goto(`${inviteUrl.pathname}${inviteUrl.hash}`);
  await expect(second.getByRole('heading', { name: 'This invitation cannot be used' })).toBeVisible();
  await again.close();

  expect(raterErrors).toEqual([]);
  await raterContext.close();
});

test('admin manages tokens, roles and access; a disabled rater is sent to sign-in', async ({
  browser,
  baseURL,
  request,
}) => {
  const adminContext = await browser.newContext({ baseURL });
  const admin = await adminContext.newPage();
  const raterContext = await browser.newContext({ baseURL });
  const rater = await raterContext.newPage();
  const errors: Error[] = [];
  admin.on('pageerror', (error) => errors.push(error));
  rater.on('pageerror', (error) => errors.push(error));

  // A deep link while signed out goes through sign-in and comes back.
  await admin.goto('/admin/audit');
  await expect(admin).toHaveURL(/\/login\?next=%2Fadmin%2Faudit$/);
  await admin.getByLabel('Email').fill(ADMIN.email);
  await admin.getByLabel('Password').fill(ADMIN.password);
  await admin.getByRole('button', { name: 'Sign in' }).click();
  await expect(admin).toHaveURL(/\/admin\/audit$/);
  await expect(admin.getByTestId('audit-table')).toContainText('invite › create');
  await expect(admin.getByTestId('audit-table')).toContainText(ADMIN.email);

  // API token: shown once, works as a bearer token, stops working once revoked.
  await admin.locator('[data-nav="tokens"]').click();
  await admin.getByLabel('Name').fill('ci export');
  await admin.getByRole('button', { name: 'Create token' }).click();
  const token = await admin.getByTestId('api-token').inputValue();
  expect(token.length).toBeGreaterThan(20);
  const asToken = { headers: { authorization: `Bearer ${token}` } };
  const me = await request.get('/api/auth/me', asToken);
  expect(me.status()).toBe(200);
  expect(((await me.json()) as { user: { email: string } }).user.email).toBe(ADMIN.email);

  await admin.getByTestId('tokens-table').getByRole('button', { name: 'Revoke' }).click();
  await admin.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
  await expect(admin.getByTestId('tokens-table')).toContainText('Revoked');
  await expect(admin.getByTestId('api-token')).toHaveCount(0);
  expect((await request.get('/api/auth/me', asToken)).status()).toBe(401);

  // Account: the current session is marked.
  await admin.locator('[data-nav="account"]').click();
  await expect(admin.getByTestId('sessions-table')).toContainText('This session');

  // The rater signs in; the admin makes them a researcher. A role change ends the rater's sessions;
  // signed in again, their navigation follows the new role.
  const signInRater = async () => {
    await rater.getByLabel('Email').fill(RATER.email);
    await rater.getByLabel('Password').fill(RATER.password);
    await rater.getByRole('button', { name: 'Sign in' }).click();
  };
  await rater.goto('/login');
  await signInRater();
  await expect(rater).toHaveURL(/\/rate$/);

  await admin.locator('[data-nav="users"]').click();
  await admin.getByLabel(`Role of ${RATER.email}`).selectOption('RESEARCHER');
  await expect(admin.getByRole('status')).toContainText(`${RATER.name} is now a researcher.`);
  await rater.reload();
  await expect(rater).toHaveURL(/\/login\?next=%2Frate$/);
  await signInRater();
  // /rate (the `next` page) is not a researcher page.
  await expect(rater.getByText('You do not have access')).toBeVisible();
  await expect.poll(() => navKeys(rater)).toEqual(['account', 'data', 'projects', 'rounds', 'tokens']);
  await rater.locator('[data-nav="tokens"]').click();
  await expect(rater.getByRole('heading', { name: 'API tokens', level: 1 })).toBeVisible();

  // Back to rater: the open page's next API call gets 401 and goes to sign-in, keeping the destination.
  await admin.getByLabel(`Role of ${RATER.email}`).selectOption('RATER');
  await expect(admin.getByRole('status')).toContainText(`${RATER.name} is now a rater.`);
  await rater.locator('[data-nav="account"]').click();
  await expect(rater).toHaveURL(/\/login\?next=%2Faccount$/);

  // The admin cannot demote or disable themself from the UI.
  await expect(admin.getByLabel(`Role of ${ADMIN.email}`)).toBeDisabled();

  // A disabled account cannot sign in; enabled again, it can.
  const raterRow = admin.locator('tr', { hasText: RATER.email });
  await raterRow.getByRole('button', { name: 'Disable' }).click();
  await admin.getByRole('dialog').getByRole('button', { name: 'Disable' }).click();
  await expect(raterRow).toContainText('Disabled');
  await signInRater();
  await expect(rater.getByTestId('login-error')).toBeVisible();

  await raterRow.getByRole('button', { name: 'Enable' }).click();
  await admin.getByRole('dialog').getByRole('button', { name: 'Enable' }).click();
  await expect(raterRow).toContainText('Active');
  await signInRater();
  await expect(rater).toHaveURL(/\/account$/);
  await expect(rater.getByTestId('sessions-table')).toContainText('This session');
  await expect.poll(() => navKeys(rater)).toEqual(['account', 'rate']);

  // Signed in elsewhere too, the rater signs that other session out from the account page.
  const elsewhere = await fetch(`${baseURL}/api/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': 'Loom test elsewhere' },
    body: JSON.stringify({ email: RATER.email, password: RATER.password }),
  });
  expect(elsewhere.status).toBe(200);
  await rater.reload();
  const sessionRows = rater.getByTestId('sessions-table').locator('tbody tr');
  await expect(sessionRows).toHaveCount(2);
  const before = 2;
  await sessionRows
    .filter({ hasNotText: 'This session' })
    .first()
    .getByRole('button', { name: 'Revoke' })
    .click();
  await rater.getByRole('dialog').getByRole('button', { name: 'Sign out session' }).click();
  await expect(sessionRows).toHaveCount(before - 1);

  // An invitation revoked before anyone used it leaves the pending list.
  await admin.locator('#invite-email').fill('later@example.com');
  await admin.getByRole('button', { name: 'Create invite link' }).click();
  await expect(admin.getByTestId('invite-created')).toContainText('later@example.com');
  const inviteRow = admin.getByTestId('invites-table').locator('tr', { hasText: 'later@example.com' });
  await inviteRow.getByRole('button', { name: 'Revoke' }).click();
  await admin.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
  await expect(inviteRow).toHaveCount(0);
  await expect(admin.getByRole('status')).toContainText('The invitation for later@example.com is revoked');

  expect(errors).toEqual([]);
  await adminContext.close();
  await raterContext.close();
});
