// Evaluation of a policy on held-out prompts: mean reward, KL to the reference, mean response
// length, and the reward model's win rate of one policy against another.
import type { Policy } from './policy.js';
import type { RewardScorer } from './preferences.js';
import { Rng } from './runtime.js';
import { generate, type SamplingConfig } from './sampling.js';
import { sum, tokenLogProbRows } from './sequences.js';

export interface PolicyEvaluation {
  meanReward: number;
  /** Mean over samples of Σ_t (log π − log π_ref): the sequence-level KL estimate. */
  kl: number;
  /** Mean response length in tokens (watch it: reward models like length). */
  meanLength: number;
  samples: { prompt: string; response: string; reward: number }[];
}

export function evaluatePolicy(
  policy: Policy,
  reference: Policy,
  scorer: RewardScorer,
  prompts: string[],
  sampling: SamplingConfig,
  seed = 1,
): PolicyEvaluation {
  const promptIds = prompts.map((p) => policy.tokenizer.encodePrompt(p));
  const sampled = generate(policy.model, promptIds, sampling, new Rng(seed));
  const pairs = sampled.map((response, i) => ({ prompt: promptIds[i] ?? [], response }));
  const responses = sampled.map((r) => policy.tokenizer.decode(r));
  const rewards = scorer.score(prompts.map((prompt, i) => ({ prompt, response: responses[i] ?? '' })));
  const C = policy.model.config.contextLength;
  const lp = tokenLogProbRows(policy.model, pairs, C).map(sum);
  const lpRef = tokenLogProbRows(reference.model, pairs, C).map(sum);
  const n = Math.max(1, prompts.length);
  return {
    meanReward: sum(rewards) / n,
    kl: lp.reduce((a, x, i) => a + x - (lpRef[i] ?? 0), 0) / n,
    meanLength: sampled.reduce((a, s) => a + s.length, 0) / n,
    samples: prompts.map((prompt, i) => ({ prompt, response: responses[i] ?? '', reward: rewards[i] ?? 0 })),
  };
}

export interface WinRate {
  /** Share of prompts where A's response scores higher; ties count half. */
  winRate: number;
  wins: number;
  losses: number;
  ties: number;
}

/** RM-judged win rate of policy A against policy B, one sample each per held-out prompt. */
export function winRate(
  a: Policy,
  b: Policy,
  scorer: RewardScorer,
  prompts: string[],
  sampling: SamplingConfig,
  seed = 1,
): WinRate {
  return winRates(a, b, [scorer], prompts, sampling, seed)[0]!;
}

/** The win rate of A against B by each of several scorers, on the same samples. */
export function winRates(
  a: Policy,
  b: Policy,
  scorers: readonly RewardScorer[],
  prompts: string[],
  sampling: SamplingConfig,
  seed = 1,
): WinRate[] {
  const sampleFrom = (p: Policy, s: number) =>
    generate(
      p.model,
      prompts.map((x) => p.tokenizer.encodePrompt(x)),
      sampling,
      new Rng(s),
    ).map((r, i) => ({ prompt: prompts[i] ?? '', response: p.tokenizer.decode(r) }));
  const [samplesA, samplesB] = [sampleFrom(a, seed), sampleFrom(b, seed + 1)];
  return scorers.map((scorer) => {
    const ra = scorer.score(samplesA);
    const rb = scorer.score(samplesB);
    let wins = 0;
    let losses = 0;
    let ties = 0;
    ra.forEach((x, i) => {
      const y = rb[i] ?? 0;
      if (x > y) wins++;
      else if (x < y) losses++;
      else ties++;
    });
    return { winRate: (wins + ties / 2) / Math.max(1, prompts.length), wins, losses, ties };
  });
}
