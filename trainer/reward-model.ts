// The reward model: the policy's GPT backbone (initialized from the SFT weights) with a scalar
// head read at the response's last token, plus the response's log-likelihood under the backbone's
// own language-model head with a learned weight; trained with the Bradley-Terry loss of docs/ALGORITHMS.md.
import * as tf from '@tensorflow/tfjs';
import { decodeCheckpoint, encodeCheckpoint, readCheckpointHeader } from './checkpoint.js';
import { bradleyTerryLoss } from './losses.js';
import { GPT, ScalarHead, type GPTConfig } from './model.js';
import { AdamW } from './optimizer.js';
import type { Policy } from './policy.js';
import {
  LLAMA2_MARGINS_LARGE,
  batchesByPrompt,
  evaluateScorer,
  toPreferencePairs,
  type ComparisonExample,
  type PreferencePair,
  type RewardEvaluation,
  type RewardScorer,
} from './preferences.js';
import { Rng } from './runtime.js';
import {
  inputTensor,
  lastTensor,
  maskTensor,
  packForScoring,
  responseTokenLogProbs,
  type TokenPair,
} from './sequences.js';
import { TextRewardModel } from './text-reward-model.js';
import { Tokenizer, type TokenizerJson } from './tokenizer.js';

export interface RewardModelConfig {
  epochs: number;
  /** Comparisons per batch (whole prompts are never split, so a batch can be larger). */
  batchSize: number;
  learningRate: number;
  /** Margins by strength index; null turns margins off. */
  margins: number[] | null;
  /** c of the centering term c·mean((r⁺ + r⁻)²); 0 = off. */
  centerCoef: number;
  /** Weight of the BOTH_BAD penalty mean(softplus(r)); 0 = those pairs are ignored. */
  bothBadCoef: number;
  seed: number;
}

export const DEFAULT_REWARD_MODEL: RewardModelConfig = {
  epochs: 1, // InstructGPT and Llama 2: one epoch; more overfits
  batchSize: 32, // comparisons per step
  learningRate: 1e-3, // the SFT rate: at 1e-4 a few hundred judgments left it underfit (train accuracy ~0.7)
  margins: LLAMA2_MARGINS_LARGE, // Llama 2's "large" margins for a 4-level strength scale
  centerCoef: 0, // TRL's default; 0.01 recommended when rewards are compared across prompts
  bothBadCoef: 0, // off: BOTH_BAD pairs are then excluded, like ties
  seed: 1, // batch order
};

/** The likelihood term's starting weight: the SFT policy's log-likelihood counts as is. */
const LIKELIHOOD_WEIGHT = 1;

/**
 * r(x, y) = w·h_last + b + λ · log π_prior(y | x): a scalar head on the trained backbone plus the
 * response's log-likelihood (its tokens and its end) under a frozen copy of the policy the model
 * started from, with a learned weight λ. Both start from the SFT policy. A fresh scalar head fit on
 * a few hundred judgments learns length, not whether an answer is right; the SFT policy's
 * likelihood already tells an answer it would give from one it would not (a misspelt word, a sum
 * off by one). Held out on the demo's judgments the term lowers the Bradley-Terry loss from ~1.8 to
 * ~1.3 and ranks right above wrong in 0.73 of pairs instead of 0.49. The prior stays frozen: a
 * likelihood trained along with the head is a reward the policy learns to game (strings like
 * "efffn" scored above the answer). Against the KL penalty to the same SFT policy the term sharpens
 * it toward its likelier answers, by as much as the judgments say (λ). Checkpoints from before the
 * term load with λ = 0 and score as they did.
 */
export class RewardModel implements RewardScorer {
  readonly backbone: GPT;
  readonly head: ScalarHead;
  readonly likelihoodWeight: tf.Variable;
  /** The frozen policy the likelihood term reads; not among `params`, so never trained. */
  readonly prior: GPT;
  readonly tokenizer: Tokenizer;

