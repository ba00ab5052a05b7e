// Researchers' Data page: a researcher opens Data, picks the demo project, sees the live count of
// what the filters select, downloads a TRL export (checking the file's lines and that the progress
// bar completed), freezes a snapshot and downloads it (sha256 checked), then imports a small gzipped
// TRL file with one bad line, skipping it, and reads the report with that line's number.
import { createHash, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import type { Download } from '@playwright/test';
import { expect, test, uiSignIn } from './fixtures.js';

async function downloaded(download: Download): Promise<Buffer> {
  const path = await download.path();
  return readFile(path);
}

function userText(messages: unknown): string {
  const list = messages as { role: string; content: string }[];
  return [...list].reverse().find((m) => m.role === 'user')?.content ?? '';
}

test('a researcher exports, snapshots and imports preference data from the Data page', async ({
  page,
  seed,
}) => {
  test.setTimeout(3 * 60_000);
  const pageErrors: Error[] = [];
  page.on('pageerror', (error) => pageErrors.push(error));
  const tag = randomUUID().slice(0, 8);

  // The demo project and two of its prompts; judgments on new, closed comparisons of them (raters
  // are not asked to judge these), one tie among them, which pairwise formats leave out.
  let demo = await seed.prisma.project.findFirst({ where: { isDemo: true } });
  await expect
    .poll(
      async () => {
        demo = await seed.prisma.project.findFirst({ where: { isDemo: true } });
        return demo ? seed.prisma.prompt.count({ where: { projectId: demo.id } }) : 0;
      },
      { timeout: 60_000 },
    )
    .toBeGreaterThanOrEqual(2);
  const projectId = demo!.id;
  const prompts = await seed.prisma.prompt.findMany({
    where: { projectId },
    orderBy: { createdAt: 'asc' },
    take: 2,
  });
  const raters = [await seed.createUser('RATER'), await seed.createUser('RATER')];
  const pair = async (promptId: string, votes: number) => {
    const [a, b] = await Promise.all(
      ['A', 'B'].map((side) =>
        seed.prisma.response.create({ data: { promptId, source: `e2e-${tag}`, text: `e2e ${side} ${tag}` } }),
      ),
    );
    return seed.prisma.comparison.create({
      data: {
        projectId,
        promptId,
        responseAId: a!.id,
        responseBId: b!.id,
        requiredVotes: votes,
        voteCount: votes,
      },
    });
  };
  const decided = await pair(prompts[0]!.id, 2);
  const tied = await pair(prompts[1]!.id, 1);
  await seed.prisma.preference.createMany({
    data: [
      { comparisonId: decided.id, raterId: raters[0]!.id, choice: 'A', strength: 0 },
      { comparisonId: decided.id, raterId: raters[1]!.id, choice: 'B', strength: 1 },
      { comparisonId: tied.id, raterId: raters[0]!.id, choice: 'TIE' },
    ],
  });
  const judgments = await seed.prisma.preference.count({ where: { comparison: { projectId } } });
  const pairwise = await seed.prisma.preference.count({
    where: { comparison: { projectId }, choice: { in: ['A', 'B'] } },
  });

  // Data → the demo project.
  const researcher = await seed.createUser('RESEARCHER');
  await uiSignIn(page, researcher);
  await page.locator('[data-nav="data"]').click();
  await expect(page.getByRole('heading', { name: 'Data', level: 1 })).toBeVisible();
  await page
    .getByTestId('data-projects')
    .getByRole('link', { name: new RegExp(demo!.name) })
    .click();
  await expect(page).toHaveURL(new RegExp(`/data/${projectId}$`));
  await expect(page.getByRole('heading', { name: demo!.name, level: 1 })).toBeVisible();

  // The live count follows the filters.
  const count = page.getByTestId('count-judgments');
  await expect(count).toHaveText(judgments.toLocaleString('en-US'));
  const exportPanel = page.getByTestId('export-panel');
  await exportPanel.getByLabel('Exclude simulated raters').check();
  await exportPanel.getByLabel('Min agreement (%)').fill('100');
  // The decided comparison splits 1:1, so agreement 100% leaves it out.
  await expect
    .poll(async () => Number((await count.innerText()).replace(/\D/g, '')))
    .toBeLessThanOrEqual(judgments - 2);
  await exportPanel.getByLabel('Min agreement (%)').fill('');
  await exportPanel.getByLabel('Exclude simulated raters').uncheck();
  await expect(count).toHaveText(judgments.toLocaleString('en-US'));

  // Download a TRL export: the file has one line per A/B judgment, and the bar completes.
  await expect(exportPanel.getByLabel('Format')).toHaveValue('trl');
  const downloadEvent = page.waitForEvent('download');
  await exportPanel.getByRole('button', { name: 'Download' }).click();
  const exportFile = await downloadEvent;
  expect(exportFile.suggestedFilename()).toMatch(/-trl-raw\.jsonl$/);
  const lines = (await downloaded(exportFile)).toString('utf8').split('\n').filter(Boolean);
  expect(lines).toHaveLength(pairwise);
  const rows = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  for (const row of rows) {
    expect(Object.keys(row).sort()).toEqual(['chosen', 'prompt', 'rejected']);
    expect(typeof row.prompt).toBe('string');
  }
  // The prompt as an HH transcript, each completion after a space: prompt + chosen reads right.
  const transcript = (text: string) => `\n\nHuman: ${text}\n\nAssistant:`;
  const prompt = transcript(userText(prompts[0]!.messages));
  expect(rows).toContainEqual({ prompt, chosen: ` e2e A ${tag}`, rejected: ` e2e B ${tag}` });
  expect(rows).toContainEqual({ prompt, chosen: ` e2e B ${tag}`, rejected: ` e2e A ${tag}` });
  expect(
    rows.filter(
      (row) => row.prompt === transcript(userText(prompts[1]!.messages)) && row.chosen === ` e2e A ${tag}`,
    ),
  ).toEqual([]);
  const progress = page.getByTestId('export-progress');
  await expect(progress).toHaveAttribute('data-status', 'done');
  await expect(page.getByTestId('export-progress-bar')).toHaveAttribute('aria-valuenow', '100');
  await expect(progress).toContainText(`${pairwise.toLocaleString('en-US')} rows`);
  await expect(progress).toContainText(`${judgments.toLocaleString('en-US')} judgments`);

  // A snapshot of the same settings, listed with its rows, and downloaded byte for byte.
  const name = `e2e-snapshot-${tag}`;
  const snapshots = page.getByTestId('snapshots-panel');
  await snapshots.getByLabel('New snapshot from the export settings above').fill(name);
  await snapshots.getByRole('button', { name: 'Create snapshot' }).click();
  await expect(snapshots.getByRole('status').filter({ hasText: `Snapshot ${name} created` })).toBeVisible();
  const row = snapshots.locator(`tr[data-snapshot="${name}"]`);
  await expect(row).toBeVisible();
  await expect(row).toContainText('TRL');
  await expect(row.locator('td').nth(1)).toHaveText(pairwise.toLocaleString('en-US'));
  await expect(row.locator('td').nth(2)).toHaveText(judgments.toLocaleString('en-US'));
  const stored = await seed.prisma.datasetSnapshot.findFirstOrThrow({ where: { projectId, name } });
  await expect(row.locator('code')).toHaveText(stored.contentHash.slice(0, 12));
  const snapshotEvent = page.waitForEvent('download');
  await row.getByRole('button', { name: `Download ${name}` }).click();
  const snapshotFile = await snapshotEvent;
  expect(snapshotFile.suggestedFilename()).toBe(`${name}.jsonl`);
  const bytes = await downloaded(snapshotFile);
  expect(createHash('sha256').update(bytes).digest('hex')).toBe(stored.contentHash);
  await expect(page.getByTestId('snapshot-progress')).toHaveAttribute('data-status', 'done');
  await expect(page.getByTestId('snapshot-progress-bar')).toHaveAttribute('aria-valuenow', '100');
  await expect(page.getByTestId('snapshot-progress')).toContainText('sha256 verified');

  // Import a TRL file whose second line is not JSON, skipping it.
  const source = `e2e-import-${tag}`;
  const file = [
    JSON.stringify({ prompt: `import ${tag} one`, chosen: 'good one', rejected: 'bad one' }),
    '{"prompt": "broken',
    JSON.stringify({ prompt: `import ${tag} two`, chosen: 'good two', rejected: 'bad two' }),
  ].join('\n');
  const importer = page.getByTestId('preference-import');
  // Gzipped, as public preference datasets ship: the browser unpacks it.
  await importer.getByLabel('Preference file').setInputFiles({
    name: 'preferences.jsonl.gz',
    mimeType: 'application/gzip',
    buffer: gzipSync(Buffer.from(file)),
  });
  await expect(importer.getByText(/preferences\.jsonl\.gz: .* unpacked/)).toBeVisible();
  await expect(importer.getByLabel('Format')).toHaveValue('trl');
  await importer.getByLabel('Source name').fill(source);
  await importer.getByLabel('Skip them and import the rest').check();
  await importer.getByRole('button', { name: 'Import', exact: true }).click();
  const report = page.getByTestId('import-report');
  await expect(report).toHaveAttribute('data-dry-run', 'false');
  await expect(report.locator('[data-count="lines"]')).toHaveText('3');
  await expect(report.locator('[data-count="imported"]')).toHaveText('2');
  await expect(report.locator('[data-count="skipped"]')).toHaveText('1');
  await expect(page.getByTestId('import-kinds')).toContainText('Unparsable');
  const badLine = page.getByTestId('import-errors').locator('tbody tr');
  await expect(badLine).toHaveCount(1);
  await expect(badLine).toHaveAttribute('data-line', '2');
  await expect(badLine.locator('td').first()).toHaveText('2');
  expect(await seed.prisma.preference.count({ where: { importSource: source, source: 'IMPORTED' } })).toBe(2);
  // The count includes the imported judgments now.
  await expect(count).toHaveText((judgments + 2).toLocaleString('en-US'));

  expect(pageErrors).toEqual([]);
});

test('the Data page fits a narrow screen and is not offered to raters', async ({ page, seed }) => {
  const researcher = await seed.createUser('RESEARCHER');
  await page.setViewportSize({ width: 380, height: 800 });
  await uiSignIn(page, researcher);
  const demo = await seed.prisma.project.findFirstOrThrow({ where: { isDemo: true } });
  await page.goto(`/data/${demo.id}`);
  await expect(page.getByTestId('export-count')).toContainText('selected');
  const overflow = await page.locator('html').evaluate((html) => html.scrollWidth - html.clientWidth);
  expect(overflow).toBeLessThanOrEqual(0);

  // CSV is spreadsheet-safe unless the box is unticked, and then the request says so explicitly.
  const exportPanel = page.getByTestId('export-panel');
  await exportPanel.getByLabel('Format').selectOption('csv');
  const safe = exportPanel.getByLabel(/Safe for spreadsheets/);
  await expect(safe).toBeChecked();
  const asked = async () => {
    const request = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/export'));
    const download = page.waitForEvent('download');
    await exportPanel.getByRole('button', { name: 'Download' }).click();
    const body = (await request).postDataJSON() as { options?: { spreadsheetSafe?: boolean } };
    await download;
    return body.options?.spreadsheetSafe;
  };
  expect(await asked()).toBe(true);
  await safe.uncheck();
  expect(await asked()).toBe(false);

  const rater = await seed.createUser('RATER');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await uiSignIn(page, rater);
  await expect(page.locator('[data-nav="data"]')).toHaveCount(0);
  await page.goto(`/data/${demo.id}`);
  await expect(page.getByText('You do not have access')).toBeVisible();
});
