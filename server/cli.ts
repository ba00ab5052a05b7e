// The `loom` command line (`npm run cli -- <command>`): account administration now; data import,
// export and training commands join it. Works with or without the server running.
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../core/config.js';
import { openDatabase } from '../core/db/open.js';
import { HttpError } from '../core/errors.js';
import { CreateUserBody } from '../core/schemas/users.js';
import { dataExitCode, exportCommand, importCommand, snapshotCommand } from './cli-datasets.js';
import { leaderboardCommand } from './cli-leaderboard.js';
import { generateCommand } from './cli-generate.js';
import { oneTimeLink, publicOrigin, UserService } from '../core/services/users.js';
import { ProjectService } from '../core/services/projects.js';
import { RatingService } from '../core/services/rating.js';
import { answerKey, ensureSimulatedRaters, runSimulatedRaters } from './simulated-raters.js';
import { backupCommand, restoreCommand } from './cli-backup.js';
import { BackupError } from '../core/db/backup.js';
import { Presets, SingleBar } from 'cli-progress';
import { Value } from 'typebox/value';

const HELP = `Usage: npm run cli -- <command> [options]

Commands:
  create-user   Create a user; the password is read from standard input.
                  --email <address>                 (required)
                  --role <admin|researcher|rater>   (required)
                  --name <display name>             (default: the part of the email before @)
  setup-link    Print a fresh one-time link for creating the first admin (only while none exists).
  export        Export judgments to a file (TRL, HH-RLHF, OpenRLHF, CSV, Parquet) with a progress bar.
  import        Import a preference data set (TRL JSONL, HH-RLHF JSONL or CSV; .gz too).
  snapshot      create | list | download dataset snapshots (byte-identical files).
                  "npm run cli -- export --help" lists their options, API_TOKEN use and exit codes.
  simulate-raters  Let simulated raters (marked as such everywhere) judge a project with an answer
                key through the running server's API, by a hidden utility: correct, then concise.
                  --project <id or name>            (default: the demo project)
                  --raters <n>                      (default 3)
                  --noise <0..1>                    share of random judgments (default 0.1)
                  --judgments <n>                   stop after this many (default: until the queue is empty)
                  --url <origin>                    the server (default http://localhost:PORT)
  generate      Generate responses from external versions for a project's prompts, with a progress bar.
                  --project <id or name> --versions <a,b> [--samples <n>] [--split test]
                  [--random <n> --seed <n>]        "npm run cli -- generate --help" for the rest
  leaderboard   Rank a project's policy versions by human votes (Bradley-Terry, 95% intervals).
                  --project <id or name>  [--include simulated,imported]  [--json]
                  "npm run cli -- leaderboard --help" for the rest.
  backup        Back up the whole database into one file:  backup --out <file>
  restore       Restore a backup (refused over data unless --force):  restore <file> [--force]
                  "npm run cli -- backup --help" for the rest.
  help          Show this help. Every command also takes --help.

Environment: DATABASE_URL (unset: the embedded PostgreSQL under DATA_DIR, started for the command
when the server is not running), DATA_DIR (default ./data), PUBLIC_URL (origin used in links).

Examples:
  echo 'a long passphrase' | npm run cli -- create-user --email admin@example.com --role admin
  npm run cli -- create-user --email rater@example.com --role rater   (asks for the password)`;

class UsageError extends Error {}

async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    let input = '';
    for await (const chunk of process.stdin) input += String(chunk);
    const line = input.split(/\r?\n/)[0] ?? '';
    if (!line) throw new UsageError('No password on standard input.');
    return line;
  }
  const ask = (question: string) =>
    new Promise<string>((resolve) => {
      const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: true });
      // Echo nothing while the password is typed.
      (rl as unknown as { _writeToOutput: (text: string) => void })._writeToOutput = (text: string) => {
        if (text.includes(question)) process.stdout.write(question);
      };
      rl.question(question, (answer) => {
        rl.close();
        process.stdout.write('\n');
        resolve(answer);
      });
    });
  const first = await ask('Password (at least 12 characters): ');
  const second = await ask('Repeat the password: ');
  if (first !== second) throw new UsageError('The two passwords differ.');
  return first;
}

async function createUser(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      email: { type: 'string' },
      role: { type: 'string' },
      name: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) return void console.log(HELP);
  if (!values.email) throw new UsageError('--email is required.');
  const role = values.role?.toUpperCase();
  if (role !== 'ADMIN' && role !== 'RESEARCHER' && role !== 'RATER') {
    throw new UsageError('--role must be admin, researcher or rater.');
  }
  const password = await readPassword();
  const body = {
    email: values.email,
    name: values.name ?? values.email.split('@')[0] ?? values.email,
    role: role as 'ADMIN' | 'RESEARCHER' | 'RATER',
    password,
  };
  const problem = [...Value.Errors(CreateUserBody, body)][0];
  if (problem) {
    const field = problem.instancePath.replace(/^\//, '') || 'input';
    throw new UsageError(
      `${field}: ${problem.message}${field === 'password' ? ' (at least 12 characters)' : ''}`,
    );
  }
  const config = loadConfig();
  const db = await openDatabase(config, { poolMax: 2 });
  try {
    const user = await new UserService(db.prisma, config).create(body, { id: null });
    console.log(`Created ${user.role.toLowerCase()} ${user.email} (${user.id}).`);
  } finally {
    await db.close();
  }
}

