// One benchmark report: `npm run bench` (or `npm run bench -- report [options]`) runs every
// benchmark as a child process (`tsx bench/run.ts <name>`), reads the summary lines each prints
// (`<name>: key=value ...`), and writes bench/REPORT.md: each figure, the peer measured in the same
// run, the ratio, the target, pass or fail, and the machine (cores, memory, CPU, Node and PostgreSQL
// versions, the load average before and after each benchmark). A benchmark that fails, times out
// or is left out is reported as such.
//
// Options:
//   --only a,b           run only these benchmarks (the others are listed as not run)
//   --skip a,b           leave these out
//   --timeout name=s     a benchmark's time limit in seconds (default: the table's)
//   --env name:KEY=VALUE an environment variable for one benchmark (e.g. loop:BENCH_ROUNDS=2);
//                        the report shows it beside the figures
//   --from name=FILE     take a benchmark's output from an earlier run of `npm run bench -- <name>`
//                        saved in FILE instead of running it (the report says so)
//   --out FILE           where to write the report (default bench/REPORT.md)
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import * as prettier from 'prettier';

/** Figures read from a benchmark's output: key → value as printed. */
export type Figures = Record<string, string>;

export interface Target {
  /** As the report shows it, e.g. `accuracy ≥ 0.63`. */
  text: string;
  /** Whether the figures meet it; undefined when a figure it needs is missing. */
  met(figures: Figures): boolean | undefined;
}

export interface BenchSpec {
  name: string;
  /** What the figure is, in a few words. */
  what: string;
  /** Time limit in seconds. */
  timeoutS: number;
  /** The peer measured in the same run, and how to read its value from the output. */
  peer?: { what: string; value?(output: string, figures: Figures): string | undefined };
  /** The key holding the figure's ratio to its peer. */
  ratio?: string;
  targets: Target[];
}

const num = (figures: Figures, key: string): number | undefined => {
  const value = figures[key];
  if (value === undefined) return undefined;
  const parsed = Number(value);
  return Number.isFinite(parsed) ? parsed : undefined;
};

const cmp = (key: string, op: '≥' | '≤' | '<' | '=', bound: number): Target => ({
  text: `${key} ${op} ${bound.toLocaleString('en-US')}`,
  met: (figures) => {
    const value = num(figures, key);
    if (value === undefined) return undefined;
    return op === '≥'
      ? value >= bound
      : op === '≤'
        ? value <= bound
        : op === '<'
          ? value < bound
          : value === bound;
  },
});

/** The last match's first group of `pattern` in the output. */
const last = (pattern: RegExp) => (output: string) => {
  const matches = [...output.matchAll(new RegExp(pattern.source, 'g'))];
  return matches.at(-1)?.[1];
};

