// Typed client for the Loom API (/api on the same origin). One function per route, each a call of
// openapi-fetch typed by the server's own OpenAPI document (api-paths.d.ts, from `npm run openapi`).
import { goto } from '$app/navigation';
import { resolve } from '$app/paths';
import type {
  AcceptInviteBody,
  AddMembersBody,
  ApiToken,
  AuditPage,
  AuditQuery,
  ChangePasswordBody,
  ComparisonPage,
  ComparisonSummary,
  CreateProjectBody,
  CreatedInvite,
  CreatedToken,
  CreateInviteBody,
  CreateTokenBody,
  CreateUserBody,
  GenerateComparisonsBody,
  HealthResponse,
  ImportBody,
  ImportLineError,
  ImportReport,
  Invite,
  InviteLookup,
  LoginBody,
  Member,
  MeResponse,
  NextAssignmentResult,
  Project,
  ProjectQuality,
  ProjectReliability,
  RaterProgress,
  RaterProjectList,
  RatingContext,
  Session,
  SetupStatus,
  SubmitBody,
  SubmitResult,
  UndoResult,
  UpdateComparisonBody,
  UpdateProjectBody,
  UpdateUserBody,
  User,
} from '$shared/index.js';
import createClient from 'openapi-fetch';
import type { paths } from './api-paths.js';
import { session } from './session.svelte.js';

/** Any non-2xx answer. `message` is the server's own explanation when it sent one. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string | undefined;
  /** Per-line errors of a refused import (400 from POST /projects/:id/import). */
  readonly lineErrors: ImportLineError[];

  constructor(status: number, message: string, code?: string, lineErrors: ImportLineError[] = []) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.lineErrors = lineErrors;
  }

  /** Status 0: the request never got an answer (offline, connection reset). Safe to retry idempotent calls. */
  get isNetwork(): boolean {
    return this.status === 0;
  }
}

/** Paths of the API, as the server's OpenAPI document names them (generated: `npm run openapi`). */
export type ApiPaths = paths;

/**
 * The typed client: paths, parameters, bodies and answers come from the server's OpenAPI document,
 * so a route the client calls wrongly fails `npm run check`. Use it through `call` (errors, CSRF).
 */
export const client = createClient<paths>({
  baseUrl: '',
  credentials: 'same-origin',
  // Looked up at each call, so whatever fetch the page has then (a test's, say) is the one used.
  fetch: (input) => globalThis.fetch(input),
});

const WRITE_METHODS: ReadonlySet<string> = new Set(['POST', 'PATCH', 'PUT', 'DELETE']);

client.use({
  onRequest({ request }) {
    if (!request.headers.has('accept')) request.headers.set('accept', 'application/json');
    if (WRITE_METHODS.has(request.method) && session.csrfToken)
      request.headers.set('x-csrf-token', session.csrfToken);
    return request;
  },
});

/** What a call of the typed client resolves with. */
interface Answer<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

