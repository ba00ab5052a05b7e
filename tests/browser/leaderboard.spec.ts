// The leaderboard in the browser: a project with three policy versions that raters compared (and a
// fourth nobody did), reached from its Rounds page. The chart shows each rated version with an
// error bar, the table the same ratings, intervals and votes, the matrix the head-to-head win
// rates; counting simulated judgments changes the numbers; on a phone nothing scrolls sideways.
import { randomUUID } from 'node:crypto';
import type { Choice } from '../../core/db/client.js';
import type { Leaderboard } from '../../core/schemas/leaderboard.js';
import { checkA11y, expect, type Seed, sidewaysScroll, test, uiSignIn } from './fixtures.js';

/** How far the page scrolls sideways (0 when it does not). */
/** A project whose versions alpha > beta > gamma by human votes; simulated votes favour gamma. */
async function seedProject(seed: Seed) {
  const { prisma } = seed;
  const project = await prisma.project.create({ data: { name: `Leaderboard ${randomUUID().slice(0, 8)}` } });
  const versions = [];
  for (const name of ['alpha', 'beta', 'gamma', 'delta'])
    versions.push(
      await prisma.policyVersion.create({ data: { projectId: project.id, name, kind: 'EXTERNAL' } }),
    );
  await prisma.project.update({
    where: { id: project.id },
    data: { currentPolicyVersionId: versions[1]!.id },
  });
  const raters = [];
  for (let r = 0; r < 4; r++) raters.push(await seed.createUser('RATER'));
  const simulated = await prisma.user.create({
    data: {
      email: `sim-${randomUUID().slice(0, 8)}@example.com`,
      name: 'Sim',
      role: 'RATER',
      simulated: true,
    },
  });
  // Share of votes the first version of each pair wins.
  const pairs = [
    [0, 1, 0.7],
    [1, 2, 0.7],
    [0, 2, 0.85],
  ] as const;
  const preferences: {
    comparisonId: string;
    raterId: string;
    choice: Choice;
    source: 'HUMAN' | 'SIMULATED';
  }[] = [];
  for (let p = 0; p < 10; p++) {
    const prompt = await prisma.prompt.create({
      data: { projectId: project.id, messages: [{ role: 'user', content: `Question ${p}` }] },
    });
    const responses = [];
    for (const version of versions.slice(0, 3))
      responses.push(
        await prisma.response.create({
          data: { promptId: prompt.id, policyVersionId: version.id, text: `${version.name} answers ${p}` },
        }),
      );
    for (const [a, b, share] of pairs) {
      const comparison = await prisma.comparison.create({
        data: {
          projectId: project.id,
          promptId: prompt.id,
          responseAId: responses[a]!.id,
          responseBId: responses[b]!.id,
          requiredVotes: 4,
        },
      });
      raters.forEach((rater, r) => {
        // Deterministic: the first `share` of the 40 votes of a pair go to A, one in ten is a tie.
        const k = p * 4 + r;
        const choice: Choice = k % 10 === 9 ? 'TIE' : k < share * 40 ? 'A' : 'B';
        preferences.push({ comparisonId: comparison.id, raterId: rater.id, choice, source: 'HUMAN' });
      });
      if (b === 2)
        preferences.push({
          comparisonId: comparison.id,
          raterId: simulated.id,
          choice: 'B',
          source: 'SIMULATED',
        });
    }
  }
  await prisma.preference.createMany({ data: preferences });
  return project;
}

