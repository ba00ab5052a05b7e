// Typed client for the Loom API (/api on the same origin). One function per route.
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

type Method = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | undefined>;
  /**
   * A 401 from these routes is an answer, not an expired session (wrong password, not signed in yet),
   * so the caller handles it instead of being sent to /login.
   */
  authRoute?: boolean;
  /** Extra request headers (e.g. Idempotency-Key). */
  headers?: Record<string, string>;
  /** Resolve with the Response itself once a 2xx answer's headers arrive (streamed files), unread. */
  raw?: boolean;
  /** Cancels the request; the call then rejects with the signal's reason. */
  signal?: AbortSignal;
}

const WRITE_METHODS: ReadonlySet<Method> = new Set<Method>(['POST', 'PATCH', 'PUT', 'DELETE']);

let redirecting = false;

export async function request<T>(method: Method, path: string, options: RequestOptions = {}): Promise<T> {
  try {
    return await send<T>(method, path, options);
  } catch (error) {
    // The CSRF token we hold is stale (e.g. the session was renewed in another tab): fetch the current
    // one and retry once, but only while it is still the same user.
    if (!(error instanceof ApiError && error.status === 403 && error.code === 'CSRF') || !session.user)
      throw error;
    const before = session.user.id;
    let me: MeResponse;
    try {
      me = await send<MeResponse>('GET', '/auth/me', { authRoute: true });
    } catch {
      throw error;
    }
    session.set(me);
    if (me.user.id !== before) throw error;
    return send<T>(method, path, options);
  }
}

async function send<T>(method: Method, path: string, options: RequestOptions): Promise<T> {
  let url = `/api${path}`;
  if (options.query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(options.query)) {
      if (value !== undefined && value !== '') params.set(key, String(value));
    }
    const qs = params.toString();
    if (qs) url += `?${qs}`;
  }

  const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (WRITE_METHODS.has(method) && session.csrfToken) headers['x-csrf-token'] = session.csrfToken;

  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers,
      credentials: 'same-origin',
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
    });
  } catch (error) {
    if (options.signal?.aborted) throw error;
    throw new ApiError(0, 'Could not reach the Loom server. Check your connection and try again.');
  }

  if (options.raw && response.ok) return response as T;
  if (response.status === 204) return undefined as T;

  const text = await response.text();
  let data: unknown = undefined;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = undefined;
    }
  }

  if (!response.ok) {
    const body = (data ?? {}) as { message?: unknown; code?: unknown; errors?: unknown };
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

  return data as T;
}

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

