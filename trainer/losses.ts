// The losses and advantages of docs/ALGORITHMS.md as pure functions, written the way the papers write
// them, so each is unit-tested on tiny hand-computed tensors and shared by the trainers.
import * as tf from '@tensorflow/tfjs';

/**
 * log σ(z) = −softplus(−z). tf.logSigmoid's custom gradient reads its input after an enclosing
 * tf.tidy has disposed it, which fails inside tf.variableGrads; softplus saves what it needs.
 */
export function logSigmoid(z: tf.Tensor): tf.Tensor {
  return tf.neg(tf.softplus(tf.neg(z)));
}

/** log π(target | context) per position: sum(logSoftmax(logits) · oneHot(target)) ([N, V] → [N]). */
export function tokenLogProbs(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(
    () => tf.sum(tf.mul(tf.logSoftmax(logits), tf.oneHot(targets, logits.shape[1])), 1) as tf.Tensor1D,
  );
}

/** Σ_t values·mask per row: log π(y|x) summed over response tokens only ([B, T] → [B]). */
export function maskedSum(values: tf.Tensor2D, mask: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.sum(tf.mul(values, mask), 1) as tf.Tensor1D);
}

/** Mean of values over the positions where mask is 1 (all rows pooled). */
export function maskedMean(values: tf.Tensor, mask: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.div(tf.sum(tf.mul(values, mask)), tf.maximum(tf.sum(mask), 1)) as tf.Scalar);
}

/**
 * Bradley-Terry reward loss with Llama 2's margin and TRL's optional centering:
 * L = −mean log σ(r⁺ − r⁻ − m) + c·mean((r⁺ + r⁻)²).
 * `weights` (default 1) let a rater's reliability scale a judgment; the mean is then weighted.
 */
export function bradleyTerryLoss(
  chosen: tf.Tensor1D,
  rejected: tf.Tensor1D,
  margin: tf.Tensor1D,
  centerCoef = 0,
  weights?: tf.Tensor1D,
): tf.Scalar {
  return tf.tidy(() => {
    const nll = tf.neg(logSigmoid(tf.sub(tf.sub(chosen, rejected), margin)));
    const w = weights ?? tf.onesLike(nll);
    let loss = tf.div(tf.sum(tf.mul(nll, w)), tf.sum(w));
    if (centerCoef > 0) loss = tf.add(loss, tf.mul(centerCoef, tf.mean(tf.square(tf.add(chosen, rejected)))));
    return loss as tf.Scalar;
  });
}

/**
 * DPO: L = −mean log σ(β[(log π(y⁺) − log π_ref(y⁺)) − (log π(y⁻) − log π_ref(y⁻))]).
 * Inputs are sequence log-probs summed over response tokens.
 */
export function dpoLoss(
  policyChosen: tf.Tensor1D,
  policyRejected: tf.Tensor1D,
  refChosen: tf.Tensor1D,
  refRejected: tf.Tensor1D,
  beta: number,
): tf.Scalar {
  return tf.tidy(() => {
    const logits = tf.sub(tf.sub(policyChosen, refChosen), tf.sub(policyRejected, refRejected));
    return tf.neg(tf.mean(logSigmoid(tf.mul(beta, logits)))) as tf.Scalar;
  });
}

/**
 * RLOO's KL-shaped reward: r_i = R(x, y_i) − β·Σ_t log(π_old/π_ref) (a constant: no gradient).
 * PPO and best-of-n report the same quantity.
 */
export function klShapedRewards(
  scores: number[],
  logpOld: number[],
  logpRef: number[],
  beta: number,
): number[] {
  return scores.map((s, i) => s - beta * ((logpOld[i] ?? 0) - (logpRef[i] ?? 0)));
}

/**
 * RLOO advantages for rewards laid out prompt by prompt, k consecutive samples each:
 * A_i = r_i − (1/(k−1))·Σ_{j≠i} r_j.
 */
export function rlooAdvantages(rewards: number[], k: number): number[] {
  if (k < 2 || rewards.length % k !== 0) throw new Error('RLOO needs k ≥ 2 samples per prompt');
  const out: number[] = [];
  for (let g = 0; g < rewards.length; g += k) {
    const group = rewards.slice(g, g + k);
    const total = group.reduce((a, b) => a + b, 0);
    for (const r of group) out.push(r - (total - r) / (k - 1));
  }
  return out;
}

/** RLOO policy loss: L = −(1/k)·Σ_i A_i·log π(y_i|x), averaged over prompts (= mean over rows). */
export function rlooLoss(advantages: tf.Tensor1D, seqLogProbs: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(tf.mul(advantages, seqLogProbs))) as tf.Scalar);
}

/** GRPO advantages: A_i = (r_i − mean r)/(std r + ε) within each group of k (population std). */
export function grpoAdvantages(rewards: number[], k: number, eps = 1e-4): number[] {
  if (k < 2 || rewards.length % k !== 0) throw new Error('GRPO needs groups of k ≥ 2');
  const out: number[] = [];
  for (let g = 0; g < rewards.length; g += k) {
    const group = rewards.slice(g, g + k);
    const mean = group.reduce((a, b) => a + b, 0) / k;
    const std = Math.sqrt(group.reduce((a, r) => a + (r - mean) ** 2, 0) / k);
    for (const r of group) out.push((r - mean) / (std + eps));
  }
  return out;
}

