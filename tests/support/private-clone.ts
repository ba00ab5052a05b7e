// A copy of this checkout, node_modules included, inside a folder only its owner may enter (mode
// 700, like /root or a `mktemp -d` folder): what a user gets who clones Loom under /root and starts
// it as root. node_modules is hard-linked when the file system allows it (a second or so; the files
// keep their modes, and the folders above them are the new, private ones), else copied.
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', '..');

/** What `npm start` and the CLI need; build outputs are copied when present (never linked). */
const ENTRIES = [
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'tsconfig.build.json',
  'prisma.config.ts',
  'server',
  'trainer',
  'prisma',
  'scripts',
  'shared',
  'web',
  'dist',
];
const SKIPPED = new Set(['node_modules', '.svelte-kit']);

export interface PrivateClone {
  /** The private (mode 700) folder. */
  parent: string;
  /** The checkout inside it. */
  dir: string;
  remove(): void;
}

export function privateClone(): PrivateClone {
  const parent = mkdtempSync(path.join(os.tmpdir(), 'loom-private-'));
  chmodSync(parent, 0o700);
  const dir = path.join(parent, 'loom');
  mkdirSync(dir);
  for (const entry of ENTRIES) {
    const from = path.join(root, entry);
    if (!existsSync(from)) continue;
    cpSync(from, path.join(dir, entry), {
      recursive: true,
      preserveTimestamps: true,
      filter: (source) => !SKIPPED.has(path.basename(source)) || source === root,
    });
  }
  const modules = path.join(root, 'node_modules');
  const sameDevice = statSync(modules).dev === statSync(parent).dev;
  execFileSync('cp', [sameDevice ? '-al' : '-a', modules, path.join(dir, 'node_modules')]);
  return { parent, dir, remove: () => rmSync(parent, { recursive: true, force: true }) };
}
