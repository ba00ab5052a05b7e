// The leaderboard route against real PostgreSQL: a project with four policy versions, responses,
// comparisons and human, simulated and imported judgments. The route's numbers equal the pure
// Bradley-Terry function on the counts this test inserted; only judgments between two different
// versions count (not gold, not a version against itself, not an unversioned response); the
// include filter adds simulated and imported judgments; raters get 403 and bad queries 400. The
// CLI prints the same numbers.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Choice } from '../../core/db/client.js';
import { leaderboard, seededRandom, type PairCount } from '../../core/ranking/bradley-terry.js';
import type { Leaderboard } from '../../core/schemas/leaderboard.js';
import { createAndSignIn, createUser, createTestApp, type SignedIn, type TestApp } from '../support/app.js';
import { createProject } from '../support/rating.js';

let t: TestApp;
let researcher: SignedIn;
let admin: SignedIn;
let rater: SignedIn;
let projectId: string;
/** Versions in creation order: strong, middle, weak, and one ready version nobody compared. */
let versionIds: string[];
type Source = 'HUMAN' | 'SIMULATED' | 'IMPORTED';
/** What this test inserted: per (version of A, version of B, choice, source), the judgments. */
const inserted = new Map<string, number>();

const TRUE_STRENGTH = [0.8, 0, -0.8];
const PROMPTS = 24;
const HUMAN_RATERS = 5;

beforeAll(async () => {
  t = await createTestApp();
  researcher = await createAndSignIn(t, 'RESEARCHER');
  rater = await createAndSignIn(t, 'RATER');
  const setup = await createProject(t, {}, { prompts: 0, responses: 0 });
  projectId = setup.projectId;
  admin = setup.admin;
  versionIds = [];
  for (const name of ['strong', 'middle', 'weak', 'unrated']) {
    const version = await t.prisma.policyVersion.create({
      data: { projectId, name, kind: 'EXTERNAL', status: 'READY' },
    });
    versionIds.push(version.id);
  }
  const humans = await Promise.all(
    Array.from({ length: HUMAN_RATERS }, async () => (await createUser(t, 'RATER')).id),
  );
  // A simulated account judging with source HUMAN still counts as simulated (like exports).
  const simulatedAccount = (
    await t.prisma.user.create({
      data: { email: 'sim@example.com', name: 'Simulated 1', role: 'RATER', simulated: true },
    })
  ).id;
  const random = seededRandom(2026);
  const preferences: {
    comparisonId: string;
    raterId: string | null;
    source: Source;
    choice: Choice;
  }[] = [];
  const record = (a: number, b: number, choice: Choice, source: Source) => {
    const key = `${versionIds[a]} ${versionIds[b]} ${choice} ${source}`;
    inserted.set(key, (inserted.get(key) ?? 0) + 1);
  };

  for (let p = 0; p < PROMPTS; p++) {
    const prompt = await t.prisma.prompt.create({
      data: { projectId, messages: [{ role: 'user', content: `Question ${p}` }] },
    });
    const responses = [];
    for (const [v, versionId] of versionIds.slice(0, 3).entries())
      responses.push(
        await t.prisma.response.create({
          data: { promptId: prompt.id, policyVersionId: versionId, text: `answer ${p} by version ${v}` },
        }),
      );
    for (const [i, j] of [
      [0, 1],
      [1, 2],
      [0, 2],
    ] as const) {
      // Alternate which version is response A.
      const [a, b] = p % 2 === 0 ? [i, j] : [j, i];
      const comparison = await t.prisma.comparison.create({
        data: {
          projectId,
          promptId: prompt.id,
          responseAId: responses[a]!.id,
          responseBId: responses[b]!.id,
          requiredVotes: HUMAN_RATERS,
        },
      });
      for (const raterId of humans) {
        const u = random();
        const pA = 1 / (1 + Math.exp(TRUE_STRENGTH[b]! - TRUE_STRENGTH[a]!));
        const choice: Choice = u < 0.1 ? 'TIE' : u < 0.13 ? 'BOTH_BAD' : random() < pA ? 'A' : 'B';
        preferences.push({ comparisonId: comparison.id, raterId, source: 'HUMAN', choice });
        record(a, b, choice, 'HUMAN');
      }
      // Simulated votes always for the weak version, imported ones always for the middle one:
      // counted, they would change the order.
      if (a === 2 || b === 2) {
        const choice: Choice = a === 2 ? 'A' : 'B';
        preferences.push({ comparisonId: comparison.id, raterId: simulatedAccount, source: 'HUMAN', choice });
        record(a, b, choice, 'SIMULATED');
      }
      if (a === 1 || b === 1) {
        for (let k = 0; k < 3; k++) {
          const choice: Choice = a === 1 ? 'A' : 'B';
          preferences.push({ comparisonId: comparison.id, raterId: null, source: 'IMPORTED', choice });
          record(a, b, choice, 'IMPORTED');
        }
      }
    }
    // Not counted: a gold comparison, a version against itself, a response of no version.
    const again = await t.prisma.response.create({
      data: {
        promptId: prompt.id,
        policyVersionId: versionIds[0]!,
        text: `another answer ${p}`,
        sampleIndex: 1,
      },
    });
    const unversioned = await t.prisma.response.create({
      data: { promptId: prompt.id, source: 'import', text: `imported answer ${p}` },
    });
    const gold = await t.prisma.comparison.create({
      data: {
        projectId,
        promptId: prompt.id,
        responseAId: responses[2]!.id,
        responseBId: again.id,
        requiredVotes: 1,
        isGold: true,
        goldChoice: 'A',
      },
    });
    const self = await t.prisma.comparison.create({
      data: {
        projectId,
        promptId: prompt.id,
        responseAId: responses[0]!.id,
        responseBId: again.id,
        requiredVotes: 1,
      },
    });
    const loose = await t.prisma.comparison.create({
      data: {
        projectId,
        promptId: prompt.id,
        responseAId: unversioned.id,
        responseBId: responses[0]!.id,
        requiredVotes: 1,
      },
    });
    for (const comparisonId of [gold.id, self.id, loose.id])
      preferences.push({ comparisonId, raterId: humans[0]!, source: 'HUMAN', choice: 'A' });
  }
  await t.prisma.preference.createMany({ data: preferences });
}, 120_000);
afterAll(() => t.close());

