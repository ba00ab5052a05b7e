// Helpers for rating tests: a project with prompts, responses and comparisons, and raters in it.
import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import type { CreateProjectBody } from '../../core/schemas/projects.js';
import { createAndSignIn, type SignedIn, type TestApp } from './app.js';

export interface RatingSetup {
  admin: SignedIn;
  projectId: string;
}

/** JSONL for `prompts` prompts with `responses` responses each (different lengths). */
export function promptsJsonl(prompts: number, responses: number, prefix = 'q'): string {
  return Array.from({ length: prompts }, (_, i) =>
    JSON.stringify({
      id: `${prefix}${i}`,
      prompt: `Question ${i}: what is ${i} + ${i}?`,
      responses: Array.from({ length: responses }, (_, j) => ({
        text: `Answer ${j}: ${2 * i}${' and more'.repeat(j)}`,
        source: `model-${j}`,
      })),
    }),
  ).join('\n');
}

export async function createProject(
  t: TestApp,
  settings: Partial<CreateProjectBody> = {},
  data: { prompts: number; responses: number } = { prompts: 4, responses: 3 },
): Promise<RatingSetup> {
  const admin = await createAndSignIn(t, 'ADMIN');
  const created = await t.app.inject({
    method: 'POST',
    url: '/api/projects',
    headers: admin.headers,
    payload: { name: `Project ${randomUUID().slice(0, 8)}`, ...settings },
  });
  expect(created.statusCode, created.body).toBe(201);
  const projectId = created.json<{ id: string }>().id;
  if (data.prompts > 0) {
    const imported = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/prompts/import`,
      headers: admin.headers,
      payload: { format: 'jsonl', content: promptsJsonl(data.prompts, data.responses) },
    });
    expect(imported.statusCode, imported.body).toBe(200);
    const generated = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${projectId}/comparisons/generate`,
      headers: admin.headers,
      payload: { strategy: 'all-pairs' },
    });
    expect(generated.statusCode, generated.body).toBe(200);
  }
  return { admin, projectId };
}

export async function addRaters(t: TestApp, setup: RatingSetup, count: number): Promise<SignedIn[]> {
  const raters = await Promise.all(Array.from({ length: count }, () => createAndSignIn(t, 'RATER')));
  const added = await t.app.inject({
    method: 'POST',
    url: `/api/projects/${setup.projectId}/members`,
    headers: setup.admin.headers,
    payload: { userIds: raters.map((rater) => rater.userId) },
  });
  expect(added.statusCode, added.body).toBe(200);
  return raters;
}

export interface AssignmentJson {
  id: string;
  left: { text: string };
  right: { text: string };
  messages: { role: string; content: string }[];
}

export async function next(
  t: TestApp,
  rater: SignedIn,
  projectId: string,
  exclude: string[] = [],
): Promise<AssignmentJson | null> {
  const response = await t.app.inject({
    method: 'POST',
    url: `/api/projects/${projectId}/leases/next`,
    headers: rater.headers,
    payload: { exclude },
  });
  expect(response.statusCode, response.body).toBe(200);
  return response.json<{ assignment: AssignmentJson | null }>().assignment;
}

export function submit(
  t: TestApp,
  rater: SignedIn,
  assignmentId: string,
  body: Record<string, unknown> = { choice: 'LEFT', strength: 1, timeSpentMs: 1200 },
  key: string = randomUUID(),
) {
  return t.app.inject({
    method: 'POST',
    url: `/api/leases/${assignmentId}/submit`,
    headers: { ...rater.headers, 'idempotency-key': key },
    payload: body,
  });
}
