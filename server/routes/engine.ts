// The protocol external training engines (TRL workers) speak: claim a round, then, naming the
// attempt the claim gave (the fencing token), heartbeat, send events and metrics, download the
// snapshot, send results or a failure. Only API tokens scoped to training reach these routes; an
// attempt that another took over gets 409 on every call.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { principalOf } from '../plugins/auth.js';
import { ErrorSchema } from '../../core/schemas/common.js';
import {
  AttemptParams,
  ClaimBody,
  ClaimSchema,
  EventsBody,
  FailBody,
  HeartbeatBody,
  HeartbeatSchema,
  MetricsBody,
  ResultsBody,
} from '../../core/schemas/engine.js';
import type { ExportFormat } from '../../core/schemas/datasets.js';
import { RoundSchema } from '../../core/schemas/rounds.js';
import { DEFAULT_LEASE_SECONDS } from '../../core/services/engine-rounds.js';
import { CONTENT_TYPES, safeFileName } from '../../core/services/export-encoders.js';
import { streamFile } from './datasets.js';

const TRAINING = 'training' as const;
const REFUSED = { 404: ErrorSchema, 409: ErrorSchema };

const engine: FastifyPluginAsyncTypebox = async (app) => {
  const actor = (request: { ip: string }) => ({ id: principalOf(request as never).user.id, ip: request.ip });

  app.post(
    '/api/engine/claim',
    {
      config: { access: TRAINING },
      schema: {
        operationId: 'claimEngineRound',
        tags: ['engine'],
        summary: 'Claim the oldest round waiting for this engine (204 when none)',
        description:
          'A queued round, or a running one whose lease lapsed (its earlier attempt is then fenced off). The answer names the attempt; every later call carries it in its path.',
        body: ClaimBody,
        response: { 200: ClaimSchema, 204: Type.Null() },
      },
    },
    async (request, reply) => {
      const claim = await app.services.engineRounds.claim(
        request.body.engine,
        request.body.worker ?? null,
        request.body.leaseSeconds ?? DEFAULT_LEASE_SECONDS,
        actor(request),
      );
      if (!claim) return reply.status(204).send(null);
      return claim;
    },
  );

  app.post(
    '/api/engine/rounds/:id/attempts/:attempt/heartbeat',
    {
      config: { access: TRAINING },
      schema: {
        operationId: 'engineHeartbeat',
        tags: ['engine'],
        summary: 'Extend the lease; answers cancel: true once the round was cancelled',
        params: AttemptParams,
        body: HeartbeatBody,
        response: { 200: HeartbeatSchema, ...REFUSED },
      },
    },
    async (request) =>
      app.services.engineRounds.heartbeat(
        request.params.id,
        request.params.attempt,
        request.body.leaseSeconds ?? DEFAULT_LEASE_SECONDS,
      ),
  );

  app.post(
    '/api/engine/rounds/:id/attempts/:attempt/events',
    {
      config: { access: TRAINING },
      schema: {
        operationId: 'engineEvents',
        tags: ['engine'],
        summary: 'Progress, phase and loss events (the Rounds page charts them live)',
        params: AttemptParams,
        body: EventsBody,
        response: { 200: Type.Object({ accepted: Type.Integer() }), ...REFUSED },
      },
    },
    async (request) =>
      app.services.engineRounds.events(request.params.id, request.params.attempt, request.body),
  );

  app.post(
    '/api/engine/rounds/:id/attempts/:attempt/metrics',
    {
      config: { access: TRAINING },
      schema: {
        operationId: 'engineMetrics',
        tags: ['engine'],
        summary: 'Metrics so far, merged into the round’s',
        params: AttemptParams,
        body: MetricsBody,
        response: { 200: Type.Object({ metrics: Type.Record(Type.String(), Type.Unknown()) }), ...REFUSED },
      },
    },
    async (request) =>
      app.services.engineRounds.metrics(request.params.id, request.params.attempt, request.body.metrics),
  );

  app.get(
    '/api/engine/rounds/:id/attempts/:attempt/snapshot',
    {
      config: { access: TRAINING },
      schema: {
        operationId: 'engineSnapshot',
        tags: ['engine'],
        summary: 'The round’s frozen snapshot (TRL preference JSONL with margins)',
        description: 'The X-Loom-Sha256 header carries the stored sha256 of the file.',
        params: AttemptParams,
        produces: Object.values(CONTENT_TYPES),
        response: REFUSED,
      },
    },
    async (request, reply) => {
      const snapshot = await app.services.engineRounds.snapshotOf(request.params.id, request.params.attempt);
      const format = snapshot.format as ExportFormat;
      return streamFile(
        request,
        reply,
        format,
        safeFileName(snapshot.name, format),
        {
          etag: `"${snapshot.contentHash}"`,
          'x-loom-sha256': snapshot.contentHash,
          'content-length': String(snapshot.byteSize),
        },
        (sink, aborted) => app.services.snapshots.download(snapshot, sink, aborted),
      );
    },
  );

  app.post(
    '/api/engine/rounds/:id/attempts/:attempt/results',
    {
      config: { access: TRAINING },
      schema: {
        operationId: 'engineResults',
        tags: ['engine'],
        summary: 'Publish the round: reward-model metrics, the new version and its new-vs-parent responses',
        description:
          'Completes the round in one transaction: the version (EXTERNAL at its endpoint, or IMPORTED), its responses paired with the parent’s as comparisons for raters.',
        params: AttemptParams,
        body: ResultsBody,
        response: { 200: RoundSchema, 400: ErrorSchema, ...REFUSED },
      },
    },
    async (request) =>
      app.services.engineRounds.results(
        request.params.id,
        request.params.attempt,
        request.body,
        actor(request),
      ),
  );

  app.post(
    '/api/engine/rounds/:id/attempts/:attempt/fail',
    {
      config: { access: TRAINING },
      schema: {
        operationId: 'engineFail',
        tags: ['engine'],
        summary: 'End the round as failed, with the reason',
        params: AttemptParams,
        body: FailBody,
        response: { 200: RoundSchema, ...REFUSED },
      },
    },
    async (request) =>
      app.services.engineRounds.fail(request.params.id, request.params.attempt, request.body.error),
  );
};
export default engine;
