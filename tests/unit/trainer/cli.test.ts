// The command line end to end on tiny JSONL files: SFT → text reward model → RLOO → sample →
// evaluate, each step reading the previous step's checkpoint.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../../../trainer/runtime.js';

const CLI = fileURLToPath(new URL('../../../trainer/cli.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'loom-cli-'));
const cli = (...args: string[]): Record<string, unknown> =>
  JSON.parse(
    // --workers 0: one thread per process here (the worker paths have their own tests).
    execFileSync(process.execPath, ['--import', 'tsx', CLI, ...args, '--workers', '0'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }),
  ) as Record<string, unknown>;
const file = (name: string): string => join(dir, name);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('trainer CLI', () => {
  it('runs SFT, a reward model, RLOO, sampling and evaluation on files', { timeout: 180_000 }, () => {
    const rng = new Rng(2);
    const word = (n: number): string => Array.from({ length: n }, () => 'abc'[rng.int(3)]).join('');
    const jsonl = (rows: unknown[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
    writeFileSync(
      file('demos.jsonl'),
      jsonl(Array.from({ length: 40 }, () => ({ prompt: word(2), response: word(3) }))),
    );
    writeFileSync(
      file('comparisons.jsonl'),
      jsonl(Array.from({ length: 60 }, () => ({ prompt: word(2), chosen: word(1), rejected: word(5) }))),
    );
    writeFileSync(file('prompts.jsonl'), jsonl(Array.from({ length: 8 }, () => word(2))));
    const tiny = JSON.stringify({ nLayer: 1, nEmbd: 16, nHead: 2, contextLength: 16 });
    const sampling = JSON.stringify({ maxNewTokens: 6 });

    const sft = cli(
      'sft',
      '--train',
      file('demos.jsonl'),
      '--val',
      file('demos.jsonl'),
      '--model',
      tiny,
      '--config',
      '{"steps":10,"evalEvery":5}',
      '--out',
      file('sft.ckpt'),
    );
    expect((sft.validation as unknown[]).length).toBe(2);
    const rm = cli(
      'text-reward-model',
      '--comparisons',
      file('comparisons.jsonl'),
      '--config',
      '{"buckets":1024,"epochs":3}',
      '--out',
      file('rm.ckpt'),
    );
    expect((rm.heldOut as { accuracy: number }).accuracy).toBeGreaterThan(0.5);
    const rloo = cli(
      'rloo',
      '--policy',
      file('sft.ckpt'),
      '--reward',
      file('rm.ckpt'),
      '--prompts',
      file('prompts.jsonl'),
      '--config',
      '{"iterations":2,"promptsPerIteration":2,"k":2}',
      '--sampling',
      sampling,
      '--out',
      file('rloo.ckpt'),
      '--metrics',
      file('metrics.jsonl'),
    );
    expect(rloo.last).toMatchObject({ iteration: 1 });
    expect(readFileSync(file('metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2);
    cli(
      'sample',
      '--policy',
      file('rloo.ckpt'),
      '--prompts',
      file('prompts.jsonl'),
      '--n',
      '2',
      '--sampling',
      sampling,
      '--out',
      file('samples.jsonl'),
    );
    expect(readFileSync(file('samples.jsonl'), 'utf8').trim().split('\n')).toHaveLength(16);
    const evaluation = cli(
      'evaluate',
      '--policy',
      file('rloo.ckpt'),
      '--reference',
      file('sft.ckpt'),
      '--reward',
      file('rm.ckpt'),
      '--prompts',
      file('prompts.jsonl'),
      '--against',
      file('sft.ckpt'),
      '--sampling',
      sampling,
    );
    expect(evaluation).toHaveProperty('meanReward');
    expect(evaluation).toHaveProperty('kl');
    expect(evaluation).toHaveProperty('winRate.winRate');
  });
});