  constructor(config: GPTConfig, tokenizer: Tokenizer, headSeed = config.seed + 1) {
    this.backbone = new GPT(config, { prefix: 'rm' });
    this.head = new ScalarHead(config.nEmbd, headSeed, 'rm-head');
    // Off until there is a policy to start from (fromPolicy), as in checkpoints from before the term.
    this.likelihoodWeight = tf.variable(tf.scalar(0), true);
    this.prior = new GPT(config, { trainable: false, prefix: 'rm-prior' });
    this.tokenizer = tokenizer;
  }

  static fromPolicy(policy: Policy): RewardModel {
    const rm = new RewardModel(policy.model.config, policy.tokenizer);
    rm.backbone.copyFrom(policy.model);
    rm.prior.copyFrom(policy.model);
    rm.likelihoodWeight.assign(tf.scalar(LIKELIHOOD_WEIGHT));
    return rm;
  }

  get params(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const [n, v] of this.backbone.params) out.set(`gpt/${n}`, v);
    for (const [n, v] of this.head.params) out.set(`head/${n}`, v);
    out.set('likelihood/weight', this.likelihoodWeight);
    return out;
  }

  toPairs(items: { prompt: string; response: string }[]): TokenPair[] {
    return items.map((i) => ({
      prompt: this.tokenizer.encodePrompt(i.prompt),
      response: this.tokenizer.encodeResponse(i.response),
    }));
  }

  /** r(x, y) for token pairs, [B], differentiable. */
  rewards(pairs: TokenPair[]): tf.Tensor1D {
    return tf.tidy(() => {
      const b = packForScoring(pairs, this.backbone.config.contextLength);
      const last = lastTensor(b);
      const values = this.head.apply(this.backbone.hidden(inputTensor(b)), b.batch, b.length);
      const head = tf.sum(tf.mul(values, last), 1);
      // The scoring pad after the end is not part of the response: its position is `last`.
      const { logp } = responseTokenLogProbs(this.prior, b);
      const likelihood = tf.sum(tf.mul(logp, tf.sub(maskTensor(b), last)), 1);
      return tf.add(head, tf.mul(this.likelihoodWeight, likelihood)) as tf.Tensor1D;
    });
  }

  score(items: { prompt: string; response: string }[], chunk = 64): number[] {
    const out: number[] = [];
    const pairs = this.toPairs(items);
    for (let i = 0; i < pairs.length; i += chunk) {
      const r = this.rewards(pairs.slice(i, i + chunk));
      out.push(...r.dataSync());
      r.dispose();
    }
    return out;
  }

  encode(options: { optimizer?: AdamW; step?: number; meta?: Record<string, unknown> } = {}): Buffer {
    const tensors = new Map<string, tf.Tensor>(this.params);
    for (const [n, v] of this.prior.params) tensors.set(`prior/${n}`, v);
    if (options.optimizer) for (const [n, t] of options.optimizer.state()) tensors.set(`opt/${n}`, t);
    return encodeCheckpoint(
      {
        kind: 'reward-model',
        config: { model: this.backbone.config, optimizer: options.optimizer?.config },
        tokenizer: this.tokenizer.toJson() as unknown as Record<string, unknown>,
        step: options.step ?? 0,
        meta: { ...options.meta, optimizerStep: options.optimizer?.step ?? 0 },
      },
      tensors,
    );
  }

  static decode(buf: Buffer): RewardModel {
    const { header, tensors } = decodeCheckpoint(buf);
    if (header.kind !== 'reward-model')
      throw new Error(`expected a reward-model checkpoint, got ${header.kind}`);
    const config = header.config as { model: GPTConfig };
    const rm = new RewardModel(
      config.model,
      Tokenizer.fromJson(header.tokenizer as unknown as TokenizerJson),
    );
    const params = rm.params;
    for (const [n, v] of rm.prior.params) params.set(`prior/${n}`, v);
    for (const [name, t] of tensors) params.get(name)?.assign(t);
    tf.dispose([...tensors.values()]);
    return rm;
  }

  dispose(): void {
    this.backbone.dispose();
    this.head.dispose();
    this.likelihoodWeight.dispose();
    this.prior.dispose();
  }
}

