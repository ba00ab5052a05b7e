// Imports against real PostgreSQL: text the database cannot store (NUL, lone surrogates) and
// nesting it cannot parse are refused by line in the dry run exactly as in the real run; uploads
// may be gzip-encoded, and a gzip bomb is refused at the import limit with nothing stored, by the
// server and by the CLI alike.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndSignIn, createTestApp, type SignedIn, type TestApp } from '../support/app.js';
import { createProject } from '../support/rating.js';
import { PreferenceImportService } from '../../core/services/preference-imports.js';

const LIMIT = 65_536;
let t: TestApp;
let admin: SignedIn;
const dir = mkdtempSync(path.join(os.tmpdir(), 'loom-imports-'));

beforeAll(async () => {
  t = await createTestApp({ IMPORT_LIMIT_BYTES: String(LIMIT) });
  admin = await createAndSignIn(t, 'ADMIN');
});
afterAll(() => t.close());

/** JSON of objects nested `depth` levels (JSON.stringify itself runs out of stack on it). */
function nested(depth: number): string {
  return `${'{"a":'.repeat(depth)}"deep"${'}'.repeat(depth)}`;
}

async function stored(projectId: string) {
  return {
    prompts: await t.prisma.prompt.count({ where: { projectId } }),
    responses: await t.prisma.response.count({ where: { prompt: { projectId } } }),
    comparisons: await t.prisma.comparison.count({ where: { projectId } }),
    judgments: await t.prisma.preference.count({ where: { comparison: { projectId } } }),
  };
}

function post(url: string, payload: string | Buffer, headers: Record<string, string> = {}) {
  return t.app.inject({
    method: 'POST',
    url,
    headers: { ...admin.headers, 'content-type': 'application/json', ...headers },
    payload,
  });
}

describe('prompt imports', () => {
  it('refuses NUL, lone surrogates and deep nesting by line, in the dry run as in the real run', async () => {
    const { projectId } = await createProject(t, {}, { prompts: 0, responses: 0 });
    const content = [
      JSON.stringify({ prompt: 'fine', responses: ['a', 'b'] }),
      JSON.stringify({ prompt: 'nul \u0000 here', response: 'x' }),
      JSON.stringify({ prompt: 'surrogate', responses: [{ text: 'half \ud800 a pair', source: 'm' }] }),
      `{"prompt":"deep","response":"y","metadata":${nested(5000)}}`,
      JSON.stringify({ prompt: 'key', response: 'z', metadata: { 'bad\u0000key': 1 } }),
    ].join('\n');
    const answers = [];
    for (const dryRun of [true, false]) {
      const response = await post(
        `/api/projects/${projectId}/prompts/import`,
        JSON.stringify({ format: 'jsonl', content, dryRun }),
      );
      expect(response.statusCode, response.body).toBe(400);
      answers.push(response.json<{ message: string; errors: { line: number; message: string }[] }>());
    }
    expect(answers[0]!.message).toBe(answers[1]!.message);
    expect(answers[0]!.errors).toEqual(answers[1]!.errors);
    expect(answers[0]!.errors.map((error) => error.line)).toEqual([2, 3, 4, 5]);
    expect(answers[0]!.errors[0]!.message).toMatch(/^prompt: contains a NUL character/);
    expect(answers[0]!.errors[1]!.message).toMatch(/lone surrogate/);
    expect(answers[0]!.errors[2]!.message).toMatch(/metadata(\.a)+: nested deeper than 32 levels/);
    expect(answers[0]!.errors[3]!.message).toMatch(/key contains a NUL character/);
    expect(await stored(projectId)).toMatchObject({ prompts: 0, responses: 0 });
  });

  it('refuses a NUL byte in a CSV cell and a lone surrogate sent raw in the upload, by line', async () => {
    const { projectId } = await createProject(t, {}, { prompts: 0, responses: 0 });
    const csv = await post(
      `/api/projects/${projectId}/prompts/import`,
      JSON.stringify({ format: 'csv', content: 'prompt,response\nok,fine\nbad\u0000,x\n' }),
    );
    expect(csv.statusCode, csv.body).toBe(400);
    expect(csv.json().errors).toEqual([
      { line: 3, message: expect.stringMatching(/prompt: contains a NUL/) },
    ]);
    // The JSON body itself carries a lone surrogate in the file's text (not valid Unicode).
    const raw = await post(
      `/api/projects/${projectId}/prompts/import`,
      '{"format":"jsonl","content":"{\\"prompt\\":\\"a\\",\\"response\\":\\"b\\"}\\n{\\"prompt\\":\\"\\ud800\\",\\"response\\":\\"b\\"}"}',
    );
    expect(raw.statusCode, raw.body).toBe(400);
    expect(raw.json().errors).toEqual([{ line: 2, message: expect.stringMatching(/lone surrogate/) }]);
    expect(await stored(projectId)).toMatchObject({ prompts: 0 });
  });

  it('takes a gzip-encoded upload, and merges and re-imports as before', async () => {
    const { projectId } = await createProject(t, {}, { prompts: 0, responses: 0 });
    const content = [
      JSON.stringify({ id: 'p1', prompt: 'One', responses: ['a', { text: 'b', source: 'm2' }] }),
      JSON.stringify({ id: 'p1', prompt: 'One', response: 'c' }),
      JSON.stringify({ prompt: 'Two', response: 'd', split: 'test', metadata: { answer: 4 } }),
      JSON.stringify({ prompt: 'Two', response: 'd' }),
    ].join('\r\n');
    const body = gzipSync(JSON.stringify({ format: 'jsonl', content, source: 'upload' }));
    const first = await post(`/api/projects/${projectId}/prompts/import`, body, {
      'content-encoding': 'gzip',
    });
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toMatchObject({ lines: 4, prompts: 2, newPrompts: 2, responses: 5, errors: [] });
    expect(await stored(projectId)).toMatchObject({ prompts: 2, responses: 4 });
    const two = await t.prisma.prompt.findFirstOrThrow({ where: { projectId, externalId: null } });
    expect(two).toMatchObject({ split: 'TEST', metadata: { answer: 4 } });
    const again = await post(`/api/projects/${projectId}/prompts/import`, body, {
      'content-encoding': 'gzip',
    });
    expect(again.json()).toMatchObject({ newPrompts: 0 });
    expect(await stored(projectId)).toMatchObject({ prompts: 2, responses: 4 });
    const conflict = await post(
      `/api/projects/${projectId}/prompts/import`,
      JSON.stringify({
        format: 'jsonl',
        content: JSON.stringify({ id: 'p1', prompt: 'Other', response: 'e' }),
      }),
    );
    expect(conflict.json().errors).toEqual([
      { line: 1, message: 'id p1 already names a different prompt in this project' },
    ]);
  });
});