/** Every benchmark of the report, its peer, ratio and targets: the one place they are kept. */
export const BENCHMARKS: BenchSpec[] = [
  {
    name: 'rm-hh',
    what: 'text reward model, 5-fold CV on HH-RLHF helpful-base test pairs',
    timeoutS: 900,
    peer: { what: 'floors on the same file (not rerun): longer-wins 0.594, bag-of-words 0.600' },
    targets: [cmp('accuracy', '≥', 0.63)],
  },
  {
    name: 'speed',
    what: 'training step of the default GPT, tfjs over PyTorch',
    timeoutS: 1200,
    peer: {
      what: 'the same model in PyTorch on the CPU, best round (ms/step)',
      value: (output) => {
        const steps = [...output.matchAll(/^torch: (\d+) ms\/step/gm)].map((m) => Number(m[1]));
        return steps.length ? String(Math.min(...steps)) : undefined;
      },
    },
    ratio: 'tfjs_vs_torch',
    targets: [cmp('tfjs_vs_torch', '≤', 1.5)],
  },
  {
    name: 'loop',
    what: 'closed loop on the demo, final version vs the SFT policy on held-out prompts',
    timeoutS: 3600,
    peer: { what: 'the SFT policy, same held-out prompts and seed' },
    ratio: 'win_rate_vs_sft',
    targets: [cmp('win_rate_vs_sft', '≥', 0.8)],
  },
  {
    name: 'rating',
    what: '200 raters through the HTTP API: submissions/s and next-comparison p99',
    timeoutS: 900,
    peer: {
      what: 'raw single-row INSERTs (16 clients), same PostgreSQL, better of before/after (rows/s)',
      value: (output) => {
        const rates = [...output.matchAll(/raw inserts (\d+)\/s/g)].map((m) => Number(m[1]));
        return rates.length ? String(Math.max(...rates)) : undefined;
      },
    },
    ratio: 'submit_vs_raw_insert',
    targets: [cmp('submit_vs_raw_insert', '≥', 0.5), cmp('next_p99_ms', '<', 25), cmp('errors', '=', 0)],
  },
  {
    name: 'rating-scale',
    what: 'the rating path at 100k, 1M and 5M comparisons',
    timeoutS: 3600,
    ratio: 'ratio_at_5m_over_100k',
    peer: { what: 'the same path at 100k comparisons, same run' },
    targets: [cmp('ratio_at_5m_over_100k', '≥', 0.9), cmp('p99_ms_at_5m_1000', '<', 25)],
  },
  {
    name: 'export',
    what: 'streaming TRL export of 1,000,000 judgments through HTTP',
    timeoutS: 1200,
    targets: [cmp('rows_per_s', '≥', 50_000), cmp('peak_rss_mb', '<', 300)],
  },
  {
    name: 'import',
    what: 'preference import of a 64 MiB file through HTTP',
    timeoutS: 1200,
    peer: {
      what: 'the same rows as multi-row INSERTs into a plain table (rows/s)',
      value: last(/raw multi-row INSERTs of the parsed rows (\d+) rows\/s/),
    },
    ratio: 'import_vs_raw_insert',
    targets: [cmp('rows_per_s', '≥', 20_000), cmp('peak_rss_mb', '<', 300)],
  },
  {
    name: 'durability',
    what: '1,000 raters submitting through server kills and PostgreSQL crashes',
    timeoutS: 1800,
    targets: [
      cmp('lost', '=', 0),
      cmp('duplicated', '=', 0),
      cmp('kills', '≥', 20),
      cmp('db_restarts', '≥', 5),
    ],
  },
  {
    name: 'ui',
    what: 'rating screen in Chromium: Enter to the next comparison drawn',
    timeoutS: 900,
    targets: [
      cmp('next_p95_ms', '<', 20),
      {
        text: 'stored all',
        met: (figures) => {
          const match = /^(\d+)\/(\d+)$/.exec(figures.stored ?? '');
          return match ? match[1] === match[2] : undefined;
        },
      },
    ],
  },
  {
    name: 'first-start',
    what: 'fresh start to the first demo comparison a rater can lease',
    timeoutS: 900,
    targets: [cmp('first_comparison_s', '≤', 120)],
  },
  {
    name: 'generate',
    what: 'generation job against an endpoint concurrency limit',
    timeoutS: 900,
    peer: { what: 'the ceiling: concurrency 32 / 0.2 s latency = 160 responses/s' },
    ratio: 'ceiling_ratio',
    targets: [cmp('ceiling_ratio', '≥', 0.8), cmp('duplicates', '=', 0), cmp('lost', '=', 0)],
  },
  {
    name: 'reliability',
    what: 'reward-model accuracy with unreliable raters, reliability weights vs none',
    timeoutS: 1800,
    peer: {
      what: 'unweighted and careful-raters-only fits, same seeds',
      value: (_output, figures) =>
        figures.unweighted_acc && figures.clean_acc
          ? `unweighted ${figures.unweighted_acc}, careful only ${figures.clean_acc}`
          : undefined,
    },
    targets: [
      {
        text: 'weighted_acc ≥ unweighted_acc + 0.03',
        met: (figures) => {
          const a = num(figures, 'weighted_acc');
          const b = num(figures, 'unweighted_acc');
          return a === undefined || b === undefined ? undefined : a >= b + 0.03 - 1e-9;
        },
      },
      {
        text: '|weighted_acc − clean_acc| ≤ 0.02',
        met: (figures) => {
          const a = num(figures, 'weighted_acc');
          const c = num(figures, 'clean_acc');
          return a === undefined || c === undefined ? undefined : Math.abs(a - c) <= 0.02 + 1e-9;
        },
      },
    ],
  },
  {
    name: 'active',
    what: 'judgments to a reward-model accuracy, uncertainty-ordered queue vs fixed order',
    timeoutS: 3600,
    peer: { what: 'the fixed order, same seeds and target' },
    ratio: 'judgments_ratio',
    targets: [cmp('judgments_ratio', '≤', 0.7)],
  },
];

