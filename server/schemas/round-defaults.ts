// A training round's default settings, chosen for the built-in model: the trainer runs with them
// and the launch form starts from them (no schema library here: the web bundle imports this file).

export const ROUND_DEFAULTS = {
  iterations: 30, // RL iterations per round: minutes on two cores at the built-in size
  learningRate: 1e-4, // RL steps are noisy; faster rates let the policy hack a young reward model
  beta: 0.1, // KL coefficient, above TRL's 0.05: reward models fit on a few hundred judgments are easy to exploit (DPO: β)
  samplesPerPrompt: 4, // RLOO's k: a lower-variance leave-one-out baseline than TRL's 2
  promptsPerIteration: 16, // prompts per rollout
  rewardModelEpochs: 2, // few comparisons per round: a second pass helps more than it overfits
  generateComparisons: true, // raters judge the new version against its parent
  comparisonPrompts: 60, // prompts whose new-vs-parent pairs go to raters
  seed: 1, // data order and sampling
} as const;
