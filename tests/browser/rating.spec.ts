// The rater's screen end to end: an admin sets up a project through the API with responses that carry
// script/HTML injections; a rater judges 10 comparisons with the keyboard only, and every stored row
// matches what was pressed (the un-swapped side when B was shown on the left); a submit whose answer is
// lost is retried with the same Idempotency-Key and stored once; undo brings the last
// comparison back; nothing injected runs; the admin sees the quality numbers afterwards.
import type {
  APIRequestContext,
  Browser,
  BrowserContext,
  BrowserContextOptions,
  Page,
} from '@playwright/test';
import { expect, test, type Seed, type SeededUser, uiSignIn } from './fixtures.js';

const PAYLOADS = [
  '<img src=x onerror="window.__xss=1">',
  '<script>window.__xss=1</script>',
  '[link](javascript:window.__xss=1)',
  '<svg onload=window.__xss=1>',
];

/** 4 prompts × 3 responses → 12 comparisons (all pairs); every response carries a payload. */
function importFile(): string {
  const lines = [0, 1, 2, 3].map((i) => {
    const responses = [0, 1, 2].map((j) => ({
      text:
        `Answer ${j} to question ${i}${' with more words'.repeat(j)}. ${PAYLOADS[(i + j) % PAYLOADS.length]}` +
        (j === 2 ? '\n\n```js\nconsole.log("code block")\n```\n' : ''),
      source: `model-${j}`,
    }));
    const base = { id: `q${i}`, responses };
    return JSON.stringify(
      i === 3
        ? {
            ...base,
            messages: [
              { role: 'user', content: 'Hi! <img src=x onerror="window.__xss=1">' },
              { role: 'assistant', content: 'Hello, how can I help?' },
              { role: 'user', content: 'Question 3: tell me a fact.' },
            ],
          }
        : { ...base, prompt: `Question ${i}: what is ${i} + ${i}? <script>window.__xss=1</script>` },
    );
  });
  return lines.join('\n');
}

type Shown = 'LEFT' | 'RIGHT' | 'TIE' | 'BOTH_BAD';
const CHOICE_KEY: Record<Shown, string> = { LEFT: '1', RIGHT: '2', TIE: '3', BOTH_BAD: '4' };
const STRENGTH_KEYS = ['5', '6', '7', '8'];

/** What the rater presses for each of the 10 comparisons (strength: index, 0 = strongest). */
const PLAN: { choice: Shown; strength?: number; rationale?: string }[] = [
  { choice: 'LEFT', strength: 0 },
  { choice: 'RIGHT', strength: 1 },
  { choice: 'TIE' },
  { choice: 'BOTH_BAD' },
  { choice: 'LEFT', strength: 2, rationale: 'so 1 2 u: A is clearer' },
  { choice: 'RIGHT', strength: 3 },
  { choice: 'LEFT', strength: 1 },
  { choice: 'TIE' },
  { choice: 'RIGHT', strength: 0 },
  { choice: 'LEFT', strength: 3 },
];

function unswap(choice: Shown, swapped: boolean): string {
  if (choice === 'LEFT') return swapped ? 'B' : 'A';
  if (choice === 'RIGHT') return swapped ? 'A' : 'B';
  return choice;
}

async function apiSignIn(request: APIRequestContext, user: SeededUser): Promise<Record<string, string>> {
  const response = await request.post('/api/auth/login', {
    data: { email: user.email, password: user.password },
  });
  expect(response.status(), await response.text()).toBe(200);
  const { csrfToken } = (await response.json()) as { csrfToken: string };
  return { 'x-csrf-token': csrfToken };
}

async function shownAssignmentId(page: Page): Promise<string> {
  const id = await page.getByTestId('comparison').getAttribute('data-assignment-id');
  expect(id).toBeTruthy();
  return id!;
}

