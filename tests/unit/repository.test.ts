// The repository stands on its own: no tracked file points outside the clone (a sibling folder or
// an absolute path of the machine it was written on), and what the benchmarks and the docs cite is
// inside it.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

/** Tracked files (git ls-files), or every file outside the ignored folders where git is absent. */
function trackedFiles(): string[] {
  try {
    return execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' })
      .split('\0')
      .filter(Boolean);
  } catch {
    const ignored = new Set(['node_modules', 'dist', 'data', 'build', '.svelte-kit', 'generated', '.git']);
    const walk = (dir: string): string[] =>
      readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry) => {
        const file = path.join(dir, entry.name);
        if (entry.isDirectory()) return ignored.has(entry.name) ? [] : walk(file);
        return [file];
      });
    return walk('');
  }
}

// Built from parts, so that this file does not match itself.
const SIBLING = ['..', 'shared'].join('/');
const ABSOLUTE = new RegExp(`(?<![\\w.-])/${'work'}(?![\\w-])`);

describe('the repository', () => {
  const files = trackedFiles().filter((file) => existsSync(path.join(root, file)));

  it('finds its files', () => {
    expect(files).toContain('package.json');
    expect(files.length).toBeGreaterThan(100);
  });

  it('mentions no folder outside the clone: no sibling "shared" folder, no absolute machine path', () => {
    const offending: string[] = [];
    for (const file of files) {
      const full = path.join(root, file);
      if (!statSync(full).isFile()) continue;
      const bytes = readFileSync(full);
      if (bytes.includes(0)) continue; // binary (gzip, checkpoints, images)
      const text = bytes.toString('utf8');
      text.split('\n').forEach((line, index) => {
        if (line.includes(SIBLING) || ABSOLUTE.test(line))
          offending.push(`${file}:${index + 1}: ${line.trim()}`);
      });
    }
    expect(offending).toEqual([]);
  });

  it('holds what it cites: the algorithms document and the HH-RLHF test file with its license', () => {
    for (const file of [
      'docs/ALGORITHMS.md',
      'bench/data/hh-rlhf/helpful-base-test.jsonl.gz',
      'bench/data/hh-rlhf/README.md',
    ])
      expect(files, file).toContain(file);
    expect(readFileSync(path.join(root, 'bench/data/hh-rlhf/README.md'), 'utf8')).toMatch(/MIT/);
  });
});
