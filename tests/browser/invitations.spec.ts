// Invitations in a real browser: an admin invites a rater into a project, invites the same address
// again and is told that the first link no longer works; the rater opens the second link (its
// token in the fragment), sees the project they will join, and lands on Rate with it listed.
import { randomUUID } from 'node:crypto';
import { expect, test, uiSignIn } from './fixtures.js';

test('an invitation names projects; a second one for the same address says the first link is dead', async ({
  page,
  browser,
  baseURL,
  seed,
}) => {
  const errors: Error[] = [];
  page.on('pageerror', (error) => errors.push(error));
  const project = await seed.prisma.project.create({
    data: { name: `Invited work ${randomUUID().slice(0, 6)}` },
  });
  const email = `invited-${randomUUID().slice(0, 8)}@example.com`;
  try {
    const admin = await seed.createUser('ADMIN');
    await uiSignIn(page, admin);
    await page.goto('/admin/users');
    const form = page.locator('section', { has: page.getByRole('heading', { name: 'Invite a user' }) });

    const invite = async () => {
      await form.getByLabel('Email').fill(email);
      await form.getByLabel('Role').selectOption('RATER');
      await form.getByRole('checkbox', { name: project.name }).check();
      await form.getByRole('button', { name: 'Create invite link' }).click();
      await expect(page.getByTestId('invite-created')).toContainText(email);
      const link = new URL(await page.getByTestId('invite-link').inputValue());
      expect(link.search).toBe('');
      expect(link.hash).toMatch(/^#token=loom_inv_/);
      return link;
    };

    const first = await invite();
    await expect(page.getByTestId('invite-created')).toContainText(`they join ${project.name}`);
    await expect(page.getByTestId('invite-replaced')).toHaveCount(0);
    await page.getByRole('button', { name: 'Done' }).click();
    const second = await invite();
    await expect(page.getByTestId('invite-replaced')).toHaveText(
      `This replaces the pending invitation: the earlier link for ${email} no longer works.`,
    );
    const rows = page.getByTestId('invites-table').locator('tr', { hasText: email });
    await expect(rows).toHaveCount(1);
    await expect(rows).toContainText(project.name);

    const context = await browser.newContext({ baseURL });
    const rater = await context.newPage();
    rater.on('pageerror', (error) => errors.push(error));
    await rater.goto(`${first.pathname}${first.hash}`);
    await expect(rater.getByRole('heading', { name: 'This invitation cannot be used' })).toBeVisible();
    await rater.goto(`${second.pathname}${second.hash}`);
    await expect(rater.getByRole('heading', { name: 'Join Loom' })).toBeVisible();
    await expect(rater.getByTestId('invite-projects')).toHaveText(project.name);
    await rater.getByLabel('Name').fill('Invited Rater');
    await rater.getByLabel('Password', { exact: true }).fill('invited rater passphrase');
    await rater.getByLabel('Confirm password').fill('invited rater passphrase');
    await rater.getByRole('button', { name: 'Create account' }).click();
    await expect(rater).toHaveURL(/\/rate$/);
    await expect(rater.getByTestId('rate-projects')).toContainText(project.name);
    await context.close();
    expect(errors).toEqual([]);
  } finally {
    await seed.prisma.project.delete({ where: { id: project.id } });
  }
});
