// `loom leaderboard`: a project's policy versions ranked by pairwise votes (Bradley-Terry ratings
// with 95% bootstrap intervals), as a table or JSON. With API_TOKEN set it asks the running server
// (--url); without it, it opens the database itself, like the data commands.
import { parseArgs } from 'node:util';
import { Value } from 'typebox/value';
import { loadConfig } from '../core/config.js';
import { openDatabase } from '../core/db/open.js';
import { LeaderboardQuery, type Leaderboard } from '../core/schemas/leaderboard.js';
import { LeaderboardService } from '../core/services/leaderboard.js';
import { RequestFailed, UsageError } from './cli-datasets.js';

export const LEADERBOARD_HELP = `Usage:
  npm run cli -- leaderboard --project <id or name> [--include simulated,imported] [--bootstrap <n>] [--seed <n>] [--json]

Ranks a project's policy versions by the judgments between responses of two different versions:
Bradley-Terry ratings (Elo-like scale, mean 1000) with 95% bootstrap intervals, votes, and the
pairwise win rates. Human judgments only unless --include names simulated and/or imported ones
(repeatable or comma-separated). A tie or BOTH_BAD counts as half a win for each version.
  --bootstrap <n>   resamples for the intervals (default 1000, 0 = none)
  --seed <n>        the bootstrap's seed (default 1)
  --json            the API's answer as JSON instead of a table
  --url <origin>    the server, when API_TOKEN is set (default http://localhost:3000)
Exit codes: 0 done; 2 bad usage; 4 no such project; 5 not allowed; 1 anything else.`;

