// A policy is a GPT plus the tokenizer it was trained with; this file creates, copies, saves and
// loads one, so every algorithm starts from and ends in the same checkpoint format.
import * as tf from '@tensorflow/tfjs';
import { decodeCheckpoint, encodeCheckpoint, type CheckpointHeader } from './checkpoint.js';
import { DEFAULT_GPT, GPT, type GPTConfig } from './model.js';
import { AdamW, type AdamWConfig } from './optimizer.js';
import { Tokenizer, type TokenizerJson } from './tokenizer.js';

export interface Policy {
  model: GPT;
  tokenizer: Tokenizer;
}

export function createPolicy(tokenizer: Tokenizer, overrides: Partial<GPTConfig> = {}): Policy {
  const config: GPTConfig = { ...DEFAULT_GPT, vocabSize: tokenizer.vocabSize, ...overrides };
  return { model: new GPT(config), tokenizer };
}

/** A frozen copy, e.g. the reference policy π_ref that the KL penalty measures against. */
export function freezeCopy(policy: Policy): Policy {
  const model = new GPT(policy.model.config, { trainable: false, prefix: 'ref' });
  model.copyFrom(policy.model);
  return { model, tokenizer: policy.tokenizer };
}

/** A trainable copy (the policy RL updates, starting from the SFT weights). */
export function trainableCopy(policy: Policy): Policy {
  const model = new GPT(policy.model.config);
  model.copyFrom(policy.model);
  return { model, tokenizer: policy.tokenizer };
}

export function encodePolicy(
  policy: Policy,
  options: {
    optimizer?: AdamW;
    step?: number;
    meta?: Record<string, unknown>;
    training?: Record<string, unknown>;
  } = {},
): Buffer {
  const tensors = new Map<string, tf.Tensor>();
  for (const [name, v] of policy.model.params) tensors.set(`gpt/${name}`, v);
  if (options.optimizer) for (const [name, t] of options.optimizer.state()) tensors.set(`opt/${name}`, t);
  return encodeCheckpoint(
    {
      kind: 'policy',
      config: {
        model: policy.model.config,
        training: options.training ?? {},
        optimizer: options.optimizer?.config,
      },
      tokenizer: policy.tokenizer.toJson() as unknown as Record<string, unknown>,
      step: options.step ?? 0,
      meta: { ...options.meta, optimizerStep: options.optimizer?.step ?? 0 },
    },
    tensors,
  );
}

export interface LoadedPolicy {
  policy: Policy;
  optimizer: AdamW;
  step: number;
  header: CheckpointHeader;
}

export function decodePolicy(buf: Buffer): LoadedPolicy {
  const { header, tensors } = decodeCheckpoint(buf);
  if (header.kind !== 'policy') throw new Error(`expected a policy checkpoint, got ${header.kind}`);
  const config = header.config as { model: GPTConfig; optimizer?: AdamWConfig };
  const tokenizer = Tokenizer.fromJson(header.tokenizer as unknown as TokenizerJson);
  const model = new GPT(config.model);
  const optimizerState = new Map<string, tf.Tensor>();
  for (const [name, t] of tensors) {
    if (name.startsWith('gpt/')) model.p(name.slice(4)).assign(t);
    else if (name.startsWith('opt/')) optimizerState.set(name.slice(4), t);
  }
  const optimizer = new AdamW(config.optimizer ?? {});
  optimizer.loadState(Number(header.meta.optimizerStep ?? 0), optimizerState);
  tf.dispose([...tensors.values()]);
  return { policy: { model, tokenizer }, optimizer, step: header.step, header };
}