/**
 * The figures of a benchmark's summary lines: every `key=value` on lines of the form
 * `<word>: ...` (the benchmark's own name or a label such as `peer:`), later lines winning.
 * Lines that are not of that form (`fold 1/5: ...`, `seed 2: ...`, progress) are ignored.
 */
export function parseFigures(output: string): Figures {
  const figures: Figures = {};
  for (const line of output.split(/\r?\n/)) {
    const match = /^([a-z][\w-]*): (.*)$/.exec(line.trim());
    if (!match) continue;
    for (const pair of match[2]!.matchAll(/(?:^|\s)([a-z][a-z0-9_]*)=([^\s,;()]+)/g))
      figures[pair[1]!] = pair[2]!.replace(/[.:]$/, '');
  }
  return figures;
}

/** The summary lines of `name`: `<name>: ` followed by at least one key=value. */
export function summaryLines(name: string, output: string): string[] {
  return output
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(
      (line) =>
        line.startsWith(`${name}: `) && /\s[a-z][a-z0-9_]*=\S/.test(` ${line.slice(name.length + 2)}`),
    );
}

export type Outcome = 'pass' | 'fail' | 'error' | 'timeout' | 'skipped' | 'not registered';

export interface BenchResult {
  name: string;
  outcome: Outcome;
  /** Why it did not run, failed or timed out, in a line. */
  reason?: string;
  lines: string[];
  figures: Figures;
  peer?: string;
  targets: { text: string; met: boolean | undefined }[];
  seconds?: number;
  loadBefore?: number[];
  loadAfter?: number[];
  env?: Record<string, string>;
  args?: string[];
  /** Output taken from an earlier run rather than run by this report. */
  fromEarlierRun?: boolean;
  /** The last lines of the output, for benchmarks that failed. */
  tail?: string[];
}

/** Reads a finished benchmark's output into a result (pass/fail/error from its figures). */
export function judge(
  spec: BenchSpec,
  output: string,
  exit: { code: number | null; timedOut: boolean },
): Pick<BenchResult, 'outcome' | 'reason' | 'lines' | 'figures' | 'peer' | 'targets' | 'tail'> {
  const lines = summaryLines(spec.name, output);
  const figures = parseFigures(lines.length ? output : '');
  const targets = spec.targets.map((target) => ({
    text: target.text,
    met: lines.length ? target.met(figures) : undefined,
  }));
  const peer = spec.peer?.value?.(output, figures);
  const tail = output.trimEnd().split(/\r?\n/).slice(-12);
  if (exit.timedOut) return { outcome: 'timeout', reason: 'timed out', lines, figures, peer, targets, tail };
  if (exit.code !== 0)
    return {
      outcome: 'error',
      reason: `exited with ${exit.code ?? 'a signal'}`,
      lines,
      figures,
      peer,
      targets,
      tail,
    };
  if (!lines.length)
    return { outcome: 'error', reason: 'no summary line', lines, figures, peer, targets, tail };
  if (targets.some((t) => t.met === undefined))
    return {
      outcome: 'error',
      reason: 'a figure the target needs is missing',
      lines,
      figures,
      peer,
      targets,
      tail,
    };
  return { outcome: targets.every((t) => t.met) ? 'pass' : 'fail', lines, figures, peer, targets };
}

