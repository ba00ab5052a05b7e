// The demo project, "practice problems with answer keys": small additions and word tasks whose
// answers are known, noisy demonstrations to fine-tune the first policy on, and the hidden utility
// (correct first, then concise) that simulated raters judge by.
import type { PgBoss } from 'pg-boss';
import type { PrismaClient } from './db/client.js';
import { enqueue } from './jobs.js';
import { DEFAULT_STRENGTHS } from './schemas/projects.js';
import { seededRandom, shuffled } from './services/comparisons.js';

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

// A thousand common three- to five-letter words: enough of them that the word tasks (reverse,
// upper-case, count the letters) are learned as skills that carry over to words never seen, rather
// than memorized one prompt at a time.
const WORDS = [
  'ant ape arm art ash axe bag bat bay bed bee bib bin bow box boy bud bug bun bus cab cam can cap',
  'car cat cod cog cot cow cub cue cup cut dad dam day den dew dig dim dip doe dog dot dry dub dug',
  'dye ear eel egg elf elk elm emu end era eve ewe eye fan far fat fax fed fee fig fin fir fit fix',
  'flu fly foe fog fox fry fun fur gap gas gel gem gin gum gut guy gym ham hat hay hem hen hip hit',
  'hog hop hot hub hug hum hut ice icy ink inn ivy jab jam jar jaw jay jet jig job jog joy jug keg',
  'key kid kin kit lab lad lag lap law lay leg lid lip log lot low mad man map mat mix mob mop mud',
  'mug nap net new nod nut oak oar oat odd oil old orb ore owl pad pal pan paw pea peg pen pet pie',
  'pig pin pit pod pot pub pug pun pup rag ram rap rat raw ray red rib rid rig rim rip rod rot row',
  'rub rug run rye sad sag sap saw sea set sew shy sip sir sit ski sky sly sob sod son sow soy spa',
  'spy sub sum sun tab tag tan tap tar tax tea ten tie tin tip toe ton top tow toy try tub tug urn',
  'van vat vet vow wag war wax web wed wet wig win wit wok yak yam yap yes yet zip zoo',
  'able acid aged also arch area army atom aunt away baby back bake ball band bank barn base bath',
  'bead beak beam bean bear beef beer bell belt bend best bike bill bird bite blue boat body bold',
  'bolt bone book boot bowl bulb bull burn bush busy cafe cage cake calf call calm camp card care',
  'cart case cash cave cell chef chin chip city clam clay clip club coal coat code coin cold comb',
  'cone cook cool copy cord corn cost crab crew crop crow cube cure dark dart dash data date dawn',
  'deal dear deck deep deer desk dial dice diet dish dive dock doll dome door dove down drip drop',
  'drum duck dune dust duty each earn east easy edge exit face fact fair fall farm fast fern film',
  'find fire fish five flag flat flea flip flow foam fold folk food foot fork form fort four frog',
  'fuel full fuse gain game gate gear gift girl glad glow glue goal goat gold golf good gown grab',
  'gray grid grin grip gulf hair half hall hand harp hawk head heal heat herb hero hike hill hint',
  'hole home hood hook hope horn host hour huge hunt idea iron item jade jazz jeep joke jump jury',
  'keen kelp kick kind king kite knee knot lace lady lake lamb lamp land lane last lava lawn lead',
  'leaf lens lift lily lime line link lion list loaf lock loft long loop lord loud love luck lung',
  'mail main mall malt mane many mask mast meal meat melt menu mild milk mill mind mine mint mist',
  'mole monk mood moon moss moth move much mule myth nail name navy neck need nest news next nice',
  'nine node noon nose note oven pack page pail pain pair palm park part past path peak pear peel',
  'pine pink pipe plan play plum poem pole pond pony pool pork port post pump pure quiz race raft',
  'rail rain ramp rank reed reef rent rest rice rich ride ring ripe road robe rock roof room root',
  'rope rose ruby rule rush safe sage sail salt sand seal seat seed ship shoe shop side sign silk',
  'sing sink size skin slow snow soap sock sofa soft soil song soup sour spin star stem step stew',
  'swan tail tale tank tape taxi team tent test tide tile time tire toad tofu tool tour town tree',
  'trip tuba tuna twin vase vest view vine vote wage wall wand warm wave wear weed well west whip',
  'wide wife wild wind wine wing wire wise wolf wood wool word work worm yard yarn year zero zone',
  'acorn actor adult agent alarm album alley amber angel anger angle ankle apple apron arena arrow',
  'aspen award bacon badge bagel baker basil basin beach beard berry bison blade blank blaze blend',
  'block bloom board bench bread brick bride brook broom brush cabin cable camel candy canoe cargo',
  'carol chain chair chalk charm chart cheek chess chick chief child chili cider cigar civic clerk',
  'cliff clock cloud clove coach coast cobra cocoa coral couch cough crane crate crisp crown crumb',
  'crust cycle daisy dance delta diner dingo disco ditch dodge dough drain drama dream dress drill',
  'eagle earth easel elbow ember empty entry event fable fairy feast fence ferry fever fiber field',
  'flame flask fleet flint float flock flood floor flour fluid flute focus forge frame fresh frost',
  'fruit fudge gecko genie ghost giant glass glide globe glove grace grain grape grass gravy green',
  'grill guard guest guide habit happy hazel heart hedge heron honey horse hotel house human igloo',
  'image index ivory jelly jewel joint juice kayak kebab knife koala label lance laser latch lemon',
  'level light lilac linen llama lodge lunar lunch mango maple march marsh medal melon metal mimic',
  'model money moose motor mouse mouth movie music nerve night noble north novel nurse ocean olive',
  'onion opera orbit organ otter owner paint panda paper party pasta patch peach pearl pedal penny',
  'piano pilot pizza place plain plane plant plate plaza point polar pouch power prism prize proud',
  'pulse puppy quail queen quest quiet quilt radar radio rainy raven razor relay rhino ridge rifle',
  'river roast robin rocky royal rugby ruler salad sauce scale scarf scene scout shade shark sheep',
  'shelf shell shirt shore skate skirt skunk slice slope smile smoke snack snail snake solar sound',
  'space spark spice spoon sport squid stack staff stage stair stamp steam steel stick stone storm',
  'story stove straw sugar sunny swamp sweet table taste teeth thorn tiger toast token topaz torch',
  'tower toxic track trail train tribe trout truck trunk tulip tweed uncle union upper vapor vault',
  'video vinyl viola visit vocal wagon watch water whale wheat wheel whisk woman world wrist yacht',
  'yeast zebra',
]
  .join(' ')
  .split(' ');

