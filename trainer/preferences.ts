// Human comparisons as the reward models consume them: choices turned into chosen/rejected pairs,
// Llama 2 margins from the strength, grouping by prompt, and held-out accuracy by strength.
import { rankingPairs } from '../core/ranking/rankings.js';
import { Rng } from './runtime.js';

export type Choice = 'A' | 'B' | 'TIE' | 'BOTH_BAD';

/** One rater's judgment of one comparison (the Preference row, flattened). */
export interface ComparisonExample {
  prompt: string;
  responseA: string;
  responseB: string;
  choice: Choice;
  /** Index into the project's strength scale, 0 = strongest; null = not given. */
  strength?: number | null;
  /** A rater's reliability (default 1) scales this judgment in the loss. */
  weight?: number;
  /** Groups comparisons of one prompt; defaults to the prompt text. */
  promptId?: string;
}

/**
 * A ranking of K responses as the reward model learns from it: one element of the loss, as
 * InstructGPT trained on rankings (a response seen in K−1 pairs would otherwise overfit): its
 * K(K−1)/2 pairs (tied ones as ties) share the ranking's weight, and its prompt's batch.
 */
export function rankingExamples(ranking: {
  prompt: string;
  promptId: string;
  texts: string[];
  ranks: number[];
  weight: number;
}): (ComparisonExample & { promptId: string })[] {
  const pairs = rankingPairs(ranking.ranks);
  return pairs.map(({ a, b, choice }) => ({
    prompt: ranking.prompt,
    responseA: ranking.texts[a]!,
    responseB: ranking.texts[b]!,
    choice,
    strength: null,
    promptId: ranking.promptId,
    weight: ranking.weight / pairs.length,
  }));
}

/** A directed pair for the Bradley-Terry loss. */
export interface PreferencePair {
  prompt: string;
  chosen: string;
  rejected: string;
  margin: number;
  weight: number;
  strength: number | null;
  group: string;
}

/** Llama 2's margins for a 4-level scale (significantly/better/slightly/negligibly better). */
export const LLAMA2_MARGINS_LARGE = [3, 2, 1, 0];

/**
 * TIE and BOTH_BAD: a tie says nothing about direction, so it is excluded from the Bradley-Terry
 * loss (we do not fit a Rao-Kupper/Davidson ties model: too few ties to fit its extra parameter).
 * BOTH_BAD pairs are returned separately; the GPT reward model can push both rewards below zero
 * with an absolute penalty (bothBadCoef), which is only meaningful next to reward centering.
 */
export function toPreferencePairs(
  examples: ComparisonExample[],
  margins: number[] | null,
): { pairs: PreferencePair[]; bothBad: PreferencePair[]; ties: number } {
  const pairs: PreferencePair[] = [];
  const bothBad: PreferencePair[] = [];
  let ties = 0;
  for (const e of examples) {
    const strength = e.strength ?? null;
    const margin = margins && strength !== null ? (margins[strength] ?? 0) : 0;
    const base = { prompt: e.prompt, margin, weight: e.weight ?? 1, strength, group: e.promptId ?? e.prompt };
    if (e.choice === 'A') pairs.push({ ...base, chosen: e.responseA, rejected: e.responseB });
    else if (e.choice === 'B') pairs.push({ ...base, chosen: e.responseB, rejected: e.responseA });
    else if (e.choice === 'BOTH_BAD')
      bothBad.push({ ...base, chosen: e.responseA, rejected: e.responseB, margin: 0 });
    else ties += 1;
  }
  return { pairs, bothBad, ties };
}

/**
 * Batches that keep all comparisons of one prompt together (InstructGPT: shuffling them
 * separately overfit); groups are shuffled, and a group larger than the batch is its own batch.
 */
export function batchesByPrompt<T extends { group: string }>(items: T[], batchSize: number, rng: Rng): T[][] {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const g = groups.get(item.group);
    if (g) g.push(item);
    else groups.set(item.group, [item]);
  }
  const batches: T[][] = [];
  let current: T[] = [];
  for (const group of rng.shuffle([...groups.values()])) {
    if (current.length > 0 && current.length + group.length > batchSize) {
      batches.push(current);
      current = [];
    }
    current = current.concat(group);
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/** Anything that scores (prompt, response) pairs: the GPT reward model, the text one, a rule. */
export interface RewardScorer {
  score(items: { prompt: string; response: string }[]): number[];
}

export interface RewardEvaluation {
  /** Share of held-out pairs with r(chosen) > r(rejected); ties count half. */
  accuracy: number;
  pairs: number;
  /** Accuracy per strength index ("none" when no strength was given), as Llama 2 reports it. */
  byStrength: Record<string, { accuracy: number; pairs: number }>;
  meanMargin: number;
  reward: { min: number; mean: number; max: number };
}

export function evaluateScorer(scorer: RewardScorer, pairs: PreferencePair[]): RewardEvaluation {
  const items = pairs.flatMap((p) => [
    { prompt: p.prompt, response: p.chosen },
    { prompt: p.prompt, response: p.rejected },
  ]);
  const scores = items.length > 0 ? scorer.score(items) : [];
  let correct = 0;
  let marginSum = 0;
  const by = new Map<string, { correct: number; pairs: number }>();
  pairs.forEach((p, i) => {
    const d = (scores[2 * i] ?? 0) - (scores[2 * i + 1] ?? 0);
    const c = d > 0 ? 1 : d === 0 ? 0.5 : 0;
    correct += c;
    marginSum += d;
    const key = p.strength === null ? 'none' : String(p.strength);
    const s = by.get(key) ?? { correct: 0, pairs: 0 };
    s.correct += c;
    s.pairs += 1;
    by.set(key, s);
  });
  const byStrength: RewardEvaluation['byStrength'] = {};
  for (const [k, s] of [...by.entries()].sort())
    byStrength[k] = { accuracy: s.correct / s.pairs, pairs: s.pairs };
  const n = Math.max(1, pairs.length);
  return {
    accuracy: correct / n,
    pairs: pairs.length,
    byStrength,
    meanMargin: marginSum / n,
    reward: {
      min: scores.length ? Math.min(...scores) : 0,
      mean: scores.reduce((a, b) => a + b, 0) / Math.max(1, scores.length),
      max: scores.length ? Math.max(...scores) : 0,
    },
  };
}
