// Training rounds from the UI: once the demo project's first policy is trained, simulated raters
// judge 60 comparisons over HTTP; an admin opens Rounds, picks the demo, launches a small RLOO round
// and watches it live (the progress bar and the phase stepper move, loss points appear in the chart),
// then sees its metrics and the new policy version, promotes it and sees it marked current; a
// second, long round is cancelled from the UI mid-training and leaves no version behind.
import type { Locator } from '@playwright/test';
import { answerKey, ensureSimulatedRaters, runSimulatedRaters } from '../../server/simulated-raters.js';
import { checkA11y, expect, sidewaysScroll, test, uiSignIn } from './fixtures.js';

// A laptop's screen: nothing may scroll sideways at this width.
test.use({ viewport: { width: 1366, height: 768 } });

/** How far the page scrolls sideways (0 when it does not). */
const SMALL = {
  iterations: '4',
  samplesPerPrompt: '2',
  promptsPerIteration: '8',
  rewardModelEpochs: '1',
  comparisonPrompts: '5',
};

async function numberAttr(locator: Locator, name: string): Promise<number> {
  return Number((await locator.getAttribute(name)) ?? NaN);
}

test('an admin launches a round, watches it live, sees its metrics and promotes the new version', async ({
  page,
  baseURL,
  seed,
}) => {
  test.setTimeout(10 * 60_000);
  const pageErrors: Error[] = [];
  page.on('pageerror', (error) => pageErrors.push(error));

  // The demo's first policy is trained in the background right after the server starts.
  let demo = await seed.prisma.project.findFirst({ where: { isDemo: true } });
  await expect
    .poll(
      async () => {
        demo = await seed.prisma.project.findFirst({ where: { isDemo: true } });
        return demo?.currentPolicyVersionId ?? null;
      },
      { timeout: 200_000, intervals: [1000] },
    )
    .not.toBeNull();
  const projectId = demo!.id;

  // Judgments for the reward model, from simulated raters through the HTTP API.
  const judged = await runSimulatedRaters({
    origin: baseURL!,
    projectId,
    accounts: await ensureSimulatedRaters(seed.prisma, projectId, 3),
    answers: await answerKey(seed.prisma, projectId),
    noise: 0.1,
    judgments: 60,
  });
  expect(judged.errors).toBe(0);
  expect(judged.judged).toBeGreaterThanOrEqual(60);

  const admin = await seed.createUser('ADMIN');
  await uiSignIn(page, admin);

  // Rounds → the demo project (it has a promoted version, so it is a link).
  await page.locator('[data-nav="rounds"]').click();
  await expect(page.getByRole('heading', { name: 'Training rounds', level: 1 })).toBeVisible();
  await page
    .getByTestId('round-projects')
    .getByRole('link', { name: new RegExp(demo!.name) })
    .click();
  await expect(page).toHaveURL(new RegExp(`/admin/rounds/${projectId}$`));
  await expect(page.getByRole('heading', { name: demo!.name, level: 1 })).toBeVisible();

  // Launch a small RLOO round.
  const form = page.getByTestId('launch-form');
  await form.getByRole('radio', { name: /^RLOO/ }).check();
  await form.getByRole('spinbutton', { name: 'Iterations', exact: true }).fill(SMALL.iterations);
  await form.getByRole('spinbutton', { name: 'Samples per prompt' }).fill(SMALL.samplesPerPrompt);
  await form.getByRole('spinbutton', { name: 'Prompts per iteration' }).fill(SMALL.promptsPerIteration);
  await form.getByRole('spinbutton', { name: 'Reward-model epochs' }).fill(SMALL.rewardModelEpochs);
  await expect(form.getByLabel('Generate comparisons for raters')).toBeChecked();
  await form.getByRole('spinbutton', { name: 'Comparison prompts' }).fill(SMALL.comparisonPrompts);
  await form.getByRole('button', { name: 'Launch round' }).click();

  const live = page.getByTestId('live-round');
  await expect(live).toBeVisible();
  const heading = (await live.getByRole('heading', { level: 2 }).innerText()).trim();
  const number = Number(/Round (\d+)/.exec(heading)?.[1]);
  expect(number).toBeGreaterThan(0);
  // While it runs, launching again is refused with the server's reason.
  await expect(page.getByTestId('launch-disabled')).toContainText('already queued or running');

  // Live: the progress bar and the phase stepper move without a reload.
  const progress = page.getByTestId('round-progress');
  const stepper = page.getByTestId('phase-stepper');
  const firstProgress = await numberAttr(progress, 'aria-valuenow');
  const firstStep = await numberAttr(stepper, 'data-step');
  expect(firstProgress).toBeLessThan(100);
  await expect
    .poll(() => numberAttr(progress, 'aria-valuenow'), { timeout: 180_000, intervals: [500] })
    .toBeGreaterThan(firstProgress);
  await expect
    .poll(() => numberAttr(stepper, 'data-step'), { timeout: 180_000, intervals: [500] })
    .toBeGreaterThan(firstStep);

  // Loss points appear in the chart as the policy iterations report them.
  const lossChart = page.getByTestId('chart-policy-loss');
  await expect
    .poll(() => numberAttr(lossChart, 'data-points'), { timeout: 180_000, intervals: [500] })
    .toBeGreaterThan(0);

  // Done: status, full progress, all phases, metrics, and the loss curve of every iteration.
  await expect(live).toHaveAttribute('data-status', 'SUCCEEDED', { timeout: 240_000 });
  await expect(progress).toHaveAttribute('aria-valuenow', '100');
  await expect(stepper).toHaveAttribute('data-step', '5');
  await expect(lossChart).toHaveAttribute('data-points', SMALL.iterations);
  await expect(lossChart.locator('circle.point')).toHaveCount(Number(SMALL.iterations));
  const metrics = page.getByTestId('round-metrics');
  for (const key of ['rmValidationAccuracy', 'kl', 'winRateVsParent', 'lengthDrift']) {
    await expect(metrics.locator(`[data-metric="${key}"] dd:not(.hint)`)).toHaveText(/\d/);
  }
  await expect(metrics).toContainText('RM accuracy');
  await expect(metrics).toContainText('KL to SFT');
  await expect(metrics).toContainText('Win rate vs parent');
  // The guards' held-out checks (before the first iteration and after the last), with the KL limit.
  const guard = page.getByTestId('chart-guard');
  await expect(guard).toHaveAttribute('data-points', /^[1-9]/);
  await expect(guard).toContainText('KL limit');

  // The history lists it with its metrics, and the charts across rounds have its point.
  const row = page.getByTestId('rounds-table').locator(`tr[data-round="${number}"]`);
  await expect(row).toContainText('Succeeded');
  await expect(row).toContainText('RLOO');
  await expect(page.getByTestId('across-win-rate')).toHaveAttribute('data-points', /^[1-9]/);
  await expect(page.getByTestId('launch-disabled')).toHaveCount(0);

  // The new version appears under its parent, not current yet; promote it.
  const versions = page.getByTestId('policy-versions');
  const version = versions.locator(`li[data-version="round-${number}"]`);
  await expect(version).toBeVisible();
  await expect(version).toHaveAttribute('data-current', 'false');
  // The page with a finished round, its charts and metrics: no sideways scroll, nothing axe-core
  // finds serious.
  expect(await sidewaysScroll(page)).toBe(0);
  await checkA11y(page, 'Rounds with a finished round');
  // The "ready to promote" notice leads to the new version's Promote button.
  await page.getByTestId('go-to-promote').click();
  await expect(version.getByRole('button', { name: 'Promote' }).first()).toBeFocused();
  // Its parent is the version it was trained from (the demo's SFT policy).
  await expect(versions.locator(`li:has(> ul > li[data-version="round-${number}"])`)).toHaveCount(1);
  await version.getByRole('button', { name: 'Promote' }).first().click();
  const dialog = page.getByRole('dialog');
  await expect(dialog).toContainText(`Promote round-${number}?`);
  await dialog.getByRole('button', { name: 'Promote' }).click();
  await expect(version).toHaveAttribute('data-current', 'true');
  await expect(version.getByTestId('current-badge').first()).toBeVisible();
  await expect(
    page.getByRole('status').filter({ hasText: `round-${number} is now the current version` }),
  ).toBeVisible();

  const stored = await seed.prisma.project.findUniqueOrThrow({ where: { id: projectId } });
  const promoted = await seed.prisma.policyVersion.findUniqueOrThrow({
    where: { id: stored.currentPolicyVersionId! },
  });
  expect(promoted.name).toBe(`round-${number}`);

  // A long round, cancelled from the UI while it trains: it stops, and nothing it made remains.
  await form.getByRole('spinbutton', { name: 'Iterations', exact: true }).fill('2000');
  await form.getByLabel('Generate comparisons for raters').uncheck();
  await form.getByRole('button', { name: 'Launch round' }).click();
  await expect(live.getByRole('heading', { level: 2 })).toContainText(`Round ${number + 1}`);
  await expect(live).toHaveAttribute('data-status', 'RUNNING', { timeout: 120_000 });
  await expect
    .poll(() => numberAttr(lossChart, 'data-points'), { timeout: 180_000, intervals: [500] })
    .toBeGreaterThan(0);
  await live.getByRole('button', { name: 'Cancel round' }).click();
  const confirm = page.getByRole('dialog');
  await expect(confirm).toContainText(`Cancel round ${number + 1}?`);
  await confirm.getByRole('button', { name: 'Cancel round' }).click();
  await expect(live).toHaveAttribute('data-status', 'CANCELLED', { timeout: 120_000 });
  await expect(live.getByRole('button', { name: /Cancel round|Cancelling/ })).toHaveCount(0);
  await expect(page.getByTestId('rounds-table').locator(`tr[data-round="${number + 1}"]`)).toContainText(
    'Cancelled',
  );
  const cancelled = await seed.prisma.trainingRound.findFirstOrThrow({
    where: { projectId, number: number + 1 },
  });
  expect(cancelled.status).toBe('CANCELLED');
  expect(await seed.prisma.policyVersion.count({ where: { roundId: cancelled.id } })).toBe(0);
  expect(await seed.prisma.policyVersion.count({ where: { projectId, name: `round-${number + 1}` } })).toBe(
    0,
  );
  expect(await seed.prisma.rewardModel.count({ where: { roundId: cancelled.id } })).toBe(0);
  const after = await seed.prisma.project.findUniqueOrThrow({ where: { id: projectId } });
  expect(after.currentPolicyVersionId).toBe(promoted.id);
  expect(pageErrors).toEqual([]);
});
