// Pairs of sampled responses for raters: never two equal texts (a rater cannot prefer one of them,
// and the pair would train as chosen == rejected). Where samples of one prompt coincide, more are
// drawn for that prompt a few times; a prompt whose samples still coincide gets no comparison.
import { comparable } from '../../core/services/comparisons.js';

/** Extra draws for prompts whose samples coincide, before such a prompt is given up. */
export const REDRAWS = 4;

/**
 * Replaces samples that repeat an earlier sample of the same prompt with fresh draws, up to
 * `redraws` times. `samples[s][p]` is sample s of prompt p; `draw(prompts)` returns one new text
 * for each listed prompt index, in order. Returns how many prompts still have a repeat.
 */
export function redrawRepeats(
  samples: string[][],
  draw: (prompts: number[]) => string[],
  redraws = REDRAWS,
): number {
  const prompts = samples[0]?.length ?? 0;
  /** (sample, prompt) positions whose text an earlier sample of the prompt has already. */
  const repeats = (): [number, number][] => {
    const found: [number, number][] = [];
    for (let p = 0; p < prompts; p++) {
      const seen: string[] = [];
      for (let s = 0; s < samples.length; s++) {
        const text = samples[s]![p]!;
        if (seen.some((other) => !comparable(other, text))) found.push([s, p]);
        else seen.push(text);
      }
    }
    return found;
  };
  let left = repeats();
  for (let attempt = 0; attempt < redraws && left.length; attempt++) {
    const fresh = draw(left.map(([, p]) => p));
    left.forEach(([s, p], i) => (samples[s]![p] = fresh[i]!));
    left = repeats();
  }
  return new Set(left.map(([, p]) => p)).size;
}

/** Every pair of responses of one prompt whose texts differ, in order (a before b). */
export function distinctPairs<T extends { text: string }>(responses: readonly T[]): [T, T][] {
  const pairs: [T, T][] = [];
  for (let i = 0; i < responses.length; i++)
    for (let j = i + 1; j < responses.length; j++)
      if (comparable(responses[i]!.text, responses[j]!.text)) pairs.push([responses[i]!, responses[j]!]);
  return pairs;
}
