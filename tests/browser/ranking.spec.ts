// K-wise ranking end to end: an admin imports two prompts with four responses each and makes one
// ranking item of K = 4 per prompt on the project page; a rater ranks the first on a desktop by keyboard only (a tie, a
// pick taken back with Backspace, U to take the submitted ranking back and submit it again) and the
// second on a phone by tapping (a tie, Undo pick, the last one ranked by Submit). The stored judgments
// hold the ranks pressed (aligned with the comparison's stored responses); the TRL export holds each
// ranking's strict pairs and CSV all six (the tie too), flagged with the ranking they come from; the
// ranking export has one row per ranking; axe finds nothing serious at either size.
import type { APIRequestContext, Page } from '@playwright/test';
import { parse } from 'csv-parse/sync';
import { checkA11y, expect, sidewaysScroll, test, type Seed, type SeededUser, uiSignIn } from './fixtures.js';

const K = 4;

/** 2 prompts × 4 responses of distinct text (plain words: the screen shows them as written). */
function importFile(): string {
  return [0, 1]
    .map((i) =>
      JSON.stringify({
        id: `rank-q${i}`,
        prompt: `Ranking question ${i}: name a colour.`,
        responses: ['Red', 'Green', 'Blue', 'Yellow'].map((colour, j) => ({
          text: `Answer ${j} to ranking question ${i}: ${colour}${' indeed'.repeat(j)}`,
          source: `model-${j}`,
        })),
      }),
    )
    .join('\n');
}

async function apiSignIn(request: APIRequestContext, user: SeededUser): Promise<Record<string, string>> {
  const response = await request.post('/api/auth/login', {
    data: { email: user.email, password: user.password },
  });
  expect(response.status(), await response.text()).toBe(200);
  const { csrfToken } = (await response.json()) as { csrfToken: string };
  return { 'x-csrf-token': csrfToken };
}

/** The ranking on screen: its lease and the texts of its responses, numbered 1..K as shown. */
async function shownRanking(page: Page): Promise<{ id: string; texts: string[] }> {
  const stage = page.getByTestId('comparison');
  await expect(stage).toHaveAttribute('data-kind', 'ranking');
  await expect(page.getByTestId('ranked-card')).toHaveCount(K);
  const id = (await stage.getAttribute('data-assignment-id'))!;
  const texts: string[] = [];
  for (let n = 1; n <= K; n++)
    texts.push((await page.getByTestId(`ranked-response-${n}`).innerText()).trim());
  return { id, texts };
}

/** The card's button, found by the name a screen reader reads ("Response 3, ranked 2"). */
function card(page: Page, n: number, state: string) {
  return page.getByRole('button', { name: `Response ${n}, ${state}`, exact: true });
}

/** The stored judgment of a lease: its ranks and the texts of the comparison's responses in stored order. */
async function stored(seed: Seed, assignmentId: string) {
  const preference = await seed.prisma.preference.findFirstOrThrow({
    where: { assignmentId },
    include: { comparison: true },
  });
  const responses = await seed.prisma.response.findMany({
    where: { id: { in: preference.comparison.responseIds } },
  });
  const textOf = new Map(responses.map((response) => [response.id, response.text]));
  return {
    preference,
    texts: preference.comparison.responseIds.map((id) => textOf.get(id)!),
  };
}

/** The ranks of the stored responses, from the ranks given to the responses as shown. */
function storedRanks(shown: { texts: string[] }, shownRanks: number[], storedTexts: string[]): number[] {
  return storedTexts.map((text) => shownRanks[shown.texts.indexOf(text)]!);
}

function jsonLines<T>(text: string): T[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as T);
}

/** The strict pairs a ranking makes, as [better, worse] texts, sorted. */
function strictPairs(texts: string[], ranks: number[]): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i < texts.length; i++)
    for (let j = 0; j < texts.length; j++) if (ranks[i]! < ranks[j]!) pairs.push([texts[i]!, texts[j]!]);
  return pairs.sort();
}