/** Per-token KL₃ = π_ref/π − log(π_ref/π) − 1 (Schulman's unbiased, non-negative estimator). */
export function klK3(logp: tf.Tensor, logpRef: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const logRatio = tf.sub(logpRef, logp);
    return tf.sub(tf.sub(tf.exp(logRatio), logRatio), 1);
  });
}

/**
 * GRPO: L = −(1/Σ|o_i|)·Σ_i Σ_t [min(ρA_i, clip(ρ, 1±ε)A_i) − β·KL₃], ρ = π/π_old per token.
 * logp, logpOld, logpRef, mask: [B, T]; advantages: [B].
 */
export function grpoLoss(
  logp: tf.Tensor2D,
  logpOld: tf.Tensor2D,
  logpRef: tf.Tensor2D,
  advantages: tf.Tensor1D,
  mask: tf.Tensor2D,
  epsilon: number,
  beta: number,
): tf.Scalar {
  return tf.tidy(() => {
    const adv = tf.expandDims(advantages, 1);
    const ratio = tf.exp(tf.sub(logp, logpOld));
    const surrogate = tf.minimum(
      tf.mul(ratio, adv),
      tf.mul(tf.clipByValue(ratio, 1 - epsilon, 1 + epsilon), adv),
    );
    const perToken = beta > 0 ? tf.sub(surrogate, tf.mul(beta, klK3(logp, logpRef))) : surrogate;
    return tf.neg(tf.div(tf.sum(tf.mul(perToken, mask)), tf.maximum(tf.sum(mask), 1))) as tf.Scalar;
  });
}

/** PPO clipped policy loss, masked mean over response tokens of −min(ρA, clip(ρ, 1±ε)A). */
export function ppoPolicyLoss(
  logp: tf.Tensor2D,
  logpOld: tf.Tensor2D,
  advantages: tf.Tensor2D,
  mask: tf.Tensor2D,
  epsilon: number,
): tf.Scalar {
  return tf.tidy(() => {
    const ratio = tf.exp(tf.sub(logp, logpOld));
    const surrogate = tf.minimum(
      tf.mul(ratio, advantages),
      tf.mul(tf.clipByValue(ratio, 1 - epsilon, 1 + epsilon), advantages),
    );
    return tf.neg(maskedMean(surrogate, mask)) as tf.Scalar;
  });
}

/** PPO clipped value loss: ½·masked mean of max((V − R)², (V_old + clip(V − V_old, ±ε) − R)²). */
export function ppoValueLoss(
  values: tf.Tensor2D,
  valuesOld: tf.Tensor2D,
  returns: tf.Tensor2D,
  mask: tf.Tensor2D,
  epsilon: number,
): tf.Scalar {
  return tf.tidy(() => {
    const clipped = tf.add(valuesOld, tf.clipByValue(tf.sub(values, valuesOld), -epsilon, epsilon));
    const loss = tf.maximum(tf.square(tf.sub(values, returns)), tf.square(tf.sub(clipped, returns)));
    return tf.mul(0.5, maskedMean(loss, mask)) as tf.Scalar;
  });
}

/**
 * PPO's per-token rewards for one response: r_t = −β·(log π_old − log π_ref)_t, plus the reward
 * model's score on the last token.
 */
export function ppoTokenRewards(score: number, logpOld: number[], logpRef: number[], beta: number): number[] {
  const rewards = logpOld.map((lp, t) => -beta * (lp - (logpRef[t] ?? 0)));
  if (rewards.length > 0) rewards[rewards.length - 1] = (rewards[rewards.length - 1] ?? 0) + score;
  return rewards;
}

/**
 * Generalized advantage estimation over one response (the value after the last token is 0):
 * δ_t = r_t + γV_{t+1} − V_t, A_t = δ_t + γλA_{t+1}, returns R_t = A_t + V_t.
 */
export function gae(
  rewards: number[],
  values: number[],
  gamma: number,
  lambda: number,
): { advantages: number[]; returns: number[] } {
  const T = rewards.length;
  const advantages = new Array<number>(T).fill(0);
  let next = 0;
  for (let t = T - 1; t >= 0; t--) {
    const nextValue = t + 1 < T ? (values[t + 1] ?? 0) : 0;
    const delta = (rewards[t] ?? 0) + gamma * nextValue - (values[t] ?? 0);
    next = delta + gamma * lambda * next;
    advantages[t] = next;
  }
  return { advantages, returns: advantages.map((a, t) => a + (values[t] ?? 0)) };
}

/** Shifts and scales numbers to mean 0, std 1 (PPO whitens advantages over the batch). */
export function whiten(xs: number[], eps = 1e-8): number[] {
  if (xs.length === 0) return [];
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / xs.length);
  return xs.map((x) => (x - mean) / (std + eps));
}

/** The sequence-level KL estimate RLOO and PPO report: Σ_t (log π − log π_ref), averaged. */
export function meanSequenceKl(logp: number[], logpRef: number[]): number {
  if (logp.length === 0) return 0;
  return logp.reduce((a, lp, i) => a + lp - (logpRef[i] ?? 0), 0) / logp.length;
}
