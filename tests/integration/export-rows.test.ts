// What a researcher's files hold, against real PostgreSQL: no strategy pairs two responses with the
// same text, pairwise exports leave such pairs of older data out and say how many, string rows
// carry the separator trainers need (an imported HH file exports back to its own transcripts), CSV
// is spreadsheet-safe unless turned off, and snapshots made before these rules keep their bytes.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Choice } from '../../core/db/client.js';
import { createAndSignIn, createUser, createTestApp, type SignedIn, type TestApp } from '../support/app.js';
import { createProject } from '../support/rating.js';

const HH_FILE = 'bench/data/hh-rlhf/helpful-base-test.jsonl.gz';

let t: TestApp;
let researcher: SignedIn;

beforeAll(async () => {
  t = await createTestApp();
  researcher = await createAndSignIn(t, 'RESEARCHER');
}, 60_000);
afterAll(() => t.close());

function lines(body: string): Record<string, unknown>[] {
  return body
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

function post(url: string, payload: unknown, headers = researcher.headers) {
  return t.app.inject({ method: 'POST', url, headers, payload: payload as Record<string, unknown> });
}

/** A project whose prompt has responses with the given texts (sources model-0, model-1, ...). */
async function projectWithTexts(texts: string[][]) {
  const { projectId, admin } = await createProject(t, {}, { prompts: 0, responses: 0 });
  const prompts = [];
  for (const [index, responses] of texts.entries()) {
    const prompt = await t.prisma.prompt.create({
      data: { projectId, messages: [{ role: 'user', content: `What is ${index}+${index}?` }] },
    });
    const rows = [];
    for (const [j, text] of responses.entries())
      rows.push(
        await t.prisma.response.create({ data: { promptId: prompt.id, text, source: `model-${j}` } }),
      );
    prompts.push({ prompt, responses: rows });
  }
  return { projectId, admin, prompts };
}

describe('pairing', () => {
  it('no strategy pairs two responses with the same text, and each says how many it left out', async () => {
    const { projectId, admin } = await projectWithTexts([
      ['4', '4', '5', '6'],
      ['2', '2', '2', '3'],
    ]);
    const generate = (body: Record<string, unknown>) =>
      post(`/api/projects/${projectId}/comparisons/generate`, body, admin.headers);
    const all = await generate({ strategy: 'all-pairs' });
    expect(all.statusCode, all.body).toBe(200);
    // 6 pairs a prompt: one identical in the first, three in the second.
    expect(all.json()).toEqual({ created: 5 + 3, skippedExisting: 0, skippedIdentical: 1 + 3 });
    const cross = await generate({ strategy: 'cross-source', sourceA: 'model-0', sourceB: 'model-1' });
    expect(cross.json()).toEqual({ created: 0, skippedExisting: 0, skippedIdentical: 2 });
    const comparisons = await t.prisma.comparison.findMany({
      where: { projectId },
      include: { responseA: true, responseB: true },
    });
    expect(comparisons).toHaveLength(8);
    for (const comparison of comparisons)
      expect(comparison.responseA.text).not.toBe(comparison.responseB.text);

    // Random pairs draw among the distinct ones only: with one per prompt, every seed gives one.
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const fresh = await projectWithTexts([['x', 'x', 'y']]);
      const random = await post(
        `/api/projects/${fresh.projectId}/comparisons/generate`,
        { strategy: 'random-pairs', maxPerPrompt: 1, seed },
        fresh.admin.headers,
      );
      expect(random.json()).toMatchObject({ created: 1, skippedIdentical: 1 });
      const [made] = await t.prisma.comparison.findMany({
        where: { projectId: fresh.projectId },
        include: { responseA: true, responseB: true },
      });
      expect(made!.responseA.text).not.toBe(made!.responseB.text);
    }
  });
});

