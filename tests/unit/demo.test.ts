// The demo's prompts: held-out prompts ask about words no practice prompt uses, every sum is
// practised, the same seed gives the same prompts, and demonstrations are noisy as documented.
import { describe, expect, it } from 'vitest';
import { DEMO_PROMPTS, demoDemonstrations, demoTasks, demoUtility, isCorrect } from '../../core/demo.js';

const wordOf = (prompt: string) => prompt.split(': ')[1];

describe('demo tasks', () => {
  const { train, heldOut } = demoTasks(DEMO_PROMPTS);

  it('holds out whole words: no practice prompt uses a held-out word', () => {
    expect(heldOut).toHaveLength(DEMO_PROMPTS.heldOut);
    expect(train).toHaveLength(DEMO_PROMPTS.train);
    const practised = new Set(train.map((t) => wordOf(t.prompt)).filter(Boolean));
    for (const task of heldOut) {
      expect(task.prompt).toMatch(/^(reverse|upper|length): [a-z]{3,5}$/);
      expect(practised.has(wordOf(task.prompt))).toBe(false);
    }
    expect(new Set([...train, ...heldOut].map((t) => t.prompt)).size).toBe(train.length + heldOut.length);
  });

  it('practises every sum of two digits, mixed among the word tasks', () => {
    const sums = train.filter((t) => t.prompt.includes('+'));
    expect(sums).toHaveLength(100);
    for (const t of sums) {
      const [a, b] = t.prompt.slice(0, -1).split('+').map(Number);
      expect(t.answer).toBe(String(a! + b!));
    }
    expect(train.slice(0, 100).some((t) => !t.prompt.includes('+'))).toBe(true);
  });

  it('is reproducible from its seed and scales down (a quarter sums)', () => {
    expect(demoTasks(DEMO_PROMPTS)).toEqual({ train, heldOut });
    const small = demoTasks({ train: 40, heldOut: 10 });
    expect(small.heldOut).toHaveLength(10);
    expect(small.train.filter((t) => t.prompt.includes('+'))).toHaveLength(10);
    expect(() => demoTasks({ train: 100_000, heldOut: 60 })).toThrow(/practice tasks exist/);
  });

  it('answers its tasks right', () => {
    expect(demoTasks({ train: 400, heldOut: 0 }).train.every((t) => t.answer.length > 0)).toBe(true);
    const reverse = train.find((t) => t.prompt.startsWith('reverse: '))!;
    expect([...wordOf(reverse.prompt)!].reverse().join('')).toBe(reverse.answer);
  });
});

describe('demo demonstrations', () => {
  it('are a quarter wrong and half padded into a sentence', () => {
    const tasks = demoTasks(DEMO_PROMPTS).train;
    const demos = demoDemonstrations(tasks);
    expect(demos).toHaveLength(tasks.length * 3);
    const answers = new Map(tasks.map((t) => [t.prompt, t.answer]));
    const wrong = demos.filter((d) => !isCorrect(d.response, answers.get(d.prompt)!)).length / demos.length;
    const padded = demos.filter((d) => d.response.startsWith('The answer is ')).length / demos.length;
    expect(wrong).toBeGreaterThan(0.2);
    expect(wrong).toBeLessThan(0.3);
    expect(padded).toBeGreaterThan(0.45);
    expect(padded).toBeLessThan(0.55);
  });

  it('are judged by the hidden utility: right first, then short', () => {
    expect(demoUtility('12', '12')).toBeGreaterThan(demoUtility('The answer is 12.', '12'));
    expect(demoUtility('The answer is 12.', '12')).toBeGreaterThan(demoUtility('13', '12'));
  });
});