export interface Machine {
  cores: number;
  memoryGiB: number;
  cpu: string;
  node: string;
  postgres: string;
  embeddedPostgres: string;
  platform: string;
}

const fmtLoad = (load?: number[]) => (load ? load.map((l) => l.toFixed(2)).join(' / ') : '—');
const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** bench/REPORT.md's text. */
export function renderReport(input: {
  date: Date;
  command: string;
  machine: Machine;
  specs: BenchSpec[];
  results: BenchResult[];
}): string {
  const { machine, results } = input;
  const specOf = (name: string) => input.specs.find((spec) => spec.name === name);
  const out: string[] = [];
  out.push('# Benchmark report', '');
  out.push(
    `Written by \`${input.command}\` on ${input.date.toISOString().replace(/\.\d+Z$/, 'Z')}. Each benchmark ran as its ` +
      'own process, one after another, on the machine below; figures are read from the lines it ' +
      'printed (quoted at the end). Peers are measured in the same run unless the peer column says ' +
      'otherwise. What each benchmark does and earlier numbers: [README.md](README.md).',
    '',
  );
  const counts = (['pass', 'fail', 'error', 'timeout', 'skipped', 'not registered'] as Outcome[])
    .map((outcome) => [outcome, results.filter((r) => r.outcome === outcome).length] as const)
    .filter(([, n]) => n > 0)
    .map(([outcome, n]) => `${n} ${outcome}`);
  out.push(`Outcome: ${counts.join(', ')}.`, '');
  out.push('## Machine', '');
  out.push('| cores | memory | CPU | Node | PostgreSQL (local) | PostgreSQL (embedded) | OS |');
  out.push('| ----- | ------ | --- | ---- | ------------------ | --------------------- | -- |');
  out.push(
    `| ${machine.cores} | ${machine.memoryGiB.toFixed(1)} GiB | ${cell(machine.cpu)} | ${machine.node} | ` +
      `${cell(machine.postgres)} | ${cell(machine.embeddedPostgres)} | ${cell(machine.platform)} |`,
    '',
  );
  out.push('## Results', '');
  out.push(
    '| benchmark | figures | peer (same run) | ratio | target | result | time | load before → after (1/5/15 min) |',
  );
  out.push(
    '| --------- | ------- | --------------- | ----- | ------ | ------ | ---- | -------------------------------- |',
  );
  for (const result of results) {
    const spec = specOf(result.name);
    const figures = Object.entries(result.figures)
      .filter(([key]) => key !== spec?.ratio)
      .map(([key, value]) => `${key}=${value}`)
      .join(', ');
    const peer = spec?.peer ? (result.peer ? `${spec.peer.what}: ${result.peer}` : spec.peer.what) : '—';
    const ratio = spec?.ratio ? (result.figures[spec.ratio] ?? '—') : '—';
    const target = result.targets
      .map((t) => `${t.text}${t.met === undefined ? '' : t.met ? ' ✓' : ' ✗'}`)
      .join('; ');
    const outcome =
      result.outcome === 'pass' || result.outcome === 'fail'
        ? `**${result.outcome}**`
        : `**${result.outcome}**${result.reason ? ` (${result.reason})` : ''}`;
    const notes = [
      result.fromEarlierRun ? 'from an earlier run, not this one' : '',
      result.env && Object.keys(result.env).length
        ? `shortened: ${Object.entries(result.env)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')}`
        : '',
      result.args?.length ? `args: ${result.args.join(' ')}` : '',
    ].filter(Boolean);
    out.push(
      `| \`${result.name}\`${notes.length ? ` (${notes.join('; ')})` : ''} | ${cell(figures || '—')} | ${cell(peer)} | ` +
        `${cell(ratio)} | ${cell(target || '—')} | ${outcome} | ` +
        `${result.seconds === undefined ? '—' : `${Math.round(result.seconds)} s`} | ` +
        `${fmtLoad(result.loadBefore)} → ${fmtLoad(result.loadAfter)} |`,
    );
  }
  out.push('', '## Lines', '');
  for (const result of results) {
    out.push(`### ${result.name}`, '');
    const spec = specOf(result.name);
    if (spec) out.push(`${spec.what}.`, '');
    if (result.outcome === 'skipped' || result.outcome === 'not registered') {
      out.push(`Not run: ${result.reason ?? result.outcome}.`, '');
      continue;
    }
    const command = [
      ...Object.entries(result.env ?? {}).map(([k, v]) => `${k}=${v}`),
      'npm run bench --',
      result.name,
      ...(result.args ?? []),
    ].join(' ');
    out.push(
      `\`${command}\`${result.fromEarlierRun ? ' (an earlier run; its output was given to the report)' : ''}`,
      '',
    );
    out.push('```', ...(result.lines.length ? result.lines : ['(no summary line)']), '```', '');
    if (result.tail && result.outcome !== 'pass' && result.outcome !== 'fail')
      out.push('Last lines of its output:', '', '```', ...result.tail, '```', '');
  }
  return out.join('\n').replace(/\n+$/, '\n');
}

