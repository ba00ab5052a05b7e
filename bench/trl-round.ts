// A round on the TRL engine end to end, through a real server: HH-RLHF helpful-base test pairs
// (shipped in bench/data) imported into a project as judgments, a TRL round launched over HTTP,
// then the Python worker (`loom-trl work --once`, with a training-scoped token) claims it, downloads
// the frozen snapshot, fits the reward model with TRL's RewardTrainer and the policy with
// DPOTrainer, forwards events while it runs and uploads the results; the round must end SUCCEEDED
// with a new version and new-vs-parent comparisons for raters. The base model is a tiny Llama
// built from the snapshot's text (trainer/trl/scripts/tiny_llama.py: no downloads), or
// LOOM_TRL_BASE_MODEL (a local path or hub name). Needs LOOM_TRL_PYTHON: a Python with the worker's
// `train` extra (torch, transformers, trl, peft, datasets, accelerate); a GPU is used when torch
// sees one. Prints the reward model's held-out accuracy, the DPO loss curve and the wall time:
// `trl-round: held_out_accuracy=<x> dpo_loss_first=<x> dpo_loss_last=<x> wall_s=<n> comparisons=<n>`.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { benchDatabase } from './database.js';
import { HH_TEST_FILE } from './hh-data.js';
import { startProductionServer, type ServerProcess } from './server.js';
import { createPrisma } from '../core/db/client.js';
import { hashPassword } from '../core/services/passwords.js';

const WORKER_DIR = path.resolve('trainer/trl');
const COMPARISON_PROMPTS = 20;

interface Session {
  origin: string;
  cookie: string;
  csrf: string;
}