describe('pairs of identical responses in existing data', () => {
  let projectId: string;
  beforeAll(async () => {
    // As the demo made them before: a comparison of "4" with "4", judged A twice and TIE once.
    const setup = await projectWithTexts([['4', '4', '5']]);
    projectId = setup.projectId;
    const [same, twin, other] = setup.prompts[0]!.responses;
    const identical = await t.prisma.comparison.create({
      data: {
        projectId,
        promptId: setup.prompts[0]!.prompt.id,
        responseAId: same!.id,
        responseBId: twin!.id,
        requiredVotes: 3,
      },
    });
    const distinct = await t.prisma.comparison.create({
      data: {
        projectId,
        promptId: setup.prompts[0]!.prompt.id,
        responseAId: same!.id,
        responseBId: other!.id,
        requiredVotes: 3,
      },
    });
    const judge = async (comparisonId: string, choice: Choice) =>
      t.prisma.preference.create({
        data: { comparisonId, raterId: (await createUser(t, 'RATER')).id, choice, strength: 1 },
      });
    for (const choice of ['A', 'A', 'TIE'] as const) await judge(identical.id, choice);
    for (const choice of ['A', 'B', 'A'] as const) await judge(distinct.id, choice);
  });

  it('pairwise exports leave them out and say how many; CSV keeps them', async () => {
    const raw = await post(`/api/projects/${projectId}/export`, { format: 'trl' });
    expect(raw.statusCode, raw.body).toBe(200);
    expect(raw.headers['x-loom-identical-left-out']).toBe('2');
    const rows = lines(raw.body);
    expect(rows).toHaveLength(3);
    for (const row of rows) expect(row.chosen).not.toBe(row.rejected);

    const aggregated = await post(`/api/projects/${projectId}/export`, { format: 'hh', mode: 'aggregated' });
    expect(aggregated.headers['x-loom-identical-left-out']).toBe('1');
    expect(lines(aggregated.body)).toHaveLength(1);

    for (const format of ['trl-conversational', 'openrlhf'] as const) {
      const other = await post(`/api/projects/${projectId}/export`, { format });
      expect(other.headers['x-loom-identical-left-out']).toBe('2');
      expect(lines(other.body)).toHaveLength(3);
    }

    const csv = await post(`/api/projects/${projectId}/export`, { format: 'csv' });
    expect(csv.headers['x-loom-identical-left-out']).toBeUndefined();
    expect(csv.body.trim().split('\r\n')).toHaveLength(1 + 6);

    const count = await post(`/api/projects/${projectId}/export/count`, { format: 'csv' });
    expect(count.json()).toEqual({
      judgments: 6,
      comparisons: 2,
      prompts: 1,
      identicalJudgments: 2,
      identicalComparisons: 1,
    });
  });

  it('a snapshot records how many it left out, and downloads verified', async () => {
    const created = await post(`/api/projects/${projectId}/snapshots`, { name: 'no twins', format: 'trl' });
    expect(created.statusCode, created.body).toBe(201);
    const snapshot = created.json<{
      id: string;
      rowCount: number;
      identicalLeftOut: number;
      contentHash: string;
    }>();
    expect(snapshot).toMatchObject({ rowCount: 3, identicalLeftOut: 2 });
    const download = await t.app.inject({
      url: `/api/snapshots/${snapshot.id}/download`,
      headers: researcher.headers,
    });
    expect(download.statusCode, download.body).toBe(200);
    expect(createHash('sha256').update(download.rawPayload).digest('hex')).toBe(snapshot.contentHash);
  });

  it('a snapshot made before these rules (encoding 1) still downloads its own bytes', async () => {
    const created = await post(`/api/projects/${projectId}/snapshots`, { name: 'old rules', format: 'trl' });
    const { id } = created.json<{ id: string }>();
    // The file as encoding 1 wrote it: the bare prompt, no separator, identical pairs kept.
    const preferences = await t.prisma.preference.findMany({
      where: { comparison: { projectId }, choice: { in: ['A', 'B'] } },
      include: { comparison: { include: { prompt: true, responseA: true, responseB: true } } },
      orderBy: [{ comparisonId: 'asc' }, { id: 'asc' }],
    });
    const old = preferences
      .map((p) => {
        const [chosen, rejected] =
          p.choice === 'A'
            ? [p.comparison.responseA.text, p.comparison.responseB.text]
            : [p.comparison.responseB.text, p.comparison.responseA.text];
        const prompt = (p.comparison.prompt.messages as { content: string }[])[0]!.content;
        return JSON.stringify({ prompt, chosen, rejected }) + '\n';
      })
      .join('');
    await t.prisma.datasetSnapshot.update({
      where: { id },
      data: {
        encoding: 1,
        rowCount: 5,
        identicalLeftOut: 0,
        contentHash: createHash('sha256').update(old).digest('hex'),
        byteSize: Buffer.byteLength(old),
      },
    });
    const download = await t.app.inject({
      url: `/api/snapshots/${id}/download`,
      headers: researcher.headers,
    });
    expect(download.statusCode, download.body).toBe(200);
    expect(download.body).toBe(old);
    expect(lines(old).some((row) => row.chosen === row.rejected)).toBe(true);
  });
});

