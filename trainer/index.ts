// The trainer's public surface for the rest of Loom (training rounds, job handlers): import from
// here rather than from individual files.
export { initBackend, Rng } from './runtime.js';
export { Tokenizer, type TokenizerJson } from './tokenizer.js';
export { GPT, DEFAULT_GPT, type GPTConfig } from './model.js';
export { AdamW, DEFAULT_ADAMW, type AdamWConfig } from './optimizer.js';
export {
  createPolicy,
  decodePolicy,
  encodePolicy,
  freezeCopy,
  trainableCopy,
  type Policy,
} from './policy.js';
export {
  CHECKPOINT_FORMAT,
  decodeCheckpoint,
  encodeCheckpoint,
  loadArtifact,
  readCheckpointHeader,
  saveArtifact,
  type ArtifactKind,
} from './checkpoint.js';
export { generate, DEFAULT_SAMPLING, type SamplingConfig } from './sampling.js';
export { trainSFT, DEFAULT_SFT, type Demonstration, type SFTConfig } from './sft.js';
export {
  evaluateScorer,
  toPreferencePairs,
  LLAMA2_MARGINS_LARGE,
  LLAMA2_MARGINS_SMALL,
  type Choice,
  type ComparisonExample,
  type RewardEvaluation,
  type RewardScorer,
} from './preferences.js';
export {
  RewardModel,
  decodeRewardScorer,
  trainRewardModel,
  evaluateRewardModel,
  DEFAULT_REWARD_MODEL,
  type RewardModelConfig,
} from './reward-model.js';
export {
  TextRewardModel,
  DEFAULT_TEXT_REWARD_MODEL,
  type TextRewardModelConfig,
} from './text-reward-model.js';
export { trainRLOO, DEFAULT_RLOO, type RLOOConfig } from './rloo.js';
export { trainGRPO, DEFAULT_GRPO, type GRPOConfig } from './grpo.js';
export { trainPPO, DEFAULT_PPO, type PPOConfig } from './ppo.js';
export { trainDPO, DEFAULT_DPO, type DPOConfig } from './dpo.js';
export { trainBestOfN, DEFAULT_BEST_OF_N, type BestOfNConfig } from './best-of-n.js';
export { evaluatePolicy, winRate, type PolicyEvaluation, type WinRate } from './evaluate.js';
export { DataParallel } from './data-parallel.js';
export type { IterationStats } from './rollout.js';
