// External policy versions: models behind OpenAI-compatible chat-completions endpoints. Admins
// register them (base URL checked against the outbound guard when saved, as well as on every
// connection), edit them, test the connection and delete unused ones. API keys are stored
// encrypted (cipher.ts) and leave this file only decrypted for the worker (loadEndpointTarget);
// no answer, audit entry or error carries one.
import type { Config } from '../config.js';
import { Prisma, type PolicyVersion, type PrismaClient, type Project } from '../db/client.js';
import { decryptSecret, encryptSecret, endpointCipherKey } from '../endpoints/cipher.js';
import {
  createEndpointClient,
  EndpointError,
  scrubSecret,
  type EndpointTarget,
  type SamplingSettings,
} from '../endpoints/client.js';
import { checkUrlResolved, OutboundRefusedError, parseAllowList } from '../endpoints/ssrf.js';
import { badRequest, conflict, HttpError, notFound } from '../errors.js';
import {
  MAX_ENDPOINT_CONCURRENCY,
  MAX_SYSTEM_PROMPT_CHARS,
  type CreateEndpointBody,
  type EndpointTestResult,
  type ModelVersion,
  type TestDraftEndpointBody,
  type UpdateEndpointBody,
} from '../schemas/endpoints.js';
import { recordAudit } from './audit.js';
import type { Actor } from './users.js';

const DEFAULT_CONCURRENCY = 4;
const TEST_PROMPT = 'Reply with one short sentence: are you ready?';
const TEST_MAX_TOKENS = 64;
const TEST_TIMEOUT_MS = 20_000;

/** Sampling settings checked field by field (the routes' schemas check too; this guards other callers). */
export function validateSettings(input: unknown): SamplingSettings {
  if (input === undefined || input === null) return {};
  if (typeof input !== 'object' || Array.isArray(input)) throw badRequest('settings must be an object.');
  const raw = input as Record<string, unknown>;
  const known = new Set(['systemPrompt', 'temperature', 'topP', 'maxTokens', 'seed', 'stop']);
  for (const key of Object.keys(raw)) if (!known.has(key)) throw badRequest(`settings.${key}: unknown field`);
  const settings: SamplingSettings = {};
  const number = (key: string, min: number, max: number, integer: boolean): number | undefined => {
    const value = raw[key];
    if (value === undefined || value === null) return undefined;
    if (
      typeof value !== 'number' ||
      !Number.isFinite(value) ||
      value < min ||
      value > max ||
      (integer && !Number.isInteger(value))
    )
      throw badRequest(
        `settings.${key} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}.`,
      );
    return value;
  };
  if (raw.systemPrompt !== undefined && raw.systemPrompt !== null) {
    if (typeof raw.systemPrompt !== 'string' || raw.systemPrompt.length > MAX_SYSTEM_PROMPT_CHARS)
      throw badRequest(
        `settings.systemPrompt must be text of at most ${MAX_SYSTEM_PROMPT_CHARS} characters.`,
      );
    if (raw.systemPrompt !== '') settings.systemPrompt = raw.systemPrompt;
  }
  const temperature = number('temperature', 0, 2, false);
  if (temperature !== undefined) settings.temperature = temperature;
  const topP = number('topP', 0, 1, false);
  if (topP !== undefined) settings.topP = topP;
  const maxTokens = number('maxTokens', 1, 32768, true);
  if (maxTokens !== undefined) settings.maxTokens = maxTokens;
  const seed = number('seed', -2147483648, 2147483647, true);
  if (seed !== undefined) settings.seed = seed;
  if (raw.stop !== undefined && raw.stop !== null) {
    if (
      !Array.isArray(raw.stop) ||
      raw.stop.length > 4 ||
      raw.stop.some((item) => typeof item !== 'string' || item.length === 0 || item.length > 200)
    )
      throw badRequest('settings.stop must be at most 4 non-empty texts of at most 200 characters.');
    if (raw.stop.length > 0) settings.stop = raw.stop as string[];
  }
  return settings;
}

function validateConcurrency(value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < 1 || value > MAX_ENDPOINT_CONCURRENCY)
    throw badRequest(`concurrency must be an integer from 1 to ${MAX_ENDPOINT_CONCURRENCY}.`);
  return value;
}

