// Training-step time of the built-in policy at its default size in TensorFlow.js (both cores via
// data-parallel workers) against the same GPT, batch and length in PyTorch on the CPU, same run.
// Ends with `speed: tfjs_vs_torch=<tfjs ms/step ÷ torch ms/step>`; target ≤ 1.5.
// Usage: npm run bench -- speed [steps per round = 8] [rounds = 3]
import { execFileSync, spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { DataParallel } from '../trainer/data-parallel.js';
import { DEFAULT_GPT, GPT } from '../trainer/model.js';
import { AdamW } from '../trainer/optimizer.js';
import { initBackend, Rng } from '../trainer/runtime.js';
import type { PackedBatch } from '../trainer/sequences.js';

const PYTHON = '/usr/bin/python3'; // Debian's python: python3-torch installs for it only

function ensureTorch(): void {
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' });
  if (probe.status === 0) return;
  console.log('speed: installing python3-torch and OpenBLAS (apt-get)...');
  // OpenBLAS too: with Debian's reference BLAS the peer would be ~40× slower and the ratio meaningless.
  const install = (): void => {
    execFileSync('apt-get', ['install', '-y', 'python3-torch', 'libopenblas0-pthread'], { stdio: 'inherit' });
  };
  try {
    install();
  } catch {
    // A fresh machine has no package lists yet.
    execFileSync('apt-get', ['update'], { stdio: 'inherit' });
    install();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? NaN) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
}

export async function main(args: string[]): Promise<void> {
  const steps = Number(args[0] ?? 8);
  const rounds = Number(args[1] ?? 3);
  const warmup = 2;
  const batchSize = 32; // the SFT default batch
  const seq = 64; // a typical prompt + response; the default context (128) is the maximum
  const vocab = 96; // a character vocabulary of English text plus the special tokens
  const threads = 2;
  ensureTorch();
  const loadBefore = loadavg()[0] ?? NaN;
  const backend = await initBackend();
  const model = new GPT({ ...DEFAULT_GPT, vocabSize: vocab });
  const rng = new Rng(0);
  const batch: PackedBatch = {
    batch: batchSize,
    length: seq,
    input: new Int32Array(batchSize * seq).map(() => 5 + rng.int(vocab - 5)),
    target: new Int32Array(batchSize * seq).map(() => 5 + rng.int(vocab - 5)),
    mask: new Float32Array(batchSize * seq).fill(1),
    last: new Int32Array(batchSize).fill(seq - 1),
    responseLengths: new Array<number>(batchSize).fill(seq),
  };
  const config = {
    vocab,
    context: DEFAULT_GPT.contextLength,
    layers: DEFAULT_GPT.nLayer,
    heads: DEFAULT_GPT.nHead,
    width: DEFAULT_GPT.nEmbd,
    batch: batchSize,
    seq,
    steps,
    warmup,
    threads,
  };
  console.log(
    `speed: GPT ${model.parameterCount} parameters, batch ${batchSize} × ${seq} tokens, backend ${backend}`,
  );

  const script = fileURLToPath(new URL('./speed_torch.py', import.meta.url));
  const torchRun = (): number => {
    const out = execFileSync(PYTHON, [script, JSON.stringify(config)], { encoding: 'utf8' });
    const result = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { ms: number; params: number };
    console.log(`torch: ${result.ms.toFixed(0)} ms/step (${result.params} parameters, ${threads} threads)`);
    return result.ms;
  };

  const optimizer = new AdamW();
  const parallel = await DataParallel.start(model, threads - 1);
  const tfjsRun = async (): Promise<number> => {
    const times: number[] = [];
    for (let i = 0; i < warmup + steps; i++) {
      const start = performance.now();
      await parallel.step(optimizer, batch);
      if (i >= warmup) times.push(performance.now() - start);
    }
    const ms = median(times);
    console.log(`tfjs: ${ms.toFixed(0)} ms/step (${threads} threads, data-parallel)`);
    return ms;
  };
  // Interleaved rounds, and each side's best round: on a shared machine a noisy neighbour only
  // ever slows a round down, so the minimum is the least disturbed measurement of either side.
  const torchMs: number[] = [];
  const tfjsMs: number[] = [];
  for (let round = 0; round < rounds; round++) {
    torchMs.push(torchRun());
    tfjsMs.push(await tfjsRun());
  }
  await parallel.close();
  // Other work on the machine slows either side; the 1-minute load says how quiet the run was.
  const load = `${loadBefore.toFixed(2)} → ${(loadavg()[0] ?? NaN).toFixed(2)}`;
  console.log(`speed: load average ${load} (1 min, ${cpus().length} cores)`);
  console.log(`speed: tfjs_vs_torch=${(Math.min(...tfjsMs) / Math.min(...torchMs)).toFixed(3)}`);
}
