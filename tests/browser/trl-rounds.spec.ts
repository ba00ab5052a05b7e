// Rounds on an external TRL worker, from the UI, at a phone's width: an admin creates a token
// scoped to training on the Tokens page (a researcher is offered no scope), opens a project's
// Rounds page, picks the TRL engine (its settings start from the shared defaults and carry the
// schema's limits; an empty base model is refused with a message), launches a GRPO round and sees
// "Waiting for a TRL worker" with the command to start one for this server. The test then plays
// the worker over HTTP with the token: it claims the round and sends a loss event, and the page
// shows the worker's name, its lease and the loss point; the worker's failure ends the round.
// Nothing scrolls sideways at 360 px; axe-core finds nothing serious.
import { randomUUID } from 'node:crypto';
import type { Claim } from '../../core/schemas/engine.js';
import { ENGINE_DEFAULTS, EngineSettingsSchema } from '../../core/schemas/engine.js';
import { checkA11y, expect, type Seed, sidewaysScroll, test, uiSignIn } from './fixtures.js';

test.use({ viewport: { width: 360, height: 780 } });

const BASE_MODEL = 'Qwen/Qwen2.5-0.5B-Instruct';
const WORKER = `gpu-box-${randomUUID().slice(0, 4)}`;

/** A project with a promoted (imported) version and 6 judgments: enough for a round. */
async function seedProject(seed: Seed): Promise<{ id: string; name: string }> {
  const { prisma } = seed;
  const rater = await seed.createUser('RATER');
  const project = await prisma.project.create({
    data: { name: `TRL ${randomUUID().slice(0, 6)}`, overlap: 1 },
  });
  const base = await prisma.policyVersion.create({
    data: { projectId: project.id, name: 'base', kind: 'IMPORTED', status: 'READY', promotedAt: new Date() },
  });
  await prisma.project.update({ where: { id: project.id }, data: { currentPolicyVersionId: base.id } });
  for (let i = 0; i < 6; i++) {
    const prompt = await prisma.prompt.create({
      data: { projectId: project.id, messages: [{ role: 'user', content: `Question ${i}?` }] },
    });
    const a = await prisma.response.create({
      data: { promptId: prompt.id, policyVersionId: base.id, text: `A careful answer ${i}.` },
    });
    const b = await prisma.response.create({
      data: { promptId: prompt.id, source: 'seed', text: `no` },
    });
    const comparison = await prisma.comparison.create({
      data: {
        projectId: project.id,
        promptId: prompt.id,
        responseAId: a.id,
        responseBId: b.id,
        requiredVotes: 1,
        voteCount: 1,
      },
    });
    await prisma.preference.create({
      data: { comparisonId: comparison.id, raterId: rater.id, source: 'HUMAN', choice: 'A' },
    });
  }
  return project;
}

