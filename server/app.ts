// The application as a Fastify plugin tree: external plugins, then domain services, then routes.
// server/main.ts only adds listening and shutdown; tests build this and use app.inject.
import rateLimit from '@fastify/rate-limit';
import { TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, {
  type FastifyInstance,
  type FastifySchemaValidationError,
  type FastifyServerOptions,
} from 'fastify';
import type { Config } from './config.js';
import type { PgBoss } from 'pg-boss';
import { poolOf, type PrismaClient } from './db/client.js';
import { HttpError } from './errors.js';
import { logRedaction } from './log-redaction.js';
import { consoleStream } from './logging.js';
import authPlugin from './plugins/auth.js';
import docs from './plugins/docs.js';
import errors from './plugins/errors.js';
import input from './plugins/input.js';
import security from './plugins/security.js';
import web from './plugins/web.js';
import auditRoutes from './routes/audit.js';
import authRoutes from './routes/auth.js';
import datasetRoutes from './routes/datasets.js';
import healthRoutes from './routes/health.js';
import inviteRoutes from './routes/invites.js';
import tokenRoutes from './routes/tokens.js';
import userRoutes from './routes/users.js';
import projectRoutes from './routes/projects.js';
import ratingRoutes from './routes/rating.js';
import roundRoutes from './routes/rounds.js';
import { AuthService, type CredentialRow } from './services/auth.js';
import { CredentialCache } from './services/credential-cache.js';
import { ProjectService } from './services/projects.js';
import { QueueService } from './services/queue.js';
import { RoundService } from './services/rounds.js';
import { UserService } from './services/users.js';

export interface Services {
  auth: AuthService;
  users: UserService;
  projects: ProjectService;
  queue: QueueService;
  rounds: RoundService;
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

/** Validation errors as one readable line: where, and what was wrong. */
function formatValidationErrors(errors: FastifySchemaValidationError[], dataVar: string): Error {
  const problems = errors.slice(0, 5).map((error) => {
    const where = `${dataVar}${error.instancePath.replaceAll('/', '.')}`;
    if (error.message === 'schema is false' || error.keyword === 'additionalProperties') {
      return `${where}: unknown field`;
    }
    return `${where}: ${error.message}`;
  });
  return new Error(problems.join('; '));
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
    routerOptions: { ignoreTrailingSlash: true },
    schemaErrorFormatter: formatValidationErrors,
  })
    .setValidatorCompiler(TypeBoxValidatorCompiler)
    .withTypeProvider<TypeBoxTypeProvider>();

  // The API speaks JSON; other bodies are refused with 415 rather than parsed as strings.
  app.removeContentTypeParser('text/plain');
  app.decorate('config', config);
  app.decorate('prisma', prisma);
  const queue = new QueueService(prisma);
  // Who is calling, kept between requests and forgotten on every change (LISTEN/NOTIFY).
  const credentials = new CredentialCache<CredentialRow>(poolOf(prisma).options.connectionString!);
  app.addHook('onClose', () => credentials.stop());
  await credentials.start();
  const services: Services = {
    auth: new AuthService(prisma, config, credentials),
    users: new UserService(prisma, config, credentials),
    projects: new ProjectService(prisma, queue),
    queue,
    rounds: new RoundService(prisma, () => {
      if (!options.boss) throw new HttpError(503, 'The job queue is not running.');
      return options.boss;
    }),
  };
  app.decorate('services', services);

  await app.register(errors);
  await app.register(input);
  await app.register(security, { webDir: options.webDir });
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_request, context) => ({
      statusCode: 429,
      error: 'Too Many Requests',
      message: `Too many attempts; try again in ${Math.ceil(context.ttl / 1000)} s.`,
    }),
  });
  await app.register(docs);
  await app.register(authPlugin, { auth: services.auth });

  await app.register(healthRoutes);
  await app.register(authRoutes);
  await app.register(inviteRoutes);
  await app.register(userRoutes);
  await app.register(tokenRoutes);
  await app.register(auditRoutes);
  await app.register(projectRoutes);
  await app.register(ratingRoutes);
  await app.register(roundRoutes);
  await app.register(datasetRoutes);

  await app.register(web, { webDir: options.webDir });
  return app;
}