interface CallOptions {
  /**
   * A 401 from these routes is an answer, not an expired session (wrong password, not signed in yet),
   * so the caller handles it instead of being sent to /login.
   */
  authRoute?: boolean;
  /** The request's signal: once it aborts, the call rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
}

/** A call's answer (its body, or the Response of a streamed file), or an ApiError for anything else. */
export async function call<T>(send: () => Promise<Answer<T>>, options: CallOptions = {}): Promise<T> {
  try {
    return await attempt(send, options);
  } catch (error) {
    // The CSRF token we hold is stale (e.g. the session was renewed in another tab): fetch the current
    // one and retry once, but only while it is still the same user.
    if (!(error instanceof ApiError && error.status === 403 && error.code === 'CSRF') || !session.user)
      throw error;
    const before = session.user.id;
    let me: MeResponse;
    try {
      me = await attempt(() => client.GET('/api/auth/me'), { authRoute: true });
    } catch {
      throw error;
    }
    session.set(me);
    if (me.user.id !== before) throw error;
    return attempt(send, options);
  }
}

async function attempt<T>(send: () => Promise<Answer<T>>, options: CallOptions): Promise<T> {
  let answer: Answer<T>;
  try {
    answer = await send();
  } catch (error) {
    if (options.signal?.aborted) throw error;
    throw new ApiError(0, 'Could not reach the Loom server. Check your connection and try again.');
  }
  const { response } = answer;
  if (response.ok) return answer.data as T;

  const body = (answer.error ?? {}) as { message?: unknown; code?: unknown; errors?: unknown };
  const message =
    typeof body.message === 'string' && body.message
      ? body.message
      : defaultMessage(response.status, response.statusText);
  const error = new ApiError(
    response.status,
    message,
    typeof body.code === 'string' ? body.code : undefined,
    Array.isArray(body.errors) ? (body.errors as ImportLineError[]) : [],
  );
  if (response.status === 401 && !options.authRoute) await sendToLogin();
  throw error;
}

/** The query without empty values (an unset filter is left out, not sent as `key=`). */
export function query<Q extends Record<string, string | number | undefined>>(values: Q): Q {
  return Object.fromEntries(
    Object.entries(values).filter(([, value]) => value !== undefined && value !== ''),
  ) as Q;
}

/** A path parameter `{id}`. */
export const byId = (id: string) => ({ path: { id } });

let redirecting = false;

function defaultMessage(status: number, statusText: string): string {
  switch (status) {
    case 401:
      return 'You are not signed in.';
    case 403:
      return 'You do not have permission to do that.';
    case 404:
      return 'Not found.';
    case 429:
      return 'Too many requests. Wait a moment and try again.';
    default:
      return status >= 500
        ? 'The server ran into a problem. Try again in a moment.'
        : statusText || `Request failed (${status}).`;
  }
}

/** The session ended (expired, revoked, user disabled): forget it and go to the sign-in page. */
async function sendToLogin(): Promise<void> {
  session.clear();
  if (redirecting) return;
  const here = window.location.pathname + window.location.search;
  if (window.location.pathname === resolve('/login')) return;
  redirecting = true;
  try {
    await goto(resolve(`/login?next=${encodeURIComponent(here)}`), { replaceState: true });
  } finally {
    redirecting = false;
  }
}

const AUTH = { authRoute: true } as const;

export const api = {
  health: (): Promise<HealthResponse> => call(() => client.GET('/api/health')),

  // Setup and invitations
  setupStatus: (): Promise<SetupStatus> => call(() => client.GET('/api/setup/status'), AUTH),
  // The token goes in the body: a secret in a URL ends up in logs and histories.
  lookupInvite: (token: string): Promise<InviteLookup> =>
    call(() => client.POST('/api/invites/lookup', { body: { token } }), AUTH),
  acceptInvite: (body: AcceptInviteBody): Promise<MeResponse> =>
    call(() => client.POST('/api/invites/accept', { body }), AUTH),

  // Authentication
  login: (body: LoginBody): Promise<MeResponse> => call(() => client.POST('/api/auth/login', { body }), AUTH),
  logout: (): Promise<void> => call(() => client.POST('/api/auth/logout'), AUTH),
  me: (): Promise<MeResponse> => call(() => client.GET('/api/auth/me'), AUTH),
  sessions: (): Promise<Session[]> => call(() => client.GET('/api/auth/sessions')),
  revokeSession: (id: string): Promise<void> =>
    call(() => client.DELETE('/api/auth/sessions/{id}', { params: byId(id) })),
  /** 409 when the current password is wrong. */
  changePassword: (body: ChangePasswordBody): Promise<void> =>
    call(() => client.POST('/api/auth/password', { body })),

  // Users (ADMIN)
  users: (): Promise<User[]> => call(() => client.GET('/api/users')),
  createUser: (body: CreateUserBody): Promise<User> => call(() => client.POST('/api/users', { body })),
  updateUser: (id: string, body: UpdateUserBody): Promise<User> =>
    call(() => client.PATCH('/api/users/{id}', { params: byId(id), body })),

  // Invites (ADMIN)
  invites: (): Promise<Invite[]> => call(() => client.GET('/api/invites')),
  createInvite: (body: CreateInviteBody): Promise<CreatedInvite> =>
    call(() => client.POST('/api/invites', { body })),
  revokeInvite: (id: string): Promise<void> =>
    call(() => client.DELETE('/api/invites/{id}', { params: byId(id) })),

  // API tokens (ADMIN, RESEARCHER; own tokens)
  tokens: (): Promise<ApiToken[]> => call(() => client.GET('/api/tokens')),
  createToken: (body: CreateTokenBody): Promise<CreatedToken> =>
    call(() => client.POST('/api/tokens', { body })),
  revokeToken: (id: string): Promise<void> =>
    call(() => client.DELETE('/api/tokens/{id}', { params: byId(id) })),

  // Audit log (ADMIN)
  audit: (q: AuditQuery = {}): Promise<AuditPage> =>
    call(() => client.GET('/api/audit', { params: { query: query({ before: q.before, limit: q.limit }) } })),

  // Projects (ADMIN manages; RESEARCHER reads; RATER sees their own)
  projects: (): Promise<Project[]> => call(() => client.GET('/api/projects')),
  project: (id: string): Promise<Project> =>
    call(() => client.GET('/api/projects/{id}', { params: byId(id) })),
  createProject: (body: CreateProjectBody): Promise<Project> =>
    call(() => client.POST('/api/projects', { body })),
  updateProject: (id: string, body: UpdateProjectBody): Promise<Project> =>
    call(() => client.PATCH('/api/projects/{id}', { params: byId(id), body })),
  members: (id: string): Promise<Member[]> =>
    call(() => client.GET('/api/projects/{id}/members', { params: byId(id) })),
  addMembers: (id: string, body: AddMembersBody): Promise<Member[]> =>
    call(() => client.POST('/api/projects/{id}/members', { params: byId(id), body })),
  removeMember: (id: string, userId: string): Promise<void> =>
    call(() => client.DELETE('/api/projects/{id}/members/{userId}', { params: { path: { id, userId } } })),
  /** 400 with `ApiError.lineErrors` when any line is bad (nothing stored). */
  importPrompts: (id: string, body: ImportBody): Promise<ImportReport> =>
    call(() => client.POST('/api/projects/{id}/prompts/import', { params: byId(id), body })),
  generateComparisons: (
    id: string,
    body: GenerateComparisonsBody,
  ): Promise<{
    created: number;
    skippedExisting: number;
    skippedIdentical: number;
    /** Rankings: prompts with fewer responses of distinct text than asked. */
    skippedTooFew?: number;
  }> => call(() => client.POST('/api/projects/{id}/comparisons/generate', { params: byId(id), body })),
  comparisons: (
    id: string,
    q: { status?: 'open' | 'complete' | 'gold'; cursor?: string; limit?: number } = {},
  ): Promise<ComparisonPage> =>
    call(() =>
      client.GET('/api/projects/{id}/comparisons', {
        params: { path: { id }, query: query({ status: q.status, cursor: q.cursor, limit: q.limit }) },
      }),
    ),
  updateComparison: (id: string, body: UpdateComparisonBody): Promise<ComparisonSummary> =>
    call(() => client.PATCH('/api/comparisons/{id}', { params: byId(id), body })),
  quality: (id: string): Promise<ProjectQuality> =>
    call(() => client.GET('/api/projects/{id}/quality', { params: byId(id) })),
  reliability: (id: string): Promise<ProjectReliability> =>
    call(() => client.GET('/api/projects/{id}/reliability', { params: byId(id) })),
  excludeRater: (id: string, raterId: string, reason = ''): Promise<void> =>
    call(() =>
      client.PUT('/api/projects/{id}/excluded-raters/{raterId}', {
        params: { path: { id, raterId } },
        body: { reason },
      }),
    ),
  includeRater: (id: string, raterId: string): Promise<void> =>
    call(() =>
      client.DELETE('/api/projects/{id}/excluded-raters/{raterId}', { params: { path: { id, raterId } } }),
    ),

  // Rating (raters; admins may rate too)
  ratingProjects: (): Promise<RaterProjectList> => call(() => client.GET('/api/rating/projects')),
  ratingContext: (id: string): Promise<RatingContext> =>
    call(() => client.GET('/api/projects/{id}/rating-context', { params: byId(id) })),
  /** Pass the ids of leases already held (the one on screen) as `exclude` to prefetch the next one. */
  nextAssignment: (projectId: string, exclude: string[] = []): Promise<NextAssignmentResult> =>
    call(() =>
      client.POST('/api/projects/{id}/leases/next', {
        params: byId(projectId),
        body: exclude.length > 0 ? { exclude } : {},
      }),
    ),
  /**
   * `idempotencyKey`: one per judgment (crypto.randomUUID()); reuse it when retrying the same judgment
   * after a network error, so the server stores it once.
   */
  submitJudgment: (assignmentId: string, body: SubmitBody, idempotencyKey: string): Promise<SubmitResult> =>
    call(() =>
      client.POST('/api/leases/{id}/submit', {
        params: { path: { id: assignmentId }, header: { 'idempotency-key': idempotencyKey } },
        body,
      }),
    ),
  skipAssignment: (assignmentId: string, reason: string): Promise<void> =>
    call(() => client.POST('/api/leases/{id}/skip', { params: byId(assignmentId), body: { reason } })),
  /** 409 when the undo window has passed. */
  undoJudgment: (preferenceId: string): Promise<UndoResult> =>
    call(() => client.POST('/api/judgments/{id}/undo', { params: byId(preferenceId) })),
  progress: (projectId: string): Promise<RaterProgress> =>
    call(() => client.GET('/api/projects/{id}/progress', { params: byId(projectId) })),
};

/** A readable message for anything a call may throw. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return 'Something went wrong.';
}
