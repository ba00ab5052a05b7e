import { describe, expect, it } from 'vitest';
import {
  BENCHMARKS,
  judge,
  parseFigures,
  parseOptions,
  renderReport,
  summaryLines,
} from '../../../bench/report.js';

const spec = (name: string) => BENCHMARKS.find((s) => s.name === name)!;

const importOutput = [
  'building the server (npm run build:server)...',
  'imported 118105 rows in 19.1 s: prompts 200, comparisons 59052; server RSS 222 MB before, 217 MB after, peak 223 MB',
  'peer: raw multi-row INSERTs of the parsed rows 46421 rows/s; import_vs_raw_insert=0.133',
  'import: rows_per_s=6175 peak_rss_mb=223',
].join('\n');

describe('summary lines', () => {
  it('reads key=value figures from labelled lines and ignores the rest', () => {
    const output = [
      'fold 1/5: accuracy=0.6100 pairs=469 (812 ms)',
      'seed 0: held-out accuracy on 120 pairs: weighted 0.8, unweighted 0.7',
      'rm-hh: 2352 pairs (6 skipped: identical or empty sides)',
      'rm-hh: accuracy=0.6309 folds=5 pairs=2346',
    ].join('\n');
    expect(parseFigures(output)).toEqual({ accuracy: '0.6309', folds: '5', pairs: '2346' });
    expect(summaryLines('rm-hh', output)).toEqual(['rm-hh: accuracy=0.6309 folds=5 pairs=2346']);
  });

  it('takes the ratio from a peer line and the fraction form of stored', () => {
    expect(parseFigures(importOutput)).toEqual({
      import_vs_raw_insert: '0.133',
      rows_per_s: '6175',
      peak_rss_mb: '223',
    });
    expect(parseFigures('ui: next_p95_ms=15.8 stored=40/40')).toEqual({
      next_p95_ms: '15.8',
      stored: '40/40',
    });
  });
});

describe('judging a run', () => {
  it('fails a run below its target and reads the peer from the output', () => {
    const result = judge(spec('import'), importOutput, { code: 0, timedOut: false });
    expect(result.outcome).toBe('fail');
    expect(result.peer).toBe('46421');
    expect(result.targets).toEqual([
      { text: 'rows_per_s ≥ 20,000', met: false },
      { text: 'peak_rss_mb < 300', met: true },
    ]);
  });

  it('passes durability at full size and fails it short of the kills', () => {
    const line = (kills: number) =>
      `durability: acknowledged=24838 lost=0 duplicated=0 kills=${kills} db_restarts=5`;
    expect(judge(spec('durability'), line(20), { code: 0, timedOut: false }).outcome).toBe('pass');
    expect(judge(spec('durability'), line(7), { code: 0, timedOut: false }).outcome).toBe('fail');
  });

  it('reports a crash, a timeout and a missing line as such', () => {
    expect(
      judge(spec('ui'), 'ui: building the web UI\nError: boom', { code: 1, timedOut: false }),
    ).toMatchObject({
      outcome: 'error',
      reason: 'exited with 1',
    });
    expect(judge(spec('loop'), 'loop: [3 s] round 1', { code: null, timedOut: true }).outcome).toBe(
      'timeout',
    );
    expect(judge(spec('rating'), 'rating: raw inserts 9000/s', { code: 0, timedOut: false })).toMatchObject({
      outcome: 'error',
      reason: 'no summary line',
    });
  });

  it('checks the reliability targets against each other', () => {
    const run = (w: number) =>
      judge(spec('reliability'), `reliability: weighted_acc=${w} unweighted_acc=0.7985 clean_acc=0.8300`, {
        code: 0,
        timedOut: false,
      });
    expect(run(0.8359).outcome).toBe('pass');
    expect(run(0.81).targets.map((t) => t.met)).toEqual([false, true]);
  });
});

describe('the report', () => {
  it('shows figures, peer, ratio, target, outcome, machine and load, and what did not run', () => {
    const ran = judge(spec('import'), importOutput, { code: 0, timedOut: false });
    const text = renderReport({
      date: new Date('2026-12-05T17:00:00Z'),
      command: 'npm run bench -- report --only import,loop',
      machine: {
        cores: 2,
        memoryGiB: 23.4,
        cpu: 'Test CPU @ 2.0GHz',
        node: 'v22.0.0',
        postgres: '15.8',
        embeddedPostgres: '18.1',
        platform: 'Linux 6.1 x64',
      },
      specs: BENCHMARKS,
      results: [
        { name: 'import', ...ran, seconds: 61.2, loadBefore: [1, 2, 3], loadAfter: [4, 5, 6] },
        {
          name: 'loop',
          ...judge(spec('loop'), 'loop: [3 s] round 1', { code: null, timedOut: true }),
          reason: 'timed out after 60 s',
          env: { BENCH_ROUNDS: '1' },
          seconds: 60,
        },
        {
          name: 'speed',
          outcome: 'skipped',
          reason: 'left out by --skip',
          lines: [],
          figures: {},
          targets: [],
        },
      ],
    });
    expect(text).toContain('| 2 | 23.4 GiB | Test CPU @ 2.0GHz | v22.0.0 | 15.8 | 18.1 | Linux 6.1 x64 |');
    expect(text).toContain(
      '| `import` | rows_per_s=6175, peak_rss_mb=223 | the same rows as multi-row INSERTs into a plain table (rows/s): 46421 | 0.133 | rows_per_s ≥ 20,000 ✗; peak_rss_mb < 300 ✓ | **fail** | 61 s | 1.00 / 2.00 / 3.00 → 4.00 / 5.00 / 6.00 |',
    );
    expect(text).toMatch(
      /\| `loop` \(shortened: BENCH_ROUNDS=1\) \|.*\*\*timeout\*\* \(timed out after 60 s\)/,
    );
    expect(text).toContain('Not run: left out by --skip.');
    expect(text).toContain('Outcome: 1 fail, 1 timeout, 1 skipped.');
    expect(text).toContain('```\nimport: rows_per_s=6175 peak_rss_mb=223\n```');
  });

  it('reads its options', () => {
    expect(
      parseOptions([
        '--only',
        'rating,ui',
        '--timeout',
        'ui=300',
        '--env',
        'loop:BENCH_ROUNDS=2',
        '--from',
        'durability=d.log',
      ]),
    ).toEqual({
      only: ['rating', 'ui'],
      skip: [],
      timeouts: { ui: 300 },
      env: { loop: { BENCH_ROUNDS: '2' } },
      from: { durability: 'd.log' },
      out: 'bench/REPORT.md',
    });
    expect(() => parseOptions(['--timeout', 'ui=-1'])).toThrow(/positive/);
    expect(() => parseOptions(['--bogus', 'x'])).toThrow(/unknown option/);
  });
});
