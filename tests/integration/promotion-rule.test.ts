// Promotion by human judgment against real PostgreSQL: a version and its parent, comparisons
// between them (either side as A) with human and simulated votes. The human rule (the default)
// waits for minVotes, promotes only once the 95% interval's lower end clears the margin, counts
// simulated votes only when the project says so; the round scheduler's promotion step promotes by
// it and audits the rule and the votes; the reward-model rule stays selectable (and is the only one
// a round applies when it publishes); bad settings 400.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Choice } from '../../core/db/client.js';
import { winRateFromVotes } from '../../core/ranking/win-rate.js';
import { defaultSchedule, type Schedule } from '../../core/schemas/projects.js';
import type { PromotionEvidence, VersionPromotion } from '../../core/schemas/promotion.js';
import { maybePromote } from '../../trainer/jobs/training-round.js';
import { createAndSignIn, createUser, createTestApp, type SignedIn, type TestApp } from '../support/app.js';
import { createProject } from '../support/rating.js';

let t: TestApp;
let admin: SignedIn;
let researcher: SignedIn;
let projectId: string;
let parentId: string;
let childId: string;
let humanRater: string;
let simulatedRater: string;
let prompts = 0;

beforeAll(async () => {
  t = await createTestApp();
  const setup = await createProject(t, {}, { prompts: 0, responses: 0 });
  admin = setup.admin;
  projectId = setup.projectId;
  researcher = await createAndSignIn(t, 'RESEARCHER');
  humanRater = (await createUser(t, 'RATER')).id;
  simulatedRater = (
    await t.prisma.user.create({
      data: { email: 'simulated-promotion@example.com', name: 'Simulated', role: 'RATER', simulated: true },
    })
  ).id;
  const parent = await t.prisma.policyVersion.create({
    data: { projectId, name: 'sft', kind: 'BUILTIN', status: 'READY', promotedAt: new Date() },
  });
  parentId = parent.id;
  // The round's reward model judged it about even with its parent: 0.52, short of 0.5 + 0.05.
  const child = await t.prisma.policyVersion.create({
    data: {
      projectId,
      name: 'round-1',
      kind: 'BUILTIN',
      status: 'READY',
      parentId,
      metrics: { winRateVsParent: 0.52 },
    },
  });
  childId = child.id;
  await t.prisma.project.update({ where: { id: projectId }, data: { currentPolicyVersionId: parentId } });
}, 60_000);
afterAll(() => t.close());

/**
 * One comparison per vote between `version` and its parent (the new version as A on every other
 * one); `outcomes` from the new version's side.
 */
async function vote(
  version: { id: string; parentId: string },
  outcomes: ('win' | 'loss' | 'tie' | 'both-bad')[],
  source: 'HUMAN' | 'SIMULATED',
): Promise<void> {
  for (const outcome of outcomes) {
    const prompt = await t.prisma.prompt.create({
      data: { projectId, messages: [{ role: 'user', content: `Question ${++prompts}` }] },
    });
    const mine = await t.prisma.response.create({
      data: { promptId: prompt.id, policyVersionId: version.id, text: `new answer ${prompts}` },
    });
    const theirs = await t.prisma.response.create({
      data: { promptId: prompt.id, policyVersionId: version.parentId, text: `old answer ${prompts}` },
    });
    const newIsA = prompts % 2 === 0;
    const comparison = await t.prisma.comparison.create({
      data: {
        projectId,
        promptId: prompt.id,
        responseAId: newIsA ? mine.id : theirs.id,
        responseBId: newIsA ? theirs.id : mine.id,
        requiredVotes: 1,
        voteCount: 1,
      },
    });
    const choice: Choice =
      outcome === 'tie'
        ? 'TIE'
        : outcome === 'both-bad'
          ? 'BOTH_BAD'
          : (outcome === 'win') === newIsA
            ? 'A'
            : 'B';
    await t.prisma.preference.create({
      data: {
        comparisonId: comparison.id,
        raterId: source === 'HUMAN' ? humanRater : simulatedRater,
        source,
        choice,
      },
    });
  }
}