/**
 * One batch's loss. Every distinct (prompt, response) is scored once and the pairs pick their
 * two rewards with selection matrices (C(K,2) comparisons of K responses cost K forwards).
 */
export function rewardModelLoss(
  rm: RewardModel,
  batch: PreferencePair[],
  bothBad: PreferencePair[],
  config: RewardModelConfig,
): tf.Scalar {
  return tf.tidy(() => {
    const keys = new Map<string, number>();
    const items: { prompt: string; response: string }[] = [];
    const indexOf = (prompt: string, response: string): number => {
      const key = JSON.stringify([prompt, response]);
      let i = keys.get(key);
      if (i === undefined) {
        i = items.length;
        keys.set(key, i);
        items.push({ prompt, response });
      }
      return i;
    };
    const chosenIdx = batch.map((p) => indexOf(p.prompt, p.chosen));
    const rejectedIdx = batch.map((p) => indexOf(p.prompt, p.rejected));
    const badIdx = bothBad.flatMap((p) => [indexOf(p.prompt, p.chosen), indexOf(p.prompt, p.rejected)]);
    const r = rm.rewards(rm.toPairs(items)).reshape([items.length, 1]);
    const pick = (idx: number[]): tf.Tensor1D =>
      tf.matMul(tf.oneHot(tf.tensor1d(idx, 'int32'), items.length).toFloat(), r).reshape([idx.length]);
    let loss: tf.Scalar = tf.scalar(0);
    if (batch.length > 0) {
      loss = bradleyTerryLoss(
        pick(chosenIdx),
        pick(rejectedIdx),
        tf.tensor1d(batch.map((p) => p.margin)),
        config.centerCoef,
        tf.tensor1d(batch.map((p) => p.weight)),
      );
    }
    if (badIdx.length > 0 && config.bothBadCoef > 0) {
      // -log σ(−r): both responses are pushed below zero, the anchor that centering provides.
      loss = tf.add(loss, tf.mul(config.bothBadCoef, tf.mean(tf.softplus(pick(badIdx))))) as tf.Scalar;
    }
    return loss;
  });
}

export interface RewardTrainingResult {
  optimizer: AdamW;
  losses: number[];
  ties: number;
  steps: number;
}

export function trainRewardModel(
  rm: RewardModel,
  comparisons: ComparisonExample[],
  config: Partial<RewardModelConfig> = {},
  options: { optimizer?: AdamW; onStep?: (step: number, loss: number, total: number) => void } = {},
): RewardTrainingResult {
  const cfg = { ...DEFAULT_REWARD_MODEL, ...config };
  const rng = new Rng(cfg.seed);
  const { pairs, bothBad, ties } = toPreferencePairs(comparisons, cfg.margins);
  const optimizer = options.optimizer ?? new AdamW({ learningRate: cfg.learningRate });
  const losses: number[] = [];
  const bad = new Map<string, PreferencePair[]>();
  for (const p of bothBad) bad.set(p.group, [...(bad.get(p.group) ?? []), p]);
  const perEpoch = batchesByPrompt(pairs, cfg.batchSize, new Rng(cfg.seed)).length;
  for (let epoch = 0; epoch < cfg.epochs; epoch++) {
    for (const batch of batchesByPrompt(pairs, cfg.batchSize, rng)) {
      const groups = new Set(batch.map((p) => p.group));
      const badHere = [...groups].flatMap((g) => bad.get(g) ?? []);
      const loss = optimizer.minimize(rm.params, () => rewardModelLoss(rm, batch, badHere, cfg));
      losses.push(loss);
      options.onStep?.(losses.length, loss, perEpoch * cfg.epochs);
    }
  }
  return { optimizer, losses, ties, steps: losses.length };
}