function get(query: string, headers = researcher.headers) {
  return t.app.inject({ method: 'GET', url: `/api/projects/${projectId}/leaderboard${query}`, headers });
}

/** The pure function on what this test inserted, from the given sources, cells in the route's order. */
function expected(sources: Source[], resamples: number, seed: number) {
  const merged = new Map<string, PairCount>();
  for (const [key, count] of inserted) {
    const [a, b, choice, source] = key.split(' ') as [string, string, Choice, Source];
    if (!sources.includes(source)) continue;
    const cellKey = `${a} ${b} ${choice}`;
    const cell = merged.get(cellKey) ?? {
      a: versionIds.indexOf(a),
      b: versionIds.indexOf(b),
      outcome: choice,
      count: 0,
    };
    cell.count += count;
    merged.set(cellKey, cell);
  }
  const cells = [...merged.keys()].sort().map((key) => merged.get(key)!);
  return leaderboard(versionIds.length, cells, { resamples, seed });
}

describe('GET /api/projects/:id/leaderboard', () => {
  it('ranks the versions from human judgments only, equal to the pure function', async () => {
    const response = await get('?bootstrap=300&seed=7');
    expect(response.statusCode, response.body).toBe(200);
    const board = response.json<Leaderboard>();
    const pure = expected(['HUMAN'], 300, 7);
    expect(board.sources).toEqual(['HUMAN']);
    expect(board.judgments).toBe(PROMPTS * 3 * HUMAN_RATERS);
    expect(board.judgments).toBe(pure.judgments);
    expect(board.leftOut).toEqual({ simulated: PROMPTS * 2, imported: PROMPTS * 2 * 3 });
    expect(board.bootstrap).toBe(300);
    // Best first, in the order of the true strengths; the uncompared version last, unrated.
    expect(board.versions.map((v) => v.name)).toEqual(['strong', 'middle', 'weak', 'unrated']);
    for (const version of board.versions) {
      const i = versionIds.indexOf(version.id);
      const item = pure.items[i]!;
      for (const key of ['rating', 'ratingLow', 'ratingHigh', 'logStrength', 'logLow', 'logHigh'] as const) {
        if (item[key] === null) expect(version[key]).toBeNull();
        else expect(version[key]).toBeCloseTo(item[key], 9);
      }
      expect(version).toMatchObject({
        votes: item.votes,
        wins: item.wins,
        losses: item.losses,
        ties: item.ties,
        bothBad: item.bothBad,
        rank: item.rank,
        connected: item.connected,
      });
    }
    const unrated = board.versions[3]!;
    expect(unrated).toMatchObject({ rating: null, votes: 0, connected: false });
    const [strong, middle, weak] = board.versions;
    expect(strong!.ratingLow!).toBeLessThan(strong!.rating!);
    expect(strong!.ratingHigh!).toBeGreaterThan(strong!.rating!);
    expect(strong!.votes).toBe(PROMPTS * 2 * HUMAN_RATERS);
    // Ratings centred at 1000 over the three ranked versions.
    expect((strong!.rating! + middle!.rating! + weak!.rating!) / 3).toBeCloseTo(1000, 8);
    // The matrix, rows and columns in the board's order.
    for (const [r, row] of board.versions.entries()) {
      for (const [c, column] of board.versions.entries()) {
        const cell = pure.matrix[versionIds.indexOf(row.id)]![versionIds.indexOf(column.id)];
        expect(board.matrix[r]![c]).toEqual(cell ?? null);
      }
    }
    expect(board.matrix[0]![1]!.total).toBe(PROMPTS * HUMAN_RATERS);
    expect(board.matrix[0]![1]!.winRate).toBeGreaterThan(0.5);
  });

  it('counts simulated and imported judgments only when asked', async () => {
    const simulated = (await get('?include=simulated&bootstrap=100')).json<Leaderboard>();
    expect(simulated.sources).toEqual(['HUMAN', 'SIMULATED']);
    expect(simulated.judgments).toBe(PROMPTS * 3 * HUMAN_RATERS + PROMPTS * 2);
    expect(simulated.leftOut).toEqual({ simulated: 0, imported: PROMPTS * 2 * 3 });
    const pure = expected(['HUMAN', 'SIMULATED'], 100, 1);
    const weak = simulated.versions.find((v) => v.name === 'weak')!;
    expect(weak.rating).toBeCloseTo(pure.items[2]!.rating!, 9);

    const all = (await get('?include=simulated,imported&bootstrap=0')).json<Leaderboard>();
    expect(all.sources).toEqual(['HUMAN', 'SIMULATED', 'IMPORTED']);
    expect(all.judgments).toBe(PROMPTS * 3 * HUMAN_RATERS + PROMPTS * 2 + PROMPTS * 2 * 3);
    expect(all.leftOut).toEqual({ simulated: 0, imported: 0 });
    // Without resamples there are no intervals.
    expect(all.versions[0]!.ratingLow).toBeNull();
    const pureAll = expected(['HUMAN', 'SIMULATED', 'IMPORTED'], 0, 1);
    for (const version of all.versions.slice(0, 3))
      expect(version.rating).toBeCloseTo(pureAll.items[versionIds.indexOf(version.id)]!.rating!, 9);
    // The imported votes for the middle version lift it above the strong one.
    expect(all.versions[0]!.name).toBe('middle');

    const imported = (await get('?include=imported&bootstrap=0')).json<Leaderboard>();
    expect(imported.sources).toEqual(['HUMAN', 'IMPORTED']);
  });

  it('is for admins and researchers: raters get 403, anonymous callers 401', async () => {
    expect((await get('', admin.headers)).statusCode).toBe(200);
    const refused = await get('', rater.headers);
    expect(refused.statusCode).toBe(403);
    expect((await get('', {})).statusCode).toBe(401);
  });

  it('refuses bad queries with 400 and a message, and unknown projects with 404', async () => {
    for (const query of [
      '?include=everything',
      '?include=simulated,',
      '?bootstrap=-1',
      '?bootstrap=abc',
      '?bootstrap=100000',
      '?colour=red',
    ]) {
      const response = await get(query);
      expect(response.statusCode, query).toBe(400);
      expect(response.json<{ message: string }>().message.length).toBeGreaterThan(0);
    }
    const missing = await t.app.inject({
      method: 'GET',
      url: '/api/projects/00000000-0000-4000-8000-000000000000/leaderboard',
      headers: researcher.headers,
    });
    expect(missing.statusCode).toBe(404);
  });
});