/** The responses on screen are the stored ones in the stored order, shown as text, with nothing active. */
async function checkRendering(page: Page, seed: Seed, assignmentId: string): Promise<void> {
  const assignment = await seed.prisma.assignment.findUniqueOrThrow({
    where: { id: assignmentId },
    include: { comparison: { include: { responseA: true, responseB: true } } },
  });
  const { responseA, responseB } = assignment.comparison;
  const [left, right] = assignment.swapped ? [responseB, responseA] : [responseA, responseB];
  // One look at the rendered comparison (it is on screen already: its id is set with it).
  const seen = await page.getByTestId('comparison').evaluate((stage) => ({
    left: stage.querySelector('[data-testid="response-left"]')?.textContent ?? '',
    right: stage.querySelector('[data-testid="response-right"]')?.textContent ?? '',
    leftCode: stage.querySelector('[data-testid="response-left"] pre code')?.textContent ?? null,
    rightCode: stage.querySelector('[data-testid="response-right"] pre code')?.textContent ?? null,
    active: stage.querySelectorAll('script, img, svg, iframe, object, embed, [onerror], [onload], [onclick]')
      .length,
    jsLinks: stage.querySelectorAll('a[href^="javascript"]').length,
  }));
  for (const [text, code, response] of [
    [seen.left, seen.leftCode, left],
    [seen.right, seen.rightCode, right],
  ] as const) {
    // The payload is shown literally, as text, in the response that holds it.
    const payload = PAYLOADS.find((p) => response.text.includes(p))!;
    expect(text).toContain(payload);
    expect(text).toContain(response.text.split('.')[0]!);
    if (response.text.includes('```')) expect(code).toContain('code block');
  }
  expect(seen.active).toBe(0);
  expect(seen.jsLinks).toBe(0);
}

