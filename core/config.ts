// The server's configuration, read once from the environment and validated; nothing else in the
// code reads process.env.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';
import { parseAllowList } from './endpoints/ssrf.js';

const EnvSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')], {
    default: 'development',
  }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  /** The interface to listen on: this machine only unless set (the image and compose set 0.0.0.0). */
  HOST: Type.String({ default: '127.0.0.1', minLength: 1 }),
  /** Unset: the embedded PostgreSQL under DATA_DIR. */
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DATA_DIR: Type.String({ default: './data' }),
  /** Origin used in links the server prints or returns (setup and invitation links). */
  PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  /** Keys the hashes of session, invitation and API tokens. Required (strong) in production. */
  SESSION_SECRET: Type.Optional(Type.String()),
  SESSION_IDLE_MINUTES: Type.Integer({ minimum: 1, default: 120 }),
  SESSION_ABSOLUTE_HOURS: Type.Integer({ minimum: 1, default: 72 }),
  LOGIN_RATE_LIMIT_PER_MINUTE: Type.Integer({ minimum: 1, default: 10 }),
  /** Judgments and skips per rater per minute (simulated accounts are not limited). */
  SUBMIT_RATE_LIMIT_PER_MINUTE: Type.Integer({ minimum: 1, default: 120 }),
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 1024, default: 1_048_576 }),
  /** Imports carry whole files. */
  IMPORT_LIMIT_BYTES: Type.Integer({ minimum: 1024, default: 67_108_864 }),
  REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 1000, default: 30_000 }),
  TRUST_PROXY: Type.Boolean({ default: false }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)),
    { default: 'info' },
  ),
  /** json: one JSON line per event and request (default in production); pretty: short lines for a terminal. */
  LOG_FORMAT: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('pretty')])),
  DB_POOL_MAX: Type.Integer({ minimum: 1, default: 10 }),
  /** Bearer token for GET /metrics (Prometheus); unset: /metrics answers 404. */
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
  /**
   * Hosts the endpoint client may reach although they are loopback, private or link-local:
   * comma-separated `host`, `host:port` or CIDR (a local vLLM or Ollama: `127.0.0.1:8000`).
   */
  OUTBOUND_ALLOW_HOSTS: Type.String({ default: '' }),
  /** Encrypts endpoints' API keys at rest: 32 bytes, base64 or hex. Unset: derived from SESSION_SECRET. */
  ENDPOINT_KEY: Type.Optional(Type.String({ minLength: 1 })),
  /** Run the trainer worker alongside the server (default: on the embedded default only). */
  START_TRAINER: Type.Optional(Type.Boolean()),
  /** Seed the demo project at the first start (default: on the embedded default only). */
  SEED_DEMO: Type.Optional(Type.Boolean()),
  /** SFT steps of the demo's first policy. */
  DEMO_SFT_STEPS: Type.Integer({ minimum: 1, default: 1200 }),
  /** A running job without a heartbeat for this long counts as crashed and is retried. */
  TRAINER_HEARTBEAT_SECONDS: Type.Integer({ minimum: 10, default: 60 }),
  /** How often workers look for crashed jobs. */
  JOB_MONITOR_SECONDS: Type.Integer({ minimum: 1, default: 30 }),
});
type Env = Static<typeof EnvSchema>;

/** Every environment variable the server reads. */
export const ENV_KEYS: readonly string[] = Object.keys(EnvSchema.properties);

