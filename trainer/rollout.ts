// What every online algorithm (RLOO, GRPO, PPO, best-of-n) does first: sample k responses per
// prompt from the current policy, score them, and record log π_old and log π_ref per token.
import type { SamplingHelper } from './parallel-sampling.js';
import type { Policy } from './policy.js';
import type { RewardScorer } from './preferences.js';
import { Rng } from './runtime.js';
import { generate, type SamplingConfig } from './sampling.js';
import { sum, tokenLogProbRows, type TokenPair } from './sequences.js';
import { END } from './tokenizer.js';

export interface Rollout {
  /** Prompt text per sample (each prompt repeated k times, consecutively). */
  prompts: string[];
  pairs: TokenPair[];
  responses: string[];
  /** R(x, y) from the scorer, minus the missing-end penalty. */
  scores: number[];
  /** Per response token: log π_old (the sampling policy) and log π_ref. */
  logpOld: number[][];
  logpRef: number[][];
}

/** Options shared by the online algorithms. */
export interface RolloutConfig {
  /** Distinct prompts per iteration. */
  promptsPerIteration: number;
  /** Samples per prompt. */
  k: number;
  sampling: SamplingConfig;
  /** Subtracted from R when a response hit the length cap without `<end>` (TRL's missing_eos_penalty). */
  missingEndPenalty: number;
}

/** k samples of each prompt, scored, with log π_old and log π_ref of every response token. */
function collectRollout(
  policy: Policy,
  reference: Policy,
  scorer: RewardScorer,
  prompts: string[],
  config: RolloutConfig,
  rng: Rng,
  helper?: SamplingHelper,
): Rollout {
  const repeated = prompts.flatMap((p) => new Array<string>(config.k).fill(p));
  const promptIds = repeated.map((p) => policy.tokenizer.encodePrompt(p));
  const sampled = helper
    ? helper.generate(policy.model, promptIds, config.sampling, rng)
    : generate(policy.model, promptIds, config.sampling, rng);
  const pairs = sampled.map((response, i) => ({ prompt: promptIds[i] ?? [], response }));
  const responses = sampled.map((r) => policy.tokenizer.decode(r));
  const raw = scorer.score(repeated.map((prompt, i) => ({ prompt, response: responses[i] ?? '' })));
  const scores = raw.map((s, i) => (sampled[i]?.at(-1) === END ? s : s - config.missingEndPenalty));
  const C = policy.model.config.contextLength;
  return {
    prompts: repeated,
    pairs,
    responses,
    scores,
    logpOld: tokenLogProbRows(policy.model, pairs, C),
    logpRef: tokenLogProbRows(reference.model, pairs, C),
  };
}

/**
 * Where an online algorithm's rollouts come from, one per step: the next prompts of a shuffled
 * cycle over the training prompts, sampled with one random stream for the whole run.
 */
export class Rollouts {
  /** The run's random numbers (sampling; best-of-n also shuffles its winners with it). */
  readonly rng: Rng;
  private readonly cycle: PromptCycle;
  private count = 0;
  constructor(
    private readonly policy: Policy,
    private readonly reference: Policy,
    private readonly scorer: RewardScorer,
    prompts: string[],
    private readonly config: RolloutConfig & { seed: number },
    private readonly helper?: SamplingHelper,
  ) {
    this.rng = new Rng(config.seed);
    this.cycle = new PromptCycle(prompts, new Rng(config.seed + 1));
  }
  next(): Rollout {
    const prompts = this.cycle.next(this.config.promptsPerIteration);
    this.count++;
    return collectRollout(
      this.policy,
      this.reference,
      this.scorer,
      prompts,
      this.config,
      this.rng,
      this.helper,
    );
  }
  /** The statistics of the latest rollout and the loss of its last optimizer step. */
  stats(r: Rollout, loss: number): IterationStats {
    return rolloutStats(this.count - 1, r, loss);
  }
}

/** Picks the next prompts in a shuffled cycle over the training prompts. */
class PromptCycle {
  private order: number[] = [];
  constructor(
    private readonly prompts: string[],
    private readonly rng: Rng,
  ) {
    if (prompts.length === 0) throw new Error('no training prompts');
  }
  next(n: number): string[] {
    const out: string[] = [];
    while (out.length < n) {
      if (this.order.length === 0) this.order = this.rng.shuffle(this.prompts.map((_, i) => i));
      out.push(this.prompts[this.order.pop() ?? 0] ?? '');
    }
    return out;
  }
}

/** What each iteration of an online algorithm reports. */
export interface IterationStats {
  iteration: number;
  meanScore: number;
  /** Mean over samples of Σ_t (log π_old − log π_ref): the sequence KL estimate. */
  kl: number;
  meanLength: number;
  loss: number;
}

function rolloutStats(iteration: number, r: Rollout, loss: number): IterationStats {
  const n = Math.max(1, r.scores.length);
  return {
    iteration,
    meanScore: sum(r.scores) / n,
    kl: r.logpOld.reduce((a, lp, i) => a + sum(lp) - sum(r.logpRef[i] ?? []), 0) / n,
    meanLength: r.pairs.reduce((a, p) => a + p.response.length, 0) / n,
    loss,
  };
}
