// `loom generate`: start a generation job (prompts × external versions × samples) and follow it
// with a progress bar until it ends. Opens the database directly, like create-user; the job runs
// in a trainer worker (the one `npm start` runs, or `npm run trainer`). Ctrl+C cancels the job.
import { parseArgs } from 'node:util';
import { Presets, SingleBar } from 'cli-progress';
import { Value } from 'typebox/value';
import { loadConfig } from '../core/config.js';
import { openDatabase } from '../core/db/open.js';
import { startBoss } from '../core/jobs.js';
import { CreateGenerationBody, type PromptSelection } from '../core/schemas/generations.js';
import { GenerationService } from '../core/services/generations.js';
import { UsageError } from './cli-datasets.js';

export const GENERATE_HELP = `Usage:
  npm run cli -- generate --project <id or name> --versions <a,b> [--samples <n>]
                          [--split train|validation|test] [--random <n> --seed <n>]
                          [--text <contains>] [--id-prefix <prefix>] [--no-wait]

Generates responses from external policy versions (names or ids, comma-separated) for the
project's prompts: all of them, or those the options select (all options must hold; --random draws
that many of them, the same ones for the same --seed). --samples: responses per prompt and version
(1-16, default 1). A response stored before for the same prompt, version and sample is kept and not
asked for again. Follows the job with a progress bar until it ends (Ctrl+C cancels it); --no-wait
only starts it. A trainer worker does the work: the one npm start runs, or npm run trainer.

Exit codes: 0 done (or started, with --no-wait); 1 the job failed or was cancelled; 2 bad usage or
request; 4 no such project.`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function generateCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      project: { type: 'string' },
      versions: { type: 'string' },
      samples: { type: 'string', default: '1' },
      split: { type: 'string' },
      random: { type: 'string' },
      seed: { type: 'string' },
      text: { type: 'string' },
      'id-prefix': { type: 'string' },
      'no-wait': { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) return void console.log(GENERATE_HELP);
  if (!values.project) throw new UsageError('--project is required.');
  if (!values.versions) throw new UsageError('--versions is required (names or ids, comma-separated).');
  const selection: PromptSelection = {};
  if (values.split) {
    const split = values.split.toUpperCase();
    if (split !== 'TRAIN' && split !== 'VALIDATION' && split !== 'TEST')
      throw new UsageError('--split must be train, validation or test.');
    selection.split = split;
  }
  if (values.random !== undefined) {
    if (values.seed === undefined) throw new UsageError('--random needs --seed.');
    selection.random = { count: Number(values.random), seed: Number(values.seed) };
  } else if (values.seed !== undefined) throw new UsageError('--seed goes with --random.');
  if (values.text) selection.textContains = values.text;
  if (values['id-prefix']) selection.externalIdPrefix = values['id-prefix'];

  const config = loadConfig();
  const db = await openDatabase(config, { poolMax: 2 });
  const boss = await startBoss(db.url, { supervise: false });
  try {
    const project = await db.prisma.project.findFirst({
      where: UUID.test(values.project) ? { id: values.project } : { name: values.project },
    });
    if (!project) throw new UsageError(`No project "${values.project}".`);
    const versionIds: string[] = [];
    for (const name of values.versions
      .split(',')
      .map((v) => v.trim())
      .filter(Boolean)) {
      const version = await db.prisma.policyVersion.findFirst({
        where: { projectId: project.id, ...(UUID.test(name) ? { id: name } : { name }) },
      });
      if (!version) throw new UsageError(`Project "${project.name}" has no version "${name}".`);
      versionIds.push(version.id);
    }
    const body = { selection, versionIds, samplesPerPrompt: Number(values.samples) };
    const problem = [...Value.Errors(CreateGenerationBody, body)][0];
    if (problem)
      throw new UsageError(`${problem.instancePath.replace(/^\//, '') || 'input'}: ${problem.message}`);
    const service = new GenerationService(db.prisma, () => boss);
    const job = await service.create(project, body, { id: null });
    console.log(`Generation job ${job.id}: ${job.total} responses on "${project.name}".`);
    if (values['no-wait']) return;
    await follow(service, job.id, job.total);
  } finally {
    await boss.stop({ graceful: false });
    await db.close();
  }
}

/** Shows the job's progress until it ends; Ctrl+C asks for its cancellation. */
async function follow(service: GenerationService, jobId: string, total: number): Promise<void> {
  const bar = new SingleBar(
    { format: 'generating |{bar}| {value}/{total} done, {failed} failed {note}', hideCursor: true },
    Presets.shades_classic,
  );
  bar.start(Math.max(1, total), 0, { failed: 0, note: '' });
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
    void service.cancel(jobId, { id: null }).catch(() => {});
  };
  process.once('SIGINT', onSigint);
  const started = Date.now();
  try {
    for (;;) {
      const job = await service.get(jobId);
      const waiting = job.status === 'QUEUED' && Date.now() - started > 10_000;
      bar.setTotal(Math.max(1, job.total));
      bar.update(job.done, {
        failed: job.failed,
        note: interrupted ? '(cancelling)' : waiting ? '(waiting for a trainer worker)' : '',
      });
      if (job.status !== 'QUEUED' && job.status !== 'RUNNING') {
        bar.stop();
        console.log(
          `${job.status.toLowerCase()}: ${job.done} done, ${job.failed} failed of ${job.total}.` +
            (job.error ? ` ${job.error}` : ''),
        );
        if (job.failed > 0) console.log(`Failures per prompt: GET /api/generations/${job.id}`);
        if (job.status !== 'SUCCEEDED') throw new Error(`The generation job ${job.status.toLowerCase()}.`);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
}