test('a rater judges 10 comparisons with the keyboard; stored rows match; undo works; no injection runs', async ({
  browser,
  baseURL,
  playwright,
  seed,
}) => {
  test.setTimeout(180_000);
  const admin = await seed.createUser('ADMIN', 'Quinn Admin');
  const rater = await seed.createUser('RATER', 'Robin Rater');

  // The admin sets up the project through the API.
  const api = await playwright.request.newContext({ baseURL });
  const headers = await apiSignIn(api, admin);
  const created = await api.post('/api/projects', {
    headers,
    data: {
      name: 'Helpfulness, round 1',
      description: 'Which answer helps more?',
      guidelines: '# Be fair\n\nPrefer the **helpful** answer. <script>window.__xss=1</script>',
      overlap: 2,
      goldRate: 0,
    },
  });
  expect(created.status(), await created.text()).toBe(201);
  const project = (await created.json()) as { id: string; labelSchema: { strengths: string[] } };
  expect(project.labelSchema.strengths).toHaveLength(4);

  const dry = await api.post(`/api/projects/${project.id}/prompts/import`, {
    headers,
    data: { format: 'jsonl', content: importFile(), dryRun: true },
  });
  expect(await dry.json()).toMatchObject({ prompts: 4, responses: 12, errors: [] });
  const imported = await api.post(`/api/projects/${project.id}/prompts/import`, {
    headers,
    data: { format: 'jsonl', content: importFile() },
  });
  expect(imported.status(), await imported.text()).toBe(200);
  const generated = await api.post(`/api/projects/${project.id}/comparisons/generate`, {
    headers,
    data: { strategy: 'all-pairs' },
  });
  expect(await generated.json()).toMatchObject({ created: 12, skippedExisting: 0 });
  const added = await api.post(`/api/projects/${project.id}/members`, {
    headers,
    data: { userIds: [rater.id] },
  });
  expect(added.status(), await added.text()).toBe(200);
  await api.dispose();

  // The rater signs in and picks the project.
  const raterContext = await browser.newContext({ baseURL, viewport: { width: 1280, height: 900 } });
  const page = await raterContext.newPage();
  const pageErrors: Error[] = [];
  page.on('pageerror', (error) => pageErrors.push(error));
  // Submissions bring the following comparison with them: separate "next" requests are few.
  let nextRequests = 0;
  let submissionsWithNext = 0;
  page.on('request', (request) => {
    if (request.method() !== 'POST') return;
    if (request.url().endsWith('/leases/next')) nextRequests++;
    if (request.url().endsWith('/submit') && (request.postDataJSON() as { next?: unknown }).next)
      submissionsWithNext++;
  });
  await uiSignIn(page, rater);
  await expect(page).toHaveURL(/\/rate$/);
  await expect(page.getByTestId('rate-projects')).toContainText('Helpfulness, round 1');
  await expect(page.getByTestId('rate-projects')).toContainText('12 comparisons waiting for you');
  await page.goto(`/rate/${project.id}`);
  await expect(page.getByTestId('comparison')).toBeVisible();
  await expect(page.getByTestId('progress')).toContainText('0 today');

  // Guidelines open with G and render markdown; their script is text.
  await page.keyboard.press('g');
  await expect(page.getByRole('heading', { name: 'Be fair' })).toBeVisible();
  await expect(page.locator('.guidelines')).toContainText('<script>window.__xss=1</script>');
  await page.keyboard.press('g');

  const judged: string[] = [];
  const judge = async (step: (typeof PLAN)[number], assignmentId: string): Promise<void> => {
    await page.keyboard.press(CHOICE_KEY[step.choice]);
    if (step.strength !== undefined) {
      await expect(page.locator(`[data-strength="${step.strength}"]`)).toBeVisible();
      await page.keyboard.press(STRENGTH_KEYS[step.strength]!);
    }
    if (step.rationale) {
      // Typing in the rationale box triggers no shortcut; Escape leaves it.
      await page.locator('#rationale').focus();
      await page.keyboard.type(step.rationale);
      await page.keyboard.press('Escape');
      await expect(page.locator(`[data-choice="${step.choice}"]`)).toHaveAttribute('aria-pressed', 'true');
    }
    await page.keyboard.press('Enter');
    await expect
      .poll(async () => (await page.getByTestId('comparison').getAttribute('data-assignment-id')) ?? 'done', {
        timeout: 10_000,
      })
      .not.toBe(assignmentId);

    // The judgment is stored in the background, after the next comparison came on screen.
    await expect.poll(() => seed.prisma.preference.count({ where: { assignmentId } })).toBe(1);
    const stored = await seed.prisma.preference.findFirst({ where: { assignmentId } });
    const assignment = await seed.prisma.assignment.findUniqueOrThrow({ where: { id: assignmentId } });
    expect(stored, `no preference stored for ${assignmentId}`).not.toBeNull();
    expect(stored!.raterId).toBe(rater.id);
    expect(stored!.shownSwapped).toBe(assignment.swapped);
    expect(stored!.choice).toBe(unswap(step.choice, assignment.swapped));
    expect(stored!.strength).toBe(step.strength ?? null);
    expect(stored!.timeSpentMs).toBeGreaterThan(0);
    expect(stored!.rationale).toBe(step.rationale ?? null);
    expect(assignment.status).toBe('SUBMITTED');
  };

  const plan = PLAN.map((step) => ({ ...step }));
  let swappedSeen = 0;
  for (const [index, step] of plan.entries()) {
    const assignmentId = await shownAssignmentId(page);
    await checkRendering(page, seed, assignmentId);
    // Once, the answer to a submit is lost on the way back (the server stored it): the client retries
    // with the same Idempotency-Key and body, and the server keeps one row.
    const sent: { key: string; body: string | null }[] = [];
    if (index === 1) {
      await page.route('**/api/leases/*/submit', async (route) => {
        sent.push({
          key: route.request().headers()['idempotency-key'] ?? '',
          body: route.request().postData(),
        });
        if (sent.length === 1) {
          await route.fetch();
          await route.abort('connectionreset');
        } else await route.continue();
      });
    }
    const { swapped } = await seed.prisma.assignment.findUniqueOrThrow({ where: { id: assignmentId } });
    if (swapped) swappedSeen++;
    await judge(step, assignmentId);
    judged.push(assignmentId);
    if (index === 1) {
      // The first send stored it already; the retry (in the background) is answered from that row.
      await expect.poll(() => sent.length).toBe(2);
      await page.unroute('**/api/leases/*/submit');
      expect(sent[0]!.key).toMatch(/^[0-9a-f-]{36}$/);
      expect(sent[1]).toEqual(sent[0]);
      expect(await seed.prisma.preference.count({ where: { assignmentId } })).toBe(1);
    }

    if (index === 4) {
      // U brings the last comparison back (same sides, the previous choice pre-selected); its row is gone.
      const following = await shownAssignmentId(page);
      await page.keyboard.press('u');
      await expect(page.getByTestId('comparison')).toHaveAttribute('data-assignment-id', assignmentId);
      await expect.poll(() => seed.prisma.preference.count({ where: { assignmentId } })).toBe(0);
      await expect(page.getByTestId('rate-message')).toContainText('taken back');
      // Judged again, differently: the new row is what was pressed now.
      judged.pop();
      // The previous rationale comes back too; clear it, and Escape returns to the shortcuts.
      await expect(page.locator('#rationale')).toHaveValue(step.rationale!);
      await page.locator('#rationale').fill('');
      await page.keyboard.press('Escape');
      await judge({ choice: 'RIGHT', strength: 1 }, assignmentId);
      judged.push(assignmentId);
      plan[index] = { choice: 'RIGHT', strength: 1 };
      // The comparison that was on screen before the undo comes right back.
      await expect(page.getByTestId('comparison')).toHaveAttribute('data-assignment-id', following);
    }
  }

  expect(new Set(judged).size).toBe(10);
  const rows = await seed.prisma.preference.findMany({ where: { raterId: rater.id } });
  expect(rows).toHaveLength(10);
  expect(new Set(rows.map((row) => row.idempotencyKey)).size).toBe(10);
  // With 10 random orders, both orders almost surely came up (p of not = 2^-9).
  expect(swappedSeen).toBeGreaterThan(0);
  await expect(page.getByTestId('progress')).toContainText('10 today');
  await expect(page.getByTestId('progress')).toContainText('2 left for you');
  expect(submissionsWithNext).toBeGreaterThanOrEqual(8);
  expect(nextRequests).toBeLessThanOrEqual(3);

  // S asks for a reason; Enter confirms the first one and the next comparison shows.
  const skippedId = await shownAssignmentId(page);
  await page.keyboard.press('s');
  await expect(page.getByRole('dialog', { name: 'Skip this comparison?' })).toBeVisible();
  await page.keyboard.press('Enter');
  await expect(page.getByRole('dialog')).toBeHidden();
  await expect(page.getByTestId('comparison')).not.toHaveAttribute('data-assignment-id', skippedId);
  const skipped = await seed.prisma.assignment.findUniqueOrThrow({ where: { id: skippedId } });
  expect(skipped.status).toBe('SKIPPED');
  expect(skipped.skipReason).toBe('I lack the knowledge to judge this');
  expect(await seed.prisma.preference.count({ where: { assignmentId: skippedId } })).toBe(0);

  // Nothing injected ran, anywhere.
  expect(await page.evaluate(() => (globalThis as unknown as { __xss?: number }).__xss)).toBeUndefined();
  expect(pageErrors).toEqual([]);

  // The admin sees the quality numbers.
  const adminContext = await browser.newContext({ baseURL });
  const adminPage = await adminContext.newPage();
  await uiSignIn(adminPage, admin);
  await adminPage.locator('[data-nav="projects"]').click();
  await adminPage.getByRole('link', { name: 'Helpfulness, round 1' }).click();
  await expect(adminPage.getByRole('heading', { name: 'Helpfulness, round 1', level: 1 })).toBeVisible();
  await adminPage.getByRole('tab', { name: 'Quality' }).click();
  await expect(adminPage.getByTestId('quality-judgments')).toHaveText('10');
  const choices = plan.reduce<Record<string, number>>((counts, step) => {
    const key = step.choice === 'TIE' || step.choice === 'BOTH_BAD' ? step.choice : 'side';
    counts[key] = (counts[key] ?? 0) + 1;
    return counts;
  }, {});
  await expect(adminPage.getByTestId('quality-choices')).toContainText(`Tie: ${choices.TIE}`);
  await expect(adminPage.getByTestId('quality-choices')).toContainText(`Both bad: ${choices.BOTH_BAD}`);
  await expect(adminPage.getByTestId('quality-raters')).toContainText(rater.name);
  await expect(adminPage.getByTestId('quality-raters').getByRole('img').first()).toBeVisible();

  // Archiving, confirmed in a dialog, takes the project away from its raters.
  await adminPage.getByRole('tab', { name: 'Settings' }).click();
  await adminPage.getByRole('button', { name: 'Archive', exact: true }).click();
  const archive = adminPage.getByRole('dialog', { name: 'Archive this project?' });
  await archive.getByRole('button', { name: 'Archive', exact: true }).click();
  await expect(archive).toBeHidden();
  await expect(adminPage.getByRole('status')).toContainText('The project is archived');
  await expect(adminPage.getByRole('heading', { level: 1 })).toContainText('Archived');
  expect(
    (await seed.prisma.project.findUniqueOrThrow({ where: { id: project.id } })).archivedAt,
  ).not.toBeNull();

  await adminContext.close();
  await raterContext.close();
});

