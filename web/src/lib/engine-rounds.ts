// Rounds on an external training engine (TRL) as the web app shows and launches them: the engines
// to choose from, the engine's algorithms (each with the round algorithm it is recorded as), its
// defaults and the limits of its settings (those the schema checks).
import type { Algorithm, Engine, EngineSettings, Round } from '$shared/index.js';
import {
  BASE_MODEL_MAX_LENGTH,
  ENGINE_ALGORITHM_VALUES,
  ENGINE_DEFAULTS,
  ENGINE_LIMITS,
} from '$shared/engine-defaults.js';

export { BASE_MODEL_MAX_LENGTH, ENGINE_DEFAULTS, ENGINE_LIMITS };

export type EngineAlgorithm = NonNullable<EngineSettings['algorithm']>;

export const ENGINES: readonly { value: Engine; label: string; description: string }[] = [
  {
    value: 'builtin',
    label: 'Built-in (TensorFlow.js on this server)',
    description: 'The small built-in model trains here, with the settings below.',
  },
  {
    value: 'trl',
    label: 'TRL (an external GPU worker)',
    description:
      'A Hugging Face TRL worker on a GPU machine takes the round over HTTP and trains the model you name.',
  },
];

const ENGINE_ALGORITHM_INFO: Record<EngineAlgorithm, { round: Algorithm; label: string; hint: string }> = {
  dpo: { round: 'DPO', label: 'DPO', hint: 'Learns from the judgments themselves (DPOTrainer).' },
  rloo: { round: 'RLOO', label: 'RLOO', hint: 'Samples online, scored by the round’s reward model.' },
  grpo: { round: 'GRPO', label: 'GRPO', hint: 'Samples online in groups, scored by the reward model.' },
};

/** The engine's algorithms in the schema's order, with the round algorithm each is recorded as. */
export const ENGINE_ALGORITHMS = ENGINE_ALGORITHM_VALUES.map((value) => ({
  value,
  ...ENGINE_ALGORITHM_INFO[value],
}));

export function roundAlgorithmOf(algorithm: EngineAlgorithm): Algorithm {
  return ENGINE_ALGORITHM_INFO[algorithm].round;
}

export interface Limits {
  min: number;
  max: number;
  integer: boolean;
  exclusiveMin: boolean;
}

/** "TRL · Qwen/Qwen2.5-0.5B-Instruct" for a round on an external engine; null for a built-in one. */
export function engineSummary(round: Pick<Round, 'engine' | 'engineSettings'>): string | null {
  if (round.engine === 'builtin') return null;
  const base = round.engineSettings.baseModel;
  const name = round.engine === 'trl' ? 'TRL' : round.engine;
  return typeof base === 'string' && base !== '' ? `${name} · ${base}` : name;
}
