// A project still being prepared (as the demo is until its first model has made the first
// comparisons): Rate and the project page show what is being done and how far, updating by
// themselves, instead of "All done", and offer the comparisons once they exist.
import { randomUUID } from 'node:crypto';
import { checkA11y, expect, test, uiSignIn } from './fixtures.js';
import type { Seed } from './fixtures.js';

async function preparingProject(seed: Seed, phase: string, progress: number) {
  return seed.prisma.project.create({
    data: {
      name: `Being prepared ${randomUUID().slice(0, 8)}`,
      description: 'Its first comparisons are on their way.',
      overlap: 1,
      preparingPhase: phase,
      preparingProgress: progress,
    },
  });
}

/** What the seed job's last transaction does: the first comparison, and nothing being prepared. */
async function finishPreparing(seed: Seed, projectId: string): Promise<void> {
  const prompt = await seed.prisma.prompt.create({
    data: { projectId, messages: [{ role: 'user', content: '7+5=' }] },
  });
  const [a, b] = await seed.prisma.response.createManyAndReturn({
    data: [
      { promptId: prompt.id, text: '12' },
      { promptId: prompt.id, text: 'The answer is 12.' },
    ],
  });
  await seed.prisma.comparison.create({
    data: { projectId, promptId: prompt.id, responseAId: a!.id, responseBId: b!.id, requiredVotes: 1 },
  });
  await seed.prisma.project.update({
    where: { id: projectId },
    data: { preparingPhase: null, preparingProgress: 1 },
  });
}

test('Rate shows the preparation live instead of "All done", then the comparisons', async ({
  page,
  seed,
}) => {
  const rater = await seed.createUser('RATER');
  const project = await preparingProject(seed, 'sampling', 0.4);
  await seed.prisma.projectMember.create({ data: { projectId: project.id, userId: rater.id } });

  await uiSignIn(page, rater);
  await page.goto('/rate');
  const card = page.getByTestId('rate-projects').getByRole('listitem').filter({ hasText: project.name });
  await expect(card.getByTestId('preparing-percent')).toHaveText('40%');
  await expect(card.getByRole('progressbar')).toHaveAttribute('value', '40');
  await expect(card.getByTestId('preparing-phase')).toContainText('Sampling its first responses');
  await expect(card.getByText('Preparing')).toBeVisible();
  await expect(card.getByText('All done')).toHaveCount(0);
  await expect(card.getByText(/comparisons? waiting for you/)).toHaveCount(0);
  await checkA11y(page, 'Rate while a project is being prepared');

  // Progress moves on without a reload.
  await seed.prisma.project.update({ where: { id: project.id }, data: { preparingProgress: 0.75 } });
  await expect(card.getByTestId('preparing-percent')).toHaveText('75%');

  // Done: the comparison is offered, still without a reload.
  await finishPreparing(seed, project.id);
  await expect(card.getByRole('link', { name: /Start rating/ })).toBeVisible();
  await expect(card.getByTestId('preparing')).toHaveCount(0);
  await expect(card.getByText('1 comparison waiting for you')).toBeVisible();
});

test('the project page shows the preparation live until it is over', async ({ page, seed }) => {
  const admin = await seed.createUser('ADMIN');
  const project = await preparingProject(seed, 'fine-tuning', 0.25);

  await uiSignIn(page, admin);
  await page.goto(`/admin/projects/${project.id}`);
  await expect(page.getByRole('heading', { level: 1 })).toContainText(project.name);
  await expect(page.getByTestId('preparing-percent')).toHaveText('25%');
  await expect(page.getByTestId('preparing')).toContainText('This project is being prepared');
  await expect(page.getByTestId('preparing-phase')).toContainText('Fine-tuning the first model');
  await checkA11y(page, 'a project page while the project is being prepared');

  await seed.prisma.project.update({ where: { id: project.id }, data: { preparingProgress: 0.5 } });
  await expect(page.getByTestId('preparing-percent')).toHaveText('50%');

  await finishPreparing(seed, project.id);
  await expect(page.getByTestId('preparing')).toHaveCount(0);
  const comparisons = page.getByTestId('project-counts').locator('div').filter({ hasText: 'Comparisons' });
  await expect(comparisons.locator('dd')).toHaveText('1');
});
