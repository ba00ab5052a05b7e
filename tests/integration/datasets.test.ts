// Researchers' data against real PostgreSQL: TRL/HH/OpenRLHF/CSV/Parquet exports, round trips
// through the importer, TRL's implicit-prompt rule, filters, snapshots that download byte-identical,
// bad import rows, and who may do any of it (raters may not; revoked tokens stop at once).
import { createHash } from 'node:crypto';
import { parquetReadObjects } from 'hyparquet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Choice } from '../../core/db/client.js';
import { extractPromptTrl } from '../../core/services/export-formats.js';
import { runExport, specOf, type Selection } from '../../core/services/exports.js';
import type { ExportBody } from '../../core/schemas/datasets.js';
import { createAndSignIn, createTestApp, createUser, type SignedIn, type TestApp } from '../support/app.js';
import { addRaters, createProject } from '../support/rating.js';

let t: TestApp;
let researcher: SignedIn;
let token: string;
let projectId: string;
let raters: string[];
let simulatedRater: string;

const bearer = () => ({ authorization: `Bearer ${token}` });

/** Stores a judgment directly: the tests need exact choices per rater, not the queue's order. */
async function judge(comparisonId: string, raterId: string, choice: Choice, strength: number | null = 1) {
  await t.prisma.preference.create({
    data: {
      comparisonId,
      raterId,
      choice,
      strength,
      source: raterId === simulatedRater ? 'SIMULATED' : 'HUMAN',
      timeSpentMs: 1000,
      flags: choice === 'BOTH_BAD' ? ['unsafe'] : [],
      rationale: choice === 'A' ? 'clearer, "quoted", and, commas' : null,
    },
  });
}

async function exportFile(project: string, body: Record<string, unknown>, headers = bearer()) {
  return t.app.inject({ method: 'POST', url: `/api/projects/${project}/export`, headers, payload: body });
}

