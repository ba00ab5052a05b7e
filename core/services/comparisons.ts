// Comparisons: pairs of responses to the same prompt, made by a strategy (all pairs, random pairs,
// or across two sources or policy versions), or rankings of K of them; listing, priorities and
// gold answers.
import type { Choice, Prisma, PrismaClient } from '../db/client.js';
import { badRequest, notFound } from '../errors.js';
import type { GenerateComparisonsBody } from '../schemas/projects.js';
import { recordAudit } from './audit.js';
import type { Actor } from './users.js';

/** Gold comparisons measure every rater, so they never run out of votes. */
export const GOLD_REQUIRED_VOTES = 1_000_000;

/** mulberry32: a small seeded generator, so "random pairs" can be reproduced. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A shuffled copy (Fisher-Yates) in the order a seeded random source gives. */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

interface ResponseRow {
  id: string;
  promptId: string;
  text: string;
  source: string | null;
  policyVersion: { name: string } | null;
}

/**
 * Whether two responses may be compared: a rater cannot prefer one of two equal texts, and the
 * pair would train as chosen == rejected. Every strategy, and the trainer's pairings, ask this.
 */
export function comparable(a: string, b: string): boolean {
  return a !== b;
}

function pairsFor(
  responses: ResponseRow[],
  body: GenerateComparisonsBody,
  random: () => number,
): { pairs: [string, string][]; identical: number } {
  const candidates: [ResponseRow, ResponseRow][] = [];
  if (body.strategy === 'cross-source') {
    const matches = (response: ResponseRow, name: string) =>
      response.source === name || response.policyVersion?.name === name;
    for (const a of responses.filter((response) => matches(response, body.sourceA!))) {
      for (const b of responses.filter((response) => matches(response, body.sourceB!)))
        candidates.push([a, b]);
    }
  } else {
    for (let i = 0; i < responses.length; i++) {
      for (let j = i + 1; j < responses.length; j++) candidates.push([responses[i]!, responses[j]!]);
    }
  }
  // Pairs of equal texts are left out before random pairs are drawn, so those stay distinct too.
  let pairs = candidates
    .filter(([a, b]) => comparable(a.text, b.text))
    .map(([a, b]): [string, string] => [a.id, b.id]);
  const identical = candidates.length - pairs.length;
  if (body.strategy === 'random-pairs') pairs = shuffled(pairs, random).slice(0, body.maxPerPrompt ?? 1);
  return { pairs, identical };
}

/**
 * Up to `count` rankings of `k` responses of distinct text (the first of equal texts kept), drawn
 * at random, none of the same responses as one the prompt has (`existingSets`, updated).
 */
function rankingsFor(
  responses: ResponseRow[],
  k: number,
  count: number,
  random: () => number,
  existingSets: Set<string>,
): { sets: string[][]; identical: number; existing: number; tooFew: boolean } {
  const distinct = [...new Map(responses.map((response) => [response.text, response.id])).values()];
  const identical = responses.length - distinct.length;
  if (distinct.length < k) return { sets: [], identical, existing: 0, tooFew: true };
  const sets: string[][] = [];
  let existing = 0;
  for (let attempt = 0; sets.length < count && attempt < count * 20; attempt++) {
    const members = shuffled(distinct, random).slice(0, k);
    const key = [...members].sort().join(',');
    if (existingSets.has(key)) {
      existing++;
      if (distinct.length === k) break;
      continue;
    }
    existingSets.add(key);
    sets.push(members);
  }
  return { sets, identical, existing, tooFew: false };
}

function preview(messages: unknown): string {
  const list = Array.isArray(messages) ? (messages as { content?: unknown }[]) : [];
  const last = [...list].reverse().find((message) => typeof message?.content === 'string');
  return String(last?.content ?? '').slice(0, 160);
}

const summaryInclude = {
  prompt: { select: { messages: true } },
  responseA: { select: { source: true, policyVersion: { select: { name: true } } } },
  responseB: { select: { source: true, policyVersion: { select: { name: true } } } },
} as const;

type ComparisonWithParts = Prisma.ComparisonGetPayload<{ include: typeof summaryInclude }>;

export function toComparisonSummary(comparison: ComparisonWithParts) {
  return {
    id: comparison.id,
    promptId: comparison.promptId,
    promptPreview: preview(comparison.prompt.messages),
    sourceA: comparison.responseA.policyVersion?.name ?? comparison.responseA.source,
    sourceB: comparison.responseB.policyVersion?.name ?? comparison.responseB.source,
    rankSize: comparison.responseIds.length,
    priority: comparison.priority,
    requiredVotes: comparison.requiredVotes,
    voteCount: comparison.voteCount,
    isGold: comparison.isGold,
    goldChoice: comparison.goldChoice,
    createdAt: comparison.createdAt.toISOString(),
  };
}

/** Making comparisons, listing them and setting their priority or gold answer. */
export class ComparisonService {
  constructor(private readonly prisma: PrismaClient) {}