describe('preference imports', () => {
  const url = (projectId: string) => `/api/projects/${projectId}/preferences/import`;

  it('refuses rows the database cannot store, dry run and real run alike; skip stores the rest', async () => {
    const { projectId } = await createProject(t, {}, { prompts: 0, responses: 0 });
    const content = [
      JSON.stringify({ prompt: 'Q1', chosen: 'good', rejected: 'bad' }),
      JSON.stringify({ prompt: 'Q2', chosen: 'nul\u0000', rejected: 'bad' }),
      JSON.stringify({ prompt: 'half \udc00', chosen: 'good', rejected: 'bad' }),
      `{"prompt":"Q4","chosen":${nested(5000)},"rejected":"bad"}`,
    ].join('\n');
    const answers = [];
    for (const dryRun of [true, false]) {
      const response = await post(
        url(projectId),
        JSON.stringify({ format: 'trl', content, source: 'probe', dryRun }),
      );
      expect(response.statusCode, response.body).toBe(400);
      answers.push(response.json<{ message: string; errors: { line: number; message: string }[] }>());
    }
    expect(answers[0]!.message).toBe(answers[1]!.message);
    expect(answers[0]!.errors).toEqual(answers[1]!.errors);
    expect(answers[0]!.errors.map((error) => error.line)).toEqual([2, 3, 4]);
    expect(answers[0]!.errors[0]!.message).toMatch(/chosen contains a NUL character/);
    expect(answers[0]!.errors[1]!.message).toMatch(/lone surrogate/);
    expect(await stored(projectId)).toEqual({ prompts: 0, responses: 0, comparisons: 0, judgments: 0 });

    const skipped = await post(
      url(projectId),
      JSON.stringify({ format: 'trl', content, source: 'probe', onError: 'skip' }),
    );
    expect(skipped.statusCode, skipped.body).toBe(200);
    expect(skipped.json()).toMatchObject({ imported: 1, skipped: 3, comparisons: 1 });
    expect(await stored(projectId)).toEqual({ prompts: 1, responses: 2, comparisons: 1, judgments: 1 });
  });

  it('stores backslashes, tabs, line ends and "\\N" in prompts and responses exactly as sent', async () => {
    const { projectId } = await createProject(t, {}, { prompts: 0, responses: 0 });
    const prompt = 'C:\\new\\table\tcol\r\nnext \\N \\\\ end';
    const chosen = '\\N';
    const rejected = 'tab\there\\tnot\nline\\nnot\rcr\\\\';
    const content = JSON.stringify({ prompt, chosen, rejected, margin: 1 });
    const response = await post(
      url(projectId),
      JSON.stringify({ format: 'trl', content, source: 'escapes' }),
    );
    expect(response.statusCode, response.body).toBe(200);
    const [stored] = await t.prisma.prompt.findMany({ where: { projectId }, include: { responses: true } });
    expect(stored!.messages).toEqual([{ role: 'user', content: prompt }]);
    expect(stored!.responses.map((r) => r.text).sort()).toEqual([chosen, rejected].sort());
  });

  it('refuses a gzip bomb at the import limit with 413 and stores nothing', async () => {
    const { projectId } = await createProject(t, {}, { prompts: 0, responses: 0 });
    const row = `${JSON.stringify({ prompt: 'Q', chosen: 'a'.repeat(500), rejected: 'b'.repeat(500) })}\n`;
    // About 40 kB of gzip that unpacks to 10 MB, 150 times the limit.
    const bomb = gzipSync(JSON.stringify({ format: 'trl', source: 'bomb', content: row.repeat(10_000) }));
    expect(bomb.length).toBeLessThan(LIMIT);
    const started = performance.now();
    const response = await post(url(projectId), bomb, { 'content-encoding': 'gzip' });
    expect(response.statusCode, response.body).toBe(413);
    expect(response.json().message).toMatch(/unpacked .* larger than the import limit of 65536 bytes/);
    // Refused as soon as the limit is passed, not after unpacking everything.
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(await stored(projectId)).toEqual({ prompts: 0, responses: 0, comparisons: 0, judgments: 0 });

    const plain = await post(
      url(projectId),
      JSON.stringify({ format: 'trl', source: 'big', content: row.repeat(100) }),
    );
    expect(plain.statusCode, plain.body).toBe(413);
    const unknown = await post(
      url(projectId),
      JSON.stringify({ format: 'trl', source: 's', content: row, extra: 1 }),
    );
    expect(unknown.statusCode, unknown.body).toBe(400);
    expect(unknown.json().message).toMatch(/body\.extra: unknown field/);
    const missing = await post(url(projectId), JSON.stringify({ format: 'trl', source: 's' }));
    expect(missing.statusCode, missing.body).toBe(400);
    expect(missing.json().message).toMatch(/body\.content: is required/);
    const encoding = await post(url(projectId), '{}', { 'content-encoding': 'br' });
    expect(encoding.statusCode, encoding.body).toBe(415);
  });

  it(
    'the CLI refuses a gzip bomb at the import limit (exit 2) and imports a .gz over HTTP',
    { timeout: 240_000 },
    async () => {
      await t.app.listen({ port: 0, host: '127.0.0.1' });
      const address = t.app.server.address();
      const origin = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
      const { projectId } = await createProject(t, {}, { prompts: 0, responses: 0 });
      const project = await t.prisma.project.findUniqueOrThrow({ where: { id: projectId } });
      const researcher = await createAndSignIn(t, 'RESEARCHER');
      const token = (
        await t.app.inject({
          method: 'POST',
          url: '/api/tokens',
          headers: researcher.headers,
          payload: { name: 'cli' },
        })
      ).json<{ token: string }>().token;
      const cli = async (file: string) => {
        try {
          const args = ['tsx', 'server/cli.ts', 'import', '--project', project.name, '--format', 'trl', file];
          const { stdout, stderr } = await promisify(execFile)('npx', [...args, '--url', origin], {
            env: { ...process.env, API_TOKEN: token, IMPORT_LIMIT_BYTES: String(LIMIT) },
          });
          return { code: 0, stdout, stderr };
        } catch (error) {
          return error as { code: number; stdout: string; stderr: string };
        }
      };
      const bomb = path.join(dir, 'bomb.jsonl.gz');
      writeFileSync(bomb, gzipSync(Buffer.alloc(200 * 1024 * 1024, 32)));
      const refused = await cli(bomb);
      expect(refused.code, refused.stderr).toBe(2);
      expect(refused.stderr).toMatch(/unpacked file is larger than the import limit of 65536 bytes/);

      const good = path.join(dir, 'good.jsonl.gz');
      writeFileSync(
        good,
        gzipSync(
          [
            JSON.stringify({ prompt: 'Q1 “quoted”', chosen: 'yes\n😀', rejected: 'no' }),
            JSON.stringify({ prompt: 'Q2', chosen: 'up', rejected: 'down' }),
          ].join('\n'),
        ),
      );
      const imported = await cli(good);
      expect(imported.code, imported.stderr).toBe(0);
      expect(imported.stdout).toMatch(/Imported 2 of 2 rows/);
      expect(await stored(projectId)).toEqual({ prompts: 2, responses: 4, comparisons: 2, judgments: 2 });
      const response = await t.prisma.response.findFirstOrThrow({
        where: { prompt: { projectId }, text: { startsWith: 'yes' } },
      });
      expect(response.text).toBe('yes\n😀');
    },
  );
});

