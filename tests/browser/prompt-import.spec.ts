// Importing prompts and responses from the project page: a gzipped JSONL file with a bad line is
// previewed with the line's number and reason and cannot be imported (nothing is stored); the
// corrected file is previewed, imported, and its prompts and responses are in the database.
import { randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { expect, test, uiSignIn } from './fixtures.js';

test('an admin previews a gzipped prompt file, sees its bad line, fixes it and imports', async ({
  page,
  seed,
}) => {
  const pageErrors: Error[] = [];
  page.on('pageerror', (error) => pageErrors.push(error));
  const tag = randomUUID().slice(0, 8);
  const project = await seed.prisma.project.create({
    data: { name: `Import ${tag}`, overlap: 1, labelSchema: { allowTie: true, strengths: [] } },
  });
  const line = (n: number) =>
    JSON.stringify({ id: `p${n}`, prompt: `question ${n} ${tag}`, responses: [`a${n}`, `b${n}`] });
  const upload = (lines: string[]) => ({
    name: 'prompts.jsonl.gz',
    mimeType: 'application/gzip',
    buffer: gzipSync(Buffer.from(lines.join('\n'))),
  });

  await uiSignIn(page, await seed.createUser('ADMIN'));
  await page.goto(`/admin/projects/${project.id}`);
  const panel = page.locator('section', {
    has: page.getByRole('heading', { name: 'Import prompts and responses' }),
  });
  await expect(panel).toBeVisible();

  // Line 2 has no prompt: the preview names it, and Import stays disabled.
  await panel.getByLabel('File').setInputFiles(upload([line(1), JSON.stringify({ id: 'p2' }), line(3)]));
  await expect(panel.getByText(/prompts\.jsonl\.gz: .* characters/)).toBeVisible();
  await panel.getByRole('button', { name: 'Preview' }).click();
  const errors = panel.getByTestId('import-errors').locator('tbody tr');
  await expect(errors).toHaveCount(1);
  await expect(errors.locator('td').first()).toHaveText('2');
  await expect(panel.getByRole('button', { name: 'Import', exact: true })).toBeDisabled();
  expect(await seed.prisma.prompt.count({ where: { projectId: project.id } })).toBe(0);

  // The corrected file: previewed, then imported.
  await panel.getByLabel('File').setInputFiles(upload([line(1), line(2), line(3)]));
  await panel.getByRole('button', { name: 'Preview' }).click();
  await expect(panel.getByTestId('import-preview')).toContainText('3');
  await expect(panel.getByTestId('import-errors')).toHaveCount(0);
  await panel.getByRole('button', { name: 'Import', exact: true }).click();
  await expect(panel.getByTestId('import-done')).toContainText('3 new prompts');
  expect(await seed.prisma.prompt.count({ where: { projectId: project.id } })).toBe(3);
  expect(await seed.prisma.response.count({ where: { prompt: { projectId: project.id } } })).toBe(6);
  expect(pageErrors).toEqual([]);
});
