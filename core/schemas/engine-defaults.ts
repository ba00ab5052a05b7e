// An external engine's round settings: their defaults and limits, which the schema checks and the
// launch form starts from (no schema library here: the web bundle imports this file).

/** The engine's algorithms. */
export const ENGINE_ALGORITHM_VALUES = ['dpo', 'rloo', 'grpo'] as const;

/** The settings an external round runs with when the launch leaves them out (TRL's own defaults). */
export const ENGINE_DEFAULTS = {
  algorithm: 'dpo', // preferences straight into the policy; rloo/grpo sample online with the reward model
  lora: true, // an adapter fits one GPU where full fine-tuning of billions of weights does not
  loraRank: 16, // PEFT's common choice for 1-8B models
  beta: 0.1, // TRL's DPO default
  learningRate: 5e-6, // TRL's DPO default (LoRA tolerates 10x more)
  epochs: 1, // one pass over the snapshot
} as const;

/** The numeric settings' bounds (learningRate's minimum is exclusive). */
export const ENGINE_LIMITS = {
  loraRank: { min: 1, max: 1024, integer: true, exclusiveMin: false },
  beta: { min: 0, max: 10, integer: false, exclusiveMin: false },
  learningRate: { min: 0, max: 1, integer: false, exclusiveMin: true },
  epochs: { min: 1, max: 100, integer: true, exclusiveMin: false },
} as const;

/** The base model's longest name. */
export const BASE_MODEL_MAX_LENGTH = 500;
