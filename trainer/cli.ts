// Command line for researchers and benchmarks: runs each algorithm on JSONL files and writes
// checkpoints (loom-tfjs-1 files), per-step metrics as JSONL and a JSON summary on stdout.
// Usage: tsx trainer/cli.ts <command> [--options]; `tsx trainer/cli.ts help` lists them.
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { trainBestOfN } from './best-of-n.js';
import { DataParallel } from './data-parallel.js';
import { trainDPO } from './dpo.js';
import { evaluatePolicy, winRate } from './evaluate.js';
import { trainGRPO } from './grpo.js';
import { SamplingHelper } from './parallel-sampling.js';
import { createPolicy, decodePolicy, encodePolicy, freezeCopy, type Policy } from './policy.js';
import { trainPPO } from './ppo.js';
import {
  evaluateScorer,
  toPreferencePairs,
  type ComparisonExample,
  type RewardScorer,
} from './preferences.js';
import { decodeRewardScorer, RewardModel, trainRewardModel } from './reward-model.js';
import { trainRLOO } from './rloo.js';
import { initBackend, Rng } from './runtime.js';
import { DEFAULT_SAMPLING, generate, type SamplingConfig } from './sampling.js';
import { trainSFT, type Demonstration } from './sft.js';
import { TextRewardModel } from './text-reward-model.js';
import { Tokenizer } from './tokenizer.js';

const HELP = `loom trainer
  sft               --train demos.jsonl [--val demos.jsonl] [--init policy.ckpt] [--model '{"nLayer":4}']
                    [--workers 1] --out policy.ckpt
  reward-model      --comparisons c.jsonl --init policy.ckpt [--holdout 0.1] --out rm.ckpt
  text-reward-model --comparisons c.jsonl [--holdout 0.1] --out rm.ckpt
  rloo|grpo|ppo|best-of-n  --policy sft.ckpt --reward rm.ckpt --prompts p.jsonl --out policy.ckpt
  dpo               --policy sft.ckpt --comparisons c.jsonl --out policy.ckpt
  sample            --policy policy.ckpt --prompts p.jsonl [--n 1] --out samples.jsonl
  evaluate          --policy policy.ckpt --reference sft.ckpt --reward rm.ckpt --prompts p.jsonl [--against other.ckpt]
Common: --workers 0|1 (default 1): a worker thread for SFT gradients / RL sampling, i.e. both cores;
        --config '<json or file>' overrides the algorithm's defaults; --metrics m.jsonl logs every step;
        --sampling '<json>' overrides temperature/topK/maxNewTokens.
Files: demos {"prompt","response"}; comparisons {"prompt","responseA","responseB","choice":"A|B|TIE|BOTH_BAD",
       "strength"?, "weight"?, "promptId"?} or {"prompt","chosen","rejected"}; prompts {"prompt"} or a JSON string a line.`;

const { positionals, values: opts } = parseArgs({
  allowPositionals: true,
  options: {
    train: { type: 'string' },
    val: { type: 'string' },
    init: { type: 'string' },
    model: { type: 'string' },
    out: { type: 'string' },
    comparisons: { type: 'string' },
    holdout: { type: 'string' },
    policy: { type: 'string' },
    reference: { type: 'string' },
    reward: { type: 'string' },
    prompts: { type: 'string' },
    against: { type: 'string' },
    n: { type: 'string' },
    config: { type: 'string' },
    sampling: { type: 'string' },
    metrics: { type: 'string' },
    seed: { type: 'string' },
    workers: { type: 'string' },
  },
});

function need(name: keyof typeof opts): string {
  const v = opts[name];
  if (typeof v !== 'string' || !v) throw new Error(`--${name} is required (see: help)`);
  return v;
}

function readJsonl<T>(path: string): T[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as T);
}

/** Inline JSON or a path to a JSON file. */
function jsonOption<T>(value: string | undefined): Partial<T> {
  if (!value) return {};
  return JSON.parse(value.trim().startsWith('{') ? value : readFileSync(value, 'utf8')) as Partial<T>;
}

function readComparisons(path: string): ComparisonExample[] {
  return readJsonl<ComparisonExample & { chosen?: string; rejected?: string }>(path).map((c) =>
    c.chosen !== undefined && c.rejected !== undefined
      ? { prompt: c.prompt, responseA: c.chosen, responseB: c.rejected, choice: 'A' }
      : c,
  );
}

