// Exports as the API runs them: what an export would hold, and an export started (counted and
// written to the audit log) whose file is then streamed into a sink. Selecting, encoding and
// reading the judgments live in exports.ts.
import type { PrismaClient, Project } from '../db/client.js';
import type { ExportFilters } from '../schemas/datasets.js';
import { recordAudit } from './audit.js';
import {
  countIdentical,
  countJudgments,
  countSelection,
  isPairwise,
  runExport,
  type ExportResult,
  type ExportSpec,
  type Sink,
} from './exports.js';
import { labelSchemaOf } from './project-settings.js';
import type { Actor } from './users.js';

export interface StartedExport {
  /** The judgments selected, for the client's progress. */
  judgments: number;
  /** Pairwise formats: the rows left out because both responses have the same text; else null. */
  identicalLeftOut: number | null;
  /** Writes the file into the sink, until done or aborted. */
  write: (sink: Sink, aborted: () => boolean) => Promise<ExportResult>;
}

export class ExportService {
  constructor(
    private readonly prisma: PrismaClient,
    /** Keys the rater pseudonyms. */
    private readonly secret: string,
  ) {}

  /** How many judgments, comparisons and prompts an export of the project would hold. */
  async count(projectId: string, filters: ExportFilters) {
    const selection = { projectId, filters };
    const [counts, identical] = await Promise.all([
      countSelection(this.prisma, selection),
      countIdentical(this.prisma, selection),
    ]);
    return {
      ...counts,
      identicalJudgments: identical.judgments,
      identicalComparisons: identical.comparisons,
    };
  }

  /** Counts what the export selects and records it in the audit log; the file comes from `write`. */
  async start(project: Project, spec: ExportSpec, actor: Actor): Promise<StartedExport> {
    const selection = { projectId: project.id, filters: spec.filters };
    // Both counts at once: each reads the selection, and the file waits for both.
    const [judgments, identical] = await Promise.all([
      countJudgments(this.prisma, selection),
      isPairwise(spec.format) ? countIdentical(this.prisma, selection) : null,
    ]);
    await recordAudit(this.prisma, {
      actorId: actor.id,
      action: 'project.export',
      targetType: 'project',
      targetId: project.id,
      details: {
        format: spec.format,
        mode: spec.mode,
        judgments,
        identifyRaters: spec.options.identifyRaters ?? false,
      },
      ip: actor.ip ?? null,
    });
    const levels = labelSchemaOf(project).strengths.length;
    return {
      judgments,
      identicalLeftOut:
        identical && (spec.mode === 'aggregated' ? identical.comparisons : identical.judgments),
      write: (sink, aborted) =>
        runExport(this.prisma, selection, spec, sink, { secret: this.secret, levels, aborted }),
    };
  }
}