async function call<T>(session: Session, method: string, route: string, body?: unknown): Promise<T> {
  const response = await fetch(`${session.origin}${route}`, {
    method,
    headers: {
      cookie: session.cookie,
      'x-csrf-token': session.csrf,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

/** A line chart of the loss in text: eight-level bars, one per bucket of steps. */
function sparkline(values: number[], width = 60): string {
  if (!values.length) return '(no points)';
  const buckets = Math.min(width, values.length);
  const means = Array.from({ length: buckets }, (_, b) => {
    const part = values.slice(
      Math.floor((b * values.length) / buckets),
      Math.floor(((b + 1) * values.length) / buckets),
    );
    return part.reduce((a, v) => a + v, 0) / part.length;
  });
  const [low, high] = [Math.min(...means), Math.max(...means)];
  const bars = '▁▂▃▄▅▆▇█';
  return means.map((v) => bars[high === low ? 3 : Math.round(((v - low) / (high - low)) * 7)]).join('');
}

export async function main(): Promise<void> {
  const python = process.env.LOOM_TRL_PYTHON;
  if (!python) {
    console.log(
      'trl-round: skipped (set LOOM_TRL_PYTHON to a Python with the worker\'s train extra: pip install "./trainer/trl[train]")',
    );
    return;
  }
  const work = mkdtempSync(path.join(os.tmpdir(), 'loom-trl-round-'));
  const database = await benchDatabase('trl');
  const prisma = createPrisma(database.url, { max: 2 });
  let server: ServerProcess | null = null;
  try {
    // The pairs, as the file HH-RLHF ships: imported below, and the tiny model's tokenizer text.
    const hh = gunzipSync(readFileSync(HH_TEST_FILE)).toString('utf8');
    let baseModel = process.env.LOOM_TRL_BASE_MODEL;
    if (!baseModel) {
      baseModel = path.join(work, 'tiny-llama');
      const textFile = path.join(work, 'hh.jsonl');
      writeFileSync(textFile, hh);
      const built = execFileSync(
        python,
        [path.join(WORKER_DIR, 'scripts/tiny_llama.py'), '--text', textFile, '--out', baseModel],
        { encoding: 'utf8' },
      );
      console.log(`base model: a tiny Llama built here ${built.trim().split('\n').at(-1)}`);
    } else console.log(`base model: ${baseModel}`);

    const password = randomBytes(16).toString('hex');
    const admin = await prisma.user.create({
      data: {
        email: 'admin@bench.example',
        name: 'Admin',
        role: 'ADMIN',
        credential: { create: { passwordHash: await hashPassword(password) } },
      },
    });
    server = await startProductionServer(database.url);
    const login = await fetch(`${server.origin}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: admin.email, password }),
    });
    if (!login.ok) throw new Error(`login failed: ${login.status} ${await login.text()}`);
    const session: Session = {
      origin: server.origin,
      csrf: ((await login.json()) as { csrfToken: string }).csrfToken,
      cookie: login.headers
        .getSetCookie()
        .map((value) => value.split(';')[0])
        .join('; '),
    };

    const project = await call<{ id: string }>(session, 'POST', '/api/projects', { name: 'TRL round' });
    const imported = await call<{ imported: number; prompts: number; skipped: number }>(
      session,
      'POST',
      `/api/projects/${project.id}/preferences/import`,
      { format: 'hh', source: 'hh-rlhf helpful-base test', onError: 'skip', content: hh },
    );
    // The parent every round starts from: a version standing for the base model, promoted.
    const parent = await prisma.policyVersion.create({
      data: {
        projectId: project.id,
        name: 'base',
        kind: 'IMPORTED',
        status: 'READY',
        promotedAt: new Date(),
      },
    });
    await prisma.project.update({ where: { id: project.id }, data: { currentPolicyVersionId: parent.id } });
    console.log(
      `imported ${imported.imported} HH-RLHF pairs (${imported.prompts} prompts; ${imported.skipped} empty or tied left out)`,
    );

    const token = await call<{ token: string }>(session, 'POST', '/api/tokens', {
      name: 'trl worker',
      scope: 'training',
    });
    const round = await call<{ id: string; number: number }>(
      session,
      'POST',
      `/api/projects/${project.id}/rounds`,
      {
        engine: 'trl',
        algorithm: 'DPO',
        engineSettings: {
          baseModel,
          algorithm: 'dpo',
          lora: true,
          loraRank: 8,
          learningRate: 5e-4,
          epochs: 1,
        },
        config: { generateComparisons: true, comparisonPrompts: COMPARISON_PROMPTS },
      },
    );

    // The worker, as an operator starts it; small texts keep a CPU run to minutes.
    const started = performance.now();
    const worker = spawn(
      python,
      [
        '-m',
        'loom_trl',
        'work',
        '--once',
        '--url',
        server.origin,
        '--dir',
        path.join(work, 'rounds'),
        '--poll-seconds',
        '2',
        '--set',
        'max_length=256',
        '--set',
        'max_new_tokens=32',
        '--set',
        'batch_size=8',
      ],
      {
        cwd: WORKER_DIR,
        env: { ...process.env, LOOM_TOKEN: token.token },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let log = '';
    const keep = (chunk: Buffer) => (log = (log + chunk.toString()).slice(-20_000));
    worker.stdout.on('data', keep);
    worker.stderr.on('data', keep);
    // Progress as the Rounds page shows it: a line per phase and per tenth of the round.
    let shown = '';
    const watch = setInterval(() => {
      void call<{ progress: number; phase: string | null }>(session, 'GET', `/api/rounds/${round.id}`)
        .then((r) => {
          const key = `${r.phase ?? ''} ${Math.floor(r.progress * 10)}`;
          if (key !== shown)
            console.log(`  ${String(Math.round(r.progress * 100)).padStart(3)}%  ${r.phase ?? ''}`);
          shown = key;
        })
        .catch(() => undefined);
    }, 3000);
    const code = await new Promise<number | null>((resolve) => worker.on('exit', resolve));
    clearInterval(watch);
    const seconds = (performance.now() - started) / 1000;
    if (code !== 0) throw new Error(`the worker exited with ${code}:\n${log}`);

    const done = await call<{
      status: string;
      metrics: Record<string, unknown>;
      outputPolicyVersionId: string;
    }>(session, 'GET', `/api/rounds/${round.id}`);
    if (done.status !== 'SUCCEEDED') throw new Error(`round ${round.number} ended ${done.status}:\n${log}`);
    const version = await prisma.policyVersion.findUniqueOrThrow({
      where: { id: done.outputPolicyVersionId },
    });
    const comparisons = await prisma.comparison.count({ where: { roundId: round.id } });
    type Event = { id: string; phase: string; step: number | null; data: Record<string, unknown> };
    const events: Event[] = [];
    for (let after = ''; ;) {
      const page = await call<Event[]>(
        session,
        'GET',
        `/api/rounds/${round.id}/events?limit=1000${after ? `&after=${after}` : ''}`,
      );
      events.push(...page);
      if (page.length < 1000) break;
      after = page.at(-1)!.id;
    }
    const losses = events
      .filter((e) => e.phase === 'policy' && typeof e.data.loss === 'number')
      .map((e) => e.data.loss as number);
    const rmLosses = events
      .filter((e) => e.phase === 'reward-model' && typeof e.data.loss === 'number')
      .map((e) => e.data.loss as number);
    const mean = (values: number[]) => values.reduce((a, v) => a + v, 0) / Math.max(1, values.length);
    const tenth = Math.max(1, Math.floor(losses.length / 10));
    const held = Number(done.metrics.rewardModelValAccuracy);
    console.log(
      `round ${round.number}: ${done.status}; version "${version.name}" (${version.kind}), ${comparisons} new-vs-parent comparisons for raters`,
    );
    console.log(`reward-model loss (${rmLosses.length} steps) ${sparkline(rmLosses)}`);
    console.log(`DPO loss (${losses.length} steps)          ${sparkline(losses)}`);
    console.log(
      `trl-round: held_out_accuracy=${held.toFixed(3)} dpo_loss_first=${mean(losses.slice(0, tenth)).toFixed(3)} ` +
        `dpo_loss_last=${mean(losses.slice(-tenth)).toFixed(3)} wall_s=${seconds.toFixed(0)} comparisons=${comparisons}`,
    );
  } finally {
    await server?.stop();
    await prisma.$disconnect();
    await database.drop();
  }
}
