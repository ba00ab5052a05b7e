// The trainer's pairing of sampled responses (the demo's first comparisons, and a new version's
// answers against its parent's): equal texts are drawn again, and never paired.
import { describe, expect, it } from 'vitest';
import { distinctPairs, redrawRepeats, REDRAWS } from '../../trainer/jobs/pairing.js';

describe('pairing sampled responses', () => {
  it('draws again where samples of one prompt coincide, and only there', () => {
    // Three prompts, two samples each: the first and third coincide.
    const samples = [
      ['4', '7', 'cat'],
      ['4', '8', 'cat'],
    ];
    const asked: number[][] = [];
    const fresh = [['4', 'tac'], ['5']];
    const left = redrawRepeats(samples, (prompts) => {
      asked.push(prompts);
      return fresh[asked.length - 1]!;
    });
    // First redraw: prompts 0 and 2; prompt 0 says "4" again, so it is asked once more.
    expect(asked).toEqual([[0, 2], [0]]);
    expect(samples).toEqual([
      ['4', '7', 'cat'],
      ['5', '8', 'tac'],
    ]);
    expect(left).toBe(0);
  });

  it('gives up after a few redraws and says how many prompts still coincide', () => {
    const samples = [['4'], ['4'], ['4']];
    let draws = 0;
    const left = redrawRepeats(samples, (prompts) => {
      draws++;
      return prompts.map(() => '4');
    });
    expect(draws).toBe(REDRAWS);
    expect(left).toBe(1);
  });

  it('pairs only responses whose texts differ', () => {
    const responses = ['4', '4', '5', '4'].map((text, i) => ({ id: `r${i}`, text }));
    expect(distinctPairs(responses).map(([a, b]) => `${a.id}-${b.id}`)).toEqual(['r0-r2', 'r1-r2', 'r2-r3']);
    expect(distinctPairs([{ text: 'x' }, { text: 'x' }])).toEqual([]);
  });
});
