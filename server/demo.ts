// The demo project, "practice problems with answer keys": small additions and word tasks whose
// answers are known, noisy demonstrations to fine-tune the first policy on, and the hidden utility
// (correct first, then concise) that simulated raters judge by.
import type { PgBoss } from 'pg-boss';
import type { PrismaClient } from './db/client.js';
import { enqueue } from './jobs.js';
import { DEFAULT_STRENGTHS } from './schemas/projects.js';
import { seededRandom } from './services/comparisons.js';

export const DEMO_PROJECT_NAME = 'Practice problems with answer keys';

export const DEMO_GUIDELINES = `# Practice problems

Each prompt is a small task with one right answer: an addition (\`7+5=\`), or a word to
reverse, upper-case or measure (\`reverse: fox\`).

1. **Correct beats wrong.** A response that contains the right answer is better than one that
   does not, however it is phrased.
2. **Then shorter is better.** Between two correct responses prefer the one that says only the
   answer (\`12\` over \`The answer is 12.\`); between two wrong ones, too.
3. Both equally good: choose **tie**. Use **both bad** only for responses that do not even
   attempt the task.
`;

// Three- and four-letter words: enough of them that the word tasks are learned as skills
// (reverse, upper-case, count the letters) rather than memorized one prompt at a time.
const WORDS = [
  'ant ape arm art bag bat bed bee bin bow box bus cab cap car cat cow cub cup day den dog dot',
  'ear eel egg elf elk fan fig fin fly fog fox fun gap gas gem gum hat hen hip hog hut ice ink',
  'jam jar jet jog key kid kit lab leg lid lip log man map mat mix mop mud net nut oak oil ore',
  'owl pan paw pea pen pet pie pig pin pit pod pot ram rat ray red rib rod rug saw sea sip ski',
  'sky sob sod sow spy sun tab tag tan tap tar tea tin tip toe ton top toy tub urn van vet wax',
  'web wig yak yam zip',
  'bear bird boat bone book cake coat corn crab deer desk door drum duck farm fern fish frog',
  'gate goat gold harp hill home horn jade kite lake lamp leaf lion lock mask milk mint moon',
  'nest note park pear pine pond rain rope rose sail salt sand seal ship shoe silk snow sock',
  'soup star tent toad tree tuna vase wave wind wing wolf wool yarn',
]
  .join(' ')
  .split(' ');

export interface DemoTask {
  prompt: string;
  answer: string;
}

/** Every distinct task: the 100 sums of two digits and three tasks per word. */
function allTasks(): DemoTask[] {
  const tasks: DemoTask[] = [];
  for (let a = 0; a < 10; a++)
    for (let b = 0; b < 10; b++) tasks.push({ prompt: `${a}+${b}=`, answer: String(a + b) });
  for (const word of WORDS) {
    tasks.push({ prompt: `reverse: ${word}`, answer: [...word].reverse().join('') });
    tasks.push({ prompt: `upper: ${word}`, answer: word.toUpperCase() });
    tasks.push({ prompt: `length: ${word}`, answer: String(word.length) });
  }
  return tasks;
}

/**
 * Tasks from a seed, drawn without replacement from all of them in a shuffled order: the same
 * seed gives the same tasks, and any prefix or suffix (the training and held-out prompts) mixes
 * every kind of task in proportion.
 */
export function demoTasks(count: number, seed = 1): DemoTask[] {
  const random = seededRandom(seed);
  const tasks = allTasks();
  if (count > tasks.length)
    throw new Error(`Only ${tasks.length} distinct demo tasks exist; asked for ${count}.`);
  for (let i = tasks.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [tasks[i], tasks[j]] = [tasks[j]!, tasks[i]!];
  }
  return tasks.slice(0, count);
}

/** A plausible wrong answer: off by one, or a slightly broken word. */
function wrongAnswer(answer: string, random: () => number): string {
  if (/^\d+$/.test(answer))
    return String(Number(answer) + (random() < 0.5 ? -1 : 1) * (1 + Math.floor(random() * 3)));
  const chars = [...answer];
  const i = Math.floor(random() * chars.length);
  const j = (i + 1) % chars.length;
  [chars[i], chars[j]] = [chars[j]!, chars[i]!];
  const swapped = chars.join('');
  return swapped === answer ? answer.slice(1) : swapped;
}

/**
 * Noisy demonstrations, as a crowd would write them: mostly the bare answer, often a verbose
 * sentence around it, sometimes wrong.
 */
export function demoDemonstrations(
  tasks: DemoTask[],
  perTask = 3,
  seed = 2,
): { prompt: string; response: string }[] {
  const random = seededRandom(seed);
  return tasks.flatMap((task) =>
    Array.from({ length: perTask }, () => {
      const roll = random();
      const answer = roll < 0.25 ? wrongAnswer(task.answer, random) : task.answer;
      const verbose = random() < 0.35;
      return { prompt: task.prompt, response: verbose ? `The answer is ${answer}.` : answer };
    }),
  );
}

/** Whether a response gives the right answer (as a whole word). */
export function isCorrect(response: string, answer: string): boolean {
  const escaped = answer.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^A-Za-z0-9])${escaped}($|[^A-Za-z0-9])`).test(response.trim());
}

/** The hidden utility: correct first (worth far more than any length), then concise. */
export function demoUtility(response: string, answer: string): number {
  return (isCorrect(response, answer) ? 100 : 0) - Math.min(99, response.trim().length);
}

/** Prompts in the demo: most for training and rating, the rest held out for evaluation. */
export const DEMO_PROMPTS = { train: 400, heldOut: 60 };

/**
 * Creates the demo project once (prompts with answer keys and demonstrations) and enqueues the
 * job that trains its first policy; returns the project id, or null when it exists already.
 */
export async function ensureDemoProject(
  prisma: PrismaClient,
  boss: PgBoss,
  sizes: { train: number; heldOut: number } = DEMO_PROMPTS,
): Promise<string | null> {
  if (await prisma.project.findFirst({ where: { isDemo: true } })) return null;
  const tasks = demoTasks(sizes.train + sizes.heldOut);
  const demonstrations = demoDemonstrations(tasks);
  const byPrompt = new Map<string, string[]>();
  for (const demo of demonstrations)
    byPrompt.set(demo.prompt, [...(byPrompt.get(demo.prompt) ?? []), demo.response]);
  return prisma.$transaction(
    async (tx) => {
      const project = await tx.project.create({
        data: {
          name: DEMO_PROJECT_NAME,
          description:
            'Arithmetic and word tasks with known answers: rate the built-in model, run a round, watch it improve.',
          guidelines: DEMO_GUIDELINES,
          overlap: 1,
          isDemo: true,
          labelSchema: {
            allowTie: true,
            allowBothBad: true,
            strengths: [...DEFAULT_STRENGTHS],
            criteria: [],
            flags: [],
          },
        },
      });
      await tx.prompt.createMany({
        data: tasks.map((task, index) => ({
          projectId: project.id,
          externalId: `task-${index + 1}`,
          messages: [{ role: 'user', content: task.prompt }],
          metadata: { answer: task.answer, demonstrations: byPrompt.get(task.prompt) ?? [] },
          split: index < sizes.train ? ('TRAIN' as const) : ('TEST' as const),
        })),
      });
      await enqueue(boss, tx, 'seed-demo', { projectId: project.id }, project.id);
      return project.id;
    },
    { timeout: 30_000 },
  );
}