// The screen does not wait for the server: a judgment shows the held comparison at once and is sent
// in the background, exactly once, in order, told when it fails or is refused.

/** A project with the 12 comparisons of importFile() and `rater` as its member. */
async function ratedProject(
  playwright: { request: { newContext(options: { baseURL?: string }): Promise<APIRequestContext> } },
  baseURL: string | undefined,
  admin: SeededUser,
  rater: SeededUser,
  name: string,
): Promise<string> {
  const api = await playwright.request.newContext({ baseURL });
  const headers = await apiSignIn(api, admin);
  const created = await api.post('/api/projects', { headers, data: { name, overlap: 1, goldRate: 0 } });
  expect(created.status(), await created.text()).toBe(201);
  const { id } = (await created.json()) as { id: string };
  const imported = await api.post(`/api/projects/${id}/prompts/import`, {
    headers,
    data: { format: 'jsonl', content: importFile() },
  });
  expect(imported.status(), await imported.text()).toBe(200);
  const generated = await api.post(`/api/projects/${id}/comparisons/generate`, {
    headers,
    data: { strategy: 'all-pairs' },
  });
  expect(generated.status(), await generated.text()).toBe(200);
  const added = await api.post(`/api/projects/${id}/members`, { headers, data: { userIds: [rater.id] } });
  expect(added.status(), await added.text()).toBe(200);
  await api.dispose();
  return id;
}

