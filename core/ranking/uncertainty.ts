// How unsure a reward model is about a comparison, and the rating queue's priority from it: the
// "uncertainty" queue order serves first the comparisons whose outcome the current reward model
// can least predict (uncertainty sampling by margin, Lewis & Gale 1994; for a Bradley-Terry model
// the margin near zero is where one judgment moves the model most). Pure math: the trainer's queue
// refresh, the `active` benchmark and the unit test import it.

/** The highest priority a score gives (a coin flip to the reward model); 0 = it is certain. */
export const UNCERTAINTY_PRIORITY_MAX = 999;

/**
 * Served before any score: a new version's comparisons against its parent, whose votes decide its
 * promotion (the reward model that trained the version is the last to be trusted on them). The
 * highest priority an admin can set too.
 */
export const PROMOTION_PRIORITY = 1000;

/** P(A preferred over B) under Bradley-Terry: σ(r_A − r_B). */
export function preferenceProbability(rewardA: number, rewardB: number): number {
  const d = rewardA - rewardB;
  return d >= 0 ? 1 / (1 + Math.exp(-d)) : Math.exp(d) / (1 + Math.exp(d));
}

/**
 * 1 − |2·σ(r_A − r_B) − 1| = 1 − tanh(|r_A − r_B| / 2): 1 when the reward model gives both
 * responses the same reward, toward 0 as it grows sure which is better. Non-finite rewards: 0.
 */
export function uncertainty(rewardA: number, rewardB: number): number {
  const d = rewardA - rewardB;
  if (!Number.isFinite(d)) return 0;
  return 1 - Math.tanh(Math.abs(d) / 2);
}

/** The queue priority of a comparison from its two rewards: round(999 · uncertainty), 0..999. */
export function uncertaintyPriority(rewardA: number, rewardB: number): number {
  return Math.round(UNCERTAINTY_PRIORITY_MAX * uncertainty(rewardA, rewardB));
}

/**
 * A ranking item's priority from the rewards of its K responses: that of its least certain pair
 * (a ranking answers every pair at once, so it teaches at least what that pair would). Two
 * rewards: `uncertaintyPriority` of the pair.
 */
export function rankingUncertaintyPriority(rewards: readonly number[]): number {
  let best = 0;
  for (let i = 0; i < rewards.length; i++)
    for (let j = i + 1; j < rewards.length; j++)
      best = Math.max(best, uncertaintyPriority(rewards[i]!, rewards[j]!));
  return best;
}
