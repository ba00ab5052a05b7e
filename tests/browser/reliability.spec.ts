// Rater reliability on the Quality tab: a project where three careful raters and one who inverts
// every answer judged the same comparisons (some gold). The chart shows each rater's reliability
// with its interval, the inverting rater lowest and flagged; the admin excludes them with a reason
// (confirmed, audited), the row says so and the export count drops, then includes them again; the
// section is axe-clean and nothing scrolls sideways on a phone.
import { randomUUID } from 'node:crypto';
import type { Page } from '@playwright/test';
import type { Choice } from '../../core/db/client.js';
import type { ProjectReliability } from '../../core/schemas/quality.js';
import { checkA11y, expect, type Seed, sidewaysScroll, test, uiSignIn } from './fixtures.js';

async function seedProject(seed: Seed) {
  const { prisma } = seed;
  const project = await prisma.project.create({ data: { name: `Reliability ${randomUUID().slice(0, 8)}` } });
  const careful = [];
  for (let r = 0; r < 3; r++) careful.push(await seed.createUser('RATER', `Careful ${r + 1}`));
  const inverting = await seed.createUser('RATER', 'Inverting rater');
  const raters = [...careful, inverting];
  await prisma.projectMember.createMany({
    data: raters.map((rater) => ({ projectId: project.id, userId: rater.id })),
  });
  const preferences: { comparisonId: string; raterId: string; choice: Choice }[] = [];
  for (let p = 0; p < 16; p++) {
    const prompt = await prisma.prompt.create({
      data: { projectId: project.id, messages: [{ role: 'user', content: `Question ${p}` }] },
    });
    const a = await prisma.response.create({ data: { promptId: prompt.id, text: `first ${p}` } });
    const b = await prisma.response.create({ data: { promptId: prompt.id, text: `second ${p}` } });
    const truth: Choice = p % 3 === 0 ? 'B' : 'A';
    const comparison = await prisma.comparison.create({
      data: {
        projectId: project.id,
        promptId: prompt.id,
        responseAId: a.id,
        responseBId: b.id,
        requiredVotes: 4,
        isGold: p % 4 === 0,
        goldChoice: p % 4 === 0 ? truth : null,
      },
    });
    for (const rater of raters)
      preferences.push({
        comparisonId: comparison.id,
        raterId: rater.id,
        choice: rater === inverting ? (truth === 'A' ? 'B' : 'A') : truth,
      });
  }
  await prisma.preference.createMany({ data: preferences });
  return { project, inverting, judgments: preferences.length };
}

test('an admin sees each rater’s reliability, excludes the inverting rater and includes them again', async ({
  page,
  seed,
}) => {
  const pageErrors: Error[] = [];
  page.on('pageerror', (error) => pageErrors.push(error));
  const { project, inverting, judgments } = await seedProject(seed);
  const admin = await seed.createUser('ADMIN');
  await uiSignIn(page, admin);
  await page.goto(`/admin/projects/${project.id}`);
  await page.getByRole('tab', { name: 'Quality' }).click();

  const answer = await page.request.get(`/api/projects/${project.id}/reliability`);
  const body = (await answer.json()) as ProjectReliability;
  expect(body.raters[0]!.raterId).toBe(inverting.id);

  const chart = page.getByTestId('reliability-chart');
  await expect(chart.locator('svg')).toBeVisible();
  await expect(chart.getByTestId('reliability-row')).toHaveCount(4);
  const first = chart.getByTestId('reliability-row').first();
  await expect(first).toHaveAttribute('data-rater', inverting.email);
  await expect(first).toContainText('flagged');
  await expect(chart.locator('desc')).toContainText('Inverting rater');
  const list = page.getByTestId('reliability-raters');
  const row = list.locator('li', { hasText: 'Inverting rater' });
  await expect(row).toContainText('Below threshold');
  await checkA11y(page, 'the Quality tab');

  const count = async () =>
    (
      (await (
        await page.request.post(`/api/projects/${project.id}/export/count`, {
          data: { format: 'csv', filters: {} },
          headers: { 'x-csrf-token': await csrf(page) },
        })
      ).json()) as { judgments: number }
    ).judgments;
  expect(await count()).toBe(judgments);

  await row.getByRole('button', { name: 'Exclude' }).click();
  const dialog = page.getByRole('dialog', { name: 'Exclude this rater?' });
  await dialog.getByLabel('Reason (kept in the audit log)').fill('inverts every answer');
  await dialog.getByRole('button', { name: 'Exclude', exact: true }).click();
  await expect(dialog).toBeHidden();
  await expect(page.getByRole('status')).toContainText('left out of training and exports');
  await expect(row).toContainText('Excluded');
  expect(await count()).toBe(judgments - 16);
  const audit = await seed.prisma.auditLog.findFirst({
    where: { action: 'rater.exclude', targetId: inverting.id },
  });
  expect(audit?.details).toMatchObject({ projectId: project.id, reason: 'inverts every answer' });

  // A phone: the chart fits and nothing scrolls sideways.
  await page.setViewportSize({ width: 375, height: 800 });
  await expect(chart.getByTestId('reliability-row')).toHaveCount(4);
  await expect.poll(() => sidewaysScroll(page)).toBe(0);
  const svgBox = await chart.locator('svg').boundingBox();
  expect(svgBox!.width).toBeLessThanOrEqual(375);
  // The whole tab at a phone's width: a table wider than the screen scrolls in a frame the keyboard
  // can reach (axe: scrollable-region-focusable).
  await checkA11y(page, 'the Quality tab on a phone');

  await row.getByRole('button', { name: 'Include again' }).click();
  const again = page.getByRole('dialog', { name: 'Include this rater again?' });
  await again.getByRole('button', { name: 'Include', exact: true }).click();
  await expect(again).toBeHidden();
  await expect(row).not.toContainText('Excluded');
  expect(await count()).toBe(judgments);
  expect(await seed.prisma.raterExclusion.count({ where: { projectId: project.id } })).toBe(0);
  expect(pageErrors).toEqual([]);
});

/** The session's CSRF token, as the app reads it. */
async function csrf(page: Page): Promise<string> {
  const me = await page.request.get('/api/auth/me');
  return ((await me.json()) as { csrfToken: string }).csrfToken;
}