/** Mean Bradley-Terry loss (with margins, as trained) over comparisons, without gradients. */
export function rewardModelValidationLoss(
  rm: RewardModel,
  comparisons: ComparisonExample[],
  config: Partial<RewardModelConfig> = {},
): number {
  const cfg = { ...DEFAULT_REWARD_MODEL, ...config };
  const { pairs } = toPreferencePairs(comparisons, cfg.margins);
  let total = 0;
  let weight = 0;
  for (const batch of batchesByPrompt(pairs, cfg.batchSize, new Rng(cfg.seed))) {
    const loss = rewardModelLoss(rm, batch, [], { ...cfg, centerCoef: 0 });
    const w = batch.reduce((a, p) => a + p.weight, 0);
    total += (loss.dataSync()[0] ?? 0) * w;
    weight += w;
    loss.dispose();
  }
  return weight > 0 ? total / weight : NaN;
}

export interface RewardModelFit {
  optimizer: AdamW;
  /** Epochs trained, and the one whose weights were kept (lowest held-out loss). */
  epochs: number;
  bestEpoch: number;
  history: { epoch: number; trainLoss: number; validationLoss: number | null }[];
}

/**
 * Up to `maxEpochs` passes over `train`, keeping the weights of the epoch with the lowest
 * held-out loss and stopping once it has not improved for `patience` epochs (early stopping).
 * Without held-out comparisons every epoch is trained and the last weights are kept. `onEpoch`
 * is awaited after each epoch (progress, cancellation).
 */
export async function fitRewardModel(
  rm: RewardModel,
  train: ComparisonExample[],
  validation: ComparisonExample[],
  options: { maxEpochs: number; patience: number; config?: Partial<RewardModelConfig> },
  onEpoch: (
    epoch: number,
    trainLoss: number,
    validationLoss: number | null,
  ) => Promise<void> | void = () => {},
): Promise<RewardModelFit> {
  const seed = options.config?.seed ?? DEFAULT_REWARD_MODEL.seed;
  const hasValidation = toPreferencePairs(validation, null).pairs.length > 0;
  let optimizer: AdamW | undefined;
  let best: { epoch: number; loss: number; weights: Map<string, Float32Array> } | null = null;
  const history: RewardModelFit['history'] = [];
  for (let epoch = 1; epoch <= options.maxEpochs; epoch++) {
    const result = trainRewardModel(
      rm,
      train,
      { ...options.config, epochs: 1, seed: seed + epoch - 1 },
      { optimizer },
    );
    optimizer = result.optimizer;
    const trainLoss = result.losses.reduce((a, b) => a + b, 0) / Math.max(1, result.losses.length);
    const validationLoss = hasValidation ? rewardModelValidationLoss(rm, validation, options.config) : null;
    history.push({ epoch, trainLoss, validationLoss });
    await onEpoch(epoch, trainLoss, validationLoss);
    if (validationLoss === null) continue;
    if (!best || validationLoss < best.loss) {
      const weights = new Map<string, Float32Array>();
      for (const [name, v] of rm.params) weights.set(name, v.dataSync().slice() as Float32Array);
      best = { epoch, loss: validationLoss, weights };
    } else if (epoch - best.epoch >= options.patience) break;
  }
  if (best) {
    const kept = best.weights;
    tf.tidy(() => {
      for (const [name, v] of rm.params) v.assign(tf.tensor(kept.get(name)!, v.shape));
    });
  }
  return {
    optimizer: optimizer ?? new AdamW({ learningRate: DEFAULT_REWARD_MODEL.learningRate }),
    epochs: history.length,
    bestEpoch: best?.epoch ?? history.length,
    history,
  };
}

export function evaluateRewardModel(
  scorer: RewardScorer,
  comparisons: ComparisonExample[],
  margins: number[] | null = null,
): RewardEvaluation {
  return evaluateScorer(scorer, toPreferencePairs(comparisons, margins).pairs);
}

/** Any stored reward model (GPT-based or text-only) from its checkpoint, by the header's kind. */
export function decodeRewardScorer(buf: Buffer): RewardScorer {
  const kind = readCheckpointHeader(buf).kind;
  if (kind === 'reward-model') return RewardModel.decode(buf);
  if (kind === 'text-reward-model') return TextRewardModel.decode(buf);
  throw new Error(`a ${kind} checkpoint is not a reward model`);
}
