// Runs before `npm start` (prestart): builds the server and the web UI only when the build is
// missing or its sources changed since it was made, so that a start takes seconds, not a build.
// The build's fingerprint (a hash of its sources) is kept in dist/.build-fingerprint; `npm run
// build` records it too (postbuild: node scripts/build-if-stale.mjs --record).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const STAMP = path.join(root, 'dist', '.build-fingerprint');
/** What the build reads: these files and folders (outputs and installed packages left out). */
const SOURCES = [
  'package.json',
  'package-lock.json',
  'tsconfig.json',
  'tsconfig.build.json',
  'server',
  'trainer',
  'prisma',
  'shared',
  'web',
];
const SKIPPED = new Set(['node_modules', 'build', '.svelte-kit', '.git', '.vite']);
/** What `npm start` runs; missing, the build is made whatever the fingerprint says. */
const OUTPUTS = ['dist/server/main.js', 'dist/trainer/worker.js', 'web/build/index.html'];

function fingerprint() {
  const hash = createHash('sha256');
  const add = (relative) => {
    const full = path.join(root, relative);
    if (!existsSync(full)) return;
    const stat = statSync(full);
    if (stat.isDirectory()) {
      for (const name of readdirSync(full).sort()) {
        if (!SKIPPED.has(name)) add(path.join(relative, name));
      }
    } else if (stat.isFile()) {
      hash.update(`${relative}\0${stat.size}\0`);
      hash.update(readFileSync(full));
    }
  };
  for (const source of SOURCES) add(source);
  return hash.digest('hex');
}

function recorded() {
  return existsSync(STAMP) ? readFileSync(STAMP, 'utf8').trim() : null;
}

function record(value) {
  mkdirSync(path.dirname(STAMP), { recursive: true });
  writeFileSync(STAMP, value + '\n');
}

function build() {
  const npm = process.env.npm_execpath;
  const [command, args] = npm?.endsWith('.js')
    ? [process.execPath, [npm, 'run', 'build']]
    : ['npm', ['run', 'build']];
  // Its own process group, so that a stop signal can end all of it (npm, tsc, vite).
  const child = spawn(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  child.stderr.on('data', (chunk) => (output += chunk));
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
      process.exit(1);
    });
  }
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, output })));
}

async function main() {
  if (process.argv.includes('--record')) {
    record(fingerprint());
    return;
  }
  const before = fingerprint();
  const missing = OUTPUTS.filter((output) => !existsSync(path.join(root, output)));
  if (!missing.length && recorded() === before) return;
  const started = Date.now();
  console.log(
    `[loom] Building the server and the web UI (${missing.length ? 'first start' : 'the sources changed'}; ` +
      'about a minute)...',
  );
  const { code, output } = await build();
  if (code !== 0) {
    process.stderr.write(output);
    console.error(`[loom] The build failed (exit code ${code}); see above.`);
    process.exit(1);
  }
  // What was built: the sources as they were when the build began.
  record(before);
  console.log(`[loom] Built in ${Math.round((Date.now() - started) / 1000)} s.`);
}

await main();