function readPrompts(path: string): string[] {
  return readJsonl<string | { prompt: string }>(path).map((p) => (typeof p === 'string' ? p : p.prompt));
}

function loadPolicyFile(path: string): Policy {
  return decodePolicy(readFileSync(path)).policy;
}

function loadScorer(path: string): RewardScorer {
  return decodeRewardScorer(readFileSync(path));
}

function logMetrics(record: Record<string, unknown>): void {
  if (opts.metrics) appendFileSync(opts.metrics, JSON.stringify(record) + '\n');
}

/** A progress bar on stderr (stdout carries the JSON summary). */
function progress(
  total: number,
  label: string,
): { update(step: number, payload: Record<string, number>, total?: number): void; stop(): void } {
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {value}/{total} | {stats}`, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { stats: '' });
  return {
    update: (step, payload, newTotal) => {
      if (newTotal !== undefined && newTotal !== bar.getTotal()) bar.setTotal(newTotal);
      const stats = Object.entries(payload)
        .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`)
        .join(' ');
      bar.update(step, { stats });
      logMetrics({ step, ...payload });
    },
    stop: () => bar.stop(),
  };
}

function splitHoldout<T>(items: T[], fraction: number, seed: number): { train: T[]; test: T[] } {
  const shuffled = new Rng(seed).shuffle([...items]);
  const n = Math.round(items.length * fraction);
  return { test: shuffled.slice(0, n), train: shuffled.slice(n) };
}