interface Options {
  only?: string[];
  skip: string[];
  timeouts: Record<string, number>;
  env: Record<string, Record<string, string>>;
  from: Record<string, string>;
  out: string;
}

export function parseOptions(args: string[]): Options {
  const options: Options = { skip: [], timeouts: {}, env: {}, from: {}, out: 'bench/REPORT.md' };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i]!;
    const value = args[i + 1];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    i++;
    const pair = (text: string, sep: string) => {
      const at = text.indexOf(sep);
      if (at <= 0) throw new Error(`${flag} ${text}: expected name${sep}value`);
      return [text.slice(0, at), text.slice(at + 1)] as const;
    };
    if (flag === '--only') options.only = value.split(',').filter(Boolean);
    else if (flag === '--skip') options.skip.push(...value.split(',').filter(Boolean));
    else if (flag === '--timeout') {
      const [name, seconds] = pair(value, '=');
      if (!(Number(seconds) > 0)) throw new Error(`--timeout ${value}: seconds must be positive`);
      options.timeouts[name] = Number(seconds);
    } else if (flag === '--env') {
      const [name, assignment] = pair(value, ':');
      const [key, envValue] = pair(assignment, '=');
      (options.env[name] ??= {})[key] = envValue;
    } else if (flag === '--from') {
      const [name, file] = pair(value, '=');
      options.from[name] = file;
    } else if (flag === '--out') options.out = value;
    else throw new Error(`unknown option ${flag}`);
  }
  return options;
}

function runChild(
  name: string,
  env: Record<string, string>,
  timeoutS: number,
): Promise<{ output: string; code: number | null; timedOut: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(path.resolve('node_modules/.bin/tsx'), ['bench/run.ts', name], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group, so that a timeout ends the servers it started too
    });
    let output = '';
    const take = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      process.stdout.write(chunk);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    let timedOut = false;
    const signal = (sig: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, sig);
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      signal('SIGTERM');
      setTimeout(() => signal('SIGKILL'), 15_000).unref();
    }, timeoutS * 1000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ output, code, timedOut });
    });
  });
}

async function describeMachine(): Promise<Machine> {
  const cpus = os.cpus();
  let postgres: string;
  const url =
    process.env.TEST_DATABASE_URL ??
    process.env.DATABASE_URL ??
    'postgresql://postgres@127.0.0.1:5432/postgres';
  try {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
    postgres = rows[0]!.server_version;
    await client.end();
  } catch {
    postgres = 'not reachable';
  }
  let embeddedPostgres = 'unknown';
  try {
    const { packagedBinaries } = await import('../core/db/embedded.js');
    const binaries = await packagedBinaries();
    embeddedPostgres = execFileSync(binaries.postgres, ['--version'], { encoding: 'utf8' })
      .trim()
      .replace(/^postgres \(PostgreSQL\) /, '');
  } catch {
    // no embedded binaries for this platform
  }
  return {
    cores: cpus.length,
    memoryGiB: os.totalmem() / 2 ** 30,
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    node: process.version,
    postgres,
    embeddedPostgres,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
  };
}