describe('snapshots of training rounds made before they were hashed as files', () => {
  it('are sealed as TRL files when their judgments still match, then list with a size and verify', async () => {
    const { projectId, admin } = await projectWithTexts([['4', '5', '6']]);
    await post(`/api/projects/${projectId}/comparisons/generate`, { strategy: 'all-pairs' }, admin.headers);
    const rater = await createUser(t, 'RATER');
    for (const comparison of await t.prisma.comparison.findMany({ where: { projectId } }))
      await t.prisma.preference.create({
        data: { comparisonId: comparison.id, raterId: rater.id, choice: 'B', strength: 0 },
      });
    // What rounds stored before: the sha256 of the judgments' ids and choices, size 0.
    const preferences = await t.prisma.preference.findMany({
      where: { comparison: { projectId, isGold: false } },
      orderBy: { id: 'asc' },
    });
    const idsHash = createHash('sha256')
      .update(preferences.map((p) => `${p.id}:${p.choice}:${p.strength ?? ''}`).join('\n'))
      .digest('hex');
    const legacy = await t.prisma.datasetSnapshot.create({
      data: {
        projectId,
        name: 'round-1-attempt-1',
        filters: { round: 1, source: 'all judgments of non-gold comparisons' },
        rowCount: preferences.length,
        contentHash: idsHash,
        encoding: 1,
        items: { createMany: { data: preferences.map((p) => ({ preferenceId: p.id })) } },
      },
    });
    const listed = await t.app.inject({
      url: `/api/projects/${projectId}/snapshots`,
      headers: researcher.headers,
    });
    const entry = listed
      .json<{ id: string; byteSize: number; rowCount: number; contentHash: string; format: string }[]>()
      .find((snapshot) => snapshot.id === legacy.id)!;
    expect(entry).toMatchObject({ format: 'trl', rowCount: 3 });
    expect(entry.byteSize).toBeGreaterThan(0);
    expect(entry.contentHash).not.toBe(idsHash);
    const download = await t.app.inject({
      url: `/api/snapshots/${legacy.id}/download`,
      headers: researcher.headers,
    });
    expect(download.statusCode, download.body).toBe(200);
    expect(createHash('sha256').update(download.rawPayload).digest('hex')).toBe(entry.contentHash);
    expect(download.rawPayload.length).toBe(entry.byteSize);
  });
});