test('a rater ranks 4 responses by keyboard on a desktop and by touch on a phone; ranks, pairs and exports', async ({
  browser,
  baseURL,
  playwright,
  seed,
}) => {
  test.setTimeout(180_000);
  const admin = await seed.createUser('ADMIN', 'Rhea Admin');
  const rater = await seed.createUser('RATER', 'Kit Ranker');

  // The admin sets up the project, its prompts and its rater through the API.
  const api = await playwright.request.newContext({ baseURL });
  const headers = await apiSignIn(api, admin);
  const created = await api.post('/api/projects', {
    headers,
    data: { name: 'Rank the colours', description: 'Best to worst', guidelines: '', overlap: 1, goldRate: 0 },
  });
  expect(created.status(), await created.text()).toBe(201);
  const project = (await created.json()) as { id: string; labelSchema: { allowTie: boolean } };
  expect(project.labelSchema.allowTie).toBe(true);
  const imported = await api.post(`/api/projects/${project.id}/prompts/import`, {
    headers,
    data: { format: 'jsonl', content: importFile() },
  });
  expect(imported.status(), await imported.text()).toBe(200);
  const added = await api.post(`/api/projects/${project.id}/members`, {
    headers,
    data: { userIds: [rater.id] },
  });
  expect(added.status(), await added.text()).toBe(200);

  // The admin makes the ranking items on the project page: one ranking of 4 per prompt.
  const adminContext = await browser.newContext({ baseURL, viewport: { width: 1280, height: 900 } });
  const adminPage = await adminContext.newPage();
  await uiSignIn(adminPage, admin);
  await adminPage.goto(`/admin/projects/${project.id}`);
  await adminPage.getByRole('tab', { name: 'Comparisons' }).click();
  await adminPage.getByRole('radio', { name: 'Rank K responses' }).check();
  await adminPage.getByLabel('Responses per ranking (K)').fill(String(K));
  await adminPage.getByLabel('Rankings per prompt (at most)').fill('1');
  await adminPage
    .locator('section', { has: adminPage.getByRole('heading', { name: 'Generate comparisons' }) })
    .getByRole('button', { name: 'Generate' })
    .click();
  await expect(adminPage.getByText(`Created 2 rankings of ${K} responses.`)).toBeVisible();
  await adminContext.close();
  const items = await seed.prisma.comparison.findMany({ where: { projectId: project.id } });
  expect(items.map((item) => item.responseIds.length)).toEqual([K, K]);

  // Desktop, keyboard only.
  const desktop = await browser.newContext({ baseURL, viewport: { width: 1280, height: 900 } });
  const page = await desktop.newPage();
  const pageErrors: Error[] = [];
  page.on('pageerror', (error) => pageErrors.push(error));
  const bodies: Record<string, unknown>[] = [];
  page.on('request', (request) => {
    if (request.method() === 'POST' && request.url().endsWith('/submit'))
      bodies.push(request.postDataJSON() as Record<string, unknown>);
  });
  await uiSignIn(page, rater);
  await page.goto(`/rate/${project.id}`);
  const first = await shownRanking(page);
  await expect(page.getByTestId('ranking-keys-hint')).toBeVisible();
  await expect(page.getByTestId('prompt')).toContainText('Ranking question');
  for (let n = 1; n <= K; n++) await expect(card(page, n, 'not ranked yet')).toBeVisible();

  const announced = page.getByTestId('ranking-announcement');
  await page.keyboard.press('2');
  await expect(card(page, 2, 'ranked 1')).toBeVisible();
  await expect(announced).toHaveText('Response 2 ranked 1st. 3 left.');
  // = ties the next pick with the previous one.
  await page.keyboard.press('=');
  await expect(page.getByRole('button', { name: 'Tie with previous' })).toHaveAttribute(
    'aria-pressed',
    'true',
  );
  await page.keyboard.press('4');
  await expect(card(page, 4, 'ranked 1, tied')).toBeVisible();
  await expect(card(page, 2, 'ranked 1, tied')).toBeVisible();
  await expect(announced).toHaveText('Response 4 ranked 1st, tied with response 2. 2 left.');
  await page.keyboard.press('1');
  await expect(card(page, 1, 'ranked 3')).toBeVisible();
  // Backspace takes the last pick back.
  await page.keyboard.press('Backspace');
  await expect(card(page, 1, 'not ranked yet')).toBeVisible();
  await expect(announced).toHaveText('Response 1 is no longer ranked. 2 left.');
  await page.keyboard.press('3');
  await page.keyboard.press('1');
  await expect(card(page, 3, 'ranked 3')).toBeVisible();
  await expect(card(page, 1, 'ranked 4')).toBeVisible();
  await expect(page.getByTestId('ranking-order')).toContainText('2 = 4 › 3 › 1');
  await checkA11y(page, 'a ranking on a desktop');
  await page.keyboard.press('Enter');

  // The next item shows at once; the ranking is stored in the background.
  const second = await shownRanking(page);
  expect(second.id).not.toBe(first.id);
  await expect.poll(() => seed.prisma.preference.count({ where: { assignmentId: first.id } })).toBe(1);
  expect(bodies[0]).toMatchObject({ ranking: [4, 1, 3, 1] });
  expect(bodies[0]).not.toHaveProperty('choice');

  // U takes the stored ranking back and shows it again, as it was.
  await page.keyboard.press('u');
  await expect(page.getByTestId('comparison')).toHaveAttribute('data-assignment-id', first.id);
  await expect.poll(() => seed.prisma.preference.count({ where: { assignmentId: first.id } })).toBe(0);
  await expect(card(page, 2, 'ranked 1, tied')).toBeVisible();
  await expect(card(page, 4, 'ranked 1, tied')).toBeVisible();
  await expect(card(page, 3, 'ranked 3')).toBeVisible();
  await expect(card(page, 1, 'ranked 4')).toBeVisible();
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('comparison')).toHaveAttribute('data-assignment-id', second.id);
  await expect.poll(() => seed.prisma.preference.count({ where: { assignmentId: first.id } })).toBe(1);

  const firstShownRanks = [4, 1, 3, 1];
  const firstStored = await stored(seed, first.id);
  expect(firstStored.texts.slice().sort()).toEqual(first.texts.slice().sort());
  expect(firstStored.preference.ranks).toEqual(storedRanks(first, firstShownRanks, firstStored.texts));
  expect(firstStored.preference.raterId).toBe(rater.id);
  expect(pageErrors).toEqual([]);
  await desktop.close();

  // A phone: tap the cards, the bar's Tie with previous and Undo pick; Submit ranks the last one.
  const phone = await browser.newContext({
    baseURL,
    viewport: { width: 390, height: 844 },
    isMobile: true,
    hasTouch: true,
    deviceScaleFactor: 3,
  });
  const mobile = await phone.newPage();
  mobile.on('pageerror', (error) => pageErrors.push(error));
  await uiSignIn(mobile, rater);
  await mobile.goto(`/rate/${project.id}`);
  const onPhone = await shownRanking(mobile);
  expect(onPhone.id).toBe(second.id);
  // No key hints on a touch screen; the bar's buttons are on screen and 44 px high.
  for (const kbd of await mobile.locator('kbd').all()) await expect(kbd).toBeHidden();
  await expect(mobile.getByTestId('ranking-keys-hint')).toBeHidden();
  const bar = mobile.locator('.ranking-bar');
  const checkBar = async (): Promise<void> => {
    const viewport = mobile.viewportSize()!;
    const buttons = bar.locator('button');
    expect(await buttons.count()).toBeGreaterThanOrEqual(5);
    for (const button of await buttons.all()) {
      const box = (await button.boundingBox())!;
      expect(box.height, await button.innerText()).toBeGreaterThanOrEqual(44);
      expect(box.y).toBeGreaterThanOrEqual(0);
      expect(box.y + box.height).toBeLessThanOrEqual(viewport.height);
    }
    for (let n = 1; n <= K; n++) {
      const box = (await mobile
        .getByTestId('ranked-card')
        .nth(n - 1)
        .boundingBox())!;
      expect(box.x + box.width).toBeLessThanOrEqual(viewport.width);
    }
    expect(await sidewaysScroll(mobile)).toBe(0);
  };
  await checkBar();

  await card(mobile, 3, 'not ranked yet').tap();
  await expect(card(mobile, 3, 'ranked 1')).toBeVisible();
  await bar.getByRole('button', { name: 'Tie with previous' }).tap();
  // A tap on the card's text ranks it too.
  await mobile.getByTestId('ranked-response-1').tap();
  await expect(card(mobile, 1, 'ranked 1, tied')).toBeVisible();
  await card(mobile, 4, 'not ranked yet').tap();
  await expect(card(mobile, 4, 'ranked 3')).toBeVisible();
  await bar.getByRole('button', { name: 'Undo pick' }).tap();
  await expect(card(mobile, 4, 'not ranked yet')).toBeVisible();
  await card(mobile, 2, 'not ranked yet').tap();
  await expect(card(mobile, 2, 'ranked 3')).toBeVisible();
  await checkBar();
  await checkA11y(mobile, 'a ranking on a phone');
  await bar.getByRole('button', { name: 'Submit' }).tap();
  await expect(mobile.getByTestId('rate-done')).toBeVisible();
  await expect.poll(() => seed.prisma.preference.count({ where: { assignmentId: second.id } })).toBe(1);
  await checkA11y(mobile, 'the rating screen on a phone, all done');

  const secondShownRanks = [1, 3, 1, 4];
  const secondStored = await stored(seed, second.id);
  expect(secondStored.preference.ranks).toEqual(storedRanks(onPhone, secondShownRanks, secondStored.texts));
  expect(pageErrors).toEqual([]);
  await phone.close();

  // A pairwise export (TRL) holds each ranking's strict pairs (5 of its 6: one is a tie), each row
  // naming the ranking it comes from.
  const rankings = [
    { shown: first, ranks: firstShownRanks, comparisonId: firstStored.preference.comparisonId },
    { shown: onPhone, ranks: secondShownRanks, comparisonId: secondStored.preference.comparisonId },
  ];
  const trl = await api.post(`/api/projects/${project.id}/export`, { headers, data: { format: 'trl' } });
  expect(trl.status(), await trl.text()).toBe(200);
  const trlRows = jsonLines<{ prompt: string; chosen: string; rejected: string; from_ranking?: string }>(
    await trl.text(),
  );
  expect(trlRows).toHaveLength(10);
  for (const { shown, ranks, comparisonId } of rankings) {
    const ofRanking = trlRows.filter((row) => row.from_ranking === comparisonId);
    expect(ofRanking.map((row): [string, string] => [row.chosen.trim(), row.rejected.trim()]).sort()).toEqual(
      strictPairs(shown.texts, ranks),
    );
  }

  // CSV keeps ties: all 6 pairs of each ranking, the tied one too, flagged the same way.
  const csv = await api.post(`/api/projects/${project.id}/export`, {
    headers,
    data: { format: 'csv', options: { spreadsheetSafe: false } },
  });
  expect(csv.status(), await csv.text()).toBe(200);
  const csvRows = parse(await csv.text(), { columns: true }) as Record<string, string>[];
  expect(csvRows).toHaveLength(12);
  for (const { shown, ranks, comparisonId } of rankings) {
    const ofRanking = csvRows.filter((row) => row.from_ranking === comparisonId);
    expect(ofRanking).toHaveLength(6);
    const rankOf = (text: string) => ranks[shown.texts.indexOf(text)]!;
    for (const row of ofRanking) {
      const [a, b] = [rankOf(row.response_a!), rankOf(row.response_b!)];
      expect(row.choice).toBe(a < b ? 'A' : a > b ? 'B' : 'TIE');
    }
    expect(ofRanking.filter((row) => row.choice === 'TIE')).toHaveLength(1);
  }

  // The ranking format: one row per ranking, its responses best first with their ranks.
  const ranking = await api.post(`/api/projects/${project.id}/export`, {
    headers,
    data: { format: 'ranking' },
  });
  expect(ranking.status(), await ranking.text()).toBe(200);
  const rankingRows = jsonLines<{ comparison_id: string; responses: { text: string; rank: number }[] }>(
    await ranking.text(),
  );
  expect(rankingRows).toHaveLength(2);
  for (const { shown, ranks, comparisonId } of rankings) {
    const row = rankingRows.find((candidate) => candidate.comparison_id === comparisonId)!;
    expect(row.responses.map((response) => response.rank)).toEqual([...ranks].sort((a, b) => a - b));
    for (const response of row.responses)
      expect(response.rank).toBe(ranks[shown.texts.indexOf(response.text)]);
  }

  await api.dispose();
});
