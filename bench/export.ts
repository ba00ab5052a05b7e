// Streaming export at scale: 1,000,000 synthetic judgments written by SQL (generate_series) into a
// fresh database, then exported as TRL JSONL through the real HTTP route of a server running in its
// own process (its peak resident memory is the one reported), read as a stream.
// Also imports the HH-RLHF helpful-base test file and prints what the importer reports.
// Ends with `export: rows_per_s=<n> peak_rss_mb=<n>` (rows = judgments read, encoded and sent).
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import pg from 'pg';
import { benchDatabase } from './database.js';
import { HH_TEST_FILE as HH_FILE } from './hh-data.js';
import { memoryOf, startProductionServer, type ServerProcess } from './server.js';
import { createPrisma } from '../core/db/client.js';
import { PreferenceImportService } from '../core/services/preference-imports.js';
import { hashPassword } from '../core/services/passwords.js';

const JUDGMENTS = Number(process.env.BENCH_JUDGMENTS ?? 1_000_000);
const VOTES = 5; // judgments per comparison, by distinct raters
const RATERS = 50;

/** Prompts, two responses each, one comparison each, VOTES judgments each: all in PostgreSQL. */
export async function seed(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const comparisons = Math.ceil(JUDGMENTS / VOTES);
  try {
    await client.query(`INSERT INTO "User" (id, email, name, role, "updatedAt")
      SELECT md5('u' || k)::uuid, 'rater' || k || '@bench.example', 'Rater ' || k, 'RATER', now()
      FROM generate_series(1, ${RATERS}) k`);
    const { rows } = await client.query<{ id: string }>(
      `INSERT INTO "Project" (name, "updatedAt") VALUES ('export bench', now()) RETURNING id`,
    );
    const projectId = rows[0]!.id;
    await client.query(
      `INSERT INTO "Prompt" (id, "projectId", messages)
       SELECT md5('p' || i)::uuid, $1, jsonb_build_array(jsonb_build_object('role', 'user',
         'content', 'Question ' || i || ': explain ' || md5(i::text) || ' in one paragraph.'))
       FROM generate_series(1, ${comparisons}) i`,
      [projectId],
    );
    await client.query(`INSERT INTO "Response" (id, "promptId", text, source)
      SELECT md5(side || i)::uuid, md5('p' || i)::uuid,
        side || ' answers ' || i || ': ' || repeat(md5(side || i::text), 4), 'bench-' || side
      FROM generate_series(1, ${comparisons}) i, unnest(ARRAY['a', 'b']) side`);
    await client.query(
      `INSERT INTO "Comparison" (id, "projectId", "promptId", "responseAId", "responseBId", "requiredVotes", "voteCount")
       SELECT md5('c' || i)::uuid, $1, md5('p' || i)::uuid, md5('a' || i)::uuid, md5('b' || i)::uuid, ${VOTES}, ${VOTES}
       FROM generate_series(1, ${comparisons}) i`,
      [projectId],
    );
    await client.query(`INSERT INTO "Preference" ("comparisonId", "raterId", choice, strength, "timeSpentMs", "shownSwapped")
      SELECT md5('c' || i)::uuid, md5('u' || (1 + (i * 7 + k) % ${RATERS}))::uuid,
        (ARRAY['A', 'B', 'A', 'TIE', 'A', 'B', 'BOTH_BAD'])[1 + (i * 3 + k) % 7]::"Choice",
        (i + k) % 4, 1000 + (i * k) % 60000, (i + k) % 2 = 0
      FROM generate_series(1, ${comparisons}) i, generate_series(1, ${VOTES}) k
      LIMIT ${JUDGMENTS}`);
    await client.query('ANALYZE');
    return projectId;
  } finally {
    await client.end();
  }
}

export async function main(): Promise<void> {
  const database = await benchDatabase('export');
  const url = database.url;
  const prisma = createPrisma(url, { max: 4 });
  let server: ServerProcess | null = null;
  try {
    let started = performance.now();
    const projectId = await seed(url);
    console.log(`seeded ${JUDGMENTS} judgments in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    const password = randomBytes(16).toString('hex');
    const researcher = await prisma.user.create({
      data: {
        email: 'researcher@bench.example',
        name: 'Researcher',
        role: 'RESEARCHER',
        credential: { create: { passwordHash: await hashPassword(password) } },
      },
    });

    // The server in its own process, as in production: its memory is what the target is about.
    server = await startProductionServer(url);
    const pid = server.child.pid!;
    const login = await fetch(`${server.origin}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: researcher.email, password }),
    });
    if (!login.ok) throw new Error(`login failed: ${login.status} ${await login.text()}`);
    const { csrfToken } = (await login.json()) as { csrfToken: string };
    const cookie = login.headers
      .getSetCookie()
      .map((value) => value.split(';')[0])
      .join('; ');
    const before = memoryOf(pid);

    // The export, read as a stream over HTTP like curl or the CLI would.
    started = performance.now();
    const response = await fetch(`${server.origin}/api/projects/${projectId}/export`, {
      method: 'POST',
      headers: { cookie, 'x-csrf-token': csrfToken, 'content-type': 'application/json' },
      body: JSON.stringify({ format: 'trl', options: { margin: true } }),
    });
    if (!response.ok || !response.body)
      throw new Error(`export failed: ${response.status} ${await response.text()}`);
    const judgments = Number(response.headers.get('x-loom-judgments'));
    let bytes = 0;
    let lines = 0;
    for await (const chunk of response.body) {
      bytes += chunk.length;
      for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) lines++;
    }
    const seconds = (performance.now() - started) / 1000;
    const rowsPerSecond = Math.round(judgments / seconds);
    const after = memoryOf(pid);
    console.log(
      `exported ${judgments} judgments as ${lines} TRL rows (${(bytes / 1e6).toFixed(0)} MB) in ${seconds.toFixed(1)} s; ` +
        `server RSS ${before.now} MB before, ${after.now} MB after, peak ${after.peak} MB`,
    );

    // The HH-RLHF helpful-base test split through the importer (bad rows skipped and counted).
    if (existsSync(HH_FILE)) {
      const project = await prisma.project.create({ data: { name: 'hh import' } });
      const content = gunzipSync(readFileSync(HH_FILE)).toString('utf8');
      started = performance.now();
      const report = await new PreferenceImportService(prisma).importFile(
        project.id,
        { format: 'hh', content, source: 'hh-rlhf/helpful-base-test', onError: 'skip' },
        { id: researcher.id },
      );
      console.log(
        `hh import: lines=${report.lines} imported=${report.imported} skipped=${report.skipped} ` +
          `errors=${JSON.stringify(report.errorCounts)} prompts=${report.prompts} comparisons=${report.comparisons} ` +
          `in ${((performance.now() - started) / 1000).toFixed(1)} s`,
      );
      for (const error of report.errors.slice(0, 8)) console.log(`  line ${error.line}: ${error.message}`);
    }
    console.log(`export: rows_per_s=${rowsPerSecond} peak_rss_mb=${after.peak}`);
  } finally {
    await server?.stop();
    await prisma.$disconnect();
    await database.drop();
  }
}
