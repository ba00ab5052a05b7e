// Real models in the loop, end to end in Chromium: an admin registers two versions served by a fake
// OpenAI-compatible endpoint on loopback (the one port the server allow-lists), tests the
// connection, generates 20 prompts × 2 versions while the endpoint answers some requests with 429
// (Retry-After) and 500, watches the job's progress to the end, pairs the two versions, a rater
// judges every pair by keyboard, the leaderboard shows both versions with intervals, the admin
// promotes the preferred one, and the audit log says who did each step. Every response from Loom
// that the browsers see, the export and the audit rows are scanned for the API key.
import { randomUUID } from 'node:crypto';
import type { APIRequestContext, Page, Response } from '@playwright/test';
import { startFakeOpenAI, type FakeFailure } from '../support/fake-openai.js';
import { checkA11y, expect, test, uiSignIn } from './fixtures.js';

test.use({ viewport: { width: 1280, height: 900 } });

const PROMPTS = 20;

/** 20 prompts; the last is a conversation, sent to the endpoint as its message list. */
function promptFile(): string {
  return Array.from({ length: PROMPTS }, (_, i) =>
    JSON.stringify(
      i === PROMPTS - 1
        ? {
            id: `q${i}`,
            messages: [
              { role: 'system', content: 'Answer briefly.' },
              { role: 'user', content: 'Name a prime.' },
              { role: 'assistant', content: 'Seven.' },
              { role: 'user', content: 'Another one, please.' },
            ],
          }
        : { id: `q${i}`, prompt: `Question ${i}: what is ${i} squared?` },
    ),
  ).join('\n');
}

async function apiSignIn(request: APIRequestContext, email: string, password: string) {
  const response = await request.post('/api/auth/login', { data: { email, password } });
  expect(response.status(), await response.text()).toBe(200);
  const { csrfToken } = (await response.json()) as { csrfToken: string };
  return { 'x-csrf-token': csrfToken };
}