interface Fixtures {
  browser: Browser;
  baseURL: string | undefined;
  playwright: Parameters<typeof ratedProject>[0];
  seed: Seed;
}

/**
 * A rater of a fresh project (ratedProject(), made by a fresh admin) signed in on its rating screen
 * (a desktop unless `options` say otherwise): the first comparison is shown and the following one
 * held.
 */
async function openRating(
  { browser, baseURL, playwright, seed }: Fixtures,
  name: string,
  options: BrowserContextOptions = { viewport: { width: 1280, height: 900 } },
): Promise<{ rater: SeededUser; projectId: string; context: BrowserContext; page: Page }> {
  const admin = await seed.createUser('ADMIN');
  const rater = await seed.createUser('RATER');
  const projectId = await ratedProject(playwright, baseURL, admin, rater, name);
  const context = await browser.newContext({ baseURL, ...options });
  const page = await context.newPage();
  await uiSignIn(page, rater);
  await page.goto(`/rate/${projectId}`);
  await expect(page.getByTestId('comparison')).toBeVisible();
  // The following comparison is held before the first judgment.
  await expect.poll(() => seed.prisma.assignment.count({ where: { raterId: rater.id } })).toBe(2);
  return { rater, projectId, context, page };
}

/** Presses "A is better, strongest" and Enter; returns the id that was on screen. */
async function judgeByKeys(page: Page): Promise<string> {
  const id = await shownAssignmentId(page);
  await page.keyboard.press('1');
  await page.keyboard.press('5');
  await page.keyboard.press('Enter');
  return id;
}

test('the next comparison shows before the server answers; undo waits for the answer; each judgment is stored once', async ({
  browser,
  baseURL,
  playwright,
  seed,
}) => {
  const { rater, context, page } = await openRating(
    { browser, baseURL, playwright, seed },
    'Background sends',
  );
  // On a desktop the keys are shown next to the buttons.
  await expect(page.locator('.decide kbd').first()).toBeVisible();

  // The server's answers are held back until released.
  let release: () => void = () => {};
  let held = new Promise<void>((done) => (release = done));
  const submits: string[] = [];
  await page.route('**/api/leases/*/submit', async (route) => {
    submits.push(route.request().url());
    await held;
    await route.continue();
  });

  const first = await judgeByKeys(page);
  // The next comparison is on screen while the submission has no answer yet, and takes keys.
  await expect(page.getByTestId('comparison')).not.toHaveAttribute('data-assignment-id', first);
  expect(submits).toHaveLength(1);
  expect(await seed.prisma.preference.count({ where: { assignmentId: first } })).toBe(0);
  await page.keyboard.press('2');
  await expect(page.locator('[data-choice="RIGHT"]')).toHaveAttribute('aria-pressed', 'true');
  // The undo countdown starts at the full minute, not a second more.
  await expect(page.getByTestId('undo')).toHaveText(/Undo \((60|59) s\)/);
  release();
  await expect.poll(() => seed.prisma.preference.count({ where: { assignmentId: first } })).toBe(1);

  // U on a judgment still on its way waits for the answer, then takes it back on the server.
  held = new Promise<void>((done) => (release = done));
  const second = await judgeByKeys(page);
  await expect(page.getByTestId('comparison')).not.toHaveAttribute('data-assignment-id', second);
  const following = await shownAssignmentId(page);
  await page.keyboard.press('u');
  release();
  await expect(page.getByTestId('comparison')).toHaveAttribute('data-assignment-id', second);
  await expect(page.locator('[data-choice="LEFT"]')).toHaveAttribute('aria-pressed', 'true');
  await expect(page.getByTestId('rate-message')).toContainText('taken back');
  await expect.poll(() => seed.prisma.preference.count({ where: { assignmentId: second } })).toBe(0);
  await page.unroute('**/api/leases/*/submit');

  // Judged again, then quickly three more: every one stored once, one request each.
  const judged = [second];
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('comparison')).toHaveAttribute('data-assignment-id', following);
  for (let i = 0; i < 3; i++) {
    judged.push(await judgeByKeys(page));
    await expect(page.getByTestId('comparison')).not.toHaveAttribute('data-assignment-id', judged.at(-1)!);
  }
  await expect
    .poll(() => seed.prisma.preference.count({ where: { raterId: rater.id } }), { timeout: 10_000 })
    .toBe(1 + judged.length);
  const rows = await seed.prisma.preference.findMany({ where: { raterId: rater.id } });
  expect(new Set(rows.map((row) => row.assignmentId))).toEqual(new Set([first, ...judged]));
  expect(submits.length).toBeGreaterThanOrEqual(2);
  await context.close();
});