describe('preference imports in batches', () => {
  /** 12,000 rows (more than two batches); rows 11,001 and 11,002 repeat row 1's pair, reversed and not. */
  const rows = Array.from({ length: 12_000 }, (_, i) => ({
    prompt: `Q${Math.floor(i / 3)}`,
    chosen: `yes ${i}`,
    rejected: `no ${Math.floor(i / 3)}`,
    margin: i % 3,
  }));
  rows[11_000] = { prompt: 'Q0', chosen: 'no 0', rejected: 'yes 0', margin: 0 };
  rows[11_001] = { prompt: 'Q0', chosen: 'yes 0', rejected: 'no 0', margin: 0 };
  const content = rows.map((row) => JSON.stringify(row)).join('\n');

  /** The stored judgments of a project as (prompt, A, B, votes, choice) rows, in a stable order. */
  async function contents(projectId: string) {
    const comparisons = await t.prisma.comparison.findMany({
      where: { projectId },
      include: { prompt: true, responseA: true, responseB: true, preferences: true },
    });
    return comparisons
      .map((c) => ({
        prompt: (c.prompt.messages as { content: string }[])[0]!.content,
        a: c.responseA.text,
        b: c.responseB.text,
        votes: [c.requiredVotes, c.voteCount],
        choices: c.preferences.map((p) => `${p.choice}${p.strength}`).sort(),
      }))
      .sort((x, y) => `${x.prompt} ${x.a}`.localeCompare(`${y.prompt} ${y.a}`));
  }

  it('matches prompts, responses and pairs across batches and with what is stored, with or without key checks', async () => {
    const actor = { id: admin.userId, ip: null };
    const imported: string[] = [];
    for (const skipKeyChecks of [true, false]) {
      const { projectId } = await createProject(t, {}, { prompts: 0, responses: 0 });
      const service = new PreferenceImportService(t.prisma, { skipKeyChecks });
      const dry = await service.importFile(
        projectId,
        { format: 'trl', source: 'b', content, dryRun: true },
        actor,
      );
      expect(dry).toMatchObject({ imported: 12_000, prompts: 4_000, newPrompts: 4_000, comparisons: 11_998 });
      expect(await stored(projectId)).toEqual({ prompts: 0, responses: 0, comparisons: 0, judgments: 0 });
      const report = await service.importFile(projectId, { format: 'trl', source: 'b', content }, actor);
      expect(report).toMatchObject({
        imported: 12_000,
        prompts: 4_000,
        newPrompts: 4_000,
        comparisons: 11_998,
      });
      expect(await stored(projectId)).toEqual({
        prompts: 4_000,
        responses: 11_998 + 4_000,
        comparisons: 11_998,
        judgments: 12_000,
      });
      const first = (await contents(projectId)).find((c) => c.prompt === 'Q0' && c.a === 'yes 0')!;
      // Row 1's chosen response is A; the repeats add their votes and judge B, then A.
      expect(first).toEqual({
        prompt: 'Q0',
        a: 'yes 0',
        b: 'no 0',
        votes: [3, 3],
        choices: ['A3', 'A3', 'B3'],
      });
      // Again into the same project: everything is matched, and the votes added.
      const again = await service.importFile(projectId, { format: 'trl', source: 'b', content }, actor);
      expect(again).toMatchObject({ prompts: 4_000, newPrompts: 0, comparisons: 0 });
      expect(await stored(projectId)).toMatchObject({ prompts: 4_000, responses: 15_998, judgments: 24_000 });
      const twice = await contents(projectId);
      expect(twice.find((c) => c.prompt === 'Q0' && c.a === 'yes 0')!.votes).toEqual([6, 6]);
      imported.push(JSON.stringify(twice));
      // Every stored row refers to rows that exist.
      const orphans = await t.prisma.$queryRaw<{ n: number }[]>`
        SELECT ((SELECT count(*) FROM "Response" r LEFT JOIN "Prompt" p ON p.id = r."promptId" WHERE p.id IS NULL)
          + (SELECT count(*) FROM "Comparison" c LEFT JOIN "Response" a ON a.id = c."responseAId"
             LEFT JOIN "Response" b ON b.id = c."responseBId" LEFT JOIN "Prompt" p ON p.id = c."promptId"
             WHERE a.id IS NULL OR b.id IS NULL OR p.id IS NULL)
          + (SELECT count(*) FROM "Preference" j LEFT JOIN "Comparison" c ON c.id = j."comparisonId" WHERE c.id IS NULL))::int AS n`;
      expect(orphans[0]!.n).toBe(0);
    }
    expect(imported[0]).toBe(imported[1]);
  }, 120_000);
});

