// Promotion by human judgment on the Rounds page, at a phone's width: a version with human and
// simulated votes against its parent shows both rules side by side (raters' win rate with its 95%
// interval as a bar and the votes, the reward model's win rate and threshold), which rule is active,
// and a Promote button that says what it rests on. Counting simulated votes in the schedule's
// promotion settings turns the decision to "promote"; the admin promotes, the dialog says on what,
// and the audit entry records the rule and the votes. Switching to the reward-model rule moves the
// "active rule" mark. Nothing scrolls sideways at 375 px; axe-core finds nothing serious.
import { randomUUID } from 'node:crypto';
import type { Choice } from '../../core/db/client.js';
import { checkA11y, expect, sidewaysScroll, test, uiSignIn } from './fixtures.js';

test.use({ viewport: { width: 375, height: 740 } });

test('the Rounds page shows both promotion rules and promotes by the raters’ judgment', async ({
  page,
  seed,
}) => {
  test.setTimeout(180_000);
  const pageErrors: Error[] = [];
  page.on('pageerror', (error) => pageErrors.push(error));
  const { prisma } = seed;
  const admin = await seed.createUser('ADMIN');
  const human = await seed.createUser('RATER');
  const simulated = await prisma.user.create({
    data: { email: `sim-${randomUUID()}@example.com`, name: 'Simulated', role: 'RATER', simulated: true },
  });
  const project = await prisma.project.create({
    data: { name: `Promotion ${randomUUID().slice(0, 6)}`, overlap: 1 },
  });
  const sft = await prisma.policyVersion.create({
    data: { projectId: project.id, name: 'sft', kind: 'BUILTIN', status: 'READY', promotedAt: new Date() },
  });
  const child = await prisma.policyVersion.create({
    data: {
      projectId: project.id,
      name: 'round-1',
      kind: 'BUILTIN',
      status: 'READY',
      parentId: sft.id,
      metrics: { winRateVsParent: 0.51 },
    },
  });
  await prisma.project.update({ where: { id: project.id }, data: { currentPolicyVersionId: sft.id } });
  // 10 human votes (9 for the new version) and 40 simulated ones (34 for it, 4 against, 2 ties).
  const votes: { raterId: string; source: 'HUMAN' | 'SIMULATED'; outcome: 'win' | 'loss' | 'tie' }[] = [
    ...Array.from({ length: 9 }, () => ({
      raterId: human.id,
      source: 'HUMAN' as const,
      outcome: 'win' as const,
    })),
    { raterId: human.id, source: 'HUMAN', outcome: 'loss' },
    ...Array.from({ length: 34 }, () => ({
      raterId: simulated.id,
      source: 'SIMULATED' as const,
      outcome: 'win' as const,
    })),
    ...Array.from({ length: 4 }, () => ({
      raterId: simulated.id,
      source: 'SIMULATED' as const,
      outcome: 'loss' as const,
    })),
    ...Array.from({ length: 2 }, () => ({
      raterId: simulated.id,
      source: 'SIMULATED' as const,
      outcome: 'tie' as const,
    })),
  ];
  for (const [i, vote] of votes.entries()) {
    const prompt = await prisma.prompt.create({
      data: { projectId: project.id, messages: [{ role: 'user', content: `Question ${i}` }] },
    });
    const mine = await prisma.response.create({
      data: { promptId: prompt.id, policyVersionId: child.id, text: `new ${i}` },
    });
    const theirs = await prisma.response.create({
      data: { promptId: prompt.id, policyVersionId: sft.id, text: `old ${i}` },
    });
    const newIsA = i % 2 === 0;
    const comparison = await prisma.comparison.create({
      data: {
        projectId: project.id,
        promptId: prompt.id,
        responseAId: newIsA ? mine.id : theirs.id,
        responseBId: newIsA ? theirs.id : mine.id,
        requiredVotes: 1,
        voteCount: 1,
      },
    });
    const choice: Choice = vote.outcome === 'tie' ? 'TIE' : (vote.outcome === 'win') === newIsA ? 'A' : 'B';
    await prisma.preference.create({
      data: { comparisonId: comparison.id, raterId: vote.raterId, source: vote.source, choice },
    });
  }

  await uiSignIn(page, admin);
  await page.goto(`/admin/rounds/${project.id}`);
  await expect(page.getByRole('heading', { name: project.name, level: 1 })).toBeVisible();

  // The raters' rule is active by default, on human votes only: 10 of the 20 needed.
  await expect(page.getByTestId('promotion-rule')).toContainText('raters');
  await expect(page.getByTestId('promotion-rule')).toContainText('human raters only');
  const version = page.locator('li[data-version="round-1"]');
  const humanRule = version.getByTestId('human-rule');
  const rmRule = version.getByTestId('reward-model-rule');
  await expect(humanRule).toContainText('active rule');
  await expect(rmRule).not.toContainText('active rule');
  await expect(humanRule.getByTestId('human-win-rate')).toHaveText('90.0%');
  await expect(humanRule.getByTestId('human-votes')).toHaveText('10 votes');
  await expect(humanRule).toContainText('not yet');
  await expect(humanRule).toContainText('10 of the 20 votes needed.');
  await expect(humanRule).toContainText('40 simulated left out');
  await expect(humanRule.locator('svg.bar rect.interval')).toHaveCount(1);
  await expect(rmRule.getByTestId('rm-win-rate')).toHaveText('51.0%');
  await expect(rmRule).toContainText('needs 55.0%');
  await expect(rmRule).toContainText('below margin');
  const promote = version.getByRole('button', { name: /^Promote/ });
  await expect(promote).toHaveText('Promote · raters 90.0% on 10 votes');
  await expect(promote).toHaveAttribute('data-decision', 'not-yet');
  expect(await sidewaysScroll(page)).toBe(0);
  await checkA11y(page, 'Rounds with promotion evidence at 375 px');

  // Count the simulated raters' votes: 50 votes, and the interval clears 50%.
  const schedule = page.getByTestId('schedule-editor');
  await schedule.getByLabel('Count simulated raters’ votes').check();
  await schedule.getByRole('button', { name: 'Save schedule' }).click();
  await expect(humanRule.getByTestId('human-votes')).toHaveText('50 votes');
  await expect(humanRule).toContainText('promote');
  await expect(humanRule.locator('svg.bar rect.interval')).toHaveClass(/decision-promote/);
  await expect(promote).toHaveText('Promote · raters 88.0% on 50 votes');
  await expect(page.getByTestId('promotion-rule')).toContainText('human and simulated raters');
  expect(await sidewaysScroll(page)).toBe(0);

  await promote.click();
  const dialog = page.getByRole('dialog');
  await expect(dialog).toContainText('Promote round-1?');
  await expect(dialog.getByTestId('promote-basis')).toContainText('By the active rule (raters): promote.');
  await expect(dialog.getByTestId('promote-basis')).toContainText('on 50 votes');
  await dialog.getByRole('button', { name: 'Promote', exact: true }).click();
  await expect(version).toHaveAttribute('data-current', 'true');
  const audit = await prisma.auditLog.findFirstOrThrow({
    where: { action: 'policy.promote', targetId: child.id },
  });
  expect(audit.actorId).toBe(admin.id);
  expect(audit.details).toMatchObject({ rule: 'human', decision: 'promote', votes: 50, automatic: false });

  // The reward-model rule, selected: the mark moves.
  await schedule.getByRole('radio', { name: /Reward model/ }).check();
  await schedule.getByRole('button', { name: 'Save schedule' }).click();
  await expect(rmRule).toContainText('active rule');
  await expect(humanRule).not.toContainText('active rule');
  await expect(page.getByTestId('promotion-rule')).toContainText('reward model');
  expect(await sidewaysScroll(page)).toBe(0);
  expect(pageErrors).toEqual([]);
});