function lines(body: string): Record<string, unknown>[] {
  return body
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function importFile(project: string, body: Record<string, unknown>) {
  return t.app.inject({
    method: 'POST',
    url: `/api/projects/${project}/preferences/import`,
    headers: bearer(),
    payload: body,
  });
}

async function emptyProject(): Promise<string> {
  return (await createProject(t, {}, { prompts: 0, responses: 0 })).projectId;
}

beforeAll(async () => {
  t = await createTestApp({ DB_POOL_MAX: '10' });
  const setup = await createProject(t, {}, { prompts: 6, responses: 3 });
  projectId = setup.projectId;
  raters = (await addRaters(t, setup, 3)).map((rater) => rater.userId);
  simulatedRater = (
    await t.app.services.users.create(
      {
        email: 'sim@example.com',
        name: 'Sim',
        role: 'RATER',
        password: 'correct horse battery staple',
        simulated: true,
      },
      { id: null },
    )
  ).id;
  researcher = await createAndSignIn(t, 'RESEARCHER');
  const created = await t.app.inject({
    method: 'POST',
    url: '/api/tokens',
    headers: researcher.headers,
    payload: { name: 'exports' },
  });
  token = created.json<{ token: string }>().token;

  // 18 comparisons: unanimous A, 2:1 splits, ties and both-bad; the simulated rater always says B.
  const comparisons = await t.prisma.comparison.findMany({ where: { projectId }, orderBy: { id: 'asc' } });
  for (const [index, comparison] of comparisons.entries()) {
    const pattern: Choice[][] = [
      ['A', 'A', 'A'],
      ['B', 'B', 'A'],
      ['A', 'TIE', 'A'],
      ['BOTH_BAD', 'BOTH_BAD', 'B'],
      ['B', 'B', 'B'],
      ['TIE', 'TIE', 'TIE'],
    ];
    const choices = pattern[index % pattern.length]!;
    for (const [r, rater] of raters.entries()) await judge(comparison.id, rater, choices[r]!, r % 4);
    await judge(comparison.id, simulatedRater, 'B', 0);
  }
});
afterAll(() => t.close());

describe('export formats', () => {
  it('streams TRL rows with exactly the fields TRL reads, as a safe attachment', async () => {
    const response = await exportFile(projectId, { format: 'trl' });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.headers['content-type']).toBe('application/jsonl; charset=utf-8');
    expect(response.headers['x-content-type-options']).toBe('nosniff');
    expect(response.headers['content-disposition']).toMatch(
      /^attachment; filename="[A-Za-z0-9._-]+\.jsonl"$/,
    );
    expect(response.headers['x-loom-judgments']).toBe(String(18 * 4));
    const rows = lines(response.body);
    // A and B judgments only: per 6 comparisons 3+3+2+1+3+0 human ones, plus the simulated rater's.
    expect(rows).toHaveLength(3 * 12 + 18);
    for (const row of rows) {
      expect(Object.keys(row).sort()).toEqual(['chosen', 'prompt', 'rejected']);
      for (const value of Object.values(row)) expect(typeof value).toBe('string');
    }

    const withMargin = lines(
      (await exportFile(projectId, { format: 'trl', options: { margin: true } })).body,
    );
    for (const row of withMargin) {
      expect(Object.keys(row).sort()).toEqual(['chosen', 'margin', 'prompt', 'rejected']);
      expect([0, 1, 2, 3]).toContain(row.margin);
    }
  });

  it('writes implicit prompts that TRL’s extract_prompt splits back into the explicit rows', async () => {
    const explicit = lines(
      (await exportFile(projectId, { format: 'trl', filters: { excludeSimulated: true } })).body,
    );
    const implicit = lines(
      (
        await exportFile(projectId, {
          format: 'trl',
          filters: { excludeSimulated: true },
          options: { prompt: 'implicit' },
        })
      ).body,
    );
    expect(implicit).toHaveLength(explicit.length);
    for (const [index, row] of implicit.entries()) {
      expect(Object.keys(row).sort()).toEqual(['chosen', 'rejected']);
      const split = extractPromptTrl(row.chosen as string, row.rejected as string);
      const expected = explicit[index]!;
      // TRL takes the longest common prefix, so the prompt it finds runs on into the responses'
      // shared start ("Answer "), and the completions keep the rest; nothing is lost or added.
      expect(split.prompt.startsWith(expected.prompt as string)).toBe(true);
      // The explicit rows carry the separator at the start of each completion.
      expect(split.prompt + split.chosen).toBe(`${expected.prompt as string}${expected.chosen as string}`);
      expect(split.prompt + split.rejected).toBe(
        `${expected.prompt as string}${expected.rejected as string}`,
      );
      // The space before the first difference goes to the completions (TRL's rule).
      expect(split.prompt.endsWith(' ')).toBe(false);
    }

    const conversational = lines(
      (await exportFile(projectId, { format: 'trl-conversational', options: { prompt: 'implicit' } })).body,
    );
    for (const row of conversational) {
      const split = extractPromptTrl(row.chosen as unknown[], row.rejected as unknown[]);
      expect(split.prompt).toEqual([{ role: 'user', content: expect.stringMatching(/^Question/) }]);
      expect(split.chosen).toHaveLength(1);
    }
  });

  it('writes conversational TRL, HH transcripts and OpenRLHF with custom keys', async () => {
    const conversational = lines((await exportFile(projectId, { format: 'trl-conversational' })).body);
    expect(Object.keys(conversational[0]!).sort()).toEqual(['chosen', 'prompt', 'rejected']);
    expect(conversational[0]!.prompt).toEqual([{ role: 'user', content: expect.any(String) }]);
    expect(conversational[0]!.chosen).toEqual([{ role: 'assistant', content: expect.any(String) }]);

    const hh = lines((await exportFile(projectId, { format: 'hh' })).body);
    expect(Object.keys(hh[0]!).sort()).toEqual(['chosen', 'rejected']);
    expect(hh[0]!.chosen).toMatch(/^\n\nHuman: Question \d+: .*\n\nAssistant: Answer \d/s);

    const open = lines(
      (
        await exportFile(projectId, {
          format: 'openrlhf',
          options: { promptKey: 'input', chosenKey: 'win', rejectedKey: 'lose' },
        })
      ).body,
    );
    expect(Object.keys(open[0]!).sort()).toEqual(['input', 'lose', 'win']);
  });

  it('aggregates one row per comparison with majority, agreement and vote counts', async () => {
    const csv = await exportFile(projectId, {
      format: 'csv',
      mode: 'aggregated',
      filters: { excludeSimulated: true },
    });
    expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
    const [header, ...rows] = csv.body.trim().split('\r\n');
    expect(header).toMatch(/^comparison_id,prompt_id,prompt,.*majority,chosen,votes,votes_a,votes_b/);
    expect(rows).toHaveLength(18);
    const trl = lines(
      (
        await exportFile(projectId, {
          format: 'trl',
          mode: 'aggregated',
          filters: { excludeSimulated: true },
        })
      ).body,
    );
    // Majorities: A, B, A, BOTH_BAD, B, TIE -> pairs only for the A and B majorities.
    expect(trl).toHaveLength(12);
  });

  it('writes Parquet with one row per judgment and every field', async () => {
    const response = await exportFile(projectId, { format: 'parquet' });
    expect(response.headers['content-type']).toBe('application/vnd.apache.parquet');
    const bytes = response.rawPayload;
    expect(bytes.subarray(0, 4).toString()).toBe('PAR1');
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const rows = (await parquetReadObjects({ file: buffer as ArrayBuffer })) as Record<string, unknown>[];
    expect(rows).toHaveLength(72);
    expect(Object.keys(rows[0]!)).toEqual(
      expect.arrayContaining([
        'preference_id',
        'rater',
        'choice',
        'strength',
        'criteria',
        'flags',
        'rationale',
        'shown_swapped',
        'time_spent_ms',
        'policy_version_a',
        'round',
        'agreement',
      ]),
    );
    // Raters are pseudonymous unless asked.
    const raterNames = new Set(rows.map((row) => row.rater));
    expect(raterNames.size).toBe(4);
    for (const name of raterNames) expect(name).toMatch(/^r_[0-9a-f]{16}$/);
    const named = await exportFile(projectId, { format: 'csv', options: { identifyRaters: true } });
    expect(named.body).toContain(raters[0]!);
  });
});

