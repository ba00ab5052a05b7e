// The embedded PostgreSQL's own start-up: the programs run from where the postgres user can reach
// them (as root, from a private folder), the superuser's password never sits in a readable file or
// outlives initdb, and a failing initdb says so instead of crashing the process.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  EmbeddedPostgresError,
  packagedBinaries,
  startEmbeddedPostgres,
  SYSTEM_ROOT,
  usableBinaries,
  withPasswordFile,
} from '../../core/db/embedded.js';

const asRoot = process.getuid?.() === 0;
const cleanup: string[] = [];

afterAll(() => {
  for (const dir of cleanup) rmSync(dir, { recursive: true, force: true });
});

function postgresUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

function tempDir(prefix: string, mode = 0o755): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  chmodSync(dir, mode);
  cleanup.push(dir);
  return dir;
}

describe('the superuser password file', () => {
  it('is private while initdb reads it and gone afterwards, also when initdb fails', async () => {
    const parent = tempDir('loom-pwfile-');
    const owner = asRoot ? postgresUser() : null;
    let seen = '';
    await withPasswordFile('s3cret', owner, parent, async (file) => {
      seen = file;
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
      expect(path.dirname(path.dirname(file))).toBe(parent);
      if (owner) expect(statSync(file).uid).toBe(owner.uid);
      expect(readFileSync(file, 'utf8')).toBe('s3cret\n');
    });
    expect(existsSync(path.dirname(seen))).toBe(false);

    await expect(
      withPasswordFile('s3cret', owner, parent, async (file) => {
        seen = file;
        throw new Error('initdb failed');
      }),
    ).rejects.toThrow('initdb failed');
    expect(existsSync(path.dirname(seen))).toBe(false);
    expect(readdirSync(parent)).toEqual([]);
  });

  it('leaves nothing behind when initdb fails, and the failure is an error with a message', async () => {
    const dataDir = tempDir('loom-initdb-fails-');
    // initdb refuses a cluster folder that is not empty.
    mkdirSync(path.join(dataDir, 'postgres'));
    writeFileSync(path.join(dataDir, 'postgres', 'something'), 'in the way\n');
    // The password folder of an initdb killed outright an hour ago: removed by the next one.
    const stale = path.join(dataDir, '.initdb-stale');
    mkdirSync(stale, { mode: 0o700 });
    writeFileSync(path.join(stale, 'password'), 'old\n', { mode: 0o600 });
    const hourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(stale, hourAgo, hourAgo);
    const tmp = tempDir('loom-initdb-tmp-');
    const before = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    try {
      const failure = await startEmbeddedPostgres(dataDir, { preferredPort: 0 }).catch(
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(EmbeddedPostgresError);
      expect((failure as Error).message).toMatch(
        /Could not create the embedded PostgreSQL cluster .* not empty/s,
      );
      expect((failure as Error).message).toMatch(/DATABASE_URL/);
    } finally {
      process.env.TMPDIR = before;
      if (before === undefined) delete process.env.TMPDIR;
    }
    expect(readdirSync(tmp)).toEqual([]);
    expect(readdirSync(dataDir).filter((name) => /initdb|pg-password/.test(name))).toEqual([]);
  }, 60_000);
});

describe.skipIf(!asRoot)('the PostgreSQL programs, as root, from a private folder', () => {
  it('are copied where the postgres user can run them, checked, and reused', async () => {
    const packaged = await packagedBinaries();
    // The programs inside a folder only root may enter, as in a clone under /root.
    const privateDir = tempDir('loom-private-binaries-', 0o700);
    const nativeDir = path.join(privateDir, 'native');
    execFileSync('cp', ['-al', packaged.nativeDir, nativeDir]);
    const inside = (file: string) => path.join(nativeDir, path.relative(packaged.nativeDir, file));
    // A version of its own, so that the copy is made here and not shared with running servers.
    const version = `${packaged.version}-test-${path.basename(privateDir).slice(-6)}`;
    const binaries = {
      nativeDir,
      initdb: inside(packaged.initdb),
      postgres: inside(packaged.postgres),
      version,
    };
    const owner = postgresUser();

    const denied = spawnSync(binaries.postgres, ['--version'], { ...owner });
    expect((denied.error as NodeJS.ErrnoException | undefined)?.code).toBe('EACCES');

    const messages: string[] = [];
    const usable = usableBinaries(binaries, owner, (message) => messages.push(message));
    cleanup.push(usable.nativeDir);
    expect(usable.nativeDir.startsWith(`${SYSTEM_ROOT}/postgres-`)).toBe(true);
    expect(messages.join('\n')).toMatch(/cannot reach .* copied to/);
    const run = spawnSync(usable.postgres, ['--version'], { ...owner, encoding: 'utf8' });
    expect(run.error).toBeUndefined();
    expect(run.stdout).toMatch(/^postgres \(PostgreSQL\) \d+/);
    expect(statSync(usable.nativeDir).uid).toBe(0);
    expect(statSync(usable.nativeDir).mode & 0o777).toBe(0o755);
    const manifest = JSON.parse(readFileSync(path.join(usable.nativeDir, 'manifest.json'), 'utf8')) as {
      version: string;
      files: { path: string; sha256?: string }[];
    };
    expect(manifest.version).toBe(version);
    expect(manifest.files.find((file) => file.path === 'bin/postgres')?.sha256).toMatch(/^[0-9a-f]{64}$/);

    // The next start finds the checked copy and makes none.
    const again = usableBinaries(binaries, owner, (message) => messages.push(`again: ${message}`));
    expect(again).toEqual(usable);
    expect(messages.filter((message) => message.startsWith('again'))).toEqual([]);

    // Where the postgres user can reach the originals, they are used as they are.
    const reachable = (dir: string): boolean =>
      (statSync(dir).mode & 0o001) !== 0 && (dir === '/' || reachable(path.dirname(dir)));
    if (reachable(path.dirname(packaged.postgres)))
      expect(usableBinaries(packaged, owner, () => {})).toEqual(packaged);
  }, 60_000);
});
