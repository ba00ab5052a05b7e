// Researchers' data routes: streaming exports, counts for progress, dataset snapshots (create, list,
// read, byte-identical download) and imports of existing preference data sets. Admins and
// researchers only; raters get 403.
import { PassThrough } from 'node:stream';
import type { FastifyPluginAsyncTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { principalOf } from '../plugins/auth.js';
import { importBodyValidator, streamImportBodies } from '../plugins/import-upload.js';
import { ErrorSchema, IdParams } from '../../core/schemas/common.js';
import {
  CreateSnapshotBody,
  ExportBody,
  ExportCount,
  PreferenceImportBody,
  PreferenceImportReport,
  SnapshotSchema,
} from '../../core/schemas/datasets.js';
import type { ImportUpload } from '../../core/services/import-source.js';
import {
  CONTENT_TYPES,
  ExportAborted,
  safeFileName,
  specOf,
  type ExportResult,
  type Sink,
} from '../../core/services/exports.js';
import { snapshotSpec } from '../../core/services/snapshots.js';
import type { ExportFormat } from '../../core/schemas/datasets.js';

const STAFF = ['ADMIN', 'RESEARCHER'] as const;

const ImportError = Type.Intersect([ErrorSchema, Type.Partial(PreferenceImportReport)]);

/**
 * Sends a file that is still being made: headers first (the status can no longer change), then the
 * bytes with backpressure. A failure midway destroys the connection, so a client never takes a
 * truncated file for a whole one.
 */
export function streamFile(
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
        operationId: 'exportJudgments',
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
      const file = await app.services.exports.start(project, spec, actor(request));
      // Pairwise files leave out pairs of identical responses; a header says how many.
      return streamFile(
        request,
        reply,
        spec.format,
        safeFileName(`${project.name}-${spec.format}-${spec.mode}`, spec.format),
        {
          'x-loom-judgments': String(file.judgments),
          ...(file.identicalLeftOut === null
            ? {}
            : { 'x-loom-identical-left-out': String(file.identicalLeftOut) }),
        },
        file.write,
      );
    },
  );

  app.post(
    '/api/projects/:id/export/count',
    {
      config: { access: STAFF },
      schema: {
        operationId: 'countExport',
        tags: ['datasets'],
        summary: 'How many judgments, comparisons and prompts an export would hold',
        params: IdParams,
        body: ExportBody,
        response: { 200: ExportCount, 404: ErrorSchema },
      },
    },
    async (request) => {
      const project = await app.services.projects.visible(principalOf(request), request.params.id);
      return app.services.exports.count(project.id, specOf(request.body).filters);
    },
  );

  app.post(
    '/api/projects/:id/snapshots',
    {
      config: { access: STAFF },
      schema: {
        operationId: 'createSnapshot',
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
      const snapshot = await app.services.snapshots.create(project.id, request.body, actor(request));
      return reply.status(201).send(snapshot);
    },
  );

  app.get(
    '/api/projects/:id/snapshots',
    {
      config: { access: STAFF },
      schema: {
        operationId: 'listSnapshots',
        tags: ['datasets'],
        summary: 'Dataset snapshots of a project, newest first',
        params: IdParams,
        response: { 200: Type.Array(SnapshotSchema), 404: ErrorSchema },
      },
    },
    async (request) => {
      const project = await app.services.projects.visible(principalOf(request), request.params.id);
      return app.services.snapshots.list(project.id);
    },
  );

  app.get(
    '/api/snapshots/:id',
    {
      config: { access: STAFF },
      schema: {
        operationId: 'getSnapshot',
        tags: ['datasets'],
        summary: 'A dataset snapshot',
        params: IdParams,
        response: { 200: SnapshotSchema, 404: ErrorSchema },
      },
    },
    async (request) => {
      const snapshot = await app.services.snapshots.get(request.params.id);
      await app.services.projects.visible(principalOf(request), snapshot.projectId);
      return app.services.snapshots.dto(snapshot);
    },
  );

  app.get(
    '/api/snapshots/:id/download',
    {
      config: { access: STAFF },
      schema: {
        operationId: 'downloadSnapshot',
        tags: ['datasets'],
        summary: 'Download a dataset snapshot (byte-identical to when it was made)',
        description: 'The ETag and X-Loom-Sha256 headers carry the stored sha256 of the file.',
        params: IdParams,
        produces: Object.values(CONTENT_TYPES),
        response: { 404: ErrorSchema },
      },
    },
    async (request, reply) => {
      const snapshot = await app.services.snapshots.get(request.params.id);
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
        (sink, aborted) => app.services.snapshots.download(snapshot, sink, aborted),
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
          operationId: 'importPreferences',
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
        return app.services.preferenceImports.importFile(
          project.id,
          { ...request.body, content: upload },
          actor(request),
        );
      },
    );
  });
};
export default datasets;
