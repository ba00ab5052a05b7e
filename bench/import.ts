// Preference import at the size limit: a TRL JSONL file whose request body is just under
// IMPORT_LIMIT_BYTES (64 MiB by default) is uploaded through the real HTTP route of a server
// running in its own process (as `npm start` runs it), streamed like the CLI sends it. Reports
// rows stored per second (the whole request: upload, parse, staging, matching, storing) and the
// server's peak resident memory (VmHWM). The peer: the same rows, already parsed, written by
// `pg` in multi-row INSERTs of 2,000 (arrays through unnest) into a plain table of four columns.
// Ends with `import: rows_per_s=<n> peak_rss_mb=<n>`.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import pg from 'pg';
import { benchDatabase } from './database.js';
import { memoryOf, startProductionServer, type ServerProcess } from './server.js';
import { createPrisma } from '../core/db/client.js';
import { hashPassword } from '../core/services/passwords.js';

const LIMIT = Number(process.env.IMPORT_LIMIT_BYTES ?? 67_108_864);
const WORDS = (
  'the a of to and in is it you that for on with as be this was are at by or not but from have an they ' +
  'which one your all can there their more if will about what when so some would other into time has ' +
  'could them these two may then do first any now such like our over only new also after use how well ' +
  'model answer question reason step because example value result number first second explain helpful'
).split(' ');

/** Deterministic pseudo-random text (xorshift), so every run imports the same file. */
function textMaker(seed: number) {
  let state = seed >>> 0 || 1;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  return (words: number) =>
    Array.from({ length: words }, () => WORDS[Math.floor(next() * WORDS.length)]).join(' ');
}

interface Row {
  prompt: string;
  chosen: string;
  rejected: string;
}

/** TRL rows (two per prompt) until the JSON body would pass `bytes`; the JSONL text and rows. */
function makeFile(bytes: number): { content: string; rows: Row[] } {
  const text = textMaker(42);
  const rows: Row[] = [];
  const lines: string[] = [];
  let size = 200; // the other fields of the body
  let prompt = '';
  for (let i = 0; ; i++) {
    if (i % 2 === 0) prompt = `Question ${i / 2}: ${text(18)}?`;
    const row = { prompt, chosen: ` ${text(45)}.`, rejected: ` ${text(40)}.` };
    const line = JSON.stringify(row);
    const escaped = JSON.stringify(`${line}\n`).length - 2;
    if (size + escaped > bytes) break;
    size += escaped;
    rows.push(row);
    lines.push(line);
  }
  return { content: lines.join('\n'), rows };
}

/** The request body as the CLI streams it: the fields, then the text in escaped pieces. */
function bodyStream(fields: Record<string, unknown>, content: string): Readable {
  return Readable.from(
    (function* () {
      const head = JSON.stringify(fields);
      yield Buffer.from(`${head.slice(0, -1)},"content":"`);
      for (let at = 0; at < content.length; at += 1 << 16)
        yield Buffer.from(JSON.stringify(content.slice(at, at + (1 << 16))).slice(1, -1));
      yield Buffer.from('"}');
    })(),
  );
}

/** The peer: the same rows, parsed, as multi-row INSERTs of arrays into a plain table. */
async function rawInsert(url: string, rows: Row[]): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('CREATE TABLE bench_raw_pair (line int, prompt text, chosen text, rejected text)');
    const started = performance.now();
    await client.query('BEGIN');
    for (let at = 0; at < rows.length; at += 2_000) {
      const batch = rows.slice(at, at + 2_000);
      await client.query(
        `INSERT INTO bench_raw_pair SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[])`,
        [
          batch.map((_, i) => at + i + 1),
          batch.map((row) => row.prompt),
          batch.map((row) => row.chosen),
          batch.map((row) => row.rejected),
        ],
      );
    }
    await client.query('COMMIT');
    return rows.length / ((performance.now() - started) / 1000);
  } finally {
    await client.query('DROP TABLE IF EXISTS bench_raw_pair').catch(() => undefined);
    await client.end();
  }
}

export async function main(): Promise<void> {
  const database = await benchDatabase('import');
  const prisma = createPrisma(database.url, { max: 2 });
  let server: ServerProcess | null = null;
  try {
    const { content, rows } = makeFile(LIMIT - 4096);
    console.log(
      `file: ${rows.length} TRL rows, ${(Buffer.byteLength(content) / 1048576).toFixed(1)} MiB of JSONL ` +
        `(request body under the ${(LIMIT / 1048576).toFixed(0)} MiB import limit)`,
    );
    const password = randomBytes(16).toString('hex');
    const researcher = await prisma.user.create({
      data: {
        email: 'researcher@bench.example',
        name: 'Researcher',
        role: 'RESEARCHER',
        credential: { create: { passwordHash: await hashPassword(password) } },
      },
    });
    const project = await prisma.project.create({ data: { name: 'import bench' } });

    server = await startProductionServer(database.url, { IMPORT_LIMIT_BYTES: String(LIMIT) });
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

    const started = performance.now();
    const response = await fetch(`${server.origin}/api/projects/${project.id}/preferences/import`, {
      method: 'POST',
      headers: { cookie, 'x-csrf-token': csrfToken, 'content-type': 'application/json' },
      body: bodyStream({ format: 'trl', source: 'bench' }, content),
      duplex: 'half',
    } as RequestInit);
    const report = (await response.json()) as Record<string, unknown>;
    const seconds = (performance.now() - started) / 1000;
    if (!response.ok)
      throw new Error(`import failed: ${response.status} ${JSON.stringify(report).slice(0, 500)}`);
    const after = memoryOf(pid);
    const stored = await prisma.preference.count({ where: { comparison: { projectId: project.id } } });
    if (stored !== rows.length) throw new Error(`stored ${stored} judgments of ${rows.length} rows`);
    const rowsPerSecond = Math.round(rows.length / seconds);
    console.log(
      `imported ${rows.length} rows in ${seconds.toFixed(1)} s: prompts ${String(report.prompts)}, ` +
        `comparisons ${String(report.comparisons)}; server RSS ${before.now} MB before, ${after.now} MB after, peak ${after.peak} MB`,
    );
    const raw = await rawInsert(database.url, rows);
    console.log(
      `peer: raw multi-row INSERTs of the parsed rows ${Math.round(raw)} rows/s; import_vs_raw_insert=${(rowsPerSecond / raw).toFixed(3)}`,
    );
    console.log(`import: rows_per_s=${rowsPerSecond} peak_rss_mb=${after.peak}`);
  } finally {
    await server?.stop();
    await prisma.$disconnect();
    await database.drop();
  }
}
