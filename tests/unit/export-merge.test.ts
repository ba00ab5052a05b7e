// The export's cursor merge without a database: judgments (by comparison) joined to comparisons
// (by id) batch by batch, whole comparisons at a time.
import { describe, expect, it } from 'vitest';
import { mergeJudgments, type JudgmentRow } from '../../core/services/export-merge.js';
import type { ComparisonTuple, JudgmentTuple } from '../../core/services/export-selection.js';

type Choice = 'A' | 'B' | 'TIE' | 'BOTH_BAD';

function judgment(id: string, comparisonId: string, choice: Choice, ranks: number[] = []): JudgmentTuple {
  return [
    id,
    comparisonId,
    null,
    'HUMAN',
    null,
    choice,
    null,
    null,
    [],
    null,
    false,
    null,
    '2026-01-01T00:00:00.000Z',
    ranks,
  ];
}

function comparison(id: string, ranked: string[] | null = null): ComparisonTuple {
  return [
    id,
    `prompt-${id}`,
    [{ role: 'user', content: id }],
    'TRAIN',
    `a-${id}`,
    `b-${id}`,
    null,
    null,
    null,
    null,
    null,
    false,
    ranked ? ranked.map((text) => `id-${text}`) : [],
    ranked,
    ranked ? ranked.map((text) => `source-${text}`) : null,
    ranked ? ranked.map(() => null) : null,
  ];
}

/** Batches handed out one per call, and the calls made. */
function source<T>(batches: T[][]) {
  const calls = { count: 0 };
  const next = () => {
    const batch = batches[calls.count] ?? [];
    calls.count++;
    return Promise.resolve(batch);
  };
  return { next, calls };
}

async function collect(generator: AsyncGenerator<{ groups: JudgmentRow[][]; judgments: number }>) {
  const batches: { groups: string[][]; judgments: number }[] = [];
  for await (const { groups, judgments } of generator)
    batches.push({ groups: groups.map((group) => group.map((row) => row.id)), judgments });
  return batches;
}

describe('mergeJudgments', () => {
  it('yields whole comparisons: a group split across batches waits for its end', async () => {
    const judgments = source([
      [judgment('j1', 'c1', 'A'), judgment('j2', 'c1', 'B')],
      [judgment('j3', 'c1', 'A'), judgment('j4', 'c3', 'TIE')],
      [judgment('j5', 'c3', 'TIE')],
    ]);
    // c2 has no selected judgment (a bulk export reads every comparison of the project).
    const comparisons = source([[comparison('c1'), comparison('c2')], [comparison('c3')]]);
    const batches = await collect(mergeJudgments(judgments.next, comparisons.next, 2));
    expect(batches).toEqual([
      { groups: [], judgments: 2 },
      { groups: [['j1', 'j2', 'j3']], judgments: 2 },
      { groups: [['j4', 'j5']], judgments: 1 },
    ]);
    expect(judgments.calls.count).toBe(3);
  });

  it('joins each judgment to its comparison and sets votes and agreement on the group', async () => {
    const judgments = source([
      [judgment('j1', 'c1', 'A'), judgment('j2', 'c1', 'A'), judgment('j3', 'c1', 'B')],
    ]);
    const comparisons = source([[comparison('c1')]]);
    const rows: JudgmentRow[] = [];
    for await (const { groups } of mergeJudgments(judgments.next, comparisons.next, 10))
      rows.push(...groups.flat());
    expect(rows).toHaveLength(3);
    expect(rows[2]).toMatchObject({
      id: 'j3',
      comparisonId: 'c1',
      promptId: 'prompt-c1',
      choice: 'B',
      responseA: 'a-c1',
      responseB: 'b-c1',
      messages: [{ role: 'user', content: 'c1' }],
      votes: 3,
    });
    expect(rows.map((row) => row.agreement)).toEqual([2 / 3, 2 / 3, 2 / 3]);
  });

  it('asks for the next batch before handing on the current one, and stops after a short batch', async () => {
    const judgments = source([[judgment('j1', 'c1', 'A')], [judgment('j2', 'c2', 'B')], []]);
    const comparisons = source([[comparison('c1'), comparison('c2')]]);
    const generator = mergeJudgments(judgments.next, comparisons.next, 1);
    await generator.next();
    expect(judgments.calls.count).toBe(2);
    await generator.next();
    expect(judgments.calls.count).toBe(3);
    // The empty batch ends the judgments: the group still open goes out with it.
    const last = await generator.next();
    expect(last.done).toBe(false);
    expect(last.value!.judgments).toBe(0);
    expect(last.value!.groups.map((group) => group.map((row) => row.id))).toEqual([['j2']]);
    expect((await generator.next()).done).toBe(true);
    expect(judgments.calls.count).toBe(3);
  });

  it('fails when a judgment’s comparison is not among the comparisons', async () => {
    const judgments = source([[judgment('j1', 'c9', 'A')]]);
    const comparisons = source([[comparison('c1')]]);
    await expect(collect(mergeJudgments(judgments.next, comparisons.next, 10))).rejects.toThrow(
      'comparison c9 missing from the export',
    );
  });
});

describe('rankings in the merge', () => {
  it('become one group per pair of responses for pairwise files, and stay whole otherwise', async () => {
    // Two raters rank x, y, z: one x > y > z, the other y > x = z.
    const judgments = [judgment('j1', 'r', 'A', [1, 2, 3]), judgment('j2', 'r', 'B', [2, 1, 2])];
    const rows: JudgmentRow[][] = [];
    for await (const { groups } of mergeJudgments(
      source([judgments]).next,
      source([[comparison('r', ['x', 'y', 'z'])]]).next,
      10,
    ))
      rows.push(...groups);
    expect(rows.map((group) => group[0]!.comparisonId)).toEqual(['r:0-1', 'r:0-2', 'r:1-2']);
    expect(rows.map((group) => group.map((row) => row.choice))).toEqual([
      ['A', 'B'],
      ['A', 'TIE'],
      ['A', 'A'],
    ]);
    expect(rows[2]!.map((row) => [row.responseA, row.responseB, row.sourceA, row.fromRanking])).toEqual([
      ['y', 'z', 'source-y', 'r'],
      ['y', 'z', 'source-y', 'r'],
    ]);
    expect(rows.map((group) => group[0]!.agreement)).toEqual([0.5, 0.5, 1]);

    const whole: JudgmentRow[][] = [];
    for await (const { groups } of mergeJudgments(
      source([judgments]).next,
      source([[comparison('r', ['x', 'y', 'z'])]]).next,
      10,
      { rankingPairs: false },
    ))
      whole.push(...groups);
    expect(whole).toHaveLength(1);
    expect(whole[0]!.map((row) => row.ranks)).toEqual([
      [1, 2, 3],
      [2, 1, 2],
    ]);
    expect(whole[0]![0]!.ranked?.texts).toEqual(['x', 'y', 'z']);
  });
});