export interface Config {
  production: boolean;
  port: number;
  host: string;
  databaseUrl: string | undefined;
  dataDir: string;
  publicUrl: string | undefined;
  sessionSecret: string;
  sessionIdleMs: number;
  sessionAbsoluteMs: number;
  loginRateLimitPerMinute: number;
  bodyLimit: number;
  importLimit: number;
  requestTimeoutMs: number;
  submitRateLimitPerMinute: number;
  trustProxy: boolean;
  logLevel: string;
  logFormat: 'json' | 'pretty';
  dbPoolMax: number;
  metricsToken: string | undefined;
  outboundAllowHosts: string[];
  /** The 32-byte key for endpoints' API keys as given, or undefined (derived from the session secret). */
  endpointKey: Buffer | undefined;
  startTrainer: boolean;
  seedDemo: boolean;
  demoSftSteps: number;
  trainerHeartbeatSeconds: number;
  jobMonitorSeconds: number;
}

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = env[key];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  const converted = Value.Default(EnvSchema, Value.Convert(EnvSchema, raw)) as unknown;
  if (!Value.Check(EnvSchema, converted)) {
    const problems = [...Value.Errors(EnvSchema, converted)].map(
      (error) => `${error.instancePath.replace(/^\//, '') || 'environment'}: ${error.message}`,
    );
    throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const parsed = converted as Env;
  const production = parsed.NODE_ENV === 'production';
  const dataDir = path.resolve(parsed.DATA_DIR);
  return {
    production,
    port: parsed.PORT,
    host: parsed.HOST,
    databaseUrl: parsed.DATABASE_URL,
    dataDir,
    publicUrl: parsed.PUBLIC_URL?.replace(/\/+$/, ''),
    sessionSecret: resolveSessionSecret(parsed.SESSION_SECRET, production, dataDir),
    sessionIdleMs: parsed.SESSION_IDLE_MINUTES * 60_000,
    sessionAbsoluteMs: parsed.SESSION_ABSOLUTE_HOURS * 3_600_000,
    loginRateLimitPerMinute: parsed.LOGIN_RATE_LIMIT_PER_MINUTE,
    submitRateLimitPerMinute: parsed.SUBMIT_RATE_LIMIT_PER_MINUTE,
    bodyLimit: parsed.BODY_LIMIT_BYTES,
    importLimit: parsed.IMPORT_LIMIT_BYTES,
    requestTimeoutMs: parsed.REQUEST_TIMEOUT_MS,
    trustProxy: parsed.TRUST_PROXY,
    logLevel: parsed.LOG_LEVEL,
    logFormat: parsed.LOG_FORMAT ?? (production ? 'json' : 'pretty'),
    dbPoolMax: parsed.DB_POOL_MAX,
    metricsToken: parsed.METRICS_TOKEN,
    outboundAllowHosts: parseAllowHosts(parsed.OUTBOUND_ALLOW_HOSTS),
    endpointKey: parseEndpointKey(parsed.ENDPOINT_KEY),
    startTrainer: parsed.START_TRAINER ?? parsed.DATABASE_URL === undefined,
    seedDemo: parsed.SEED_DEMO ?? parsed.DATABASE_URL === undefined,
    demoSftSteps: parsed.DEMO_SFT_STEPS,
    trainerHeartbeatSeconds: parsed.TRAINER_HEARTBEAT_SECONDS,
    jobMonitorSeconds: parsed.JOB_MONITOR_SECONDS,
  };
}

function parseAllowHosts(text: string): string[] {
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  try {
    parseAllowList(entries);
  } catch (error) {
    throw new ConfigError(`OUTBOUND_ALLOW_HOSTS: ${(error as Error).message}`);
  }
  return entries;
}

function parseEndpointKey(text: string | undefined): Buffer | undefined {
  if (text === undefined) return undefined;
  const trimmed = text.trim();
  const hex = /^[0-9a-fA-F]{64}$/.test(trimmed);
  const key = hex ? Buffer.from(trimmed, 'hex') : Buffer.from(trimmed, 'base64');
  if (key.length !== 32 || (!hex && !/^[A-Za-z0-9+/_-]+=*$/.test(trimmed)))
    throw new ConfigError(
      'ENDPOINT_KEY must be 32 bytes as 64 hex digits or base64 (openssl rand -base64 32)',
    );
  return key;
}

/** Why a secret is too weak, or null when it is acceptable. */
export function weakSecretReason(secret: string): string | null {
  if (secret.length < 32) return 'it is shorter than 32 characters';
  if (new Set(secret).size < 12) return 'it has fewer than 12 distinct characters';
  if (/^(changeme|secret|password|example)/i.test(secret)) return 'it looks like a placeholder';
  return null;
}

/**
 * Production requires SESSION_SECRET and refuses a weak one. Elsewhere a missing secret is
 * generated once and kept in DATA_DIR/session-secret, so restarts keep sessions and tokens valid.
 */
function resolveSessionSecret(given: string | undefined, production: boolean, dataDir: string): string {
  if (given !== undefined) {
    const weak = weakSecretReason(given);
    if (weak && production)
      throw new ConfigError(
        `SESSION_SECRET is too weak: ${weak}. Generate one with: openssl rand -base64 48`,
      );
    return given;
  }
  if (production) {
    throw new ConfigError(
      'SESSION_SECRET must be set in production. Generate one with: openssl rand -base64 48',
    );
  }
  const file = path.join(dataDir, 'session-secret');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dataDir, { recursive: true });
  const secret = randomBytes(48).toString('base64url');
  writeFileSync(file, secret + '\n', { mode: 0o600 });
  return secret;
}
