// Guards of a round's policy phase against reward over-optimization (Gao et al. 2023): an adaptive
// KL coefficient toward a target KL (Ziegler et al. 2019), early stopping on held-out checks, a
// reward-model ensemble whose disagreement lowers the reward (Coste et al. 2023), and the verdict a
// round's result gets against its parent before it is published.
import type { RewardScorer } from './preferences.js';

/**
 * Ziegler et al.'s proportional controller, as TRL's AdaptiveKLController writes it:
 * e = clip(KL / KL_target − 1, −0.2, 0.2), β ← β·(1 + e·n / horizon), n the samples behind KL.
 */
export class AdaptiveKLController {
  constructor(
    public beta: number,
    readonly target: number,
    readonly horizon: number,
  ) {}

  /** One update from the KL measured on `samples` samples; returns the new β. */
  update(kl: number, samples: number): number {
    const error = Math.max(-0.2, Math.min(0.2, kl / this.target - 1));
    this.beta *= 1 + (error * samples) / this.horizon;
    return this.beta;
  }
}

/** One held-out check: KL to the reference and the reward model's mean reward, on held-out prompts. */
export interface HeldOutCheck {
  iteration: number;
  kl: number;
  reward: number;
}

export interface EarlyStoppingConfig {
  /** Stop as soon as the held-out KL exceeds this. */
  klLimit: number;
  /** Checks in a row whose held-out reward is below the best by more than `tolerance` before stopping. */
  patience: number;
  tolerance: number;
}

export type StopReason = 'kl-limit' | 'held-out-reward';

export interface StopDecision {
  stop: boolean;
  reason: StopReason | null;
  /** This check is the best so far: the weights to keep if the phase stops later. */
  best: boolean;
}

/** Early stopping of the policy phase: the weights kept are those of the best check that passed. */
export class EarlyStopping {
  private bestReward = Number.NEGATIVE_INFINITY;
  private misses = 0;
  bestIteration: number | null = null;

  constructor(readonly config: EarlyStoppingConfig) {}

  check(c: HeldOutCheck): StopDecision {
    if (c.kl > this.config.klLimit) return { stop: true, reason: 'kl-limit', best: false };
    if (c.reward > this.bestReward) {
      this.bestReward = c.reward;
      this.bestIteration = c.iteration;
      this.misses = 0;
      return { stop: false, reason: null, best: true };
    }
    this.misses = c.reward < this.bestReward - this.config.tolerance ? this.misses + 1 : 0;
    if (this.misses >= this.config.patience) return { stop: true, reason: 'held-out-reward', best: false };
    return { stop: false, reason: null, best: false };
  }
}

/** What the round measured on its held-out prompts, for the new version and its parent. */
export interface VerdictEvidence {
  kl: number;
  klLimit: number;
  /** The reward model's win rate of the new version against its parent (ties half). */
  winRateVsParent: number;
  /**
   * Its 95% interval over the held-out prompts (Wilson's, ties as half): only a rate whose whole
   * interval lies below 0.5 says the parent is better. Without one, any rate below 0.5 does.
   */
  winRateInterval?: [number, number];
  /** The ensemble's members' win rates, when the round fitted more than one reward model. */
  ensembleWinRates?: number[];
  /** Their intervals, as for the reward model's own. */
  ensembleIntervals?: [number, number][];
  /** Why the guard stopped the policy phase before any held-out check improved on the parent. */
  stoppedWithoutGain?: string | null;
  /** The demo's hidden utility, where there is one. */
  utility?: number;
  parentUtility?: number;
}

/** Why a round's result is not better than its parent; empty when it is. */
export function notBetterReasons(e: VerdictEvidence): string[] {
  const reasons: string[] = [];
  if (e.stoppedWithoutGain)
    reasons.push(
      `the policy phase stopped (${e.stoppedWithoutGain}) before any held-out check improved on the parent, so the new version keeps the parent's weights`,
    );
  if (e.kl > e.klLimit)
    reasons.push(`KL to the reference ${e.kl.toFixed(2)} is beyond the limit ${e.klLimit.toFixed(2)}`);
  const below = (rate: number, interval?: [number, number]) => (interval ? interval[1] < 0.5 : rate < 0.5);
  if (below(e.winRateVsParent, e.winRateInterval))
    reasons.push(
      `the reward model prefers the parent (win rate ${e.winRateVsParent.toFixed(2)}` +
        (e.winRateInterval
          ? `, 95% interval [${e.winRateInterval[0].toFixed(2)}, ${e.winRateInterval[1].toFixed(2)}])`
          : ')'),
    );
  const disagreeing = (e.ensembleWinRates ?? []).filter((w, i) => below(w, e.ensembleIntervals?.[i]));
  if (disagreeing.length)
    reasons.push(`${disagreeing.length} of the reward-model ensemble prefer the parent`);
  if (e.utility !== undefined && e.parentUtility !== undefined && e.utility < e.parentUtility)
    reasons.push(
      `the demo's hidden utility fell from ${e.parentUtility.toFixed(2)} to ${e.utility.toFixed(2)}`,
    );
  return reasons;
}

/**
 * A reward-model ensemble as one scorer: Coste et al.'s uncertainty-weighted optimization (UWO),
 * r = mean_m(r_m) − λ·var_m(r_m). Where the members disagree (a response none of their data
 * covered, the kind a policy over-optimizing one model finds) the reward falls, so the policy gains
 * only where they agree. λ = 0 is the plain mean ensemble.
 */
export class EnsembleScorer implements RewardScorer {
  constructor(
    readonly members: readonly RewardScorer[],
    readonly penalty: number,
  ) {
    if (members.length === 0) throw new Error('an ensemble needs at least one reward model');
  }

  score(items: { prompt: string; response: string }[]): number[] {
    const scores = this.members.map((member) => member.score(items));
    return items.map((_, i) => {
      const values = scores.map((member) => member[i]!);
      const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
      const variance = values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / values.length;
      return mean - this.penalty * variance;
    });
  }
}