describe('CSV', () => {
  let projectId: string;
  beforeAll(async () => {
    const setup = await projectWithTexts([['=HYPERLINK("http://evil.example","x")', '+1', '@SUM(A1)']]);
    projectId = setup.projectId;
    await post(
      `/api/projects/${projectId}/comparisons/generate`,
      { strategy: 'all-pairs' },
      setup.admin.headers,
    );
    const comparisons = await t.prisma.comparison.findMany({ where: { projectId } });
    const rater = await createUser(t, 'RATER');
    for (const comparison of comparisons)
      await t.prisma.preference.create({
        data: { comparisonId: comparison.id, raterId: rater.id, choice: 'A', rationale: '-looks right' },
      });
  });

  it('is spreadsheet-safe unless the request turns it off', async () => {
    const safe = (await post(`/api/projects/${projectId}/export`, { format: 'csv' })).body;
    expect(safe).toContain(`"'=HYPERLINK(""http://evil.example"",""x"")"`);
    expect(safe).toContain(",'+1,");
    expect(safe).toContain("'-looks right");
    // No cell of the file starts a formula.
    for (const line of safe.trim().split('\r\n'))
      for (const cell of line.split(',')) expect(cell.replace(/^"/, '')).not.toMatch(/^[=+\-@\t\r]/);

    const raw = await post(`/api/projects/${projectId}/export`, {
      format: 'csv',
      options: { spreadsheetSafe: false },
    });
    expect(raw.statusCode).toBe(200);
    expect(raw.body).toContain(`"=HYPERLINK(""http://evil.example"",""x"")"`);
    expect(raw.body).toContain(',+1,');
    expect(raw.body).not.toContain("'");

    // A snapshot stores the choice it was made with.
    const snapshot = await post(`/api/projects/${projectId}/snapshots`, { name: 'csv', format: 'csv' });
    expect(snapshot.json()).toMatchObject({ options: { spreadsheetSafe: true } });
    const plain = await post(`/api/projects/${projectId}/snapshots`, {
      name: 'csv for pandas',
      format: 'csv',
      options: { spreadsheetSafe: false },
    });
    expect(plain.json()).toMatchObject({ options: { spreadsheetSafe: false } });
  });
});

describe('string rows and the separator', () => {
  it('an imported HH file exports back to its own transcripts: prompt + chosen is the original', async () => {
    const content = gunzipSync(readFileSync(HH_FILE)).toString('utf8');
    const original = content
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { chosen: string; rejected: string });
    const { projectId } = await createProject(t, {}, { prompts: 0, responses: 0 });
    const imported = await post(`/api/projects/${projectId}/preferences/import`, {
      format: 'hh',
      content,
      source: 'hh-rlhf helpful-base test',
      onError: 'skip',
    });
    expect(imported.statusCode, imported.body).toBe(200);
    // Two rows with chosen == rejected and four with an empty response are refused.
    expect(imported.json()).toMatchObject({ lines: 2354, imported: 2348, skipped: 6 });
    const kept = original
      .filter((row) => row.chosen !== row.rejected && !/\n\nAssistant: ?$/.test(row.chosen))
      .filter((row) => !/\n\nAssistant: ?$/.test(row.rejected))
      .map((row) => `${row.chosen}\u0000${row.rejected}`)
      .sort();
    expect(kept).toHaveLength(2348);

    const texts = async (body: Record<string, unknown>, join: (row: Record<string, unknown>) => string[]) => {
      const response = await post(`/api/projects/${projectId}/export`, body);
      expect(response.statusCode).toBe(200);
      return lines(response.body)
        .map((row) => join(row).join('\u0000'))
        .sort();
    };
    const explicit = await texts({ format: 'trl' }, (row) => [
      `${row.prompt as string}${row.chosen as string}`,
      `${row.prompt as string}${row.rejected as string}`,
    ]);
    expect(explicit).toEqual(kept);
    const implicit = await texts({ format: 'trl', options: { prompt: 'implicit' } }, (row) => [
      row.chosen as string,
      row.rejected as string,
    ]);
    expect(implicit).toEqual(kept);
    const openrlhf = await texts({ format: 'openrlhf' }, (row) => [
      `${row.prompt as string}${row.chosen as string}`,
      `${row.prompt as string}${row.rejected as string}`,
    ]);
    expect(openrlhf).toEqual(kept);
    const hh = await texts({ format: 'hh' }, (row) => [row.chosen as string, row.rejected as string]);
    expect(hh).toEqual(kept);
  }, 120_000);

  it('a single-turn prompt and its answer are not glued together', async () => {
    const { projectId } = await projectWithTexts([['4', '5']]);
    const comparison = await t.prisma.comparison.create({
      data: {
        projectId,
        promptId: (await t.prisma.prompt.findFirstOrThrow({ where: { projectId } })).id,
        responseAId: (
          await t.prisma.response.findFirstOrThrow({ where: { text: '4', prompt: { projectId } } })
        ).id,
        responseBId: (
          await t.prisma.response.findFirstOrThrow({ where: { text: '5', prompt: { projectId } } })
        ).id,
        requiredVotes: 1,
      },
    });
    await t.prisma.preference.create({
      data: { comparisonId: comparison.id, raterId: (await createUser(t, 'RATER')).id, choice: 'A' },
    });
    const [row] = lines((await post(`/api/projects/${projectId}/export`, { format: 'trl' })).body);
    expect(row).toEqual({ prompt: '\n\nHuman: What is 0+0?\n\nAssistant:', chosen: ' 4', rejected: ' 5' });
    expect(`${row!.prompt as string}${row!.chosen as string}`).toBe(
      '\n\nHuman: What is 0+0?\n\nAssistant: 4',
    );
  });
});
