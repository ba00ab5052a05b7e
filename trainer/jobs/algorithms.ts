// A round's policy update per algorithm: a typed map from the round's algorithm to how many
// iterations it runs and how its stepper starts from the round's settings. The round runner calls
// the returned step once per iteration, writing progress and noticing cancellation in between.
import type { Algorithm, RoundConfig } from '../../core/schemas/rounds.js';
import { bestOfNStepper } from '../best-of-n.js';
import { dpoStepper } from '../dpo.js';
import { grpoStepper } from '../grpo.js';
import type { Policy } from '../policy.js';
import { ppoStepper } from '../ppo.js';
import type { ComparisonExample, RewardScorer } from '../preferences.js';
import { rlooStepper } from '../rloo.js';
import type { IterationStats } from '../rollout.js';

/** What a round hands its algorithm. */
export interface RoundTraining {
  /** Trained in place, from a copy of the parent. */
  policy: Policy;
  /** The lineage's SFT policy, frozen: the KL reference. */
  reference: Policy;
  /** The round's reward model. */
  scorer: RewardScorer;
  /** The project's training prompts. */
  prompts: string[];
  /** The round's judgments (DPO learns from them directly). */
  examples: ComparisonExample[];
  /** The round's settings, with this round's seed. */
  config: Required<RoundConfig>;
}

interface RoundAlgorithm {
  iterations(config: Required<RoundConfig>): number;
  /**
   * Starts the algorithm; each call of `step` runs one iteration, `setBeta` (online algorithms
   * with a KL penalty) changes the KL coefficient of the next ones.
   */
  start(training: RoundTraining): { step: () => IterationStats; setBeta?: (beta: number) => void };
}

const online = (config: Required<RoundConfig>) => ({
  learningRate: config.learningRate,
  promptsPerIteration: config.promptsPerIteration,
  seed: config.seed,
});

export const ROUND_ALGORITHMS: Record<Algorithm, RoundAlgorithm> = {
  RLOO: {
    iterations: (config) => config.iterations,
    start: ({ policy, reference, scorer, prompts, config }) => {
      const settings = { ...online(config), k: config.samplesPerPrompt, beta: config.beta };
      const stepper = rlooStepper(policy, reference, scorer, prompts, settings);
      return { step: () => stepper.step(), setBeta: (beta) => stepper.setBeta?.(beta) };
    },
  },
  GRPO: {
    iterations: (config) => config.iterations,
    start: ({ policy, reference, scorer, prompts, config }) => {
      const settings = { ...online(config), k: config.samplesPerPrompt, beta: config.beta };
      const stepper = grpoStepper(policy, reference, scorer, prompts, settings);
      return { step: () => stepper.step(), setBeta: (beta) => stepper.setBeta?.(beta) };
    },
  },
  PPO: {
    iterations: (config) => config.iterations,
    start: ({ policy, reference, scorer, prompts, config }) => {
      // One sample a prompt (PPO's default k): the value head is the baseline.
      const stepper = ppoStepper(policy, reference, scorer, prompts, {
        ...online(config),
        klCoef: config.beta,
      });
      return { step: () => stepper.step(), setBeta: (beta) => stepper.setBeta?.(beta) };
    },
  },
  BEST_OF_N: {
    iterations: (config) => config.iterations,
    start: ({ policy, reference, scorer, prompts, config }) => {
      const settings = { ...online(config), k: config.samplesPerPrompt };
      const stepper = bestOfNStepper(policy, reference, scorer, prompts, settings);
      return { step: () => stepper.step() };
    },
  },
  DPO: {
    // An iteration is an epoch over the judgments; more than 20 would only overfit them.
    iterations: (config) => Math.max(1, Math.min(config.iterations, 20)),
    start: ({ policy, reference, examples, config }) => {
      const stepper = dpoStepper(policy, reference, examples, {
        beta: config.beta > 0 ? config.beta : 0.1,
        learningRate: config.learningRate,
        seed: config.seed,
      });
      return {
        step: () => {
          const last = stepper.step().at(-1);
          return {
            iteration: 0,
            meanScore: last?.rewardAccuracy ?? 0,
            kl: 0,
            meanLength: 0,
            loss: last?.loss ?? 0,
          };
        },
      };
    },
  },
};

/** The round's algorithm by the name it was stored with (RLOO, the default, for any other). */
export function roundAlgorithm(name: string): RoundAlgorithm {
  return Object.hasOwn(ROUND_ALGORITHMS, name) ? ROUND_ALGORITHMS[name as Algorithm] : ROUND_ALGORITHMS.RLOO;
}