const times = <const T>(n: number, value: T): T[] => Array.from({ length: n }, () => value);

async function evidence(headers = researcher.headers): Promise<PromotionEvidence> {
  const response = await t.app.inject({
    method: 'GET',
    url: `/api/projects/${projectId}/promotion`,
    headers,
  });
  expect(response.statusCode, response.body).toBe(200);
  return response.json<PromotionEvidence>();
}

async function of(versionId: string): Promise<VersionPromotion> {
  return (await evidence()).versions.find((v) => v.versionId === versionId)!;
}

async function setSchedule(changes: Partial<Schedule>) {
  return t.app.inject({
    method: 'PATCH',
    url: `/api/projects/${projectId}`,
    headers: admin.headers,
    payload: { schedule: { ...defaultSchedule(), autoPromote: true, ...changes } },
  });
}

async function current(): Promise<string | null> {
  return (await t.prisma.project.findUniqueOrThrow({ where: { id: projectId } })).currentPolicyVersionId;
}

describe('promotion by human judgment', () => {
  it('shows both rules side by side, the human rule active by default', async () => {
    const saved = await setSchedule({});
    expect(saved.statusCode, saved.body).toBe(200);
    expect(saved.json<{ schedule: Schedule }>().schedule).toMatchObject({
      promotionRule: 'human',
      promotionMargin: 0.5,
      minVotes: 20,
      countSimulated: false,
    });
    const body = await evidence();
    expect(body.settings).toEqual({
      rule: 'human',
      autoPromote: true,
      margin: 0.5,
      minVotes: 20,
      countSimulated: false,
      rewardModelMargin: 0.05,
    });
    expect(body.interval).toMatch(/Wilson/);
    // Only versions with a parent.
    expect(body.versions.map((v) => v.versionId)).toEqual([childId]);
    const child = body.versions[0]!;
    expect(child.human).toMatchObject({ votes: 0, winRate: null, low: 0, high: 1, decision: 'not-yet' });
    expect(child.rewardModel).toMatchObject({ winRate: 0.52, decision: 'below-margin' });
    expect(child.rewardModel.threshold).toBeCloseTo(0.55, 12);
    expect(child.decision).toBe('not-yet');
  });

  it('waits for the minimum number of votes, even when every one is a win', async () => {
    await vote({ id: childId, parentId }, times(10, 'win'), 'HUMAN');
    const child = await of(childId);
    expect(child.human).toMatchObject({ votes: 10, wins: 10, winRate: 1, decision: 'not-yet' });
    expect(child.human.reason).toBe('10 of the 20 votes needed.');
    expect(await t.app.services.rounds.autoPromote()).toEqual([]);
    expect(await current()).toBe(parentId);
  });

  it('does not promote while the interval reaches down to the margin', async () => {
    // 14 of 20 (0.70): Wilson's interval on 20 votes starts at 0.48.
    await vote({ id: childId, parentId }, [...times(4, 'win'), ...times(6, 'loss')], 'HUMAN');
    const child = await of(childId);
    expect(child.human).toMatchObject({ votes: 20, wins: 14, losses: 6, winRate: 0.7, decision: 'not-yet' });
    const pure = winRateFromVotes([
      ...times(14, { wins: 1, losses: 0, ties: 0, bothBad: 0 }),
      ...times(6, { wins: 0, losses: 1, ties: 0, bothBad: 0 }),
    ]);
    expect(child.human.low).toBeCloseTo(pure.low, 12);
    expect(child.human.high).toBeCloseTo(pure.high, 12);
    expect(child.human.low).toBeLessThan(0.5);
    expect(await t.app.services.rounds.autoPromote()).toEqual([]);
    expect(await current()).toBe(parentId);
  });

  it('leaves simulated votes out unless the project counts them', async () => {
    await vote({ id: childId, parentId }, [...times(28, 'win'), 'tie', 'both-bad'], 'SIMULATED');
    let child = await of(childId);
    expect(child.human).toMatchObject({ votes: 20, simulatedVotes: 30, decision: 'not-yet' });
    expect(await t.app.services.rounds.autoPromote()).toEqual([]);

    // Counted, with a margin the interval does not clear: still not yet.
    expect((await setSchedule({ countSimulated: true, promotionMargin: 0.9 })).statusCode).toBe(200);
    child = await of(childId);
    expect(child.human).toMatchObject({ votes: 50, wins: 42, losses: 6, ties: 1, bothBad: 1 });
    expect(child.human.winRate).toBeCloseTo(43 / 50, 12);
    expect(child.human.low).toBeGreaterThan(0.5);
    expect(child.human.low).toBeLessThan(0.9);
    expect(child.decision).toBe('not-yet');
    expect(await t.app.services.rounds.autoPromote()).toEqual([]);
    expect(await current()).toBe(parentId);
  });

  it('the round scheduler promotes once the interval clears the margin, and audits the rule and votes', async () => {
    // minVotes above the votes there are: not yet.
    expect((await setSchedule({ countSimulated: true, minVotes: 51 })).statusCode).toBe(200);
    expect((await of(childId)).decision).toBe('not-yet');
    expect(await t.app.services.rounds.autoPromote()).toEqual([]);
    // Without auto-promotion the rule says promote, and nothing happens by itself.
    expect((await setSchedule({ countSimulated: true, autoPromote: false })).statusCode).toBe(200);
    expect((await of(childId)).decision).toBe('promote');
    expect(await t.app.services.rounds.autoPromote()).toEqual([]);
    expect(await current()).toBe(parentId);

    expect((await setSchedule({ countSimulated: true })).statusCode).toBe(200);
    const child = await of(childId);
    expect(child.human.decision).toBe('promote');
    expect(child.human.reason).toMatch(/^Raters prefer it: 95% interval .* on 50 votes, above 50\.0%\.$/);
    const promoted = await t.app.services.rounds.autoPromote();
    expect(promoted).toEqual([{ versionId: childId, name: 'round-1', projectId, votes: 50 }]);
    expect(await current()).toBe(childId);
    const version = await t.prisma.policyVersion.findUniqueOrThrow({ where: { id: childId } });
    expect(version.promotedAt).not.toBeNull();
    const audit = await t.prisma.auditLog.findFirstOrThrow({
      where: { action: 'policy.promote', targetId: childId },
    });
    expect(audit.actorId).toBeNull();
    expect(audit.details).toMatchObject({
      projectId,
      previous: parentId,
      automatic: true,
      rule: 'human',
      decision: 'promote',
      votes: 50,
      margin: 0.5,
      minVotes: 20,
      countSimulated: true,
      rewardModelWinRate: 0.52,
    });
    // Nothing left to promote.
    expect(await t.app.services.rounds.autoPromote()).toEqual([]);
  });

  it('keeps the reward-model rule selectable', async () => {
    // A next version the reward model likes (0.60) and raters do not.
    const next = await t.prisma.policyVersion.create({
      data: {
        projectId,
        name: 'round-2',
        kind: 'BUILTIN',
        status: 'READY',
        parentId: childId,
        metrics: { winRateVsParent: 0.6 },
      },
    });
    await vote({ id: next.id, parentId: childId }, [...times(3, 'win'), ...times(27, 'loss')], 'HUMAN');
    let version = await of(next.id);
    expect(version.human).toMatchObject({ votes: 30, decision: 'worse' });
    expect(version.rewardModel.decision).toBe('promote');
    expect(version.decision).toBe('worse');

    expect((await setSchedule({ promotionRule: 'reward-model' })).statusCode).toBe(200);
    version = await of(next.id);
    expect(version.decision).toBe('promote');
    // The reward-model rule promotes when a round publishes; the scheduler's step is the human rule's.
    expect(await t.app.services.rounds.autoPromote()).toEqual([]);
    // An admin promotes by it; the audit entry names the rule and the votes there were.
    const response = await t.app.inject({
      method: 'POST',
      url: `/api/policy-versions/${next.id}/promote`,
      headers: admin.headers,
    });
    expect(response.statusCode, response.body).toBe(200);
    const audit = await t.prisma.auditLog.findFirstOrThrow({
      where: { action: 'policy.promote', targetId: next.id },
    });
    expect(audit.actorId).toBe(admin.userId);
    expect(audit.details).toMatchObject({
      automatic: false,
      rule: 'reward-model',
      decision: 'promote',
      votes: 30,
      rewardModelWinRate: 0.6,
    });
  });

  it('a round that publishes promotes by the reward-model rule only, and audits it', async () => {
    const parent = (await current())!;
    const publish = async (name: string, winRateVsParent: number) => {
      const version = await t.prisma.policyVersion.create({
        data: {
          projectId,
          name,
          kind: 'BUILTIN',
          status: 'READY',
          parentId: parent,
          metrics: { winRateVsParent },
        },
      });
      const project = await t.prisma.project.findUniqueOrThrow({ where: { id: projectId } });
      await t.prisma.$transaction((tx) => maybePromote(tx, project, parent, version.id, { winRateVsParent }));
      return version.id;
    };
    // The human rule waits for votes: nothing at publish, however much the reward model likes it.
    expect((await setSchedule({ promotionRule: 'human' })).statusCode).toBe(200);
    await publish('round-3', 0.9);
    expect(await current()).toBe(parent);
    // The reward-model rule: below 0.5 + margin, nothing; at or above it, promoted and audited.
    expect((await setSchedule({ promotionRule: 'reward-model', promoteMargin: 0.1 })).statusCode).toBe(200);
    await publish('round-4', 0.58);
    expect(await current()).toBe(parent);
    const promotedId = await publish('round-5', 0.62);
    expect(await current()).toBe(promotedId);
    const audit = await t.prisma.auditLog.findFirstOrThrow({
      where: { action: 'policy.promote', targetId: promotedId },
    });
    expect(audit.actorId).toBeNull();
    expect(audit.details).toMatchObject({
      previous: parent,
      automatic: true,
      rule: 'reward-model',
      rewardModelWinRate: 0.62,
    });
    // Without auto-promotion, nothing at all.
    expect((await setSchedule({ promotionRule: 'reward-model', autoPromote: false })).statusCode).toBe(200);
    await t.prisma.project.update({ where: { id: projectId }, data: { currentPolicyVersionId: parent } });
    await publish('round-6', 0.99);
    expect(await current()).toBe(parent);
  });

  it('refuses bad promotion settings and accepts a schedule written before them', async () => {
    for (const bad of [
      { promotionRule: 'majority' },
      { promotionMargin: 0.3 },
      { promotionMargin: 1 },
      { minVotes: 0 },
      { countSimulated: 'yes' },
    ]) {
      const response = await setSchedule(bad as Partial<Schedule>);
      expect(response.statusCode, JSON.stringify(bad)).toBe(400);
    }
    const older = await t.app.inject({
      method: 'PATCH',
      url: `/api/projects/${projectId}`,
      headers: admin.headers,
      payload: {
        schedule: {
          enabled: false,
          minNewPreferences: 50,
          minIntervalMinutes: 60,
          algorithm: 'RLOO',
          autoPromote: true,
          promoteMargin: 0.1,
        },
      },
    });
    expect(older.statusCode, older.body).toBe(200);
    expect((await evidence()).settings).toMatchObject({
      rule: 'human',
      minVotes: 20,
      rewardModelMargin: 0.1,
    });
  });

  it('answers researchers, not raters, and 404 for an unknown project', async () => {
    const rater = await createAndSignIn(t, 'RATER');
    const forbidden = await t.app.inject({
      method: 'GET',
      url: `/api/projects/${projectId}/promotion`,
      headers: rater.headers,
    });
    expect(forbidden.statusCode).toBe(403);
    const missing = await t.app.inject({
      method: 'GET',
      url: '/api/projects/00000000-0000-4000-8000-000000000000/promotion',
      headers: admin.headers,
    });
    expect(missing.statusCode).toBe(404);
  });
});