test('a researcher opens the leaderboard: chart with error bars, table, head-to-head, simulated toggle', async ({
  page,
  seed,
}) => {
  const pageErrors: Error[] = [];
  page.on('pageerror', (error) => pageErrors.push(error));
  const project = await seedProject(seed);
  const researcher = await seed.createUser('RESEARCHER');
  await uiSignIn(page, researcher);

  // From the project's Rounds page, where its versions live.
  await page.goto(`/admin/rounds/${project.id}`);
  await page.getByTestId('leaderboard-link').click();
  await expect(page).toHaveURL(new RegExp(`/admin/leaderboard/${project.id}$`));
  await expect(page.getByRole('heading', { name: project.name, level: 1 })).toBeVisible();

  // The numbers the page shows, as the API gives them to this session.
  const answer = await page.request.get(`/api/projects/${project.id}/leaderboard`);
  expect(answer.status()).toBe(200);
  const board = (await answer.json()) as Leaderboard;
  expect(board.judgments).toBe(120);

  // The chart: three rated versions, best first, each with an error bar around its marker.
  const chart = page.getByTestId('strength-chart');
  await expect(chart.locator('svg')).toBeVisible();
  await expect(chart.getByTestId('strength-row')).toHaveCount(3);
  await expect(chart.getByTestId('error-bar')).toHaveCount(3);
  const names = await chart
    .getByTestId('strength-row')
    .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-version')));
  expect(names).toEqual(['alpha', 'beta', 'gamma']);
  for (const bar of await chart.getByTestId('error-bar').all()) {
    const low = Number(await bar.getAttribute('data-low'));
    const high = Number(await bar.getAttribute('data-high'));
    expect(high).toBeGreaterThan(low);
    const box = await bar.boundingBox();
    expect(box!.width).toBeGreaterThan(4);
  }

  // The table: the same numbers; delta has no votes and no rating.
  const table = page.getByTestId('leaderboard-table');
  const rows = table.locator('tbody tr');
  await expect(rows).toHaveCount(4);
  const alpha = board.versions.find((v) => v.name === 'alpha')!;
  const alphaRow = table.locator('tr[data-version="alpha"]');
  await expect(alphaRow.getByRole('rowheader')).toContainText('alpha');
  await expect(alphaRow).toContainText(String(Math.round(alpha.rating!)));
  await expect(alphaRow).toContainText(`${Math.round(alpha.ratingLow!)} to ${Math.round(alpha.ratingHigh!)}`);
  await expect(alphaRow).toContainText(String(alpha.votes));
  await expect(table.locator('tr[data-version="beta"]')).toContainText('Current');
  await expect(table.locator('tr[data-version="delta"]')).toContainText('—');
  await expect(page.getByTestId('unrated')).toContainText('delta');

  // Head to head: alpha against beta, the first coloured cell (its own cell comes before it).
  const matrix = page.getByTestId('win-rate-matrix');
  await expect(matrix.getByTestId('win-rate-cell')).toHaveCount(6);
  const alphaBeta = board.matrix[0]![1]!;
  const first = matrix.getByTestId('win-rate-cell').first();
  await expect(first).toContainText(`${Math.round(alphaBeta.winRate! * 100)}%`);
  await expect(first).toContainText(`(${alphaBeta.total})`);
  expect(alphaBeta.winRate).toBeGreaterThan(0.5);

  // Simulated votes for gamma are left out until asked for.
  await expect(page.getByTestId('leaderboard-summary')).toContainText('120 human judgments');
  await expect(page.getByTestId('leaderboard-summary')).toContainText('20 simulated');
  await page.getByTestId('include-simulated').check();
  await expect(page.getByTestId('leaderboard-summary')).toContainText('140 human and simulated judgments');
  const gammaAfter = page.getByTestId('leaderboard-table').locator('tr[data-version="gamma"]');
  await expect(gammaAfter).toContainText(String(board.versions.find((v) => v.name === 'gamma')!.votes + 20));
  await checkA11y(page, 'the leaderboard');

  // A phone: the chart fits the width and nothing scrolls sideways.
  await page.setViewportSize({ width: 375, height: 800 });
  await expect(chart.getByTestId('error-bar')).toHaveCount(3);
  await expect.poll(() => sidewaysScroll(page)).toBe(0);
  const svgBox = await chart.locator('svg').boundingBox();
  expect(svgBox!.width).toBeLessThanOrEqual(375);
  expect(svgBox!.width).toBeGreaterThan(250);
  expect(pageErrors).toEqual([]);
});

test('raters have no leaderboard', async ({ page, seed }) => {
  const project = await seedProject(seed);
  const rater = await seed.createUser('RATER');
  await uiSignIn(page, rater);
  await page.goto(`/admin/leaderboard/${project.id}`);
  await expect(page.getByTestId('strength-chart')).toHaveCount(0);
  await expect(page.getByRole('heading', { name: 'You do not have access' })).toBeVisible();
});
