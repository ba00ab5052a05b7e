// Benchmark dispatcher: `npm run bench -- <name> [args]`. Each benchmark is a module exporting
// main(args); add one by adding a line to the map below.
export type Benchmark = { main(args: string[]): Promise<void> };

const benchmarks: Record<string, () => Promise<Benchmark>> = {
  'rm-hh': () => import('./rm-hh.js'), // reward-model accuracy on real HH-RLHF preferences
  speed: () => import('./speed.js'), // tfjs training step time against PyTorch on the CPU
  loop: () => import('./loop.js'), // five rounds of the closed loop on the demo; win rate vs the SFT policy
  rating: () => import('./rating.js'), // submissions and next-comparison latency through the API vs raw INSERTs
  'rating-scale': () => import('./rating-scale.js'), // the rating phases at 100k, 1M and 5M comparisons and 200 and 1,000 raters; the curve
  export: () => import('./export.js'), // streaming export of 1,000,000 judgments: rows/s and peak RSS
  import: () => import('./import.js'), // preference import of a file at the 64 MB limit: rows/s and peak RSS
  durability: () => import('./durability.js'), // submissions under repeated server kills and PostgreSQL crashes
  ui: () => import('./ui.js'), // the rating screen in Chromium: Enter to the next comparison drawn, judgments stored
  'first-start': () => import('./first-start.js'), // a fresh start to the first demo comparison a rater can lease
  reliability: () => import('./reliability.js'), // reward-model accuracy with 25% random and 10% inverting raters: reliability weights vs none vs careful raters only
  generate: () => import('./generate.js'), // a generation job against an endpoint's concurrency limit: rate vs the ceiling, duplicates, lost
  'trl-round': () => import('./trl-round.js'), // a TRL round end to end through the Python worker (needs LOOM_TRL_PYTHON): RM accuracy, DPO loss, wall time
  active: () => import('./active.js'), // judgments to a held-out reward-model accuracy on the demo: uncertainty queue order vs the fixed order
};

async function run(): Promise<void> {
  const [name, ...args] = process.argv.slice(2);
  // No name: every benchmark, one after another, into bench/REPORT.md (bench/report.ts).
  if (!name || name === 'report') {
    await (await import('./report.js')).main(args, Object.keys(benchmarks));
    return;
  }
  const load = benchmarks[name];
  if (!load) {
    console.error(
      `usage: npm run bench [-- report [options] | -- <${Object.keys(benchmarks).join('|')}> [args]]`,
    );
    process.exit(2);
  }
  await (await load()).main(args);
}

await run();