test('an admin puts two served models in front of raters, ranks them by votes and promotes one', async ({
  browser,
  baseURL,
  playwright,
  seed,
}) => {
  test.setTimeout(300_000);
  const port = Number(process.env.LOOM_E2E_FAKE_ENDPOINT_PORT);
  expect(port, 'global setup reserves the fake endpoint’s port').toBeGreaterThan(0);
  const key = `sk-e2e-${randomUUID()}`;
  // Every 5th request is refused with 429 and Retry-After: 1, every 7th fails with 500.
  const failures: FakeFailure[] = [];
  const fake = await startFakeOpenAI({
    port,
    apiKey: key,
    latencyMs: 200,
    failWhen: (index) => {
      const failure: FakeFailure | undefined =
        index % 5 === 3
          ? { status: 429, retryAfter: '1', message: 'Rate limit reached' }
          : index % 7 === 4
            ? { status: 500, message: 'The server had an error' }
            : undefined;
      if (failure) failures.push(failure);
      return failure;
    },
  });

  // Every answer from Loom that a browser sees is read and searched for the key.
  const scans: Promise<void>[] = [];
  const leaks: string[] = [];
  let scanned = 0;
  const watch = (page: Page) =>
    page.on('response', (response: Response) => {
      if (!response.url().startsWith(baseURL!)) return;
      scans.push(
        response
          .text()
          .then((body) => {
            scanned++;
            if (body.includes(key)) leaks.push(`${response.request().method()} ${response.url()}`);
          })
          .catch(() => undefined),
      );
    });

  try {
    // A project with 20 prompts and one rater, set up through the API.
    const admin = await seed.createUser('ADMIN', 'Ada Admin');
    const rater = await seed.createUser('RATER', 'Rita Rater');
    const api = await playwright.request.newContext({ baseURL });
    const headers = await apiSignIn(api, admin.email, admin.password);
    const created = await api.post('/api/projects', {
      headers,
      data: { name: `Served models ${randomUUID().slice(0, 6)}`, overlap: 1, goldRate: 0 },
    });
    expect(created.status(), await created.text()).toBe(201);
    const project = (await created.json()) as { id: string; name: string };
    const imported = await api.post(`/api/projects/${project.id}/prompts/import`, {
      headers,
      data: { format: 'jsonl', content: promptFile() },
    });
    expect(imported.status(), await imported.text()).toBe(200);
    const added = await api.post(`/api/projects/${project.id}/members`, {
      headers,
      data: { userIds: [rater.id] },
    });
    expect(added.status(), await added.text()).toBe(200);

    const adminContext = await browser.newContext({ baseURL });
    const page = await adminContext.newPage();
    const pageErrors: Error[] = [];
    page.on('pageerror', (error) => pageErrors.push(error));
    watch(page);
    await uiSignIn(page, admin);
    await page.goto(`/admin/models/${project.id}`);

    // Register two versions on the fake endpoint; the first is tested as a draft before saving.
    const form = page.getByTestId('endpoint-form');
    for (const [name, model] of [
      ['alpha', 'alpha-model'],
      ['beta', 'beta-model'],
    ] as const) {
      await form.getByLabel('Version name').fill(name);
      await form.getByLabel('Base URL').fill(fake.baseUrl);
      await form.getByLabel('Model', { exact: true }).fill(model);
      await form.getByLabel('API key').fill(key);
      await form.getByLabel('Concurrency (requests at once)').fill('2');
      if (name === 'alpha') {
        await form.getByTestId('test-connection').click();
        // The fake's 3rd request is a 429: the draft test may meet it only after a few calls, so
        // the first call answers.
        await expect(page.getByTestId('test-ok')).toContainText('Answered in');
        await expect(page.getByTestId('test-ok')).toContainText('alpha-model says');
      }
      await form.getByRole('button', { name: 'Register' }).click();
      await expect(page.getByRole('status').filter({ hasText: `Registered ${name}` })).toBeVisible();
      await expect(page.getByTestId('versions-table')).toContainText(name);
    }
    const versions = await seed.prisma.policyVersion.findMany({
      where: { projectId: project.id },
      orderBy: { name: 'asc' },
    });
    expect(versions.map((v) => [v.name, v.kind, v.status])).toEqual([
      ['alpha', 'EXTERNAL', 'READY'],
      ['beta', 'EXTERNAL', 'READY'],
    ]);
    // The stored key is ciphertext.
    const secrets = await seed.prisma.endpointSecret.findMany({
      where: { policyVersionId: { in: versions.map((v) => v.id) } },
    });
    expect(secrets).toHaveLength(2);
    for (const secret of secrets)
      expect(Buffer.from(secret.ciphertext).toString('latin1')).not.toContain(key);

    // Generate: all prompts × both versions × 1 sample, while the endpoint fails now and then.
    const panel = page.getByTestId('generation-panel');
    await panel.getByRole('checkbox', { name: 'alpha' }).check();
    await panel.getByRole('checkbox', { name: 'beta' }).check();
    await panel.getByRole('button', { name: 'Generate' }).click();
    const job = page.getByTestId('generation-job');
    await expect(job).toBeVisible();
    const counts = job.getByTestId('generation-counts');
    const seen = new Set<string>();
    await expect
      .poll(
        async () => {
          const text = ((await counts.textContent()) ?? '').replace(/\s+/g, ' ').trim();
          seen.add(text);
          return job.getAttribute('data-status');
        },
        { timeout: 120_000, intervals: [250] },
      )
      .toBe('SUCCEEDED');
    await expect(counts).toHaveText(/40 done\s*0 failed\s*of 40/);
    await expect(job.getByTestId('generation-progress')).toHaveAttribute('aria-valuenow', '40');
    // The page showed the job between its start and its end.
    const between = [...seen].filter((text) => {
      const done = Number(/(\d+) done/.exec(text)?.[1] ?? -1);
      return done > 0 && done < 40;
    });
    expect(between.length, `progress seen: ${[...seen].join(' | ')}`).toBeGreaterThan(0);
    // The endpoint refused some requests and each was retried: one response per (prompt, version).
    expect(failures.filter((f) => f.status === 429).length).toBeGreaterThan(0);
    expect(failures.filter((f) => f.status === 500).length).toBeGreaterThan(0);
    const responses = await seed.prisma.response.findMany({
      where: { prompt: { projectId: project.id } },
      include: { policyVersion: true },
    });
    expect(responses).toHaveLength(40);
    expect(new Set(responses.map((r) => `${r.promptId}/${r.policyVersionId}/${r.sampleIndex}`)).size).toBe(
      40,
    );
    for (const response of responses)
      expect(response.text).toContain(`${response.policyVersion!.endpointModel} says`);
    const items = await seed.prisma.generationItem.findMany({ where: { job: { projectId: project.id } } });
    expect(items).toHaveLength(40);
    for (const item of items) {
      expect(item.status).toBe('DONE');
      expect(item.latencyMs).toBeGreaterThanOrEqual(200);
      expect(item.finishReason).toBe('stop');
      expect(item.completionTokens).toBeGreaterThan(0);
    }
    expect(items.some((item) => item.attempts > 1)).toBe(true);
    // The conversation went out as its message list, the key as the bearer.
    const conversation = fake.received.find((request) => request.body.messages?.length === 4);
    expect(conversation?.body.messages?.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
    expect(fake.received.every((request) => request.authorization === `Bearer ${key}`)).toBe(true);
    expect(fake.maxInFlight).toBeLessThanOrEqual(4);

    // Pair the two versions on the project page.
    await page.goto(`/admin/projects/${project.id}`);
    await page.getByRole('tab', { name: 'Comparisons' }).click();
    await page.getByRole('radio', { name: 'Across two sources' }).check();
    await page.getByLabel('Source A').fill('alpha');
    await page.getByLabel('Source B').fill('beta');
    await page
      .locator('section', { has: page.getByRole('heading', { name: 'Generate comparisons' }) })
      .getByRole('button', { name: 'Generate' })
      .click();
    await expect(page.getByText(`Created ${PROMPTS} comparisons`)).toBeVisible();

    // The rater judges every pair by keyboard: alpha's answer, except on every fourth prompt.
    const raterContext = await browser.newContext({ baseURL });
    const ratePage = await raterContext.newPage();
    ratePage.on('pageerror', (error) => pageErrors.push(error));
    watch(ratePage);
    await uiSignIn(ratePage, rater);
    await ratePage.goto(`/rate/${project.id}`);
    let alphaWins = 0;
    for (let i = 0; i < PROMPTS; i++) {
      const stage = ratePage.getByTestId('comparison');
      await expect(stage).toBeVisible();
      const id = await stage.getAttribute('data-assignment-id');
      const left = (await ratePage.getByTestId('response-left').textContent()) ?? '';
      const leftIsAlpha = left.includes('alpha-model says');
      const pickAlpha = i % 4 !== 3;
      if (pickAlpha) alphaWins++;
      await ratePage.keyboard.press(pickAlpha === leftIsAlpha ? '1' : '2');
      await ratePage.keyboard.press('5');
      await ratePage.keyboard.press('Enter');
      if (i < PROMPTS - 1)
        await expect
          .poll(async () => (await stage.getAttribute('data-assignment-id').catch(() => null)) ?? 'gone')
          .not.toBe(id);
    }
    await expect(ratePage.getByTestId('rate-done')).toBeVisible();
    await expect
      .poll(() => seed.prisma.preference.count({ where: { comparison: { projectId: project.id } } }))
      .toBe(PROMPTS);

    // The leaderboard: both versions with an interval, alpha ahead on 20 votes each.
    await page.goto(`/admin/leaderboard/${project.id}`);
    const chart = page.getByTestId('strength-chart');
    await expect(chart.getByTestId('strength-row')).toHaveCount(2);
    await expect(chart.getByTestId('error-bar')).toHaveCount(2);
    expect(
      await chart
        .getByTestId('strength-row')
        .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-version'))),
    ).toEqual(['alpha', 'beta']);
    for (const bar of await chart.getByTestId('error-bar').all())
      expect(Number(await bar.getAttribute('data-high'))).toBeGreaterThan(
        Number(await bar.getAttribute('data-low')),
      );
    const table = page.getByTestId('leaderboard-table');
    await expect(table.locator('tr[data-version="alpha"]')).toContainText(String(PROMPTS));
    await expect(table.locator('tr[data-version="beta"]')).toContainText(String(PROMPTS));
    await expect(page.getByTestId('leaderboard-summary')).toContainText(`${PROMPTS} human judgments`);
    await expect(page.getByTestId('win-rate-matrix').getByTestId('win-rate-cell').first()).toContainText(
      `${Math.round((alphaWins / PROMPTS) * 100)}%`,
    );
    await checkA11y(page, 'the leaderboard of served models');

    // The admin promotes alpha on the Rounds page.
    await page.goto(`/admin/rounds/${project.id}`);
    const alpha = page.locator('li[data-version="alpha"]');
    await alpha.getByRole('button', { name: /^Promote/ }).click();
    const dialog = page.getByRole('dialog');
    await expect(dialog).toContainText('Promote alpha?');
    await dialog.getByRole('button', { name: 'Promote', exact: true }).click();
    await expect(alpha).toHaveAttribute('data-current', 'true');

    // The audit log: who registered, tested, generated, paired and promoted.
    await page.goto('/admin/audit');
    const audit = page.getByTestId('audit-table');
    for (const action of [
      'endpoint › create',
      'endpoint › test',
      'generation › create',
      'comparisons › generate',
      'policy › promote',
    ]) {
      const row = audit.locator('tr', { hasText: action }).first();
      await expect(row, action).toBeVisible();
      await expect(row, action).toContainText(admin.email);
    }
    await expect(audit.locator('tr', { hasText: 'endpoint › create' })).toHaveCount(2);
    await expect(audit.locator('tr', { hasText: 'endpoint › create' }).first()).toContainText('apiKey: set');
    const rows = await seed.prisma.auditLog.findMany({ where: { actorId: admin.id } });
    expect(rows.filter((row) => row.action === 'endpoint.create')).toHaveLength(2);
    expect(JSON.stringify(rows.map((row) => row.details))).not.toContain(key);

    // An export of the judgments, as a researcher takes it, holds no key either.
    const exported = await api.post(`/api/projects/${project.id}/export`, {
      headers,
      data: { format: 'trl' },
    });
    expect(exported.status()).toBe(200);
    const exportText = await exported.text();
    expect(exportText.split('\n').filter(Boolean)).toHaveLength(PROMPTS);
    expect(exportText).not.toContain(key);

    await Promise.all(scans);
    expect(scanned).toBeGreaterThan(50);
    expect(leaks).toEqual([]);
    expect(pageErrors).toEqual([]);
    await api.dispose();
    await adminContext.close();
    await raterContext.close();
  } finally {
    await fake.close();
  }
});
