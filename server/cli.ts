// The `loom` command line (`npm run cli -- <command>`): account administration now; data import,
// export and training commands join it. Works with or without the server running.
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config.js';
import { openDatabase } from './db/open.js';
import { HttpError } from './errors.js';
import { CreateUserBody } from './schemas/users.js';
import { UserService } from './services/users.js';
import { Value } from 'typebox/value';

const HELP = `Usage: npm run cli -- <command> [options]

Commands:
  create-user   Create a user; the password is read from standard input.
                  --email <address>                 (required)
                  --role <admin|researcher|rater>   (required)
                  --name <display name>             (default: the part of the email before @)
  setup-link    Print a fresh one-time link for creating the first admin (only while none exists).
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
    console.log(`${config.publicUrl ?? `http://localhost:${config.port}`}/setup?token=${token}`);
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