test('an admin makes a training token, launches a TRL round and sees a worker take it', async ({
  browser,
  page,
  baseURL,
  playwright,
  seed,
}) => {
  test.setTimeout(120_000);
  const pageErrors: Error[] = [];
  page.on('pageerror', (error) => pageErrors.push(error));
  const origin = new URL(baseURL!).origin;
  const project = await seedProject(seed);
  const admin = await seed.createUser('ADMIN');

  // A researcher makes tokens too, but is offered no scope: training tokens are for admins.
  const researcher = await seed.createUser('RESEARCHER');
  const other = await browser.newContext({ baseURL, viewport: { width: 360, height: 780 } });
  const researcherPage = await other.newPage();
  await uiSignIn(researcherPage, researcher);
  await researcherPage.goto('/tokens');
  await expect(researcherPage.getByRole('button', { name: 'Create token' })).toBeVisible();
  await expect(researcherPage.getByTestId('token-scope')).toHaveCount(0);
  await other.close();

  // The admin creates a training token; the list shows its scope.
  await uiSignIn(page, admin);
  await page.goto('/tokens');
  const scope = page.getByTestId('token-scope');
  await expect(scope.getByRole('radio', { name: /^User/ })).toBeChecked();
  await expect(scope).toContainText('every route your role allows');
  await scope.getByRole('radio', { name: /^Training/ }).check();
  await expect(scope).toContainText('external training engines');
  await page.getByLabel('Name', { exact: true }).fill('GPU worker');
  await page.getByRole('button', { name: 'Create token' }).click();
  const createdBox = page.getByTestId('token-created');
  await expect(createdBox).toContainText(`loom-trl work --url ${origin}`);
  const token = await page.getByTestId('api-token').inputValue();
  expect(token.length).toBeGreaterThan(20);
  const row = page.getByTestId('tokens-table').locator('tr', { hasText: 'GPU worker' });
  await expect(row.locator('td[data-scope]')).toHaveText('Training');
  await expect(scope.getByRole('radio', { name: /^User/ })).toBeChecked();
  const stored = await seed.prisma.apiToken.findFirstOrThrow({
    where: { userId: admin.id, name: 'GPU worker' },
  });
  expect(stored.scope).toBe('training');
  expect(await sidewaysScroll(page)).toBe(0);
  await checkA11y(page, 'Tokens with the scope choice at 360 px');

  // The project's rounds: the TRL engine, its settings from the shared defaults and limits.
  await page.goto(`/admin/rounds/${project.id}`);
  await expect(page.getByRole('heading', { name: project.name, level: 1 })).toBeVisible();
  const form = page.getByTestId('launch-form');
  await expect(form.getByRole('radio', { name: /^Built-in/ })).toBeChecked();
  await expect(form.getByLabel('Base model')).toHaveCount(0);
  await form.getByRole('radio', { name: /^TRL/ }).check();
  await expect(form.getByRole('spinbutton', { name: 'Iterations', exact: true })).toHaveCount(0);
  await expect(form.getByRole('radio', { name: /^RLOO/ })).toHaveCount(0);
  const algorithm = form.getByLabel('Algorithm', { exact: true });
  await expect(algorithm).toHaveValue(ENGINE_DEFAULTS.algorithm);
  await expect(algorithm.locator('option')).toHaveText(['DPO', 'RLOO', 'GRPO']);
  await expect(form.getByLabel('LoRA adapter')).toBeChecked();
  const fields = {
    loraRank: form.getByRole('spinbutton', { name: 'LoRA rank' }),
    beta: form.getByRole('spinbutton', { name: /^β/ }),
    learningRate: form.getByRole('spinbutton', { name: 'Learning rate' }),
    epochs: form.getByRole('spinbutton', { name: 'Epochs' }),
  } as const;
  for (const [key, input] of Object.entries(fields) as [keyof typeof fields, (typeof fields)['beta']][]) {
    expect(Number(await input.inputValue()), key).toBe(ENGINE_DEFAULTS[key]);
    const limits = EngineSettingsSchema.properties[key] as {
      minimum?: number;
      exclusiveMinimum?: number;
      maximum?: number;
    };
    await expect(input, key).toHaveAttribute('min', String(limits.minimum ?? limits.exclusiveMinimum));
    await expect(input, key).toHaveAttribute('max', String(limits.maximum));
  }
  await form.getByLabel('LoRA adapter').uncheck();
  await expect(fields.loraRank).toHaveCount(0);
  await form.getByLabel('LoRA adapter').check();
  await expect(form.getByLabel('Generate comparisons for raters')).toBeChecked();
  await expect(form.getByRole('spinbutton', { name: 'Comparison prompts' })).toBeVisible();
  expect(await sidewaysScroll(page)).toBe(0);

  // An empty base model is refused with a message, and nothing is launched.
  const baseModel = form.getByLabel('Base model');
  await expect(baseModel).toHaveValue('');
  await form.getByRole('button', { name: 'Launch round' }).click();
  await expect(form.locator('.field-error')).toHaveText(/Base model is required/);
  await expect(baseModel).toHaveAttribute('aria-invalid', 'true');
  await expect(baseModel).toHaveAccessibleDescription(/Base model is required/);
  await baseModel.fill('   ');
  await form.getByRole('button', { name: 'Launch round' }).click();
  await expect(form.locator('.field-error')).toHaveText(/Base model is required/);
  // An epoch count outside the schema's limits is refused too.
  await baseModel.fill(BASE_MODEL);
  await fields.epochs.fill('0');
  await form.getByRole('button', { name: 'Launch round' }).click();
  await expect(form.locator('.field-error')).toHaveText(['Epochs must be at least 1.']);
  expect(await seed.prisma.trainingRound.count({ where: { projectId: project.id } })).toBe(0);

  // Launch GRPO with a LoRA rank of 8 and 3 comparison prompts.
  await fields.epochs.fill('2');
  await algorithm.selectOption('grpo');
  await expect(fields.beta).toHaveAccessibleName('β (KL coefficient)');
  await fields.loraRank.fill('8');
  await form.getByRole('spinbutton', { name: 'Comparison prompts' }).fill('3');
  await form.getByRole('button', { name: 'Launch round' }).click();

  const live = page.getByTestId('live-round');
  await expect(live).toHaveAttribute('data-status', 'QUEUED');
  const waiting = live.getByTestId('waiting-for-worker');
  await expect(waiting).toContainText('Waiting for a TRL worker');
  await expect(live.getByTestId('worker-install-command')).toHaveValue('pip install "./trainer/trl[train]"');
  await expect(live.getByTestId('worker-command')).toHaveValue(
    `LOOM_TOKEN=<a training token> loom-trl work --url ${origin}`,
  );
  await expect(waiting.getByRole('link', { name: /Tokens page/ })).toHaveAttribute('href', '/tokens');
  await expect(live.getByTestId('round-engine')).toHaveText(`TRL · ${BASE_MODEL}`);
  await expect(page.getByTestId('launch-disabled')).toContainText('already queued or running');
  const round = await seed.prisma.trainingRound.findFirstOrThrow({ where: { projectId: project.id } });
  expect(round).toMatchObject({
    engine: 'trl',
    algorithm: 'GRPO',
    status: 'QUEUED',
    phase: 'waiting-for-worker',
    config: { generateComparisons: true, comparisonPrompts: 3 },
    engineSettings: {
      baseModel: BASE_MODEL,
      algorithm: 'grpo',
      lora: true,
      loraRank: 8,
      beta: ENGINE_DEFAULTS.beta,
      learningRate: ENGINE_DEFAULTS.learningRate,
      epochs: 2,
    },
  });
  expect(await sidewaysScroll(page)).toBe(0);
  await checkA11y(page, 'Rounds with a TRL round waiting for a worker at 360 px');

  // The worker, over HTTP with the training token: it claims the round and reports a loss.
  const worker = await playwright.request.newContext({
    baseURL,
    extraHTTPHeaders: { authorization: `Bearer ${token}` },
  });
  const claimed = await worker.post('/api/engine/claim', {
    data: { engine: 'trl', worker: WORKER, leaseSeconds: 600 },
  });
  expect(claimed.status(), await claimed.text()).toBe(200);
  const claim = (await claimed.json()) as Claim;
  expect(claim.roundId).toBe(round.id);
  expect(claim.settings).toMatchObject({ baseModel: BASE_MODEL, algorithm: 'grpo', loraRank: 8, epochs: 2 });
  expect(claim.comparisonPrompts).toHaveLength(3);

  await expect(live).toHaveAttribute('data-status', 'RUNNING');
  await expect(waiting).toHaveCount(0);
  const held = live.getByTestId('round-worker');
  await expect(held).toContainText(WORKER);
  await expect(held).toContainText(/lease expires\s+in (10|9) minutes/);
  await expect(live.getByRole('log')).toContainText(`Claimed by ${WORKER}`);

  const sent = await worker.post(claim.paths.events, {
    data: {
      events: [{ phase: 'policy', step: 1, data: { loss: 0.69 }, message: 'GRPO step 1 of 2' }],
      phase: 'policy',
      progress: 0.4,
    },
  });
  expect(sent.status(), await sent.text()).toBe(200);
  await expect(live.getByTestId('round-progress')).toHaveAttribute('aria-valuenow', '40');
  await expect(live.getByTestId('chart-policy-loss')).toHaveAttribute('data-points', '1');
  await expect(live.getByRole('log')).toContainText('GRPO step 1 of 2');
  expect(await sidewaysScroll(page)).toBe(0);

  // The worker gives up: the round ends as failed, with its reason, and the worker line goes.
  const failed = await worker.post(claim.paths.fail, { data: { error: 'CUDA out of memory' } });
  expect(failed.status(), await failed.text()).toBe(200);
  await expect(live).toHaveAttribute('data-status', 'FAILED');
  await expect(live.getByRole('alert')).toContainText('CUDA out of memory');
  await expect(held).toHaveCount(0);
  await expect(live.getByTestId('round-engine')).toHaveText(`TRL · ${BASE_MODEL}`);
  await expect(page.getByTestId('rounds-table').locator(`tr[data-round="${round.number}"]`)).toContainText(
    'GRPO · TRL',
  );
  await worker.dispose();
  expect(pageErrors).toEqual([]);
});
