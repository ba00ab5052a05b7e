// The researchers' CLI against a running server over HTTP with an API token: export to a file,
// import with bad rows refused, and exit codes scripts can trust (0, 4, 5, 6).
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndSignIn, createTestApp, type TestApp } from '../support/app.js';
import { createProject } from '../support/rating.js';

const run = promisify(execFile);
let t: TestApp;
let origin: string;
let token: string;
let projectName: string;
const dir = mkdtempSync(path.join(os.tmpdir(), 'loom-cli-'));

async function cli(args: string[], env: Record<string, string> = { API_TOKEN: token }) {
  try {
    const { stdout, stderr } = await run('npx', ['tsx', 'server/cli.ts', ...args, '--url', origin], {
      env: { ...process.env, ...env, DATABASE_URL: '', TEST_DATABASE_URL: '' },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

beforeAll(async () => {
  t = await createTestApp();
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const address = t.app.server.address();
  origin = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  const { projectId } = await createProject(t, {}, { prompts: 0, responses: 0 });
  projectName = (await t.prisma.project.findUniqueOrThrow({ where: { id: projectId } })).name;
  const researcher = await createAndSignIn(t, 'RESEARCHER');
  const created = await t.app.inject({
    method: 'POST',
    url: '/api/tokens',
    headers: researcher.headers,
    payload: { name: 'cli' },
  });
  token = created.json<{ token: string }>().token;
});
afterAll(() => t.close());

describe('CLI over HTTP', { timeout: 360_000 }, () => {
  it('imports, refuses bad files with exit 6, exports to a file, and reports 4 and 5', async () => {
    const good = path.join(dir, 'good.jsonl');
    writeFileSync(
      good,
      [
        JSON.stringify({ prompt: 'Q1', chosen: 'yes', rejected: 'no' }),
        JSON.stringify({ prompt: 'Q2', chosen: '=1+1', rejected: 'down' }),
      ].join('\n'),
    );
    const bad = path.join(dir, 'bad.jsonl');
    writeFileSync(bad, `${JSON.stringify({ prompt: 'Q3', chosen: 'same', rejected: 'same' })}\n{oops`);

    const imported = await cli(['import', '--project', projectName, '--format', 'trl', good]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stdout).toMatch(/Imported 2 of 2 rows/);

    const refused = await cli(['import', '--project', projectName, '--format', 'trl', bad]);
    expect(refused.code).toBe(6);
    expect(refused.stdout).toMatch(/line 1: chosen-equals-rejected/);
    expect(refused.stdout).toMatch(/line 2: unparsable/);

    const out = path.join(dir, 'out.jsonl');
    const exported = await cli(['export', '--project', projectName, '--format', 'trl', '--out', out]);
    expect(exported.code, exported.stderr).toBe(0);
    const rows = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as unknown);
    // The prompt as an HH transcript and a space before each completion: prompt + chosen reads right.
    expect(rows).toContainEqual({ prompt: '\n\nHuman: Q1\n\nAssistant:', chosen: ' yes', rejected: ' no' });
    expect(exported.stderr).toMatch(/0 pairs of identical responses left out/);
    expect(existsSync(`${out}.partial`)).toBe(false);

    // --no-spreadsheet-safe asks for CSV cells exactly as stored (spreadsheet-safe is the default).
    const csv = path.join(dir, 'out.csv');
    const plain = await cli([
      'export',
      '--project',
      projectName,
      '--format',
      'csv',
      '--no-spreadsheet-safe',
      '--out',
      csv,
    ]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(readFileSync(csv, 'utf8')).toContain(',=1+1,');

    expect(
      (await cli(['export', '--project', 'no such project', '--format', 'trl', '--out', out])).code,
    ).toBe(4);
    expect(
      (
        await cli(['export', '--project', projectName, '--format', 'trl', '--out', out], {
          API_TOKEN: 'loom_bad',
        })
      ).code,
    ).toBe(5);
    expect((await cli(['export', '--help'])).stdout).toMatch(/Exit codes/);
  });
});
