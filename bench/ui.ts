// The rating screen's speed as a rater feels it: the built server as `npm start` runs it (own
// process) on a fresh database, Chromium through Playwright (launched as playwright.config.ts does),
// one rater judging 40 comparisons by keyboard (1, a strength key when the project asks for one,
// Enter). The page is instrumented from the Enter keydown to the animation frame that shows the
// next prompt (performance.now() at keydown, a MutationObserver that sees the new prompt text, then
// requestAnimationFrame); the judgments the database holds afterwards are counted against those
// made. BENCH_UI_JUDGMENTS (40) and BENCH_UI_THINK_MS (300, the pause between judgments) override.
// Ends with `ui: next_p95_ms=<ms> stored=<n>/<n>`.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chromium, type Page } from '@playwright/test';
import config from '../playwright.config.js';
import { benchDatabase, seedComparisons } from './database.js';
import { startProductionServer, type ServerProcess } from './server.js';
import { createPrisma } from '../core/db/client.js';
import { hashPassword } from '../core/services/passwords.js';

const JUDGMENTS = Number(process.env.BENCH_UI_JUDGMENTS ?? 40);
const THINK_MS = Number(process.env.BENCH_UI_THINK_MS ?? 300);
const EMAIL = 'rater@bench.example';
const PASSWORD = 'benchmark passphrase';

/**
 * In the page (as text: this program has no DOM types): Enter's keydown starts a clock that stops at
 * the animation frame after the DOM shows a different prompt; the times collect in __uiBench.
 */
const INSTRUMENT = `
  const bench = { times: [] };
  window.__uiBench = bench;
  const promptText = () => document.querySelector('[data-testid="prompt"]')?.textContent ?? '';
  window.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter') return;
    const start = performance.now();
    const before = promptText();
    const observer = new MutationObserver(() => {
      const now = promptText();
      if (now === before || now === '') return;
      observer.disconnect();
      requestAnimationFrame(() => bench.times.push(performance.now() - start));
    });
    observer.observe(document.body, { childList: true, subtree: true, characterData: true });
  }, { capture: true }); // before the page's own handler, which listens on window, bubbling
`;

/** The page's global object, typed with what INSTRUMENT adds (this program has no DOM types). */
type BenchWindow = { __uiBench?: { times: number[] } };

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

async function judge(page: Page, index: number): Promise<void> {
  await page.keyboard.press('1');
  if ((await page.locator('[data-strength="0"]').count()) > 0) await page.keyboard.press('5');
  await page.keyboard.press('Enter');
  await page.waitForFunction(
    (count) => ((globalThis as BenchWindow).__uiBench?.times.length ?? 0) >= count,
    index + 1,
    {
      timeout: 30_000,
    },
  );
}

export async function main(): Promise<void> {
  if (!existsSync('web/build/index.html')) {
    console.log('ui: building the web UI (npm run build:web)...');
    execFileSync('npm', ['run', 'build:web'], { stdio: 'ignore' });
  }
  const database = await benchDatabase('ui');
  const prisma = createPrisma(database.url, { max: 2 });
  let server: ServerProcess | null = null;
  let browser: Awaited<ReturnType<typeof chromium.launch>> | null = null;
  try {
    const project = await prisma.project.create({
      data: { name: 'UI benchmark', overlap: 1, labelSchema: {} },
    });
    const rater = await prisma.user.create({
      data: {
        email: EMAIL,
        name: 'Bench Rater',
        role: 'RATER',
        credential: { create: { passwordHash: await hashPassword(PASSWORD) } },
      },
    });
    await prisma.projectMember.create({ data: { projectId: project.id, userId: rater.id } });
    await seedComparisons(prisma, project.id, JUDGMENTS + 20);

    server = await startProductionServer(database.url, { SEED_DEMO: 'false', START_TRAINER: 'false' });
    browser = await chromium.launch(config.use?.launchOptions);
    const context = await browser.newContext({
      baseURL: server.origin,
      viewport: { width: 1280, height: 900 },
    });
    const page = await context.newPage();
    await page.goto('/login');
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('user-name').waitFor();
    await page.addInitScript({ content: INSTRUMENT });
    await page.goto(`/rate/${project.id}`);
    await page.getByTestId('comparison').waitFor();

    console.log(`ui: ${JUDGMENTS} judgments by keyboard, ${THINK_MS} ms between them...`);
    for (let i = 0; i < JUDGMENTS; i++) {
      await page.waitForTimeout(THINK_MS);
      await judge(page, i);
    }
    const times = await page.evaluate(() => (globalThis as BenchWindow).__uiBench?.times ?? []);
    // The last judgments may still be on their way: give them a moment.
    let stored = 0;
    for (let waited = 0; waited < 10_000; waited += 200) {
      stored = await prisma.preference.count({ where: { raterId: rater.id } });
      if (stored >= JUDGMENTS) break;
      await new Promise((done) => setTimeout(done, 200));
    }
    const round = (ms: number) => Math.round(ms * 10) / 10;
    console.log(
      `ui: next comparison after Enter p50 ${round(percentile(times, 50))} ms, ` +
        `p95 ${round(percentile(times, 95))} ms, max ${round(Math.max(...times))} ms`,
    );
    console.log(`ui: next_p95_ms=${round(percentile(times, 95))} stored=${stored}/${JUDGMENTS}`);
  } finally {
    await browser?.close();
    await server?.stop();
    await prisma.$disconnect();
    await database.drop();
  }
}
