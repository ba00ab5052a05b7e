// `npm start` builds only when it must: scripts/build-if-stale.mjs (prestart) run with npm in a
// small project of its own whose build script counts its runs and writes the outputs `npm start`
// needs. It builds the first time, not again while nothing changed, and again after a source
// changed or an output went missing.
import { execFileSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..', '..');
const project = mkdtempSync(path.join(os.tmpdir(), 'loom-build-if-stale-'));

afterAll(() => rmSync(project, { recursive: true, force: true }));

/** The outputs npm start runs, and one more line in builds.log per build. */
const BUILD = [
  "const fs = require('node:fs');",
  "for (const dir of ['dist/server', 'dist/trainer', 'web/build']) fs.mkdirSync(dir, { recursive: true });",
  "for (const file of ['dist/server/main.js', 'dist/trainer/worker.js', 'web/build/index.html']) fs.writeFileSync(file, '');",
  "fs.appendFileSync('builds.log', 'built\\n');",
].join(' ');

function prestart(): string {
  return execFileSync('node', ['scripts/build-if-stale.mjs'], {
    cwd: project,
    encoding: 'utf8',
    env: { ...process.env, npm_execpath: '' },
  });
}

function builds(): number {
  try {
    return readFileSync(path.join(project, 'builds.log'), 'utf8').split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
}

describe('npm start builds once', () => {
  it('runs the start script without building, and builds before it only when needed', () => {
    const { scripts } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(scripts.start).not.toMatch(/build/);
    expect(scripts.prestart).toMatch(/scripts\/build-if-stale\.mjs$/);
    expect(scripts.postbuild).toMatch(/scripts\/build-if-stale\.mjs --record$/);
  });

  it('builds the first time, then only after a source changed or an output is missing', () => {
    mkdirSync(path.join(project, 'scripts'));
    cpSync(
      path.join(root, 'scripts', 'build-if-stale.mjs'),
      path.join(project, 'scripts', 'build-if-stale.mjs'),
    );
    writeFileSync(
      path.join(project, 'package.json'),
      JSON.stringify({ name: 'x', private: true, type: 'module', scripts: { build: `node -e "${BUILD}"` } }),
    );
    mkdirSync(path.join(project, 'server'));
    writeFileSync(path.join(project, 'server', 'main.ts'), 'export {};\n');
    mkdirSync(path.join(project, 'web', 'src'), { recursive: true });
    writeFileSync(path.join(project, 'web', 'src', 'app.html'), '<html></html>\n');

    expect(prestart()).toMatch(/Building the server and the web UI \(first start/);
    expect(builds()).toBe(1);
    expect(prestart()).toBe('');
    expect(prestart()).toBe('');
    expect(builds()).toBe(1);

    appendFileSync(path.join(project, 'server', 'main.ts'), 'export const changed = true;\n');
    expect(prestart()).toMatch(/the sources changed/);
    expect(builds()).toBe(2);
    expect(prestart()).toBe('');

    writeFileSync(path.join(project, 'web', 'src', 'app.html'), '<html lang="en"></html>\n');
    prestart();
    expect(builds()).toBe(3);

    // What the build writes (web/build) is no source: writing there changes nothing.
    writeFileSync(path.join(project, 'web', 'build', 'extra.js'), '');
    expect(prestart()).toBe('');
    rmSync(path.join(project, 'dist', 'server', 'main.js'));
    prestart();
    expect(builds()).toBe(4);
  }, 60_000);
});