async function run(): Promise<unknown> {
  const command = positionals[0] ?? 'help';
  if (command === 'help') {
    console.error(HELP);
    return undefined;
  }
  const backend = await initBackend();
  const config = jsonOption<Record<string, unknown>>(opts.config);
  const sampling: SamplingConfig = { ...DEFAULT_SAMPLING, ...jsonOption<SamplingConfig>(opts.sampling) };
  const seed = Number(opts.seed ?? 1);

  switch (command) {
    case 'sft': {
      const train = readJsonl<Demonstration>(need('train'));
      const val = opts.val ? readJsonl<Demonstration>(opts.val) : [];
      const loaded = opts.init ? decodePolicy(readFileSync(opts.init)) : undefined;
      const policy =
        loaded?.policy ??
        createPolicy(
          Tokenizer.fromTexts(train.flatMap((d) => [d.prompt, d.response])),
          jsonOption(opts.model),
        );
      const steps = Number(config.steps ?? 500);
      // Worker threads for data-parallel gradients: wasm is single-threaded, so 1 = both cores.
      const workers = Number(opts.workers ?? 1);
      const parallel = workers > 0 ? await DataParallel.start(policy.model, workers) : undefined;
      const bar = progress(steps, 'sft');
      const result = await trainSFT(policy, train, val, config, {
        optimizer: loaded?.optimizer,
        parallel,
        onStep: (step, loss) => bar.update(step + 1, { loss }),
      });
      bar.stop();
      await parallel?.close();
      const best = Math.min(...result.validation.map((v) => v.loss));
      writeFileSync(
        need('out'),
        encodePolicy(policy, {
          optimizer: result.optimizer,
          step: (loaded?.step ?? 0) + steps,
          training: { algorithm: 'sft', ...config },
          meta: { bestValLoss: Number.isFinite(best) ? best : null },
        }),
      );
      return {
        backend,
        parameters: policy.model.parameterCount,
        validation: result.validation,
        out: opts.out,
      };
    }
    case 'reward-model':
    case 'text-reward-model': {
      const { train, test } = splitHoldout(
        readComparisons(need('comparisons')),
        Number(opts.holdout ?? 0.1),
        seed,
      );
      let scorer: RewardScorer;
      let buf: Buffer;
      if (command === 'reward-model') {
        const rm = RewardModel.fromPolicy(loadPolicyFile(need('init')));
        const bar = progress(1, 'reward model');
        const result = trainRewardModel(rm, train, config, {
          onStep: (step, loss, total) => bar.update(step, { loss }, total),
        });
        bar.stop();
        scorer = rm;
        buf = rm.encode({ optimizer: result.optimizer, step: result.steps, meta: { ties: result.ties } });
      } else {
        const rm = new TextRewardModel(config);
        const bar = progress(1, 'text reward model');
        rm.train(train, (step, loss, total) => bar.update(step, { loss }, total));
        bar.stop();
        scorer = rm;
        buf = rm.encode();
      }
      writeFileSync(need('out'), buf);
      return { backend, heldOut: evaluateScorer(scorer, toPreferencePairs(test, null).pairs), out: opts.out };
    }
    case 'rloo':
    case 'grpo':
    case 'ppo':
    case 'best-of-n': {
      const loaded = decodePolicy(readFileSync(need('policy')));
      const policy = loaded.policy;
      const reference = freezeCopy(policy);
      const scorer = loadScorer(need('reward'));
      const prompts = readPrompts(need('prompts'));
      const iterations = Number(config.iterations ?? (command === 'best-of-n' ? 20 : 100));
      const bar = progress(iterations, command);
      const cfg = {
        ...config,
        sampling: { ...sampling, ...((config.sampling as object | undefined) ?? {}) },
      };
      const onIteration = (s: {
        iteration: number;
        meanScore: number;
        kl: number;
        meanLength: number;
        loss: number;
      }): void =>
        bar.update(s.iteration + 1, { reward: s.meanScore, kl: s.kl, length: s.meanLength, loss: s.loss });
      const train = { rloo: trainRLOO, grpo: trainGRPO, ppo: trainPPO, 'best-of-n': trainBestOfN }[command];
      // A sampling worker thread: rollouts are split between it and this thread (both cores),
      // and (except PPO, whose value head stays here) gradients split the same way.
      const both = Number(opts.workers ?? 1) > 0;
      const helper = both ? await SamplingHelper.start(policy.model) : undefined;
      const parallel = both && command !== 'ppo' ? await DataParallel.start(policy.model, 1) : undefined;
      const result = train(policy, reference, scorer, prompts, cfg, { onIteration, helper, parallel });
      bar.stop();
      await helper?.close();
      await parallel?.close();
      writeFileSync(
        need('out'),
        encodePolicy(policy, {
          optimizer: result.optimizer,
          step: loaded.step + iterations,
          training: { algorithm: command, ...cfg },
        }),
      );
      return { backend, last: result.history.at(-1), out: opts.out };
    }
    case 'dpo': {
      const loaded = decodePolicy(readFileSync(need('policy')));
      const reference = freezeCopy(loaded.policy);
      const comparisons = readComparisons(need('comparisons'));
      const bar = progress(1, 'dpo');
      const result = trainDPO(loaded.policy, reference, comparisons, config, {
        onStep: (s, total) => bar.update(s.step, { loss: s.loss, accuracy: s.rewardAccuracy }, total),
      });
      bar.stop();
      writeFileSync(
        need('out'),
        encodePolicy(loaded.policy, {
          optimizer: result.optimizer,
          step: loaded.step + result.history.length,
          training: { algorithm: 'dpo', ...config },
        }),
      );
      return { backend, last: result.history.at(-1), out: opts.out };
    }
    case 'sample': {
      const policy = loadPolicyFile(need('policy'));
      const n = Number(opts.n ?? 1);
      const prompts = readPrompts(need('prompts')).flatMap((p) => new Array<string>(n).fill(p));
      const ids = generate(
        policy.model,
        prompts.map((p) => policy.tokenizer.encodePrompt(p)),
        sampling,
        new Rng(seed),
      );
      const lines = ids.map((r, i) =>
        JSON.stringify({ prompt: prompts[i], response: policy.tokenizer.decode(r) }),
      );
      writeFileSync(need('out'), lines.join('\n') + '\n');
      return { backend, samples: lines.length, out: opts.out };
    }
    case 'evaluate': {
      const policy = loadPolicyFile(need('policy'));
      const reference = loadPolicyFile(need('reference'));
      const scorer = loadScorer(need('reward'));
      const prompts = readPrompts(need('prompts'));
      const result = evaluatePolicy(policy, reference, scorer, prompts, sampling, seed);
      const against = opts.against
        ? winRate(policy, loadPolicyFile(opts.against), scorer, prompts, sampling, seed)
        : undefined;
      const { samples: _samples, ...summary } = result;
      return { backend, ...summary, winRate: against };
    }
    default:
      throw new Error(`unknown command ${command}\n${HELP}`);
  }
}

try {
  const summary = await run();
  if (summary !== undefined) console.log(JSON.stringify(summary, null, 2));
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
}
