// A copy of this checkout, node_modules included, inside a folder only its owner may enter (mode
// 700, like /root or a `mktemp -d` folder): what a user gets who clones Loom under /root and starts
// it as root. node_modules is hard-linked when the file system allows it (a second or so; the files
// keep their modes, and the folders above them are the new, private ones), else copied.
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', '..');

/**
 * Top-level entries left out of the copy: node_modules is linked separately, the rest are git's
 * folder and what runs or tests leave behind. Everything else is copied (build outputs included,
 * never linked), so a new top-level source folder cannot be missed.
 */
const LEFT_OUT = new Set(['node_modules', '.git', 'data', 'test-results', 'playwright-report']);
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
  for (const entry of readdirSync(root)) {
    if (LEFT_OUT.has(entry)) continue;
    const from = path.join(root, entry);
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