test('sends that fail are told, kept in order and sent again; U takes back an unsent one; nothing is lost', async ({
  browser,
  baseURL,
  playwright,
  seed,
}) => {
  const { rater, context, page } = await openRating({ browser, baseURL, playwright, seed }, 'Failing sends');

  // The network is down for submissions.
  let down = true;
  const attempts = new Map<string, string[]>();
  await page.route('**/api/leases/*/submit', async (route) => {
    const url = route.request().url();
    attempts.set(url, [...(attempts.get(url) ?? []), route.request().headers()['idempotency-key'] ?? '']);
    if (down) await route.abort('connectionrefused');
    else await route.continue();
  });

  const a = await judgeByKeys(page);
  await expect(page.getByTestId('comparison')).not.toHaveAttribute('data-assignment-id', a);
  const b = await judgeByKeys(page);
  // Nothing else was held (the first send would have brought it): the screen waits for the server.
  await expect(page.getByTestId('rate-loading')).toBeVisible();
  await expect(page.getByTestId('comparison')).toHaveCount(0);
  // After a few failed tries the rater is told, and the notice stays.
  const trouble = page.getByTestId('send-trouble');
  await expect(trouble).toContainText('2 judgments are not saved yet');
  expect(await seed.prisma.preference.count({ where: { raterId: rater.id } })).toBe(0);

  // U takes back the last one, which was never sent: it comes back with its choice.
  await page.keyboard.press('u');
  await expect(page.getByTestId('comparison')).toHaveAttribute('data-assignment-id', b);
  await expect(page.locator('[data-choice="LEFT"]')).toHaveAttribute('aria-pressed', 'true');
  await expect(trouble).toContainText('1 judgment is not saved yet');

  // The network is back: "Send now" stores the first one; the notice goes away.
  down = false;
  await trouble.getByRole('button', { name: 'Send now' }).click();
  await expect(trouble).toBeHidden();
  await expect.poll(() => seed.prisma.preference.count({ where: { assignmentId: a } })).toBe(1);
  expect(await seed.prisma.preference.count({ where: { assignmentId: b } })).toBe(0);
  // Every try of a judgment carried the same key.
  const keysOfA = [...attempts.entries()].find(([url]) => url.includes(a))![1];
  expect(keysOfA.length).toBeGreaterThanOrEqual(4);
  expect(new Set(keysOfA).size).toBe(1);

  // B judged again (differently) and one more, stored once each, in order.
  await page.keyboard.press('2');
  await page.keyboard.press('6');
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('comparison')).not.toHaveAttribute('data-assignment-id', b);
  const d = await judgeByKeys(page);
  await expect
    .poll(() => seed.prisma.preference.count({ where: { raterId: rater.id } }), { timeout: 10_000 })
    .toBe(3);
  const rows = await seed.prisma.preference.findMany({
    where: { raterId: rater.id },
    orderBy: { createdAt: 'asc' },
  });
  expect(rows.map((row) => row.assignmentId)).toEqual([a, b, d]);
  expect(rows[1]!.strength).toBe(1);
  await context.close();
});

