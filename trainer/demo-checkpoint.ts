// Makes the demo's shipped first model (trainer/checkpoints/demo-sft.bin): the demo project's
// prompts and demonstrations as the first start stores them (core/demo.ts), fine-tuned exactly as
// the seed job would fine-tune them (trainer/jobs/seed-demo.ts, the default settings), on the
// WebAssembly backend in one thread, so that a run gives the same bytes again.
//
//   npx tsx trainer/demo-checkpoint.ts           fine-tune and write the file
//   npx tsx trainer/demo-checkpoint.ts --check   fine-tune and compare with the file, writing nothing
//   npx tsx trainer/demo-checkpoint.ts --out F   write F instead
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { demoPromptRows } from '../core/demo.js';
import {
  DEFAULT_DEMO,
  DEMO_CHECKPOINT,
  demoFingerprint,
  demoTrainingData,
  encodeDemoCheckpoint,
  trainDemoPolicy,
} from './jobs/seed-demo.js';
import { initBackend } from './runtime.js';

const sha256 = (buf: Buffer) => createHash('sha256').update(buf).digest('hex');

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { check: { type: 'boolean', default: false }, out: { type: 'string' } },
  });
  const out = path.resolve(values.out ?? DEMO_CHECKPOINT);
  const backend = await initBackend('wasm');
  const data = demoTrainingData(
    demoPromptRows().map((row) => ({
      text: row.prompt,
      split: row.split,
      demonstrations: row.demonstrations,
    })),
  );
  const settings = { sftSteps: DEFAULT_DEMO.sftSteps, model: DEFAULT_DEMO.model };
  console.log(
    `demo-checkpoint: ${data.train.length} demonstrations, ${settings.sftSteps} steps on ${backend}; ` +
      `fingerprint ${demoFingerprint(data, settings).slice(0, 16)}`,
  );
  const started = Date.now();
  const demo = await trainDemoPolicy(data, settings, (step, steps) => {
    if (step % 100 === 0 || step === steps)
      console.log(`demo-checkpoint: step ${step}/${steps} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  });
  const buf = encodeDemoCheckpoint(demo, data, settings);
  console.log(
    `demo-checkpoint: validation loss ${demo.validationLoss?.toFixed(4)}, ${buf.length} bytes, sha256 ${sha256(buf)}`,
  );
  if (values.check) {
    const shipped = existsSync(out) ? readFileSync(out) : null;
    const same = shipped !== null && sha256(shipped) === sha256(buf);
    console.log(
      same
        ? `demo-checkpoint: identical to ${out}`
        : `demo-checkpoint: differs from ${out} (${shipped ? sha256(shipped) : 'missing'})`,
    );
    process.exitCode = same ? 0 : 1;
    return;
  }
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, buf);
  console.log(`demo-checkpoint: wrote ${out}`);
}

await main();
