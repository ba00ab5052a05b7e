// axe-core on the main pages, as each role sees them with data on them: no serious or critical
// violation anywhere (sign-in, the setup link's page, Rate and the rating screen on a desktop and a
// phone, projects and a project's tabs, Rounds, Data, users, audit log, API tokens, account).
import type { BrowserContext, Page } from '@playwright/test';
import { checkA11y, expect, test, uiSignIn } from './fixtures.js';

/** Opens a page and waits until it has its heading and its data (no "Loading…" left). */
async function visit(page: Page, path: string): Promise<void> {
  await page.goto(path);
  await settle(page);
}

async function settle(page: Page): Promise<void> {
  await expect(page.locator('main h1').first()).toBeVisible();
  await expect(page.locator('main')).not.toContainText(/Loading (?!the first model)|Loading…/, {
    timeout: 20_000,
  });
}

function prompts(): string {
  return [0, 1, 2]
    .map((i) =>
      JSON.stringify({
        prompt: `Question ${i}: name a colour.`,
        responses: [
          { text: `Blue, for question ${i}.`, source: 'model-a' },
          { text: `A colour like green fits question ${i} well.`, source: 'model-b' },
        ],
      }),
    )
    .join('\n');
}

test('the main pages have no serious or critical accessibility violations', async ({
  browser,
  baseURL,
  playwright,
  seed,
  setupUrl,
}) => {
  test.setTimeout(480_000);
  const contexts: BrowserContext[] = [];
  const open = async (options: Parameters<typeof browser.newContext>[0] = {}) => {
    const context = await browser.newContext({ baseURL, ...options });
    contexts.push(context);
    return context.newPage();
  };

  // Signed out.
  const anonymous = await open();
  await visit(anonymous, '/login');
  await checkA11y(anonymous, 'the sign-in page');
  await visit(anonymous, setupUrl);
  await checkA11y(anonymous, 'the setup link page');

  // A project with comparisons, set up through the API.
  const admin = await seed.createUser('ADMIN', 'Alex Admin');
  const rater = await seed.createUser('RATER', 'Rowan Rater');
  const api = await playwright.request.newContext({ baseURL });
  const login = await api.post('/api/auth/login', { data: { email: admin.email, password: admin.password } });
  const headers = { 'x-csrf-token': ((await login.json()) as { csrfToken: string }).csrfToken };
  const created = await api.post('/api/projects', {
    headers,
    data: { name: 'Colours', description: 'Which answer names a colour better?', overlap: 2 },
  });
  const { id: projectId } = (await created.json()) as { id: string };
  await api.post(`/api/projects/${projectId}/prompts/import`, {
    headers,
    data: { format: 'jsonl', content: prompts() },
  });
  await api.post(`/api/projects/${projectId}/comparisons/generate`, {
    headers,
    data: { strategy: 'all-pairs' },
  });
  await api.post(`/api/projects/${projectId}/members`, { headers, data: { userIds: [rater.id] } });
  await api.dispose();

  // An admin's pages.
  const page = await open({ viewport: { width: 1366, height: 900 } });
  await uiSignIn(page, admin);
  await visit(page, '/rate');
  // Admins rate every project: the page says so, and the navigation has Rate.
  await expect(page.getByTestId('rate-admin-note')).toContainText('rate every active project');
  await expect(page.locator('[data-nav="rate"]')).toBeVisible();
  await expect(page.getByTestId('rate-projects')).toContainText('Colours');
  await checkA11y(page, 'Rate');
  await visit(page, `/rate/${projectId}`);
  await expect(page.getByTestId('comparison')).toBeVisible();
  await page.keyboard.press('1');
  await checkA11y(page, 'the rating screen');
  await visit(page, '/admin/projects');
  await checkA11y(page, 'Projects');
  await visit(page, `/admin/projects/${projectId}`);
  const tabs = page.getByRole('tab');
  const tabCount = await tabs.count();
  expect(tabCount).toBeGreaterThan(1);
  for (let i = 0; i < tabCount; i++) {
    const name = (await tabs.nth(i).innerText()).trim();
    await tabs.nth(i).click();
    await settle(page);
    await checkA11y(page, `the project page, tab ${name}`);
  }
  for (const [path, name] of [
    ['/admin/rounds', 'Rounds'],
    [`/admin/rounds/${projectId}`, "a project's rounds"],
    ['/data', 'Data'],
    [`/data/${projectId}`, "a project's data"],
    ['/admin/users', 'Users'],
    ['/admin/audit', 'the audit log'],
    ['/tokens', 'API tokens'],
    ['/account', 'Account'],
  ] as const) {
    await visit(page, path);
    await checkA11y(page, name);
    // Nothing scrolls sideways on a laptop screen.
    expect(
      await page.evaluate(() => {
        const view = globalThis as unknown as {
          innerWidth: number;
          document: { documentElement: { scrollWidth: number } };
        };
        return view.document.documentElement.scrollWidth - view.innerWidth;
      }),
      name,
    ).toBeLessThanOrEqual(0);
  }

  // A rater on a phone.
  const phone = await open({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await uiSignIn(phone, rater);
  await visit(phone, '/rate');
  await checkA11y(phone, 'Rate on a phone');
  await visit(phone, `/rate/${projectId}`);
  await expect(phone.getByTestId('comparison')).toBeVisible();
  await checkA11y(phone, 'the rating screen on a phone');

  for (const context of contexts) await context.close();
});