/** The base URL as stored: checked by the outbound guard (its name resolved now), without a trailing slash. */
export async function checkedBaseUrl(
  config: Pick<Config, 'outboundAllowHosts'>,
  url: string,
): Promise<string> {
  const trimmed = url.trim();
  try {
    const target = await checkUrlResolved(trimmed, parseAllowList(config.outboundAllowHosts));
    if (target.url.search !== '' || target.url.hash !== '')
      throw badRequest('The base URL must not have a query or a fragment.');
    return target.url.href.replace(/\/+$/, '');
  } catch (error) {
    if (error instanceof OutboundRefusedError) throw badRequest(`Base URL refused: ${error.message}`);
    throw error;
  }
}

function settingsOf(version: Pick<PolicyVersion, 'endpointSettings'>): SamplingSettings {
  try {
    return validateSettings(version.endpointSettings ?? {});
  } catch {
    return {};
  }
}

/** An external version's endpoint with its API key decrypted, for the worker that calls it. */
export async function loadEndpointTarget(
  prisma: PrismaClient,
  config: Pick<Config, 'endpointKey' | 'sessionSecret'>,
  versionId: string,
): Promise<EndpointTarget> {
  const version = await prisma.policyVersion.findUnique({
    where: { id: versionId },
    include: { endpointSecret: true },
  });
  if (!version) throw notFound('No such policy version.');
  if (version.kind !== 'EXTERNAL' || !version.endpointUrl || !version.endpointModel)
    throw badRequest(`Version "${version.name}" is not an external endpoint.`);
  const apiKey = version.endpointSecret
    ? decryptSecret(endpointCipherKey(config), version.endpointSecret.ciphertext, version.id)
    : undefined;
  return {
    baseUrl: version.endpointUrl,
    model: version.endpointModel,
    ...(apiKey !== undefined ? { apiKey } : {}),
    settings: settingsOf(version),
    concurrency: version.endpointConcurrency,
  };
}

function isUniqueViolation(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002';
}