const OPTIONS = {
  project: { type: 'string' },
  include: { type: 'string', multiple: true },
  bootstrap: { type: 'string' },
  seed: { type: 'string' },
  json: { type: 'boolean' },
  url: { type: 'string' },
  help: { type: 'boolean' },
} as const;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function queryOf(values: { include?: string[]; bootstrap?: string; seed?: string }): LeaderboardQuery {
  const include = (values.include ?? []).flatMap((value) => value.split(',')).filter(Boolean);
  const integer = (value: string | undefined, name: string) => {
    if (value === undefined) return undefined;
    if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a whole number.`);
    return Number(value);
  };
  const query: LeaderboardQuery = {
    ...(include.length ? { include: [...new Set(include)].join(',') } : {}),
    ...(values.bootstrap !== undefined ? { bootstrap: integer(values.bootstrap, 'bootstrap') } : {}),
    ...(values.seed !== undefined ? { seed: integer(values.seed, 'seed') } : {}),
  };
  const problem = [...Value.Errors(LeaderboardQuery, query)][0];
  if (problem) {
    const field = problem.instancePath.replace(/^\//, '');
    throw new UsageError(
      field === 'include'
        ? '--include takes simulated and/or imported.'
        : `--${field || 'option'}: ${problem.message}`,
    );
  }
  return query;
}

async function fromServer(url: string | undefined, project: string, query: LeaderboardQuery) {
  const origin = (url ?? 'http://localhost:3000').replace(/\/+$/, '');
  const get = async (path: string) => {
    let response: Response;
    try {
      response = await fetch(`${origin}${path}`, {
        headers: { authorization: `Bearer ${process.env.API_TOKEN}` },
      });
    } catch (error) {
      throw new RequestFailed(0, `Cannot reach ${origin}: ${(error as Error).message}`, 1);
    }
    if (!response.ok) {
      const answer = (await response.json().catch(() => ({}))) as { message?: string };
      throw new RequestFailed(response.status, answer.message ?? `HTTP ${response.status}`);
    }
    return response.json();
  };
  const projects = (await get('/api/projects')) as { id: string; name: string }[];
  const found = projects.find((p) => p.id === project || p.name === project);
  if (!found) throw new RequestFailed(404, `No project "${project}".`);
  const search = new URLSearchParams(
    Object.entries(query).map(([key, value]) => [key, String(value)] as [string, string]),
  );
  const board = (await get(`/api/projects/${found.id}/leaderboard?${search}`)) as Leaderboard;
  return { name: found.name, board };
}

async function fromDatabase(project: string, query: LeaderboardQuery) {
  const db = await openDatabase(loadConfig(), { poolMax: 3 });
  try {
    const found = await db.prisma.project.findFirst({
      where: UUID.test(project) ? { id: project } : { name: project },
    });
    if (!found) throw new RequestFailed(404, `No project "${project}".`);
    return { name: found.name, board: await new LeaderboardService(db.prisma).board(found, query) };
  } finally {
    await db.close();
  }
}

const fixed = (value: number | null, digits = 0) => (value === null ? '—' : value.toFixed(digits));

/** Columns padded to their widest cell; numbers aligned right. */
function table(rows: string[][], right: ReadonlySet<number>): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return rows
    .map((row) =>
      row
        .map((cell, c) => (right.has(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The leaderboard as text: a heading, the ranking and the pairwise win rates. */
export function formatLeaderboard(name: string, board: Leaderboard): string {
  const kinds = board.sources.map((s) => s.toLowerCase()).join(' + ');
  const left = [
    board.leftOut.simulated ? `${board.leftOut.simulated} simulated` : '',
    board.leftOut.imported ? `${board.leftOut.imported} imported` : '',
  ].filter(Boolean);
  const lines = [
    `Leaderboard of ${name}: ${board.judgments} ${kinds} judgments between versions` +
      (left.length ? ` (${left.join(' and ')} left out; --include to count them)` : '') +
      (board.bootstrap > 0 ? `, 95% intervals from ${board.bootstrap} bootstrap resamples` : ''),
    '',
  ];
  if (board.versions.length === 0) return [...lines, 'No policy versions.'].join('\n');
  lines.push(
    table(
      [
        ['Rank', 'Version', 'Rating', '95% interval', 'Votes', 'Wins', 'Losses', 'Ties', 'Both bad'],
        ...board.versions.map((v) => [
          v.rank === null ? '—' : String(v.rank),
          v.name + (v.current ? ' (current)' : ''),
          fixed(v.rating),
          v.ratingLow === null || v.ratingHigh === null
            ? '—'
            : `${fixed(v.ratingLow)} to ${fixed(v.ratingHigh)}`,
          String(v.votes),
          String(v.wins),
          String(v.losses),
          String(v.ties),
          String(v.bothBad),
        ]),
      ],
      new Set([0, 2, 4, 5, 6, 7, 8]),
    ),
  );
  const unranked = board.versions.filter((v) => !v.connected).map((v) => v.name);
  if (unranked.length)
    lines.push('', `Not rated (no comparisons linking them to the others): ${unranked.join(', ')}.`);
  if (board.versions.length > 1) {
    lines.push('', 'Win rate of the row against the column (votes):');
    lines.push(
      table(
        [
          ['', ...board.versions.map((v) => v.name)],
          ...board.versions.map((row, r) => [
            row.name,
            ...board.versions.map((_, c) => {
              const cell = board.matrix[r]![c];
              return cell?.winRate == null ? '·' : `${(cell.winRate * 100).toFixed(0)}% (${cell.total})`;
            }),
          ]),
        ],
        new Set(board.versions.map((_, i) => i + 1)),
      ),
    );
  }
  return lines.join('\n');
}

export async function leaderboardCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: false });
  if (values.help) return void console.log(LEADERBOARD_HELP);
  if (!values.project) throw new UsageError('--project is required (an id or a name).');
  const query = queryOf(values);
  const { name, board } = process.env.API_TOKEN
    ? await fromServer(values.url, values.project, query)
    : await fromDatabase(values.project, query);
  console.log(values.json ? JSON.stringify(board, null, 2) : formatLeaderboard(name, board));
}