describe('fuzzed import files', () => {
  /** Text PostgreSQL cannot store, or JSON it cannot nest, in one field of one line of a file. */
  const poison = fc.oneof(
    fc
      .tuple(
        fc.string({ maxLength: 8 }),
        fc.constantFrom('\u0000', '\ud800', '\udfff'),
        fc.string({ maxLength: 8 }),
      )
      .map(([a, bad, b]) => JSON.stringify(`${a}${bad}${b}`)),
    fc.integer({ min: 40, max: 3000 }).map((depth) => `[${nested(depth)}]`),
  );

  it('refuses the same lines with the same message in the dry run and the real run, for both importers', async () => {
    const { projectId } = await createProject(t, {}, { prompts: 0, responses: 0 });
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('prompts', 'preferences'),
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom('prompt', 'answer', 'other', 'metadata'),
        poison,
        async (kind, badLine, field, bad) => {
          const lines = [1, 2, 3, 4].map((n) => {
            const value = (text: string, name: string) =>
              n === badLine && field === name ? bad : JSON.stringify(text);
            return kind === 'prompts'
              ? `{"prompt":${value(`Q${n}`, 'prompt')},"responses":[${value(`A${n}`, 'answer')},${value(`B${n}`, 'other')}],"metadata":{"x":${value('m', 'metadata')}}}`
              : `{"prompt":${value(`Q${n}`, 'prompt')},"chosen":${value(`A${n}`, 'answer')},"rejected":${value(`B${n}`, 'other')}}`;
          });
          // A preference row ignores unknown fields, and has no metadata: that line stays good.
          const expectBad = !(kind === 'preferences' && field === 'metadata');
          const send = (dryRun: boolean) =>
            post(
              kind === 'prompts'
                ? `/api/projects/${projectId}/prompts/import`
                : `/api/projects/${projectId}/preferences/import`,
              JSON.stringify({
                format: kind === 'prompts' ? 'jsonl' : 'trl',
                content: lines.join('\n'),
                source: 'fuzz',
                dryRun,
              }),
            );
          const dry = await send(true);
          if (!expectBad) {
            expect(dry.statusCode, dry.body).toBe(200);
            return;
          }
          const real = await send(false);
          expect(dry.statusCode, dry.body).toBe(400);
          expect(real.statusCode, real.body).toBe(400);
          expect(real.json().message).toBe(dry.json().message);
          expect(real.json().errors).toEqual(dry.json().errors);
          expect(dry.json<{ errors: { line: number }[] }>().errors.map((error) => error.line)).toEqual([
            badLine,
          ]);
        },
      ),
      { numRuns: 60 },
    );
    expect(await stored(projectId)).toEqual({ prompts: 0, responses: 0, comparisons: 0, judgments: 0 });
  });
});