export const api = {
  health: () => request<HealthResponse>('GET', '/health'),

  // Setup and invitations
  setupStatus: () => request<SetupStatus>('GET', '/setup/status', { authRoute: true }),
  // The token goes in the body: a secret in a URL ends up in logs and histories.
  lookupInvite: (token: string) =>
    request<InviteLookup>('POST', '/invites/lookup', { body: { token }, authRoute: true }),
  acceptInvite: (body: AcceptInviteBody) =>
    request<MeResponse>('POST', '/invites/accept', { body, authRoute: true }),

  // Authentication
  login: (body: LoginBody) => request<MeResponse>('POST', '/auth/login', { body, authRoute: true }),
  logout: () => request<void>('POST', '/auth/logout', { authRoute: true }),
  me: () => request<MeResponse>('GET', '/auth/me', { authRoute: true }),
  sessions: () => request<Session[]>('GET', '/auth/sessions'),
  revokeSession: (id: string) => request<void>('DELETE', `/auth/sessions/${encodeURIComponent(id)}`),
  /** 409 when the current password is wrong. */
  changePassword: (body: ChangePasswordBody) => request<void>('POST', '/auth/password', { body }),

  // Users (ADMIN)
  users: () => request<User[]>('GET', '/users'),
  createUser: (body: CreateUserBody) => request<User>('POST', '/users', { body }),
  updateUser: (id: string, body: UpdateUserBody) =>
    request<User>('PATCH', `/users/${encodeURIComponent(id)}`, { body }),

  // Invites (ADMIN)
  invites: () => request<Invite[]>('GET', '/invites'),
  createInvite: (body: CreateInviteBody) => request<CreatedInvite>('POST', '/invites', { body }),
  revokeInvite: (id: string) => request<void>('DELETE', `/invites/${encodeURIComponent(id)}`),

  // API tokens (ADMIN, RESEARCHER; own tokens)
  tokens: () => request<ApiToken[]>('GET', '/tokens'),
  createToken: (body: CreateTokenBody) => request<CreatedToken>('POST', '/tokens', { body }),
  revokeToken: (id: string) => request<void>('DELETE', `/tokens/${encodeURIComponent(id)}`),

  // Audit log (ADMIN)
  audit: (query: AuditQuery = {}) =>
    request<AuditPage>('GET', '/audit', { query: { before: query.before, limit: query.limit } }),

  // Projects (ADMIN manages; RESEARCHER reads; RATER sees their own)
  projects: () => request<Project[]>('GET', '/projects'),
  project: (id: string) => request<Project>('GET', `/projects/${encodeURIComponent(id)}`),
  createProject: (body: CreateProjectBody) => request<Project>('POST', '/projects', { body }),
  updateProject: (id: string, body: UpdateProjectBody) =>
    request<Project>('PATCH', `/projects/${encodeURIComponent(id)}`, { body }),
  members: (id: string) => request<Member[]>('GET', `/projects/${encodeURIComponent(id)}/members`),
  addMembers: (id: string, body: AddMembersBody) =>
    request<Member[]>('POST', `/projects/${encodeURIComponent(id)}/members`, { body }),
  removeMember: (id: string, userId: string) =>
    request<void>('DELETE', `/projects/${encodeURIComponent(id)}/members/${encodeURIComponent(userId)}`),
  /** 400 with `ApiError.lineErrors` when any line is bad (nothing stored). */
  importPrompts: (id: string, body: ImportBody) =>
    request<ImportReport>('POST', `/projects/${encodeURIComponent(id)}/import`, { body }),
  generateComparisons: (id: string, body: GenerateComparisonsBody) =>
    request<{ created: number; skippedExisting: number; skippedIdentical: number }>(
      'POST',
      `/projects/${encodeURIComponent(id)}/comparisons/generate`,
      { body },
    ),
  comparisons: (
    id: string,
    query: { status?: 'open' | 'complete' | 'gold'; cursor?: string; limit?: number } = {},
  ) =>
    request<ComparisonPage>('GET', `/projects/${encodeURIComponent(id)}/comparisons`, {
      query: { status: query.status, cursor: query.cursor, limit: query.limit },
    }),
  updateComparison: (id: string, body: UpdateComparisonBody) =>
    request<ComparisonSummary>('PATCH', `/comparisons/${encodeURIComponent(id)}`, { body }),
  quality: (id: string) => request<ProjectQuality>('GET', `/projects/${encodeURIComponent(id)}/quality`),

  // Rating (raters; admins may rate too)
  ratingProjects: () => request<RaterProjectList>('GET', '/rating/projects'),
  ratingContext: (id: string) =>
    request<RatingContext>('GET', `/projects/${encodeURIComponent(id)}/rating-context`),
  /** Pass the ids of leases already held (the one on screen) as `exclude` to prefetch the next one. */
  nextAssignment: (projectId: string, exclude: string[] = []) =>
    request<NextAssignmentResult>('POST', `/projects/${encodeURIComponent(projectId)}/assignments/next`, {
      body: exclude.length > 0 ? { exclude } : {},
    }),
  /**
   * `idempotencyKey`: one per judgment (crypto.randomUUID()); reuse it when retrying the same judgment
   * after a network error, so the server stores it once.
   */
  submitJudgment: (assignmentId: string, body: SubmitBody, idempotencyKey: string) =>
    request<SubmitResult>('POST', `/assignments/${encodeURIComponent(assignmentId)}/submit`, {
      body,
      headers: { 'idempotency-key': idempotencyKey },
    }),
  skipAssignment: (assignmentId: string, reason: string) =>
    request<void>('POST', `/assignments/${encodeURIComponent(assignmentId)}/skip`, { body: { reason } }),
  /** 409 when the undo window has passed. */
  undoJudgment: (preferenceId: string) =>
    request<UndoResult>('POST', `/preferences/${encodeURIComponent(preferenceId)}/undo`),
  progress: (projectId: string) =>
    request<RaterProgress>('GET', `/projects/${encodeURIComponent(projectId)}/progress`),
};

/** A readable message for anything a call may throw. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return 'Something went wrong.';
}