describe('filters', () => {
  it('splits train and validation by prompt, with no prompt in both', async () => {
    const part = async (which: 'train' | 'validation', seed: string) =>
      lines(
        (
          await exportFile(projectId, {
            format: 'trl',
            filters: { split: { validationFraction: 0.4, part: which, seed } },
          })
        ).body,
      );
    // Prompt ids are random in each run; with 6 prompts some seed puts prompts in both parts.
    let train: Record<string, unknown>[] = [];
    let validation: Record<string, unknown>[] = [];
    for (let seed = 0; seed < 20 && (!train.length || !validation.length); seed++) {
      train = await part('train', `s${seed}`);
      validation = await part('validation', `s${seed}`);
    }
    const all = lines((await exportFile(projectId, { format: 'trl' })).body);
    expect(train.length + validation.length).toBe(all.length);
    const trainPrompts = new Set(train.map((row) => row.prompt));
    for (const row of validation) expect(trainPrompts.has(row.prompt)).toBe(false);
    expect(train.length).toBeGreaterThan(0);
    expect(validation.length).toBeGreaterThan(0);
  });

  it('excludes simulated raters, keeps only agreeing comparisons, and never widens a query', async () => {
    const count = async (filters: Record<string, unknown>) =>
      (
        await t.app.inject({
          method: 'POST',
          url: `/api/projects/${projectId}/export/count`,
          headers: bearer(),
          payload: { format: 'csv', filters },
        })
      ).json<{ judgments: number; comparisons: number }>();
    expect(await count({})).toMatchObject({ judgments: 72, comparisons: 18 });
    expect(await count({ excludeSimulated: true })).toMatchObject({ judgments: 54 });
    const csv = await exportFile(projectId, { format: 'csv', filters: { excludeSimulated: true } });
    expect(csv.body).not.toContain(',SIMULATED,');
    // Unanimous among humans: the AAA, BBB and TIE-TIE-TIE comparisons (3 of each).
    expect(await count({ excludeSimulated: true, minAgreement: 1 })).toMatchObject({
      comparisons: 9,
      judgments: 27,
    });
    expect(await count({ excludeSimulated: true, minAgreement: 0.6 })).toMatchObject({ comparisons: 18 });
    // A rater who misses every gold answer is left out.
    // The second comparison's votes are B, B, A (and the simulated rater's B); its gold answer is B.
    const gold = (await t.prisma.comparison.findMany({ where: { projectId }, orderBy: { id: 'asc' } }))[1]!;
    await t.prisma.comparison.update({ where: { id: gold.id }, data: { isGold: true, goldChoice: 'B' } });
    const withoutBad = await count({ minGoldAccuracy: 0.5 });
    await t.prisma.comparison.update({ where: { id: gold.id }, data: { isGold: false, goldChoice: null } });
    expect(withoutBad.judgments).toBe(72 - 18);
    // A project nobody can see, or another project's rounds, select nothing from this one.
    const other = await emptyProject();
    expect(
      await (
        await t.app.inject({
          method: 'POST',
          url: `/api/projects/${other}/export/count`,
          headers: bearer(),
          payload: { format: 'trl' },
        })
      ).json(),
    ).toMatchObject({ judgments: 0 });
    expect(await count({ roundIds: ['00000000-0000-4000-8000-000000000000'] })).toMatchObject({
      judgments: 0,
    });
  });
});