  async generate(
    project: { id: string; overlap: number },
    body: GenerateComparisonsBody,
    actor: Actor,
    options: { roundId?: string } = {},
  ) {
    if (body.strategy === 'cross-source' && (!body.sourceA || !body.sourceB)) {
      throw badRequest('cross-source needs sourceA and sourceB (source names or policy version names).');
    }
    if (body.strategy === 'cross-source' && body.sourceA === body.sourceB)
      throw badRequest('sourceA and sourceB must differ.');
    const responses = await this.prisma.response.findMany({
      where: { prompt: { projectId: project.id } },
      select: {
        id: true,
        promptId: true,
        text: true,
        source: true,
        policyVersion: { select: { name: true } },
      },
      orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
    });
    const byPrompt = new Map<string, ResponseRow[]>();
    for (const response of responses)
      byPrompt.set(response.promptId, [...(byPrompt.get(response.promptId) ?? []), response]);

    if (body.strategy === 'ranking' && body.rankSize === undefined)
      throw badRequest('ranking needs rankSize: how many responses a rater puts in order (3 to 9).');
    const existing = await this.prisma.comparison.findMany({
      where: { projectId: project.id },
      select: { responseAId: true, responseBId: true, responseIds: true },
    });
    // Pairs already asked (a ranking's first two responses are not a pair of their own).
    const seen = new Set(
      existing
        .filter((c) => c.responseIds.length === 0)
        .flatMap((c) => [`${c.responseAId}:${c.responseBId}`, `${c.responseBId}:${c.responseAId}`]),
    );
    const random = seededRandom(body.seed ?? Date.now());
    const data: Prisma.ComparisonCreateManyInput[] = [];
    let skippedExisting = 0;
    let skippedIdentical = 0;
    let skippedTooFew = 0;
    const existingSets = new Set(
      existing.filter((c) => c.responseIds.length > 0).map((c) => [...c.responseIds].sort().join(',')),
    );
    for (const [promptId, rows] of body.strategy === 'ranking' ? byPrompt : []) {
      const ranked = rankingsFor(rows, body.rankSize!, body.maxPerPrompt ?? 1, random, existingSets);
      skippedIdentical += ranked.identical;
      skippedExisting += ranked.existing;
      if (ranked.tooFew) skippedTooFew++;
      for (const ids of ranked.sets)
        data.push({
          projectId: project.id,
          promptId,
          responseAId: ids[0]!,
          responseBId: ids[1]!,
          responseIds: ids,
          requiredVotes: project.overlap,
          priority: body.priority ?? 0,
          roundId: options.roundId ?? null,
        });
    }
    for (const [promptId, rows] of body.strategy === 'ranking' ? [] : byPrompt) {
      const { pairs, identical } = pairsFor(rows, body, random);
      skippedIdentical += identical;
      for (const [a, b] of pairs) {
        if (seen.has(`${a}:${b}`)) {
          skippedExisting++;
          continue;
        }
        seen.add(`${a}:${b}`).add(`${b}:${a}`);
        data.push({
          projectId: project.id,
          promptId,
          responseAId: a,
          responseBId: b,
          requiredVotes: project.overlap,
          priority: body.priority ?? 0,
          roundId: options.roundId ?? null,
        });
      }
    }
    await this.prisma.$transaction(async (tx) => {
      for (let i = 0; i < data.length; i += 5000)
        await tx.comparison.createMany({ data: data.slice(i, i + 5000) });
      await recordAudit(tx, {
        actorId: actor.id,
        action: 'comparisons.generate',
        targetType: 'project',
        targetId: project.id,
        details: { ...body, created: data.length, skippedIdentical, skippedTooFew },
        ip: actor.ip ?? null,
      });
    });
    return {
      created: data.length,
      skippedExisting,
      skippedIdentical,
      ...(body.strategy === 'ranking' ? { skippedTooFew } : {}),
    };
  }

  async list(
    projectId: string,
    query: { cursor?: string; limit?: number; status?: 'open' | 'complete' | 'gold' },
  ) {
    const limit = query.limit ?? 50;
    const where: Prisma.ComparisonWhereInput = { projectId };
    if (query.status === 'gold') where.isGold = true;
    if (query.status === 'open')
      Object.assign(where, { isGold: false, voteCount: { lt: this.prisma.comparison.fields.requiredVotes } });
    if (query.status === 'complete')
      Object.assign(where, {
        isGold: false,
        voteCount: { gte: this.prisma.comparison.fields.requiredVotes },
      });
    const rows = await this.prisma.comparison.findMany({
      where,
      include: summaryInclude,
      orderBy: { id: 'asc' },
      take: limit + 1,
      ...(query.cursor ? { cursor: { id: query.cursor }, skip: 1 } : {}),
    });
    const items = rows.slice(0, limit).map(toComparisonSummary);
    return { items, nextCursor: rows.length > limit ? (items.at(-1)?.id ?? null) : null };
  }

  async update(id: string, patch: { priority?: number; goldChoice?: Choice | null }, actor: Actor) {
    const comparison = await this.prisma.comparison.findUnique({ where: { id }, include: { project: true } });
    if (!comparison) throw notFound('No such comparison.');
    if (patch.goldChoice && comparison.responseIds.length > 0)
      throw badRequest('Gold answers are for pairs: a ranking item has no single known answer.');
    const gold = patch.goldChoice === undefined ? undefined : patch.goldChoice !== null;
    const requiredVotes = gold
      ? GOLD_REQUIRED_VOTES
      : Math.max(comparison.project.overlap, comparison.voteCount);
    const updated = await this.prisma.comparison.update({
      where: { id },
      data: {
        ...(patch.priority !== undefined ? { priority: patch.priority } : {}),
        ...(gold !== undefined
          ? {
              isGold: gold,
              goldChoice: patch.goldChoice ?? null,
              requiredVotes,
            }
          : {}),
      },
      include: summaryInclude,
    });
    await recordAudit(this.prisma, {
      actorId: actor.id,
      action: 'comparison.update',
      targetType: 'comparison',
      targetId: id,
      details: { ...patch },
      ip: actor.ip ?? null,
    });
    return toComparisonSummary(updated);
  }
}
