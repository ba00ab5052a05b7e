// The uncertainty queue order: a project's open comparisons that are not gold get their priority
// from the current reward model, least certain first (core/ranking/uncertainty.ts), so raters
// judge next what the next reward model learns most from. Run after each round's reward model is
// trained (trainer/jobs/training-round.ts) and when an admin switches the order on (the
// `queue-order` job, with the newest reward model). The rating queue itself is unchanged: it
// serves `priority DESC, id` as always, with its gold rate and overlap.
import type { Prisma, PrismaClient } from '../core/db/client.js';
import { PROMOTION_PRIORITY, rankingUncertaintyPriority } from '../core/ranking/uncertainty.js';
import { queueOrderOf } from '../core/services/project-settings.js';
import { loadArtifact } from './checkpoint.js';
import { promptText } from './jobs/policy-store.js';
import type { RewardScorer } from './preferences.js';
import { decodeRewardScorer } from './reward-model.js';

/** Comparisons read, scored and written at a time (one UPDATE each). */
export const REFRESH_PAGE = 1000;

export interface QueueRefresh {
  /** Open comparisons, not gold, whose priority the reward model set. */
  scored: number;
  /** Of those and the promotion comparisons, how many changed priority. */
  reordered: number;
  /** The newest round's comparisons of its version against the parent, put first. */
  promotion: number;
  /** Stopped early: the order was switched off or a newer reward model took over. */
  superseded: boolean;
}

/** The newest reward model the built-in trainer can score with: of the newest succeeded round that has one. */
export async function newestRewardModel(prisma: PrismaClient | Prisma.TransactionClient, projectId: string) {
  return prisma.rewardModel.findFirst({
    where: { projectId, artifactId: { not: null }, round: { status: 'SUCCEEDED' } },
    orderBy: [{ round: { number: 'desc' } }, { createdAt: 'desc' }],
    select: { id: true, artifactId: true, roundId: true, round: { select: { number: true } } },
  });
}

/**
 * Writes the priorities of the project's open, non-gold comparisons from `scorer`: each
 * `uncertaintyPriority(r_A, r_B)` (0..999; a ranking item's, its least certain pair's), except
 * the comparisons of round `promotionRoundId` (a new version against its parent: their votes
 * decide its promotion), which get PROMOTION_PRIORITY. Pages of REFRESH_PAGE in id order, each one UPDATE over `unnest` (rows
 * locked in id order, as the rating path locks them); before each write `stillCurrent` may stop
 * the refresh (the order switched off, a newer reward model). Gold comparisons and full ones keep
 * their priority.
 */
export async function refreshQueueOrder(
  prisma: PrismaClient,
  projectId: string,
  scorer: RewardScorer,
  options: { promotionRoundId?: string | null; stillCurrent?: () => Promise<boolean> } = {},
): Promise<QueueRefresh> {
  const result: QueueRefresh = { scored: 0, reordered: 0, promotion: 0, superseded: false };
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    // A ranking item's K responses in stored order; a pair's A and B.
    const page = await prisma.$queryRaw<
      { id: string; roundId: string | null; messages: unknown; texts: string[] }[]
    >`
      SELECT c.id, c."roundId", p.messages,
        CASE WHEN cardinality(c."responseIds") > 0 THEN (
          SELECT array_agg(r.text ORDER BY u.n)
          FROM unnest(c."responseIds") WITH ORDINALITY u(id, n) JOIN "Response" r ON r.id = u.id
        ) ELSE ARRAY[ra.text, rb.text] END AS texts
      FROM "Comparison" c
        JOIN "Prompt" p ON p.id = c."promptId"
        JOIN "Response" ra ON ra.id = c."responseAId"
        JOIN "Response" rb ON rb.id = c."responseBId"
      WHERE c."projectId" = ${projectId}::uuid AND c.open AND NOT c."isGold" AND c.id > ${after}::uuid
      ORDER BY c.id
      LIMIT ${REFRESH_PAGE}`;
    if (page.length === 0) break;
    after = page.at(-1)!.id;
    const promotion = (row: { roundId: string | null }) =>
      options.promotionRoundId != null && row.roundId === options.promotionRoundId;
    const toScore = page.filter((row) => !promotion(row));
    const items = toScore.flatMap((row) => {
      const prompt = promptText(row.messages);
      return row.texts.map((response) => ({ prompt, response }));
    });
    const rewards = items.length ? scorer.score(items) : [];
    const scores = new Map<string, number>();
    let at = 0;
    for (const row of toScore) {
      scores.set(row.id, rankingUncertaintyPriority(rewards.slice(at, at + row.texts.length)));
      at += row.texts.length;
    }
    const ids = page.map((row) => row.id);
    const priorities = page.map((row) => scores.get(row.id) ?? PROMOTION_PRIORITY);
    if (options.stillCurrent && !(await options.stillCurrent())) {
      result.superseded = true;
      break;
    }
    result.reordered += await prisma.$executeRaw`
      UPDATE "Comparison" c SET priority = u.priority
      FROM unnest(${ids}::uuid[], ${priorities}::int[]) AS u(id, priority)
      WHERE c.id = u.id AND c.open AND NOT c."isGold" AND c.priority <> u.priority`;
    result.scored += toScore.length;
    result.promotion += page.length - toScore.length;
  }
  return result;
}

/** The round event's message for a refresh. */
export function refreshMessage(refresh: QueueRefresh, when: string): string {
  const first = refresh.promotion
    ? `; the ${refresh.promotion} comparisons of the new version against its parent first`
    : '';
  return (
    `Queue re-ordered by the reward model's uncertainty ${when}: ${refresh.reordered} of ` +
    `${refresh.scored + refresh.promotion} open comparisons changed priority${first}` +
    (refresh.superseded ? ' (stopped: the order was switched off or a newer reward model took over)' : '')
  );
}

/**
 * The `queue-order` job: the order was switched on. With the newest reward model, if a round has
 * trained one the built-in trainer can read (nothing to do otherwise: the next round re-orders);
 * the refresh is recorded among that round's events.
 */
export async function runQueueOrder(
  prisma: PrismaClient,
  projectId: string,
  log: (message: string) => void = () => {},
): Promise<QueueRefresh | null> {
  const project = await prisma.project.findUnique({ where: { id: projectId } });
  if (!project || queueOrderOf(project) !== 'uncertainty') return null;
  const model = await newestRewardModel(prisma, projectId);
  if (!model?.artifactId || !model.roundId) {
    log(`queue order: project ${project.name} has no reward model yet; the next round re-orders its queue`);
    return null;
  }
  const started = performance.now();
  const scorer = decodeRewardScorer(await loadArtifact(prisma, model.artifactId));
  try {
    const refresh = await refreshQueueOrder(prisma, projectId, scorer, {
      promotionRoundId: model.roundId,
      stillCurrent: async () => {
        const fresh = await prisma.project.findUnique({
          where: { id: projectId },
          select: { schedule: true },
        });
        if (!fresh || queueOrderOf(fresh) !== 'uncertainty') return false;
        return (await newestRewardModel(prisma, projectId))?.id === model.id;
      },
    });
    const message = refreshMessage(refresh, `(switched on; round ${model.round!.number}'s reward model)`);
    await prisma.roundEvent.create({
      data: {
        roundId: model.roundId,
        phase: 'queue',
        data: {
          ...refresh,
          trigger: 'switched-on',
          rewardModelId: model.id,
          seconds: (performance.now() - started) / 1000,
        },
        message,
      },
    });
    log(`queue order: ${project.name}: ${message}`);
    return refresh;
  } finally {
    (scorer as { dispose?: () => void }).dispose?.();
  }
}
