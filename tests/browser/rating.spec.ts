// The rater's screen end to end: an admin sets up a project through the API with responses that carry
// script/HTML injections; a rater judges 10 comparisons with the keyboard only, and every stored row
// matches what was pressed (the un-swapped side when B was shown on the left); a submit whose answer is
// lost is retried with the same Idempotency-Key and stored once; undo brings the last
// comparison back; nothing injected runs; the admin sees the quality numbers afterwards.
import type { APIRequestContext, Page } from '@playwright/test';
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

  const dry = await api.post(`/api/projects/${project.id}/import`, {
    headers,
    data: { format: 'jsonl', content: importFile(), dryRun: true },
  });
  expect(await dry.json()).toMatchObject({ prompts: 4, responses: 12, errors: [] });
  const imported = await api.post(`/api/projects/${project.id}/import`, {
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
    if (request.url().endsWith('/assignments/next')) nextRequests++;
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
      await page.route('**/api/assignments/*/submit', async (route) => {
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
      await page.unroute('**/api/assignments/*/submit');
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
