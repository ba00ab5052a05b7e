// Benchmark dispatcher: `npm run bench -- <name> [args]`. Each benchmark is a module exporting
// main(args); add one by adding a line to the map below.
export type Benchmark = { main(args: string[]): Promise<void> };

const benchmarks: Record<string, () => Promise<Benchmark>> = {
  'rm-hh': () => import('./rm-hh.js'), // reward-model accuracy on real HH-RLHF preferences
  speed: () => import('./speed.js'), // tfjs training step time against PyTorch on the CPU
  loop: () => import('./loop.js'), // five rounds of the closed loop on the demo; win rate vs the SFT policy
  rating: () => import('./rating.js'), // submissions and next-comparison latency through the API vs raw INSERTs
  export: () => import('./export.js'), // streaming export of 1,000,000 judgments: rows/s and peak RSS
  import: () => import('./import.js'), // preference import of a file at the 64 MB limit: rows/s and peak RSS
  durability: () => import('./durability.js'), // submissions under repeated server kills and PostgreSQL crashes
  ui: () => import('./ui.js'), // the rating screen in Chromium: Enter to the next comparison drawn, judgments stored
  'first-start': () => import('./first-start.js'), // a fresh start to the first demo comparison a rater can lease
};

async function run(): Promise<void> {
  const [name, ...args] = process.argv.slice(2);
  const load = name ? benchmarks[name] : undefined;
  if (!load) {
    console.error(`usage: npm run bench -- <${Object.keys(benchmarks).join('|')}> [args]`);
    process.exit(2);
  }
  await (await load()).main(args);
}

await run();