/** Runs the benchmarks (`registered`: the names bench/run.ts knows) and writes the report. */
export async function main(args: string[], registered: string[] = []): Promise<void> {
  const options = parseOptions(args);
  const specs = [
    ...BENCHMARKS,
    // A benchmark added to run.ts but not to the table above still runs, without a target.
    ...registered
      .filter((name) => name !== 'report' && !BENCHMARKS.some((spec) => spec.name === name))
      .map((name): BenchSpec => ({
        name,
        what: 'no target in bench/report.ts',
        timeoutS: 1800,
        targets: [],
      })),
  ];
  for (const name of [...(options.only ?? []), ...options.skip])
    if (!specs.some((spec) => spec.name === name)) throw new Error(`unknown benchmark ${name}`);
  const machine = await describeMachine();
  const results: BenchResult[] = [];
  // The command as typed, less the files given to --from and --out (local paths).
  const shown = args.map((arg, i) =>
    args[i - 1] === '--from'
      ? arg.replace(/=.*/, '=<its saved output>')
      : args[i - 1] === '--out'
        ? '<file>'
        : arg,
  );
  const command = `npm run bench${args.length ? ` -- report ${shown.join(' ')}` : ''}`;
  // Written after each benchmark, so that a report stopped midway still says what it measured.
  const write = async () => {
    const pending = specs.slice(results.length).map((spec): BenchResult => ({
      name: spec.name,
      outcome: 'skipped',
      reason: 'not reached: the report was stopped before it',
      lines: [],
      figures: {},
      targets: spec.targets.map((t) => ({ text: t.text, met: undefined })),
    }));
    const text = renderReport({
      date: new Date(),
      command,
      machine,
      specs,
      results: [...results, ...pending],
    });
    // Laid out as the repository's Prettier would (the file is committed).
    const config = (await prettier.resolveConfig(options.out)) ?? {};
    writeFileSync(options.out, await prettier.format(text, { ...config, parser: 'markdown' }));
  };
  for (const spec of specs) {
    if (results.length) await write();
    const base = {
      name: spec.name,
      lines: [],
      figures: {},
      targets: spec.targets.map((t) => ({ text: t.text, met: undefined })),
    };
    if (registered.length && !registered.includes(spec.name)) {
      results.push({ ...base, outcome: 'not registered', reason: 'not in bench/run.ts in this version' });
      continue;
    }
    if ((options.only && !options.only.includes(spec.name)) || options.skip.includes(spec.name)) {
      results.push({
        ...base,
        outcome: 'skipped',
        reason: options.only ? 'not named by --only' : 'left out by --skip',
      });
      continue;
    }
    const env = options.env[spec.name] ?? {};
    if (options.from[spec.name]) {
      const output = readFileSync(options.from[spec.name]!, 'utf8');
      results.push({
        name: spec.name,
        ...judge(spec, output, { code: 0, timedOut: false }),
        env,
        fromEarlierRun: true,
      });
      continue;
    }
    const timeoutS = options.timeouts[spec.name] ?? spec.timeoutS;
    console.log(`report: ${spec.name} (time limit ${timeoutS} s)`);
    const loadBefore = os.loadavg();
    const started = performance.now();
    const exit = await runChild(spec.name, env, timeoutS);
    const seconds = (performance.now() - started) / 1000;
    const loadAfter = os.loadavg();
    const result: BenchResult = {
      name: spec.name,
      ...judge(spec, exit.output, exit),
      seconds,
      loadBefore,
      loadAfter,
      env,
    };
    if (result.outcome === 'timeout') result.reason = `timed out after ${timeoutS} s`;
    console.log(`report: ${spec.name}: ${result.outcome}${result.reason ? ` (${result.reason})` : ''}`);
    results.push(result);
  }
  await write();
  console.log(`report: wrote ${options.out}`);
}