export class EndpointService {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly config: Config,
  ) {}

  private key(): Buffer {
    return endpointCipherKey(this.config);
  }

  private async view(versions: PolicyVersion[], currentId: string | null): Promise<ModelVersion[]> {
    const ids = versions.map((version) => version.id);
    const [secrets, counts] = await Promise.all([
      this.prisma.endpointSecret.findMany({
        where: { policyVersionId: { in: ids } },
        select: { policyVersionId: true },
      }),
      this.prisma.response.groupBy({
        by: ['policyVersionId'],
        where: { policyVersionId: { in: ids } },
        _count: { _all: true },
      }),
    ]);
    const withKey = new Set(secrets.map((secret) => secret.policyVersionId));
    const responses = new Map(counts.map((count) => [count.policyVersionId, count._count._all]));
    return versions.map((version) => ({
      id: version.id,
      projectId: version.projectId,
      name: version.name,
      kind: version.kind,
      status: version.status,
      current: version.id === currentId,
      endpointUrl: version.kind === 'EXTERNAL' ? version.endpointUrl : null,
      endpointModel: version.kind === 'EXTERNAL' ? version.endpointModel : null,
      hasApiKey: withKey.has(version.id),
      settings: version.kind === 'EXTERNAL' ? settingsOf(version) : {},
      concurrency: version.endpointConcurrency,
      responses: responses.get(version.id) ?? 0,
      createdAt: version.createdAt.toISOString(),
      promotedAt: version.promotedAt?.toISOString() ?? null,
    }));
  }

  /** Every policy version of the project, newest first; endpoint fields for external ones. */
  async list(project: Project): Promise<ModelVersion[]> {
    const versions = await this.prisma.policyVersion.findMany({
      where: { projectId: project.id },
      orderBy: [{ createdAt: 'desc' }, { name: 'asc' }],
    });
    return this.view(versions, project.currentPolicyVersionId);
  }

  private async external(versionId: string): Promise<PolicyVersion & { project: Project }> {
    const version = await this.prisma.policyVersion.findUnique({
      where: { id: versionId },
      include: { project: true },
    });
    if (!version) throw notFound('No such policy version.');
    if (version.kind !== 'EXTERNAL')
      throw badRequest(
        `Version "${version.name}" is ${version.kind.toLowerCase()}, not an external endpoint.`,
      );
    return version;
  }

  private async one(versionId: string): Promise<ModelVersion> {
    const version = await this.prisma.policyVersion.findUniqueOrThrow({
      where: { id: versionId },
      include: { project: true },
    });
    const [view] = await this.view([version], version.project.currentPolicyVersionId);
    return view!;
  }

  async create(project: Project, body: CreateEndpointBody, actor: Actor): Promise<ModelVersion> {
    if (project.archivedAt) throw conflict('This project is archived.');
    const baseUrl = await checkedBaseUrl(this.config, body.baseUrl);
    const settings = validateSettings(body.settings);
    const concurrency = validateConcurrency(body.concurrency) ?? DEFAULT_CONCURRENCY;
    const name = body.name.trim();
    const model = body.model.trim();
    if (model === '') throw badRequest('model must not be blank.');
    let id: string;
    try {
      id = await this.prisma.$transaction(async (tx) => {
        const version = await tx.policyVersion.create({
          data: {
            projectId: project.id,
            name,
            kind: 'EXTERNAL',
            status: 'READY',
            endpointUrl: baseUrl,
            endpointModel: model,
            endpointSettings: settings as Prisma.InputJsonObject,
            endpointConcurrency: concurrency,
          },
        });
        if (body.apiKey !== undefined)
          await tx.endpointSecret.create({
            data: {
              policyVersionId: version.id,
              ciphertext: new Uint8Array(encryptSecret(this.key(), body.apiKey, version.id)),
            },
          });
        await recordAudit(tx, {
          actorId: actor.id,
          action: 'endpoint.create',
          targetType: 'policy-version',
          targetId: version.id,
          details: {
            projectId: project.id,
            name,
            baseUrl,
            model,
            concurrency,
            apiKey: body.apiKey !== undefined ? 'set' : 'none',
          },
          ip: actor.ip ?? null,
        });
        return version.id;
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw conflict(`This project already has a version named "${name}".`);
      throw error;
    }
    return this.one(id);
  }

  async update(versionId: string, body: UpdateEndpointBody, actor: Actor): Promise<ModelVersion> {
    const version = await this.external(versionId);
    const data: Prisma.PolicyVersionUpdateInput = {};
    const changed: string[] = [];
    if (body.name !== undefined && body.name.trim() !== version.name) {
      data.name = body.name.trim();
      changed.push('name');
    }
    if (body.baseUrl !== undefined) {
      const baseUrl = await checkedBaseUrl(this.config, body.baseUrl);
      if (baseUrl !== version.endpointUrl) {
        data.endpointUrl = baseUrl;
        changed.push('baseUrl');
      }
    }
    if (body.model !== undefined && body.model.trim() !== version.endpointModel) {
      if (body.model.trim() === '') throw badRequest('model must not be blank.');
      data.endpointModel = body.model.trim();
      changed.push('model');
    }
    if (body.settings !== undefined) {
      data.endpointSettings = validateSettings(body.settings) as Prisma.InputJsonObject;
      changed.push('settings');
    }
    const concurrency = validateConcurrency(body.concurrency);
    if (concurrency !== undefined && concurrency !== version.endpointConcurrency) {
      data.endpointConcurrency = concurrency;
      changed.push('concurrency');
    }
    const apiKey = body.apiKey === undefined ? 'kept' : body.apiKey === null ? 'removed' : 'replaced';
    try {
      await this.prisma.$transaction(async (tx) => {
        if (Object.keys(data).length > 0) await tx.policyVersion.update({ where: { id: version.id }, data });
        if (body.apiKey === null)
          await tx.endpointSecret.deleteMany({ where: { policyVersionId: version.id } });
        else if (body.apiKey !== undefined) {
          const ciphertext = new Uint8Array(encryptSecret(this.key(), body.apiKey, version.id));
          await tx.endpointSecret.upsert({
            where: { policyVersionId: version.id },
            create: { policyVersionId: version.id, ciphertext },
            update: { ciphertext },
          });
        }
        await recordAudit(tx, {
          actorId: actor.id,
          action: 'endpoint.update',
          targetType: 'policy-version',
          targetId: version.id,
          details: {
            projectId: version.projectId,
            name: (data.name as string | undefined) ?? version.name,
            changed,
            apiKey,
          },
          ip: actor.ip ?? null,
        });
      });
    } catch (error) {
      if (isUniqueViolation(error))
        throw conflict(`This project already has a version named "${String(data.name)}".`);
      throw error;
    }
    return this.one(version.id);
  }

  /** Deletes an external version that has no responses and is not the promoted one. */
  async remove(versionId: string, actor: Actor): Promise<void> {
    const version = await this.external(versionId);
    if (version.project.currentPolicyVersionId === version.id)
      throw conflict(`Version "${version.name}" is the project's promoted version; promote another first.`);
    const responses = await this.prisma.response.count({ where: { policyVersionId: version.id } });
    if (responses > 0)
      throw conflict(
        `Version "${version.name}" has ${responses} stored responses; it stays so that their judgments keep their version.`,
      );
    await this.prisma.$transaction(async (tx) => {
      await tx.policyVersion.delete({ where: { id: version.id } });
      await recordAudit(tx, {
        actorId: actor.id,
        action: 'endpoint.delete',
        targetType: 'policy-version',
        targetId: version.id,
        details: { projectId: version.projectId, name: version.name, baseUrl: version.endpointUrl },
        ip: actor.ip ?? null,
      });
    });
  }

  /** One short completion from a stored version: latency and the answer, or the endpoint's error. */
  async test(versionId: string, actor: Actor): Promise<EndpointTestResult> {
    const version = await this.external(versionId);
    const target = await loadEndpointTarget(this.prisma, this.config, version.id).catch((error: unknown) => {
      if (error instanceof HttpError) throw error;
      throw conflict((error as Error).message);
    });
    const result = await this.run(target);
    await recordAudit(this.prisma, {
      actorId: actor.id,
      action: 'endpoint.test',
      targetType: 'policy-version',
      targetId: version.id,
      details: {
        projectId: version.projectId,
        name: version.name,
        ok: result.ok,
        latencyMs: result.latencyMs,
        ...(result.status !== null ? { status: result.status } : {}),
      },
      ip: actor.ip ?? null,
    });
    return result;
  }

  /** Tests settings not saved yet (the form's draft); versionId lends its stored key when none is given. */
  async testDraft(body: TestDraftEndpointBody, actor: Actor): Promise<EndpointTestResult> {
    const baseUrl = await checkedBaseUrl(this.config, body.baseUrl);
    const settings = validateSettings(body.settings);
    let apiKey = body.apiKey;
    if (apiKey === undefined && body.versionId !== undefined) {
      const stored = await loadEndpointTarget(this.prisma, this.config, body.versionId);
      apiKey = stored.apiKey;
    }
    const result = await this.run({
      baseUrl,
      model: body.model.trim(),
      ...(apiKey !== undefined ? { apiKey } : {}),
      settings,
      concurrency: 1,
    });
    await recordAudit(this.prisma, {
      actorId: actor.id,
      action: 'endpoint.test',
      targetType: body.versionId ? 'policy-version' : 'endpoint-draft',
      ...(body.versionId ? { targetId: body.versionId } : {}),
      details: { baseUrl, model: body.model.trim(), ok: result.ok, latencyMs: result.latencyMs },
      ip: actor.ip ?? null,
    });
    return result;
  }

  private async run(target: EndpointTarget): Promise<EndpointTestResult> {
    const client = createEndpointClient(
      {
        ...target,
        settings: {
          ...target.settings,
          maxTokens: Math.min(target.settings.maxTokens ?? TEST_MAX_TOKENS, TEST_MAX_TOKENS),
        },
      },
      { allowHosts: this.config.outboundAllowHosts, timeoutMs: TEST_TIMEOUT_MS },
    );
    const started = performance.now();
    try {
      const completion = await client.complete([{ role: 'user', content: TEST_PROMPT }]);
      return {
        ok: true,
        latencyMs: completion.latencyMs,
        text: scrubSecret(completion.text, target.apiKey),
        finishReason: completion.finishReason,
        model: completion.model,
        usage: completion.usage,
        error: null,
        status: null,
      };
    } catch (error) {
      const message =
        error instanceof EndpointError
          ? error.message
          : `The test failed: ${(error as Error).message ?? String(error)}`;
      return {
        ok: false,
        latencyMs: Math.round(performance.now() - started),
        text: null,
        finishReason: null,
        model: null,
        usage: null,
        error: scrubSecret(message, target.apiKey),
        status: error instanceof EndpointError ? (error.status ?? null) : null,
      };
    }
  }
}