describe('large selections', () => {
  it('read with whole-table scans, give the same bytes as index probes', async () => {
    const created = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/snapshots`,
      headers: bearer(),
      payload: { name: 'plans', format: 'csv', filters: { excludeSimulated: true } },
    });
    expect(created.statusCode, created.body).toBe(201);
    const snapshotId = created.json<{ id: string }>().id;
    const cases: [Selection, ExportBody][] = [
      [{ projectId, filters: {} }, { format: 'csv' }],
      [
        { projectId, filters: { excludeSimulated: true, minAgreement: 0.6 } },
        { format: 'trl', mode: 'aggregated' },
      ],
      [
        // The split hashes random ids: with 6 prompts, half held out would leave nothing to train
        // on once in 64 runs; a tenth, once in a million.
        { projectId, filters: { split: { validationFraction: 0.1, part: 'train', seed: 'x' } } },
        { format: 'parquet', options: { margin: true } },
      ],
      [{ snapshotId }, { format: 'csv' }],
      [{ snapshotId }, { format: 'hh', mode: 'aggregated' }],
    ];
    for (const [selection, body] of cases) {
      const run = async (bulkRows: number) => {
        const chunks: Uint8Array[] = [];
        const result = await runExport(
          t.prisma,
          selection,
          specOf(body),
          async (chunk) => void chunks.push(chunk),
          { secret: 'plans', levels: 4, bulkRows },
        );
        return { ...result, bytes: Buffer.concat(chunks) };
      };
      const probed = await run(Number.POSITIVE_INFINITY);
      const scanned = await run(0);
      expect(probed.judgments).toBeGreaterThan(0);
      expect(scanned.sha256).toBe(probed.sha256);
      expect(scanned.bytes.equals(probed.bytes)).toBe(true);
    }
  });
});

describe('round trips through the importer', () => {
  for (const format of ['trl', 'trl-conversational', 'hh'] as const) {
    it(`${format}: export, import into a new project, export again gives the same pairs`, async () => {
      const first = (await exportFile(projectId, { format, options: { margin: format !== 'hh' } })).body;
      const target = await emptyProject();
      const imported = await importFile(target, {
        format: format === 'hh' ? 'hh' : 'trl',
        content: first,
        source: `round-trip-${format}`,
      });
      expect(imported.statusCode, imported.body).toBe(200);
      expect(imported.json()).toMatchObject({ imported: first.trim().split('\n').length, skipped: 0 });
      const second = (await exportFile(target, { format, options: { margin: format !== 'hh' } })).body;
      expect(second.trim().split('\n').sort()).toEqual(first.trim().split('\n').sort());
      // Imported judgments are marked, and complete their comparisons (not queued for raters).
      const preference = await t.prisma.preference.findFirstOrThrow({
        where: { comparison: { projectId: target } },
      });
      expect(preference).toMatchObject({
        source: 'IMPORTED',
        importSource: `round-trip-${format}`,
        raterId: null,
      });
      const open = await t.prisma.comparison.count({
        where: { projectId: target, voteCount: { lt: t.prisma.comparison.fields.requiredVotes } },
      });
      expect(open).toBe(0);
    });
  }
});

describe('import of preference data sets', () => {
  const content = [
    JSON.stringify({ prompt: 'Hi', chosen: 'Hello!', rejected: 'Go away.' }),
    '{not json',
    JSON.stringify({ prompt: 'Hi', chosen: '', rejected: 'x' }),
    JSON.stringify({ prompt: 'Same', chosen: 'same', rejected: 'same' }),
    '',
    JSON.stringify({ chosen: 'The sky is blue.', rejected: 'The sky is green.' }),
    JSON.stringify({ prompt: 'Only chosen' }),
  ].join('\n');

  it('refuses the whole file by default, reporting every bad row by line and kind', async () => {
    const target = await emptyProject();
    const response = await importFile(target, { format: 'trl', content, source: 'mixed' });
    expect(response.statusCode).toBe(400);
    const body = response.json<{
      errors: { line: number; message: string }[];
      errorCounts: Record<string, number>;
    }>();
    expect(body.errors.map((error) => error.line)).toEqual([2, 3, 4, 7]);
    expect(body.errorCounts).toEqual({
      unparsable: 1,
      'empty-response': 1,
      'chosen-equals-rejected': 1,
      invalid: 1,
    });
    expect(await t.prisma.prompt.count({ where: { projectId: target } })).toBe(0);
    expect(await t.prisma.preference.count({ where: { comparison: { projectId: target } } })).toBe(0);
  });

  it('skips bad rows when asked and imports the rest, implicit prompts split the TRL way', async () => {
    const target = await emptyProject();
    const response = await importFile(target, { format: 'trl', content, source: 'mixed', onError: 'skip' });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toMatchObject({
      lines: 6,
      imported: 2,
      skipped: 4,
      newPrompts: 2,
      comparisons: 2,
    });
    const prompts = await t.prisma.prompt.findMany({
      where: { projectId: target },
      orderBy: { createdAt: 'asc' },
    });
    const texts = prompts.map((prompt) => (prompt.messages as { content: string }[])[0]!.content).sort();
    expect(texts).toEqual(['Hi', 'The sky is']);
    const responses = await t.prisma.response.findMany({ where: { prompt: { projectId: target } } });
    expect(responses.map((response) => response.text).sort()).toEqual([
      'Go away.',
      'Hello!',
      'blue.',
      'green.',
    ]);
  });

  it('reads CSV with prompt, chosen and rejected columns', async () => {
    const target = await emptyProject();
    const csv = 'prompt,chosen,rejected\n"Say ""hi""",hi,bye\nQ2,"a, b",c\n';
    const response = await importFile(target, { format: 'csv', content: csv, source: 'csv' });
    expect(response.json()).toMatchObject({ imported: 2 });
    const rows = lines((await exportFile(target, { format: 'trl' })).body);
    expect(rows).toContainEqual({
      prompt: '\n\nHuman: Say "hi"\n\nAssistant:',
      chosen: ' hi',
      rejected: ' bye',
    });
  });
});

describe('snapshots', () => {
  it('freezes an export: later downloads are byte-identical even after new judgments', async () => {
    for (const format of ['trl', 'parquet'] as const) {
      const { judgments } = (
        await t.app.inject({
          method: 'POST',
          url: `/api/projects/${projectId}/export/count`,
          headers: bearer(),
          payload: { format, filters: { excludeSimulated: true } },
        })
      ).json<{ judgments: number }>();
      const created = await t.app.inject({
        method: 'POST',
        url: `/api/projects/${projectId}/snapshots`,
        headers: bearer(),
        payload: { name: `paper v1 ${format}`, format, filters: { excludeSimulated: true } },
      });
      expect(created.statusCode, created.body).toBe(201);
      const snapshot = created.json<{
        id: string;
        contentHash: string;
        rowCount: number;
        judgments: number;
        byteSize: number;
      }>();
      expect(snapshot.judgments).toBe(judgments);
      const first = await t.app.inject({ url: `/api/snapshots/${snapshot.id}/download`, headers: bearer() });
      expect(first.statusCode, first.body).toBe(200);
      expect(first.headers['content-disposition']).toMatch(/^attachment; filename="paper-v1-/);
      expect(createHash('sha256').update(first.rawPayload).digest('hex')).toBe(snapshot.contentHash);
      expect(first.rawPayload.length).toBe(snapshot.byteSize);

      // New judgments arrive; the snapshot does not change.
      const newRater = await createUser(t, 'RATER');
      const comparison = await t.prisma.comparison.findFirstOrThrow({ where: { projectId } });
      await judge(comparison.id, newRater.id, 'A');
      const again = await t.app.inject({ url: `/api/snapshots/${snapshot.id}/download`, headers: bearer() });
      expect(Buffer.compare(again.rawPayload, first.rawPayload)).toBe(0);
    }
    const listed = await t.app.inject({ url: `/api/projects/${projectId}/snapshots`, headers: bearer() });
    expect(listed.json<unknown[]>().length).toBeGreaterThanOrEqual(2);
  });

  it('refuses a second snapshot with the same name, and names with path characters', async () => {
    const body = { name: 'dup', format: 'hh' };
    const url = `/api/projects/${projectId}/snapshots`;
    expect((await t.app.inject({ method: 'POST', url, headers: bearer(), payload: body })).statusCode).toBe(
      201,
    );
    expect((await t.app.inject({ method: 'POST', url, headers: bearer(), payload: body })).statusCode).toBe(
      409,
    );
    for (const name of ['../etc/passwd', 'a/b', '..\\x'])
      expect(
        (await t.app.inject({ method: 'POST', url, headers: bearer(), payload: { name, format: 'hh' } }))
          .statusCode,
      ).toBe(400);
  });
});

describe('who may export', () => {
  it('refuses raters on every data route, and a revoked token at once', async () => {
    const rater = await createAndSignIn(t, 'RATER');
    const snapshot = await t.prisma.datasetSnapshot.findFirstOrThrow({ where: { projectId } });
    const calls = [
      { method: 'POST' as const, url: `/api/projects/${projectId}/export`, payload: { format: 'trl' } },
      {
        method: 'POST' as const,
        url: `/api/projects/${projectId}/snapshots`,
        payload: { name: 'r', format: 'trl' },
      },
      { method: 'GET' as const, url: `/api/projects/${projectId}/snapshots` },
      { method: 'GET' as const, url: `/api/snapshots/${snapshot.id}` },
      { method: 'GET' as const, url: `/api/snapshots/${snapshot.id}/download` },
      {
        method: 'POST' as const,
        url: `/api/projects/${projectId}/preferences/import`,
        payload: { format: 'trl', content: '{}', source: 'x' },
      },
    ];
    for (const call of calls) {
      const response = await t.app.inject({ ...call, headers: rater.headers });
      expect(response.statusCode, call.url).toBe(403);
    }

    const created = await t.app.inject({
      method: 'POST',
      url: '/api/tokens',
      headers: researcher.headers,
      payload: { name: 'to revoke' },
    });
    const { apiToken, token: doomed } = created.json<{ apiToken: { id: string }; token: string }>();
    const headers = { authorization: `Bearer ${doomed}` };
    expect((await exportFile(projectId, { format: 'trl' }, headers)).statusCode).toBe(200);
    await t.app.inject({ method: 'DELETE', url: `/api/tokens/${apiToken.id}`, headers: researcher.headers });
    expect((await exportFile(projectId, { format: 'trl' }, headers)).statusCode).toBe(401);
    expect((await t.app.inject({ url: `/api/snapshots/${snapshot.id}/download`, headers })).statusCode).toBe(
      401,
    );
  });
});

describe('imports into a project that has the pair already', () => {
  it('adds the vote to the existing comparison, in its own A/B order, and keeps its queue state', async () => {
    const { projectId: target } = await createProject(t, {}, { prompts: 1, responses: 2 });
    const before = await t.prisma.comparison.findFirstOrThrow({
      where: { projectId: target },
      include: { responseA: true, responseB: true },
    });
    const row = {
      prompt: 'Question 0: what is 0 + 0?',
      chosen: before.responseB.text,
      rejected: before.responseA.text,
    };
    const response = await importFile(target, {
      format: 'trl',
      content: JSON.stringify(row),
      source: 'extra',
    });
    expect(response.json()).toMatchObject({ imported: 1, newPrompts: 0, comparisons: 0 });
    const after = await t.prisma.comparison.findUniqueOrThrow({ where: { id: before.id } });
    expect(after.requiredVotes - after.voteCount).toBe(before.requiredVotes - before.voteCount);
    const preference = await t.prisma.preference.findFirstOrThrow({ where: { comparisonId: before.id } });
    expect(preference.choice).toBe('B');
    expect(await t.prisma.response.count({ where: { prompt: { projectId: target } } })).toBe(2);
  });
});
