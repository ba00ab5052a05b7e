// Researchers' data routes: streaming exports, counts for progress, dataset snapshots (create, list,
// read, byte-identical download) and imports of existing preference data sets. Admins and
// researchers only; raters get 403.
import { PassThrough } from 'node:stream';
import type { FastifyPluginAsyncTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { principalOf } from '../plugins/auth.js';
import { importBodyValidator, streamImportBodies } from '../plugins/import-upload.js';
import { ErrorSchema, IdParams } from '../schemas/common.js';
import {
  CreateSnapshotBody,
  ExportBody,
  ExportCount,
  PreferenceImportBody,
  PreferenceImportReport,
  SnapshotSchema,
} from '../schemas/datasets.js';
import { recordAudit } from '../services/audit.js';
import { importPreferences } from '../services/dataset-imports.js';
import type { ImportUpload } from '../services/import-source.js';
import {
  CONTENT_TYPES,
  countIdentical,
  countJudgments,
  countSelection,
  isPairwise,
  ExportAborted,
  runExport,
  safeFileName,
  specOf,
  type ExportResult,
  type Sink,
} from '../services/exports.js';
import { labelSchemaOf } from '../services/projects.js';
import {
  createSnapshot,
  downloadSnapshot,
  getSnapshot,
  listSnapshots,
  snapshotDto,
  snapshotSpec,
} from '../services/snapshots.js';
import type { ExportFormat } from '../schemas/datasets.js';

const STAFF = ['ADMIN', 'RESEARCHER'] as const;

const ImportError = Type.Intersect([ErrorSchema, Type.Partial(PreferenceImportReport)]);

/**
 * Sends a file that is still being made: headers first (the status can no longer change), then the
 * bytes with backpressure. A failure midway destroys the connection, so a client never takes a
 * truncated file for a whole one.
 */
function streamFile(
  request: FastifyRequest,
  reply: FastifyReply,
  format: ExportFormat,
  fileName: string,
  extraHeaders: Record<string, string>,
  produce: (sink: Sink, aborted: () => boolean) => Promise<ExportResult>,
) {
  const body = new PassThrough();
  let closed = false;
  reply.raw.on('close', () => {
    closed = true;
  });
  const sink: Sink = (chunk) =>
    new Promise((resolve, reject) => {
      if (body.destroyed) return reject(new ExportAborted('The client went away.'));
      if (body.write(chunk)) resolve();
      else body.once('drain', resolve);
    });
  produce(sink, () => closed || body.destroyed).then(
    () => body.end(),
    (error: unknown) => {
      if (!(error instanceof ExportAborted)) request.log.error({ err: error }, 'export failed midway');
      body.destroy(error instanceof Error ? error : new Error(String(error)));
    },
  );
  return reply
    .header('content-type', CONTENT_TYPES[format])
    .header('content-disposition', `attachment; filename="${fileName}"`)
    .header('x-content-type-options', 'nosniff')
    .header('cache-control', 'no-store')
    .headers(extraHeaders)
    .send(body);
}

const datasets: FastifyPluginAsyncTypebox = async (app) => {
  const actor = (request: FastifyRequest) => ({ id: principalOf(request).user.id, ip: request.ip });

  app.post(
    '/api/projects/:id/export',
    {
      config: { access: STAFF },
      schema: {
        tags: ['datasets'],
        summary: 'Export judgments as a file (streamed)',
        description:
          'Streams TRL (standard or conversational), HH-RLHF, OpenRLHF, CSV or Parquet. raw: one row per judgment; ' +
          'aggregated: one row per comparison (majority over A/B/TIE/BOTH_BAD). Pairwise formats leave out ties, ' +
          'both-bad, comparisons without a strict majority and pairs whose two responses have the same text (X-Loom-Identical-Left-Out ' +
          'says how many). String formats write the prompt as an HH transcript and start each completion with a space, ' +
          'so prompt + chosen is the whole text. CSV is spreadsheet-safe unless options.spreadsheetSafe is false. ' +
          'X-Loom-Judgments gives the selected judgments for progress.',
        params: IdParams,
        body: ExportBody,
        produces: Object.values(CONTENT_TYPES),
        response: { 400: ErrorSchema, 404: ErrorSchema },
      },
    },
    async (request, reply) => {
      const project = await app.services.projects.visible(principalOf(request), request.params.id);
      const spec = specOf(request.body);
      const selection = { projectId: project.id, filters: spec.filters };
      // Pairwise files leave out pairs of identical responses; a header says how many. Both counts
      // at once: each reads the selection, and the file waits for both.
      const [judgments, identical] = await Promise.all([
        countJudgments(app.prisma, selection),
        isPairwise(spec.format) ? countIdentical(app.prisma, selection) : null,
      ]);
      await recordAudit(app.prisma, {
        actorId: actor(request).id,
        action: 'project.export',
        targetType: 'project',
        targetId: project.id,
        details: {
          format: spec.format,
          mode: spec.mode,
          judgments,
          identifyRaters: spec.options.identifyRaters ?? false,
        },
        ip: request.ip,
      });
      return streamFile(
        request,
        reply,
        spec.format,
        safeFileName(`${project.name}-${spec.format}-${spec.mode}`, spec.format),
        {
          'x-loom-judgments': String(judgments),
          ...(identical
            ? {
                'x-loom-identical-left-out': String(
                  spec.mode === 'aggregated' ? identical.comparisons : identical.judgments,
                ),
              }
            : {}),
        },
        (sink, aborted) =>
          runExport(app.prisma, selection, spec, sink, {
            secret: app.config.sessionSecret,
            levels: labelSchemaOf(project).strengths.length,
            aborted,
          }),
      );
    },
  );

  app.post(
    '/api/projects/:id/export/count',
    {
      config: { access: STAFF },
      schema: {
        tags: ['datasets'],
        summary: 'How many judgments, comparisons and prompts an export would hold',
        params: IdParams,
        body: ExportBody,
        response: { 200: ExportCount, 404: ErrorSchema },
      },
    },
    async (request) => {
      const project = await app.services.projects.visible(principalOf(request), request.params.id);
      const selection = { projectId: project.id, filters: specOf(request.body).filters };
      const [counts, identical] = await Promise.all([
        countSelection(app.prisma, selection),
        countIdentical(app.prisma, selection),
      ]);
      return {
        ...counts,
        identicalJudgments: identical.judgments,
        identicalComparisons: identical.comparisons,
      };
    },
  );

  app.post(
    '/api/projects/:id/snapshots',
    {
      config: { access: STAFF },
      schema: {
        tags: ['datasets'],
        summary: 'Freeze an export as a dataset snapshot',
        description:
          'Stores the selected judgment ids with the filters, format and options, the row count and the sha256 of the file; ' +
          'the download repeats the file byte for byte.',
        params: IdParams,
        body: CreateSnapshotBody,
        response: { 201: SnapshotSchema, 404: ErrorSchema, 409: ErrorSchema },
      },
    },
    async (request, reply) => {
      const project = await app.services.projects.visible(principalOf(request), request.params.id);
      const snapshot = await createSnapshot(
        app.prisma,
        app.config.sessionSecret,
        project.id,
        request.body,
        actor(request),
      );
      return reply.status(201).send(snapshot);
    },
  );

  app.get(
    '/api/projects/:id/snapshots',
    {
      config: { access: STAFF },
      schema: {
        tags: ['datasets'],
        summary: 'Dataset snapshots of a project, newest first',
        params: IdParams,
        response: { 200: Type.Array(SnapshotSchema), 404: ErrorSchema },
      },
    },
    async (request) => {
      const project = await app.services.projects.visible(principalOf(request), request.params.id);
      return listSnapshots(app.prisma, project.id);
    },
  );

  app.get(
    '/api/snapshots/:id',
    {
      config: { access: STAFF },
      schema: {
        tags: ['datasets'],
        summary: 'A dataset snapshot',
        params: IdParams,
        response: { 200: SnapshotSchema, 404: ErrorSchema },
      },
    },
    async (request) => {
      const snapshot = await getSnapshot(app.prisma, request.params.id);
      await app.services.projects.visible(principalOf(request), snapshot.projectId);
      return snapshotDto(app.prisma, snapshot);
    },
  );

  app.get(
    '/api/snapshots/:id/download',
    {
      config: { access: STAFF },
      schema: {
        tags: ['datasets'],
        summary: 'Download a dataset snapshot (byte-identical to when it was made)',
        description: 'The ETag and X-Loom-Sha256 headers carry the stored sha256 of the file.',
        params: IdParams,
        produces: Object.values(CONTENT_TYPES),
        response: { 404: ErrorSchema },
      },
    },
    async (request, reply) => {
      const snapshot = await getSnapshot(app.prisma, request.params.id);
      await app.services.projects.visible(principalOf(request), snapshot.projectId);
      const spec = snapshotSpec(snapshot);
      return streamFile(
        request,
        reply,
        spec.format,
        safeFileName(snapshot.name, spec.format),
        {
          etag: `"${snapshot.contentHash}"`,
          'x-loom-sha256': snapshot.contentHash,
          'content-length': String(snapshot.byteSize),
        },
        (sink, aborted) => downloadSnapshot(app.prisma, app.config.sessionSecret, snapshot, sink, aborted),
      );
    },
  );

  // The import reads its body as a stream (the file's text to a temporary file), in a scope of
  // its own: the other routes keep the ordinary JSON parser.
  await app.register(async (scoped) => {
    streamImportBodies(scoped);
    scoped.withTypeProvider<TypeBoxTypeProvider>().post(
      '/api/projects/:id/preferences/import',
      {
        bodyLimit: app.config.importLimit,
        validatorCompiler: importBodyValidator,
        config: { access: STAFF },
        schema: {
          tags: ['datasets'],
          summary: 'Import a preference data set (TRL JSONL, HH-RLHF JSONL or CSV)',
          description:
            'Each row becomes a prompt (reused when the project has the same messages), two responses, a comparison ' +
            '(chosen as A, requiredVotes = its imported votes, so raters are not asked) and an IMPORTED judgment with ' +
            'the given source. Bad rows (unparsable, invalid, empty response, chosen equal to rejected) are reported by ' +
            'line: onError "refuse" (default) stores nothing and answers 400; "skip" stores the rest. One transaction.',
          params: IdParams,
          body: PreferenceImportBody,
          response: { 200: PreferenceImportReport, 400: ImportError, 404: ErrorSchema, 413: ErrorSchema },
        },
      },
      async (request) => {
        // The upload's temporary file is removed by streamImportBodies once the request is answered.
        const upload = request.body.content as unknown as ImportUpload;
        const project = await app.services.projects.visible(principalOf(request), request.params.id);
        return importPreferences(
          app.prisma,
          project.id,
          { ...request.body, content: upload },
          actor(request),
        );
      },
    );
  });
};
export default datasets;
