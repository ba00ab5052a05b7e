// Projects (admins manage; researchers read; raters see their own), their members, imports,
// comparisons and the quality dashboard.
import type { FastifyPluginAsyncTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { principalOf } from '../plugins/auth.js';
import { importBodyValidator, streamImportBodies } from '../plugins/import-upload.js';
import { ErrorSchema, IdParams } from '../../core/schemas/common.js';
import {
  AddMembersBody,
  ComparisonListQuery,
  ComparisonPage,
  ComparisonSummary,
  CreateProjectBody,
  GenerateComparisonsBody,
  GenerateComparisonsResult,
  ImportBody,
  ImportReport,
  MemberParams,
  MemberSchema,
  ProjectSchema,
  UpdateComparisonBody,
  UpdateProjectBody,
} from '../../core/schemas/projects.js';
import {
  ExcludeRaterBody,
  ProjectQuality,
  ProjectReliability,
  RaterParams,
  ReliabilityQuery,
} from '../../core/schemas/quality.js';
import type { ImportUpload } from '../../core/services/import-source.js';

const ADMIN = ['ADMIN'] as const;
const STAFF = ['ADMIN', 'RESEARCHER'] as const;

const ImportError = Type.Intersect([ErrorSchema, Type.Partial(ImportReport)]);

const projects: FastifyPluginAsyncTypebox = async (app) => {
  const actor = (request: { ip: string; principal: unknown }) => ({
    id: principalOf(request as never).user.id,
    ip: request.ip,
  });

  app.get(
    '/api/projects',
    {
      config: { access: 'authenticated' },
      schema: {
        operationId: 'listProjects',
        tags: ['projects'],
        summary: 'Projects I can see',
        response: { 200: Type.Array(ProjectSchema) },
      },
    },
    async (request) => app.services.projects.list(principalOf(request)),
  );

  app.post(
    '/api/projects',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'createProject',
        tags: ['projects'],
        summary: 'Create a project',
        body: CreateProjectBody,
        response: { 201: ProjectSchema, 409: ErrorSchema },
      },
    },
    async (request, reply) => {
      const project = await app.services.projects.create(request.body, actor(request));
      return reply.status(201).send(await app.services.projects.dto(project));
    },
  );

  app.get(
    '/api/projects/:id',
    {
      config: { access: 'authenticated' },
      schema: {
        operationId: 'getProject',
        tags: ['projects'],
        summary: 'A project',
        params: IdParams,
        response: { 200: ProjectSchema, 404: ErrorSchema },
      },
    },
    async (request) =>
      app.services.projects.dto(await app.services.projects.visible(principalOf(request), request.params.id)),
  );

  app.patch(
    '/api/projects/:id',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'updateProject',
        tags: ['projects'],
        summary: 'Change a project’s settings, or archive it',
        params: IdParams,
        body: UpdateProjectBody,
        response: { 200: ProjectSchema, 404: ErrorSchema, 409: ErrorSchema },
      },
    },
    async (request) =>
      app.services.projects.dto(
        await app.services.projects.update(request.params.id, request.body, actor(request)),
      ),
  );

  app.get(
    '/api/projects/:id/members',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'listMembers',
        tags: ['projects'],
        summary: 'Who works on a project',
        params: IdParams,
        response: { 200: Type.Array(MemberSchema) },
      },
    },
    async (request) => {
      await app.services.projects.visible(principalOf(request), request.params.id);
      return app.services.projects.members(request.params.id);
    },
  );

  app.post(
    '/api/projects/:id/members',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'addMembers',
        tags: ['projects'],
        summary: 'Add users to a project',
        params: IdParams,
        body: AddMembersBody,
        response: { 200: Type.Array(MemberSchema), 404: ErrorSchema },
      },
    },
    async (request) => {
      await app.services.projects.visible(principalOf(request), request.params.id);
      return app.services.projects.addMembers(request.params.id, request.body.userIds, actor(request));
    },
  );

  app.delete(
    '/api/projects/:id/members/:userId',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'removeMember',
        tags: ['projects'],
        summary: 'Remove a user from a project',
        params: MemberParams,
        response: { 204: Type.Null(), 404: ErrorSchema },
      },
    },
    async (request, reply) => {
      await app.services.projects.removeMember(request.params.id, request.params.userId, actor(request));
      return reply.status(204).send(null);
    },
  );

  // The import reads its body as a stream (the file's text to a temporary file), in a scope of
  // its own: the other routes keep the ordinary JSON parser.
  await app.register(async (scoped) => {
    streamImportBodies(scoped);
    scoped.withTypeProvider<TypeBoxTypeProvider>().post(
      '/api/projects/:id/prompts/import',
      {
        bodyLimit: app.config.importLimit,
        validatorCompiler: importBodyValidator,
        config: { access: ADMIN, formerly: '/api/projects/:id/import' },
        schema: {
          operationId: 'importPrompts',
          tags: ['projects'],
          summary: 'Import prompts and responses (JSONL or CSV); all lines or none',
          description:
            'JSONL: one object a line, {"id"?, "prompt" | "messages", "responses": [{"text","source"?} | string] | "response", "source"?, "metadata"?, "split"?}. ' +
            'CSV: header with prompt, response and optionally source, id, split. Lines with the same id (or prompt) are merged. ' +
            'With dryRun the file is checked and previewed, and nothing is stored. Any bad line: 400 with every error by line number, nothing stored.',
          params: IdParams,
          body: ImportBody,
          response: { 200: ImportReport, 400: ImportError, 413: ErrorSchema },
        },
      },
      async (request) => {
        // The upload's temporary file is removed by streamImportBodies once the request is answered.
        const upload = request.body.content as unknown as ImportUpload;
        const project = await app.services.projects.visible(principalOf(request), request.params.id);
        return app.services.promptImports.importFile(
          project.id,
          { ...request.body, content: upload },
          actor(request),
        );
      },
    );
  });

  app.post(
    '/api/projects/:id/comparisons/generate',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'generateComparisons',
        tags: ['projects'],
        summary: 'Pair responses to the same prompt into comparisons',
        params: IdParams,
        body: GenerateComparisonsBody,
        response: { 200: GenerateComparisonsResult, 400: ErrorSchema },
      },
    },
    async (request) => {
      const project = await app.services.projects.visible(principalOf(request), request.params.id);
      return app.services.comparisons.generate(project, request.body, actor(request));
    },
  );

  app.get(
    '/api/projects/:id/comparisons',
    {
      config: { access: STAFF },
      schema: {
        operationId: 'listComparisons',
        tags: ['projects'],
        summary: 'Comparisons of a project, with their vote counts',
        params: IdParams,
        querystring: ComparisonListQuery,
        response: { 200: ComparisonPage },
      },
    },
    async (request) => {
      const project = await app.services.projects.visible(principalOf(request), request.params.id);
      return app.services.comparisons.list(project.id, request.query);
    },
  );

  app.patch(
    '/api/comparisons/:id',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'updateComparison',
        tags: ['projects'],
        summary: 'Set a comparison’s priority or gold answer',
        params: IdParams,
        body: UpdateComparisonBody,
        response: { 200: ComparisonSummary, 404: ErrorSchema },
      },
    },
    async (request) => app.services.comparisons.update(request.params.id, request.body, actor(request)),
  );

  app.get(
    '/api/projects/:id/quality',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'getProjectQuality',
        tags: ['projects'],
        summary: 'Agreement, gold accuracy and biases, live',
        params: IdParams,
        response: { 200: ProjectQuality },
      },
    },
    async (request) => {
      const project = await app.services.projects.visible(principalOf(request), request.params.id);
      return app.services.quality.ofProject(project.id);
    },
  );

  app.get(
    '/api/projects/:id/reliability',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'getProjectReliability',
        tags: ['projects'],
        summary: 'Each rater’s estimated reliability with its interval; raters below the threshold flagged',
        params: IdParams,
        querystring: ReliabilityQuery,
        response: { 200: ProjectReliability, 404: ErrorSchema },
      },
    },
    async (request) => {
      const project = await app.services.projects.visible(principalOf(request), request.params.id);
      return app.services.reliability.ofProject(project.id, request.query.threshold);
    },
  );

  app.put(
    '/api/projects/:id/excluded-raters/:raterId',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'excludeRater',
        tags: ['projects'],
        summary: 'Leave a rater’s judgments out of this project’s training and exports (audited)',
        params: RaterParams,
        body: ExcludeRaterBody,
        response: { 204: Type.Null(), 400: ErrorSchema, 404: ErrorSchema },
      },
    },
    async (request, reply) => {
      const project = await app.services.projects.visible(principalOf(request), request.params.id);
      await app.services.reliability.exclude(
        project.id,
        request.params.raterId,
        request.body?.reason ?? '',
        actor(request),
      );
      return reply.status(204).send(null);
    },
  );

  app.delete(
    '/api/projects/:id/excluded-raters/:raterId',
    {
      config: { access: ADMIN },
      schema: {
        operationId: 'includeRater',
        tags: ['projects'],
        summary: 'Take an excluded rater’s judgments back into training and exports (audited)',
        params: RaterParams,
        response: { 204: Type.Null(), 404: ErrorSchema },
      },
    },
    async (request, reply) => {
      const project = await app.services.projects.visible(principalOf(request), request.params.id);
      await app.services.reliability.include(project.id, request.params.raterId, actor(request));
      return reply.status(204).send(null);
    },
  );
};
export default projects;