describe('loom leaderboard', { timeout: 120_000 }, () => {
  async function cli(args: string[]) {
    try {
      const { stdout, stderr } = await promisify(execFile)(
        'npx',
        ['tsx', 'server/cli.ts', 'leaderboard', ...args],
        {
          env: { ...process.env, DATABASE_URL: t.database.url, API_TOKEN: '' },
        },
      );
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  }

  it('prints the route’s numbers as JSON and as a table, and refuses bad usage with exit 2', async () => {
    const route = (await get('?include=simulated&bootstrap=200&seed=3')).json<Leaderboard>();
    const json = await cli([
      '--project',
      projectId,
      '--include',
      'simulated',
      '--bootstrap',
      '200',
      '--seed',
      '3',
      '--json',
    ]);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(route);

    const name = (await t.prisma.project.findUniqueOrThrow({ where: { id: projectId } })).name;
    const text = await cli(['--project', name, '--bootstrap', '200']);
    expect(text.code, text.stderr).toBe(0);
    const human = (await get('?bootstrap=200')).json<Leaderboard>();
    expect(text.stdout).toContain(`${human.judgments} human judgments between versions`);
    expect(text.stdout).toContain('simulated and');
    const strong = human.versions[0]!;
    const row = text.stdout.split('\n').find((line) => /^\s*1\s+strong\b/.test(line));
    expect(row, text.stdout).toBeDefined();
    expect(row).toContain(`${strong.ratingLow!.toFixed(0)} to ${strong.ratingHigh!.toFixed(0)}`);
    expect(row).toContain(` ${strong.votes} `);
    expect(text.stdout).toContain('Not rated (no comparisons linking them to the others): unrated.');
    expect(text.stdout).toContain('Win rate of the row against the column');

    const bad = await cli(['--project', projectId, '--include', 'everything']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--include takes simulated and/or imported');
    expect((await cli(['--project', 'no such project'])).code).toBe(4);
  });
});
