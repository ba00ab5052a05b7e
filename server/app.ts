// The application as a Fastify plugin tree: external plugins, then domain services, then routes.
// server/main.ts only adds listening and shutdown; tests build this and use app.inject.
import rateLimit from '@fastify/rate-limit';
import { TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, {
  type FastifyInstance,
  type FastifySchemaValidationError,
  type FastifyServerOptions,
} from 'fastify';
import type { Config } from '../core/config.js';
import type { PgBoss } from 'pg-boss';
import { poolOf, type PrismaClient } from '../core/db/client.js';
import { HttpError } from '../core/errors.js';
import { logRedaction } from './log-redaction.js';
import { consoleStream } from './logging.js';
import requestId, { requestIdOf } from './request-id.js';
import { postgresRateLimitStore } from './rate-limit-store.js';
import authPlugin from './plugins/auth.js';
import docs from './plugins/docs.js';
import errors from './plugins/errors.js';
import metrics from './plugins/metrics.js';
import input from './plugins/input.js';
import security from './plugins/security.js';
import web from './plugins/web.js';
import auditRoutes from './routes/audit.js';
import authRoutes from './routes/auth.js';
import datasetRoutes from './routes/datasets.js';
import endpointRoutes from './routes/endpoints.js';
import openaiCompatRoutes from './routes/openai-compat.js';
import generationRoutes from './routes/generations.js';
import healthRoutes from './routes/health.js';
import metricsRoutes from './routes/metrics.js';
import inviteRoutes from './routes/invites.js';
import tokenRoutes from './routes/tokens.js';
import userRoutes from './routes/users.js';
import projectRoutes from './routes/projects.js';
import ratingRoutes from './routes/rating.js';
import roundRoutes from './routes/rounds.js';
import engineRoutes from './routes/engine.js';
import leaderboardRoutes from './routes/leaderboard.js';
import { AuditService } from '../core/services/audit.js';
import { AuthService, type CredentialRow } from '../core/services/auth.js';
import { ComparisonService } from '../core/services/comparisons.js';
import { CredentialCache } from '../core/services/credential-cache.js';
import { ExportService } from '../core/services/export-service.js';
import { EndpointService } from '../core/services/endpoints.js';
import { ServingService } from '../core/services/serving.js';
import { policyGenerator, stopPolicyGenerator } from '../trainer/serving.js';
import { GenerationService } from '../core/services/generations.js';
import { HealthService } from '../core/services/health.js';
import { MetricsService } from '../core/services/metrics.js';
import { PreferenceImportService } from '../core/services/preference-imports.js';
import { ProjectService } from '../core/services/projects.js';
import { PromptImportService } from '../core/services/prompt-imports.js';
import { QualityService } from '../core/services/quality.js';
import { ReliabilityService } from '../core/services/reliability.js';
import { RatingService } from '../core/services/rating.js';
import { RoundService } from '../core/services/rounds.js';
import { EngineRoundService } from '../core/services/engine-rounds.js';
import { LeaderboardService } from '../core/services/leaderboard.js';
import { SnapshotService } from '../core/services/snapshots.js';
import { UserService } from '../core/services/users.js';

/** The domain services, made once per app; routes reach them as app.services.<name>. */
export interface Services {
  health: HealthService;
  metrics: MetricsService;
  auth: AuthService;
  users: UserService;
  audit: AuditService;
  projects: ProjectService;
  promptImports: PromptImportService;
  comparisons: ComparisonService;
  quality: QualityService;
  reliability: ReliabilityService;
  rating: RatingService;
  rounds: RoundService;
  engineRounds: EngineRoundService;
  leaderboard: LeaderboardService;
  exports: ExportService;
  snapshots: SnapshotService;
  preferenceImports: PreferenceImportService;
  generations: GenerationService;
  endpoints: EndpointService;
  serving: ServingService;
}

declare module 'fastify' {
  interface FastifyInstance {
    config: Config;
    prisma: PrismaClient;
    services: Services;
  }
}

export interface AppOptions {
  config: Config;
  prisma: PrismaClient;
  logger?: FastifyServerOptions['logger'];
  /** The built SPA; defaults to web/build. */
  webDir?: string;
  /** The job queue; without it, launching rounds answers 503. */
  boss?: PgBoss;
}

/**
 * Validation errors as one readable line: where, and what was wrong. A value outside a union of
 * literals fails each of them ("must be equal to constant") and the union ("must match a schema
 * in anyOf"): said once, with the values allowed.
 */
function formatValidationErrors(errors: FastifySchemaValidationError[], dataVar: string): Error {
  const literals = new Map<string, unknown[]>();
  for (const error of errors) {
    const values = literals.get(error.instancePath) ?? [];
    if (error.keyword === 'const') values.push(error.params.allowedValue);
    else if (error.keyword !== 'anyOf') values.push(undefined);
    literals.set(error.instancePath, values);
  }
  const said = new Set<string>();
  const problems: string[] = [];
  for (const error of errors) {
    const where = `${dataVar}${error.instancePath.replaceAll('/', '.')}`;
    const values = literals.get(error.instancePath)!;
    if (
      (error.keyword === 'const' || error.keyword === 'anyOf') &&
      values.length &&
      !values.includes(undefined)
    ) {
      if (!said.has(where))
        problems.push(`${where}: must be one of ${values.map((v) => JSON.stringify(v)).join(', ')}`);
      said.add(where);
    } else if (error.message === 'schema is false' || error.keyword === 'additionalProperties') {
      problems.push(`${where}: unknown field`);
    } else problems.push(`${where}: ${error.message}`);
  }
  return new Error(problems.slice(0, 5).join('; '));
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { config, prisma } = options;
  const app = Fastify({
    // JSON lines, or short lines for a terminal where requests show only when they fail (logging.ts).
    logger: options.logger ?? { level: config.logLevel, stream: consoleStream(config), ...logRedaction },
    bodyLimit: config.bodyLimit,
    requestTimeout: config.requestTimeoutMs,
    trustProxy: config.trustProxy,
    return503OnClosing: true,
    // The caller's X-Request-Id when sane, else a new UUID; logged as reqId (request-id.ts).
    requestIdHeader: false,
    genReqId: requestIdOf,
    routerOptions: { ignoreTrailingSlash: true },
    schemaErrorFormatter: formatValidationErrors,
  })
    .setValidatorCompiler(TypeBoxValidatorCompiler)
    .withTypeProvider<TypeBoxTypeProvider>();

  // The API speaks JSON; other bodies are refused with 415 rather than parsed as strings.
  app.removeContentTypeParser('text/plain');
  app.decorate('config', config);
  app.decorate('prisma', prisma);
  const rating = new RatingService(prisma);
  // Who is calling, kept between requests and forgotten on every change (LISTEN/NOTIFY).
  const credentials = new CredentialCache<CredentialRow>(poolOf(prisma).options.connectionString!);
  app.addHook('onClose', () => credentials.stop());
  await credentials.start();
  const services: Services = {
    health: new HealthService(prisma),
    metrics: new MetricsService(prisma),
    auth: new AuthService(prisma, config, credentials),
    users: new UserService(prisma, config, credentials),
    audit: new AuditService(prisma),
    projects: new ProjectService(prisma, rating, () => options.boss),
    promptImports: new PromptImportService(prisma),
    comparisons: new ComparisonService(prisma),
    quality: new QualityService(prisma),
    reliability: new ReliabilityService(prisma),
    rating,
    rounds: new RoundService(prisma, () => {
      if (!options.boss) throw new HttpError(503, 'The job queue is not running.');
      return options.boss;
    }),
    engineRounds: new EngineRoundService(prisma, config),
    leaderboard: new LeaderboardService(prisma),
    exports: new ExportService(prisma, config.sessionSecret),
    snapshots: new SnapshotService(prisma, config.sessionSecret),
    preferenceImports: new PreferenceImportService(prisma),
    generations: new GenerationService(prisma, () => {
      if (!options.boss) throw new HttpError(503, 'The job queue is not running.');
      return options.boss;
    }),
    endpoints: new EndpointService(prisma, config),
    // The sampler's thread (TensorFlow.js) starts on the first /v1 request.
    serving: new ServingService(prisma, async () => policyGenerator()),
  };
  app.decorate('services', services);

  await app.register(requestId);
  await app.register(errors);
  await app.register(metrics, { service: services.metrics });
  await app.register(input);
  await app.register(security, { webDir: options.webDir });
  await app.register(rateLimit, {
    global: false,
    // Counted in PostgreSQL, so that limits hold across every server process on the database.
    store: postgresRateLimitStore(poolOf(prisma)),
    errorResponseBuilder: (_request, context) => ({
      statusCode: 429,
      error: 'Too Many Requests',
      message: `Too many attempts; try again in ${Math.ceil(context.ttl / 1000)} s.`,
    }),
  });
  await app.register(docs);
  await app.register(authPlugin, { auth: services.auth });

  await app.register(healthRoutes);
  await app.register(metricsRoutes);
  await app.register(authRoutes);
  await app.register(inviteRoutes);
  await app.register(userRoutes);
  await app.register(tokenRoutes);
  await app.register(auditRoutes);
  await app.register(projectRoutes);
  await app.register(ratingRoutes);
  await app.register(roundRoutes);
  await app.register(engineRoutes);
  await app.register(leaderboardRoutes);
  await app.register(datasetRoutes);
  await app.register(generationRoutes);
  await app.register(endpointRoutes);
  await app.register(openaiCompatRoutes);
  app.addHook('onClose', () => stopPolicyGenerator());

  await app.register(web, { webDir: options.webDir });
  return app;
}
