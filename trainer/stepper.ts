// What every policy-optimization algorithm exposes: its state between iterations and one step.
// The round runner (jobs/algorithms.ts) calls step() once per iteration, reporting progress in
// between; the CLI and the tests run a fixed number of steps with the algorithms' train* functions.
import type { DataParallel } from './data-parallel.js';
import type { AdamW } from './optimizer.js';
import type { SamplingHelper } from './parallel-sampling.js';

export interface Stepper<S> {
  /** Carries the algorithm's optimizer state from one step to the next (and into checkpoints). */
  readonly optimizer: AdamW;
  /** Runs the next iteration and returns its statistics. */
  step(): S;
  /** Sets the KL coefficient of the next steps (an adaptive KL controller's β); absent without one. */
  setBeta?(beta: number): void;
}

export interface StepperOptions {
  /** Continues an earlier run's optimizer; a new AdamW otherwise. */
  optimizer?: AdamW;
  /** Samples rollouts on this thread and a worker thread. */
  helper?: SamplingHelper;
  /** Splits gradient steps between this thread and worker threads. */
  parallel?: DataParallel;
}

/** Runs `iterations` steps and returns their statistics. */
export function runSteps<S>(stepper: Stepper<S>, iterations: number, onStep?: (stats: S) => void): S[] {
  const history: S[] = [];
  for (let it = 0; it < iterations; it++) {
    const stats = stepper.step();
    history.push(stats);
    onStep?.(stats);
  }
  return history;
}
