// A training round's default settings, chosen for the built-in model: the trainer runs with them
// and the launch form starts from them; and a round's phases, which the trainer reports and the
// rounds page shows (no schema library here: the web bundle imports this file).

export const ROUND_DEFAULTS = {
  iterations: 150, // RL iterations per round: about 90 s on two cores at the built-in size (30: win rate 0.74, 60: 0.77, 90: 0.78, 150: 0.81)
  learningRate: 1.5e-4, // RL steps are noisy; 3e-4 let the policy hack a young reward model
  beta: 0.05, // KL coefficient, TRL's; the reward model's likelihood term keeps the policy near its SFT start (DPO: β)
  samplesPerPrompt: 4, // RLOO's k: a lower-variance leave-one-out baseline than TRL's 2
  promptsPerIteration: 16, // prompts per rollout
  rewardModelEpochs: 2, // few comparisons per round: a second pass helps more than it overfits
  generateComparisons: true, // raters judge the new version against its parent
  comparisonPrompts: 60, // prompts whose new-vs-parent pairs go to raters
  seed: 1, // data order and sampling
  reliabilityWeights: true, // weigh judgments by their raters' estimated reliability, once enough comparisons overlap or are gold
  klTarget: 1.2, // adaptive KL controller's target (nats, to the SFT reference; 0: β stays fixed): five good rounds end near 1.3
  klHorizon: 10000, // samples over which β moves by the clipped error, TRL's horizon
  klLimit: 1.8, // held-out KL beyond which the policy phase stops and a result is not better (rounds that hacked the reward model ran to 1.9-2.3)
  guardEvery: 25, // iterations between held-out checks of the policy phase (0: no early stopping)
  rewardEnsemble: 1, // reward models per round (2-5: an ensemble, each member fitted on a bootstrap resample of the prompts)
  uncertaintyPenalty: 1, // with an ensemble: λ in mean − λ·variance of the members' rewards (Coste et al. 2023)
} as const;

/**
 * A round's phases in order: `key` as the trainer records it, `weight` the share of the round's
 * progress bar it covers, `label` and `short` as the rounds page names it ('comparisons' publishes
 * the new version and its comparisons).
 */
export const ROUND_PHASES = [
  { key: 'snapshot', weight: 0.03, label: 'Snapshot', short: 'Data' },
  { key: 'reward-model', weight: 0.2, label: 'Reward model', short: 'RM' },
  { key: 'policy', weight: 0.6, label: 'Policy', short: 'Policy' },
  { key: 'evaluation', weight: 0.1, label: 'Evaluation', short: 'Eval' },
  { key: 'comparisons', weight: 0.07, label: 'Publish', short: 'Publish' },
] as const;

export type RoundPhase = (typeof ROUND_PHASES)[number];
