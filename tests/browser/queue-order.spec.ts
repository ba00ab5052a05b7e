// The rating queue's order on the Rounds page, at a phone's width: a round's re-ordering of the
// queue is in its log; the schedule shows the fixed order as the default; choosing "Least certain
// first" and saving stores it in the project's schedule and says that each round's reward model
// re-orders the queue; switching back stores the fixed order. Nothing scrolls sideways at 375 px;
// axe-core finds nothing serious.
import { randomUUID } from 'node:crypto';
import { checkA11y, expect, sidewaysScroll, test, uiSignIn } from './fixtures.js';

test.use({ viewport: { width: 375, height: 740 } });

test('an admin orders the rating queue by the reward model’s uncertainty', async ({ page, seed }) => {
  const pageErrors: Error[] = [];
  page.on('pageerror', (error) => pageErrors.push(error));
  const { prisma } = seed;
  const admin = await seed.createUser('ADMIN');
  const project = await prisma.project.create({
    data: { name: `Queue order ${randomUUID().slice(0, 6)}`, overlap: 1 },
  });
  // A round whose reward model re-ordered the queue: its log says so.
  const round = await prisma.trainingRound.create({
    data: {
      projectId: project.id,
      number: 1,
      algorithm: 'RLOO',
      status: 'SUCCEEDED',
      phase: 'done',
      progress: 1,
      startedAt: new Date(Date.now() - 60_000),
      finishedAt: new Date(),
    },
  });
  const logged =
    "Queue re-ordered by the reward model's uncertainty (round 1's reward model): 1480 of 1540 open comparisons changed priority";
  await prisma.roundEvent.create({
    data: { roundId: round.id, phase: 'queue', data: { scored: 1540, reordered: 1480 }, message: logged },
  });
  await uiSignIn(page, admin);
  await page.goto(`/admin/rounds/${project.id}`);
  await expect(page.getByRole('heading', { name: project.name, level: 1 })).toBeVisible();
  await expect(page.getByRole('log', { name: 'Round 1 log' })).toContainText(logged);

  const order = page.getByTestId('queue-order-settings');
  const fixed = order.getByRole('radio', { name: /^Fixed/ });
  const uncertain = order.getByRole('radio', { name: /^Least certain first/ });
  await expect(fixed).toBeChecked();
  await expect(order).toContainText('priorities set by hand are overwritten');
  await uncertain.check();
  const schedule = page.getByTestId('schedule-editor');
  await schedule.getByRole('button', { name: 'Save schedule' }).click();
  await expect(page.getByTestId('queue-order-state')).toContainText('re-orders the queue once trained');
  const stored = await prisma.project.findUniqueOrThrow({ where: { id: project.id } });
  expect(stored.schedule).toMatchObject({ queueOrder: 'uncertainty' });
  await expect(
    page.getByTestId('queue-order-settings').getByRole('radio', { name: /^Least certain/ }),
  ).toBeChecked();
  expect(await sidewaysScroll(page)).toBe(0);
  await checkA11y(page, 'Rounds with the queue order at 375 px');

  await page
    .getByTestId('queue-order-settings')
    .getByRole('radio', { name: /^Fixed/ })
    .check();
  await page.getByTestId('schedule-editor').getByRole('button', { name: 'Save schedule' }).click();
  await expect(page.getByTestId('queue-order-state')).toHaveCount(0);
  await expect
    .poll(async () => (await prisma.project.findUniqueOrThrow({ where: { id: project.id } })).schedule)
    .toMatchObject({ queueOrder: 'fixed' });
  expect(pageErrors).toEqual([]);
});
