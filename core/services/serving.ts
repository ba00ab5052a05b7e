// Loom's built-in versions served OpenAI-compatibly: which versions an API token may call (those
// of the projects its user sees), a chat request turned into the policy's prompt, the sampling
// (done by the trainer's sampler in a thread of its own, reached through PolicyGenerator) and the
// answer in OpenAI's shape.
import { createHash, randomBytes, randomInt } from 'node:crypto';
import type { PolicyVersion, Prisma, PrismaClient, Project } from '../db/client.js';
import type { ChatCompletion, ChatCompletionBody, ModelList } from '../schemas/openai.js';
import type { Principal } from './auth.js';

export interface GenerateRequest {
  versionId: string;
  /** The version's checkpoint, read only when the sampler does not hold the version yet. */
  checkpoint(): Promise<Uint8Array>;
  prompt: string;
  temperature: number;
  topP: number;
  maxTokens: number | undefined;
  seed: number;
}

export interface GenerateResult {
  text: string;
  promptTokens: number;
  completionTokens: number;
  /** The policy ended its response (`<end>`), rather than the length cap stopping it. */
  ended: boolean;
}

export interface PolicyGenerator {
  generate(request: GenerateRequest): Promise<GenerateResult>;
}

/** An error answered in OpenAI's shape. */
export class OpenAIError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Requests waiting for the sampler at once; more are told to retry. */
const MAX_WAITING = 32;

type Servable = PolicyVersion & { project: Project };

function textOf(content: ChatCompletionBody['messages'][number]['content']): string {
  return typeof content === 'string' ? content : content.map((part) => part.text).join('');
}

/** Cuts the text at the first stop sequence; null when none occurs. */
export function applyStop(text: string, stop: readonly string[]): string | null {
  let cut = -1;
  for (const sequence of stop) {
    const at = text.indexOf(sequence);
    if (at >= 0 && (cut < 0 || at < cut)) cut = at;
  }
  return cut < 0 ? null : text.slice(0, cut);
}

export class ServingService {
  private waiting = 0;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly generator: () => Promise<PolicyGenerator>,
  ) {}

  /** Projects the principal sees: admins and researchers all, others those they are members of. */
  private projectFilter(principal: Principal): Prisma.ProjectWhereInput {
    return principal.user.role === 'ADMIN' || principal.user.role === 'RESEARCHER'
      ? {}
      : { members: { some: { userId: principal.user.id } } };
  }

  private servableWhere(principal: Principal): Prisma.PolicyVersionWhereInput {
    return {
      kind: 'BUILTIN',
      status: 'READY',
      artifactId: { not: null },
      project: this.projectFilter(principal),
    };
  }

  async models(principal: Principal): Promise<ModelList> {
    const versions = await this.prisma.policyVersion.findMany({
      where: this.servableWhere(principal),
      include: { project: true },
      orderBy: [{ createdAt: 'asc' }, { name: 'asc' }],
    });
    return {
      object: 'list',
      data: versions.map((version) => ({
        id: version.id,
        object: 'model' as const,
        created: Math.floor(version.createdAt.getTime() / 1000),
        owned_by: version.project.name,
        name: version.name,
        project_id: version.projectId,
      })),
    };
  }

  /** The version `model` names (an id, or a name unique among the versions the caller sees). */
  async resolve(principal: Principal, model: string): Promise<Servable> {
    const missing = () =>
      new OpenAIError(
        404,
        `The model '${model}' does not exist or you do not have access to it (GET /v1/models lists the ones you can use).`,
        'invalid_request_error',
        'model_not_found',
        'model',
      );
    const matches = await this.prisma.policyVersion.findMany({
      where: {
        ...(UUID.test(model) ? { id: model } : { name: model }),
        project: this.projectFilter(principal),
      },
      include: { project: true },
      take: 5,
    });
    if (matches.length === 0) throw missing();
    const servable = matches.filter(
      (version) => version.kind === 'BUILTIN' && version.artifactId && version.status === 'READY',
    );
    if (servable.length === 0) {
      const version = matches[0]!;
      throw new OpenAIError(
        400,
        version.kind === 'BUILTIN'
          ? `The model '${model}' is ${version.status.toLowerCase()} and has no weights to serve.`
          : `The model '${model}' is ${version.kind.toLowerCase()}: only built-in versions are served here.`,
        'invalid_request_error',
        'model_not_available',
        'model',
      );
    }
    if (servable.length > 1)
      throw new OpenAIError(
        400,
        `Several projects have a version named '${model}': use its id (GET /v1/models).`,
        'invalid_request_error',
        'model_ambiguous',
        'model',
      );
    return servable[0]!;
  }

  private async checkpoint(artifactId: string): Promise<Uint8Array> {
    const row = await this.prisma.modelArtifact.findUnique({
      where: { id: artifactId },
      select: { data: true, sha256: true },
    });
    if (!row) throw new Error(`model artifact ${artifactId} not found`);
    if (createHash('sha256').update(row.data).digest('hex') !== row.sha256)
      throw new Error(`model artifact ${artifactId} is corrupt (sha256 mismatch)`);
    return row.data;
  }

  async complete(principal: Principal, body: ChatCompletionBody): Promise<ChatCompletion> {
    const version = await this.resolve(principal, body.model);
    const user = [...body.messages].reverse().find((message) => message.role === 'user');
    if (!user)
      throw new OpenAIError(
        400,
        'messages must contain a user message.',
        'invalid_request_error',
        null,
        'messages',
      );
    const stop = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
    const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? undefined;
    if (this.waiting >= MAX_WAITING)
      throw new OpenAIError(
        429,
        'Too many requests are waiting for this server’s sampler; retry shortly.',
        'rate_limit_error',
        'rate_limit_exceeded',
      );
    this.waiting += 1;
    let result: GenerateResult;
    try {
      const generator = await this.generator();
      result = await generator.generate({
        versionId: version.id,
        checkpoint: () => this.checkpoint(version.artifactId!),
        // A built-in policy is prompted with the conversation's last user message, as in training.
        prompt: textOf(user.content),
        temperature: body.temperature ?? 1,
        topP: body.top_p ?? 1,
        maxTokens,
        seed: body.seed ?? randomInt(2 ** 31),
      });
    } finally {
      this.waiting -= 1;
    }
    const stopped = applyStop(result.text, stop);
    const content = stopped ?? result.text;
    return {
      id: `chatcmpl-${randomBytes(12).toString('hex')}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: body.model,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content },
          finish_reason: result.ended || stopped !== null ? 'stop' : 'length',
          logprobs: null,
        },
      ],
      usage: {
        prompt_tokens: result.promptTokens,
        completion_tokens: result.completionTokens,
        total_tokens: result.promptTokens + result.completionTokens,
      },
    };
  }
}