async function setupLink(args: string[]): Promise<void> {
  if (args.includes('--help')) return void console.log(HELP);
  const config = loadConfig();
  const db = await openDatabase(config, { poolMax: 2 });
  try {
    const token = await new UserService(db.prisma, config).issueSetupToken();
    if (!token) throw new UsageError('An admin already exists; sign in, or ask an admin to invite you.');
    console.log(oneTimeLink(publicOrigin(config.publicUrl, config.port), 'setup', token));
  } finally {
    await db.close();
  }
}

async function simulateRaters(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      project: { type: 'string' },
      raters: { type: 'string', default: '3' },
      noise: { type: 'string', default: '0.1' },
      judgments: { type: 'string' },
      url: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) return void console.log(HELP);
  const raters = Number(values.raters);
  const noise = Number(values.noise);
  const judgments = values.judgments === undefined ? Number.POSITIVE_INFINITY : Number(values.judgments);
  if (!Number.isInteger(raters) || raters < 1 || raters > 200)
    throw new UsageError('--raters must be a whole number from 1 to 200.');
  if (!(noise >= 0 && noise <= 1)) throw new UsageError('--noise must be between 0 and 1.');
  if (!(judgments > 0)) throw new UsageError('--judgments must be a positive number.');
  const config = loadConfig();
  const origin = (values.url ?? config.publicUrl ?? `http://localhost:${config.port}`).replace(/\/+$/, '');
  const health = await fetch(`${origin}/api/health`).catch(() => null);
  if (!health?.ok)
    throw new UsageError(`No Loom server answers at ${origin}; start it (npm start) or pass --url.`);
  const db = await openDatabase(config, { poolMax: 2 });
  try {
    const project = values.project
      ? await db.prisma.project.findFirst({
          where: /^[0-9a-f-]{36}$/i.test(values.project) ? { id: values.project } : { name: values.project },
        })
      : await db.prisma.project.findFirst({ where: { isDemo: true } });
    if (!project)
      throw new UsageError(
        values.project ? `No project "${values.project}".` : 'No demo project; pass --project.',
      );
    const answers = await answerKey(db.prisma, project.id);
    if (answers.size === 0)
      throw new UsageError(`Project "${project.name}" has no answer keys (prompt metadata "answer").`);
    const accounts = await ensureSimulatedRaters(db.prisma, project.id, raters);
    const total = Number.isFinite(judgments)
      ? judgments
      : (await new ProjectService(db.prisma, new RatingService(db.prisma)).counts(project.id))
          .remainingJudgments;
    const bar = new SingleBar(
      { format: 'judging |{bar}| {value}/{total} judgments', hideCursor: true },
      Presets.shades_classic,
    );
    bar.start(Math.max(1, total), 0);
    const result = await runSimulatedRaters({
      origin,
      projectId: project.id,
      accounts,
      answers,
      noise,
      judgments,
      onJudgment: (done) => bar.update(Math.min(done, Math.max(1, total))),
    });
    bar.stop();
    console.log(
      `${result.judged} judgments by ${raters} simulated rater(s) on "${project.name}"` +
        (result.empty ? '; nothing left to judge.' : '.') +
        (result.errors ? ` ${result.errors} request(s) failed.` : ''),
    );
    if (result.errors && result.judged === 0) throw new Error('Every judgment failed.');
  } finally {
    await db.close();
  }
}

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'create-user':
        await createUser(rest);
        return 0;
      case 'setup-link':
        await setupLink(rest);
        return 0;
      case 'export':
        await exportCommand(rest);
        return 0;
      case 'import':
        await importCommand(rest);
        return 0;
      case 'snapshot':
        await snapshotCommand(rest);
        return 0;
      case 'leaderboard':
        await leaderboardCommand(rest);
        return 0;
      case 'simulate-raters':
        await simulateRaters(rest);
        return 0;
      case 'generate':
        await generateCommand(rest);
        return 0;
      case 'backup':
        await backupCommand(rest);
        return 0;
      case 'restore':
        await restoreCommand(rest);
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(HELP);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`Unknown command "${command}".`);
    }
  } catch (error) {
    if (error instanceof BackupError) {
      console.error(`Error: ${error.message}`);
      return error.exitCode;
    }
    const dataCode = dataExitCode(error);
    if (dataCode !== null) {
      console.error(`Error: ${(error as Error).message}`);
      return dataCode;
    }
    if (error instanceof UsageError || error instanceof ConfigError || error instanceof HttpError) {
      console.error(`Error: ${error.message}`);
      if (error instanceof UsageError) console.error('Run "npm run cli -- help" for usage.');
      return error instanceof HttpError && error.statusCode === 409 ? 3 : 2;
    }
    if (error instanceof TypeError && (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`Error: ${error.message}`);
      return 2;
    }
    console.error(`Error: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

process.exitCode = await run(process.argv.slice(2));