test('judgments unsent when the page is reloaded are sent on the next visit, once each, and told', async ({
  browser,
  baseURL,
  playwright,
  seed,
}) => {
  const { rater, projectId, context, page } = await openRating(
    { browser, baseURL, playwright, seed },
    'Reloaded with unsent judgments',
  );
  const store = `loom.unsent.${rater.id}.${projectId}`;
  /** The unsent judgments this browser keeps: assignment ids by localStorage key. */
  const kept = () =>
    page.evaluate(() =>
      Object.fromEntries(
        Object.keys(localStorage)
          .filter((key) => key.startsWith('loom.unsent.'))
          .map((key) => [
            key,
            (JSON.parse(localStorage.getItem(key)!) as { assignmentId: string }[]).map((e) => e.assignmentId),
          ]),
      ),
    );

  // The network is down for submissions, except that the first one reaches the server and only its
  // answer is lost: two judgments wait on the page, one of them stored already. Every request is noted.
  let down = true;
  const sent: { id: string; key: string; through: boolean }[] = [];
  await page.route('**/api/leases/*/submit', async (route) => {
    const id = route.request().url().split('/').at(-2)!;
    const first = sent.length === 0;
    sent.push({ id, key: route.request().headers()['idempotency-key'] ?? '', through: !down });
    if (!down) await route.continue();
    else {
      if (first) await route.fetch();
      await route.abort('connectionrefused');
    }
  });
  const a = await judgeByKeys(page);
  await expect(page.getByTestId('comparison')).not.toHaveAttribute('data-assignment-id', a);
  const b = await judgeByKeys(page);
  await expect(page.getByTestId('rate-loading')).toBeVisible();
  await expect.poll(() => seed.prisma.preference.count({ where: { assignmentId: a } })).toBe(1);
  // They are kept in this browser under the rater and the project, in order.
  expect(await kept()).toEqual({ [store]: [a, b] });

  // The rater reloads anyway (the old page sends nothing more); the network comes back once the new
  // page has tried.
  const before = sent.length;
  await page.reload();
  await expect.poll(() => sent.length).toBeGreaterThan(before);
  expect(sent[before]!.id).toBe(a);
  down = false;
  const message = page.getByTestId('rate-message');
  await expect(message).toContainText('2 judgments from your last visit were sent');
  await expect(page.getByTestId('comparison')).toBeVisible();
  const rows = await seed.prisma.preference.findMany({
    where: { raterId: rater.id },
    orderBy: { createdAt: 'asc' },
  });
  expect(rows.map((row) => row.assignmentId)).toEqual([a, b]);
  expect(rows.map((row) => row.strength)).toEqual([0, 0]);
  // Sent in order, each with one key throughout, the one stored already with the key it was stored with.
  const through = sent.filter((request) => request.through);
  expect(through.map((request) => request.id)).toEqual([a, b]);
  for (const id of [a, b]) {
    expect(new Set(sent.filter((request) => request.id === id).map((request) => request.key)).size).toBe(1);
  }
  expect(through[0]!.key).not.toBe(through[1]!.key);
  expect(await kept()).toEqual({});

  // Nothing is left for a later visit: reloading again sends nothing and tells nothing.
  await page.reload();
  await expect(page.getByTestId('comparison')).toBeVisible();
  await page.waitForTimeout(300);
  expect(sent.filter((request) => request.through)).toHaveLength(2);
  await expect(message).toHaveCount(0);
  expect(await seed.prisma.preference.count({ where: { raterId: rater.id } })).toBe(2);

  // One left unsent whose lease is withdrawn meanwhile is refused on the next visit, with the reason.
  down = true;
  const c = await judgeByKeys(page);
  await expect.poll(kept).toEqual({ [store]: [c] });
  await seed.prisma.assignment.update({ where: { id: c }, data: { status: 'EXPIRED' } });
  const tried = sent.length;
  await page.reload();
  await expect.poll(() => sent.length).toBeGreaterThan(tried);
  down = false;
  await expect(message).toContainText('1 judgment from your last visit was not stored');
  await expect(message).toContainText('withdrawn');
  expect(await kept()).toEqual({});
  expect(await seed.prisma.preference.count({ where: { raterId: rater.id } })).toBe(2);

  // Signing out forgets what is unsent: nothing is left for whoever signs in next on this browser.
  down = true;
  await judgeByKeys(page);
  await expect.poll(async () => Object.keys(await kept())).toEqual([store]);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/login/);
  expect(await kept()).toEqual({});
  await context.close();
});

