// Rounds on an external training engine (TRL) as the web app shows and launches them: the engines
// to choose from, the engine's algorithms (each with the round algorithm it is recorded as), its
// defaults and the limits of its settings, read from the shared schema.
// Only the Rounds page imports this module: the shared engine schema brings the TypeBox runtime
// with it (about 14 kB gzipped), which the other pages do not load.
import type { Algorithm, Engine, EngineSettings, Round } from '$shared/index.js';
import { ENGINE_DEFAULTS, EngineAlgorithmSchema, EngineSettingsSchema } from '$shared/engine.js';

export { ENGINE_DEFAULTS };

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
export const ENGINE_ALGORITHMS = EngineAlgorithmSchema.anyOf.map((literal) => ({
  value: literal.const,
  ...ENGINE_ALGORITHM_INFO[literal.const],
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

type NumericSetting = 'loraRank' | 'beta' | 'learningRate' | 'epochs';

/** A numeric engine setting's bounds, as the server checks them. */
function limitsOf(key: NumericSetting): Limits {
  const schema = EngineSettingsSchema.properties[key] as {
    type?: string;
    minimum?: number;
    exclusiveMinimum?: number;
    maximum?: number;
  };
  const exclusiveMin = typeof schema.exclusiveMinimum === 'number';
  return {
    min: (exclusiveMin ? schema.exclusiveMinimum : schema.minimum) ?? -Infinity,
    max: schema.maximum ?? Infinity,
    integer: schema.type === 'integer',
    exclusiveMin,
  };
}

export const ENGINE_LIMITS: Record<NumericSetting, Limits> = {
  loraRank: limitsOf('loraRank'),
  beta: limitsOf('beta'),
  learningRate: limitsOf('learningRate'),
  epochs: limitsOf('epochs'),
};

/** The base model's longest name (the server refuses longer ones). */
export const BASE_MODEL_MAX_LENGTH =
  (EngineSettingsSchema.properties.baseModel as { maxLength?: number }).maxLength ?? 500;

/** "TRL · Qwen/Qwen2.5-0.5B-Instruct" for a round on an external engine; null for a built-in one. */
export function engineSummary(round: Pick<Round, 'engine' | 'engineSettings'>): string | null {
  if (round.engine === 'builtin') return null;
  const base = round.engineSettings.baseModel;
  const name = round.engine === 'trl' ? 'TRL' : round.engine;
  return typeof base === 'string' && base !== '' ? `${name} · ${base}` : name;
}