export interface DemoTask {
  prompt: string;
  answer: string;
}

export interface DemoTasks {
  /** Practice prompts: demonstrated, rated and trained on. */
  train: DemoTask[];
  /** Held-out prompts: the three word tasks on words no practice prompt uses. */
  heldOut: DemoTask[];
}

function wordTasks(word: string): DemoTask[] {
  return [
    { prompt: `reverse: ${word}`, answer: [...word].reverse().join('') },
    { prompt: `upper: ${word}`, answer: word.toUpperCase() },
    { prompt: `length: ${word}`, answer: String(word.length) },
  ];
}

/**
 * The demo's prompts from a seed (the same seed gives the same prompts). Held out: the word tasks
 * on words set aside, so evaluation asks for skills on words the policy never saw. Practice: the
 * sums of two digits (a quarter of the prompts, at most all 100: a sum is a fact to learn, not a
 * skill to carry over, so none is held out) and word tasks on the other words, mixed.
 */
export function demoTasks(sizes: { train: number; heldOut: number }, seed = 1): DemoTasks {
  const random = seededRandom(seed);
  const words = shuffled(WORDS, random);
  const heldOutWords = Math.ceil(sizes.heldOut / 3);
  const heldOut = words.slice(0, heldOutWords).flatMap(wordTasks).slice(0, sizes.heldOut);
  const sums: DemoTask[] = [];
  for (let a = 0; a < 10; a++)
    for (let b = 0; b < 10; b++) sums.push({ prompt: `${a}+${b}=`, answer: String(a + b) });
  const sumCount = Math.min(sums.length, Math.round(sizes.train / 4));
  const practice = shuffled(words.slice(heldOutWords).flatMap(wordTasks), random);
  if (sizes.train - sumCount > practice.length)
    throw new Error(`Only ${practice.length + sumCount} practice tasks exist; asked for ${sizes.train}.`);
  const train = shuffled(
    [...shuffled(sums, random).slice(0, sumCount), ...practice.slice(0, sizes.train - sumCount)],
    random,
  );
  return { train, heldOut };
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
 * Noisy demonstrations, as a crowd would write them: a quarter wrong, and half of them padded into
 * a sentence. The bare right answer that raters prefer is then a minority of the demonstrations,
 * so fine-tuning alone imitates the padding: teaching what raters prefer is left to RLHF.
 */
export function demoDemonstrations(
  tasks: DemoTask[],
  perTask = 3,
  seed = 2,
): { prompt: string; response: string }[] {
  const random = seededRandom(seed);
  return tasks.flatMap((task) =>
    Array.from({ length: perTask }, () => {
      const answer = random() < 0.25 ? wrongAnswer(task.answer, random) : task.answer;
      const verbose = random() < 0.5;
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
export const DEMO_PROMPTS = { train: 1600, heldOut: 60 };

/** One of the demo's prompts as it is stored, in the order it is stored (external id task-<n>). */
export interface DemoPromptRow {
  externalId: string;
  prompt: string;
  answer: string;
  split: 'TRAIN' | 'TEST';
  demonstrations: string[];
}

/**
 * The demo's prompts with their answers and demonstrations: what ensureDemoProject stores, and
 * what the shipped first model (trainer/checkpoints/) was fine-tuned on.
 */
export function demoPromptRows(sizes: { train: number; heldOut: number } = DEMO_PROMPTS): DemoPromptRow[] {
  const split = demoTasks(sizes);
  const tasks = [...split.train, ...split.heldOut];
  const demonstrations = demoDemonstrations(tasks);
  const byPrompt = new Map<string, string[]>();
  for (const demo of demonstrations)
    byPrompt.set(demo.prompt, [...(byPrompt.get(demo.prompt) ?? []), demo.response]);
  return tasks.map((task, index) => ({
    externalId: `task-${index + 1}`,
    prompt: task.prompt,
    answer: task.answer,
    split: index < split.train.length ? 'TRAIN' : 'TEST',
    demonstrations: byPrompt.get(task.prompt) ?? [],
  }));
}

/**
 * Creates the demo project once (prompts with answer keys and demonstrations) and enqueues the
 * job that prepares its first policy; returns the project id, or null when it exists already.
 * Until that job has made the first comparisons the project shows it as being prepared.
 */
export async function ensureDemoProject(
  prisma: PrismaClient,
  boss: PgBoss,
  sizes: { train: number; heldOut: number } = DEMO_PROMPTS,
): Promise<string | null> {
  if (await prisma.project.findFirst({ where: { isDemo: true } })) return null;
  const rows = demoPromptRows(sizes);
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
          preparingPhase: 'waiting',
          preparingProgress: 0,
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
        data: rows.map((row) => ({
          projectId: project.id,
          externalId: row.externalId,
          messages: [{ role: 'user', content: row.prompt }],
          metadata: { answer: row.answer, demonstrations: row.demonstrations },
          split: row.split,
        })),
      });
      await enqueue(boss, tx, 'seed-demo', { projectId: project.id }, project.id);
      return project.id;
    },
    { timeout: 30_000 },
  );
}
