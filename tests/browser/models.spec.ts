// The Models page on a phone (375 px): an admin reaches it from the project's Rounds page,
// registers an external version with an API key (the key never shows again), sees a refused
// loopback URL explained by the outbound guard, and nothing scrolls sideways.
import { randomUUID } from 'node:crypto';
import { checkA11y, expect, test, uiSignIn } from './fixtures.js';

test.use({ viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true });

test('an admin registers an endpoint on a phone; the key is never shown', async ({ page, seed }) => {
  const project = await seed.prisma.project.create({ data: { name: `Models ${randomUUID().slice(0, 8)}` } });
  const admin = await seed.createUser('ADMIN');
  await uiSignIn(page, admin);
  await page.goto(`/admin/rounds/${project.id}`);
  await page.getByTestId('models-link').click();
  await expect(page).toHaveURL(new RegExp(`/admin/models/${project.id}$`));

  const key = `sk-browser-${randomUUID()}`;
  await page.getByLabel('Version name').fill('remote-llama');
  await page.getByLabel('Base URL').fill('http://127.0.0.1:8000/v1');
  await page.getByLabel('Model', { exact: true }).fill('llama3.2');
  await page.getByLabel('API key').fill(key);
  await page.getByLabel('Temperature (0–2)').fill('0.7');
  await page.getByRole('button', { name: 'Register' }).click();
  await expect(page.getByRole('alert')).toContainText(/refused.*loopback/);

  await page.getByLabel('Base URL').fill('http://93.184.216.34/v1');
  await page.getByRole('button', { name: 'Register' }).click();
  await expect(page.getByRole('status')).toContainText('Registered remote-llama');
  const table = page.getByTestId('versions-table');
  await expect(table).toContainText('remote-llama');
  await expect(table).toContainText('http://93.184.216.34/v1');
  await expect(table).toContainText('set');
  expect(await page.content()).not.toContain(key);

  await checkA11y(page, 'the Models page on a phone');
  const sideways = await page.evaluate(() => {
    const view = globalThis as unknown as {
      innerWidth: number;
      document: { documentElement: { scrollWidth: number } };
    };
    return view.document.documentElement.scrollWidth - view.innerWidth;
  });
  expect(sideways).toBeLessThanOrEqual(0);
  await page.screenshot({ path: 'test-results/models-phone.png', fullPage: true });
});