test('a judgment the server refuses (409, 404) is told and does not skip the comparison on screen', async ({
  browser,
  baseURL,
  playwright,
  seed,
}) => {
  const { rater, context, page } = await openRating({ browser, baseURL, playwright, seed }, 'Refused sends');
  const other = await seed.createUser('RATER');

  // 409: the lease on screen is withdrawn before the rater submits.
  const withdrawn = await shownAssignmentId(page);
  await seed.prisma.assignment.update({ where: { id: withdrawn }, data: { status: 'EXPIRED' } });
  await judgeByKeys(page);
  await expect(page.getByTestId('comparison')).not.toHaveAttribute('data-assignment-id', withdrawn);
  const onScreen = await shownAssignmentId(page);
  await expect(page.getByTestId('rate-message')).toContainText('was not stored');
  await expect(page.getByTestId('rate-message')).toContainText('withdrawn');
  // What is on screen stays there.
  await expect(page.getByTestId('comparison')).toHaveAttribute('data-assignment-id', onScreen);

  // 404: the lease on screen is no longer this rater's.
  const moved = onScreen;
  await seed.prisma.assignment.update({ where: { id: moved }, data: { raterId: other.id } });
  await judgeByKeys(page);
  await expect(page.getByTestId('rate-message')).toContainText('No such assignment');
  const after404 = await shownAssignmentId(page);
  expect(after404).not.toBe(moved);
  await page.waitForTimeout(500);
  await expect(page.getByTestId('comparison')).toHaveAttribute('data-assignment-id', after404);

  // Rating goes on and stores normally.
  const stored = await judgeByKeys(page);
  await expect.poll(() => seed.prisma.preference.count({ where: { assignmentId: stored } })).toBe(1);
  expect(await seed.prisma.preference.count({ where: { raterId: rater.id } })).toBe(1);
  await context.close();
});

test('on a phone the decision bar is on screen, its buttons are 44 px high and no key hints show', async ({
  browser,
  baseURL,
  playwright,
  seed,
}) => {
  const { context, page } = await openRating({ browser, baseURL, playwright, seed }, 'On a phone', {
    viewport: { width: 390, height: 844 },
    isMobile: true,
    hasTouch: true,
    deviceScaleFactor: 3,
  });
  expect(
    await page.evaluate(
      () =>
        (globalThis as unknown as { matchMedia(query: string): { matches: boolean } }).matchMedia(
          '(hover: none) and (pointer: coarse)',
        ).matches,
    ),
  ).toBe(true);

  const checkBar = async (): Promise<void> => {
    expect(await page.evaluate(() => (globalThis as unknown as { scrollY: number }).scrollY)).toBe(0);
    const buttons = page.locator('.decide button');
    const count = await buttons.count();
    expect(count).toBeGreaterThanOrEqual(5);
    const viewport = page.viewportSize()!;
    for (let i = 0; i < count; i++) {
      const box = (await buttons.nth(i).boundingBox())!;
      expect(box.y, await buttons.nth(i).innerText()).toBeGreaterThanOrEqual(0);
      expect(box.y + box.height).toBeLessThanOrEqual(viewport.height);
      expect(box.x + box.width).toBeLessThanOrEqual(viewport.width);
      expect(box.height).toBeGreaterThanOrEqual(44);
    }
    await expect(page.locator('.decide kbd')).not.toHaveCount(0);
    for (const kbd of await page.locator('kbd').all()) await expect(kbd).toBeHidden();
  };
  await checkBar();

  // Tapping rates: a side, its strength (now in the bar too), Submit.
  const first = await shownAssignmentId(page);
  await page.locator('[data-choice="LEFT"]').tap();
  await page.locator('[data-strength="0"]').tap();
  await checkBar();
  await page.locator('.decide').getByRole('button', { name: 'Submit' }).tap();
  await expect(page.getByTestId('comparison')).not.toHaveAttribute('data-assignment-id', first);
  await checkBar();
  await expect.poll(() => seed.prisma.preference.count({ where: { assignmentId: first } })).toBe(1);
  await context.close();
});
