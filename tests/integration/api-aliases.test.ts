// Renamed routes (rating: leases and judgments; the prompt import) keep answering under their former paths (API-token scripts written against them
// still work), and the OpenAPI document marks those paths deprecated and names every operation once.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { addRaters, createProject, promptsJsonl, type AssignmentJson } from '../support/rating.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});

const FORMER: Record<string, string> = {
  '/api/projects/{id}/assignments/next': '/api/projects/{id}/leases/next',
  '/api/assignments/{id}/submit': '/api/leases/{id}/submit',
  '/api/assignments/{id}/skip': '/api/leases/{id}/skip',
  '/api/preferences/{id}/undo': '/api/judgments/{id}/undo',
  '/api/projects/{id}/import': '/api/projects/{id}/prompts/import',
};

describe('former rating paths', () => {
  it('lease, judge, take back and skip as the new ones do', async () => {
    const setup = await createProject(t);
    const [rater] = await addRaters(t, setup, 1);
    const lease = async () => {
      const response = await t.app.inject({
        method: 'POST',
        url: `/api/projects/${setup.projectId}/assignments/next`,
        headers: rater!.headers,
        payload: {},
      });
      expect(response.statusCode, response.body).toBe(200);
      return response.json<{ assignment: AssignmentJson | null }>().assignment!;
    };

    const first = await lease();
    const submitted = await t.app.inject({
      method: 'POST',
      url: `/api/assignments/${first.id}/submit`,
      headers: { ...rater!.headers, 'idempotency-key': randomUUID() },
      payload: { choice: 'LEFT', strength: 1, timeSpentMs: 1500 },
    });
    expect(submitted.statusCode, submitted.body).toBe(201);
    const preferenceId = submitted.json<{ preferenceId: string }>().preferenceId;
    expect(await t.prisma.preference.count({ where: { id: preferenceId } })).toBe(1);

    const undone = await t.app.inject({
      method: 'POST',
      url: `/api/preferences/${preferenceId}/undo`,
      headers: rater!.headers,
    });
    expect(undone.statusCode, undone.body).toBe(200);
    expect(undone.json<{ assignment: AssignmentJson }>().assignment.id).toBe(first.id);
    expect(await t.prisma.preference.count({ where: { id: preferenceId } })).toBe(0);

    const skipped = await t.app.inject({
      method: 'POST',
      url: `/api/assignments/${first.id}/skip`,
      headers: rater!.headers,
      payload: { reason: 'Not my language' },
    });
    expect(skipped.statusCode, skipped.body).toBe(204);
    const second = await lease();
    expect(second.id).not.toBe(first.id);
  });

  it('still need a signed-in caller and the CSRF token', async () => {
    const setup = await createProject(t);
    const [rater] = await addRaters(t, setup, 1);
    const url = `/api/projects/${setup.projectId}/assignments/next`;
    expect((await t.app.inject({ method: 'POST', url, payload: {} })).statusCode).toBe(401);
    const { 'x-csrf-token': _csrf, ...cookieOnly } = rater!.headers;
    expect((await t.app.inject({ method: 'POST', url, headers: cookieOnly, payload: {} })).statusCode).toBe(
      403,
    );
  });
});

describe('the former prompt import path', () => {
  it('imports as the new one does', async () => {
    const setup = await createProject(t, {}, { prompts: 0, responses: 0 });
    const imported = await t.app.inject({
      method: 'POST',
      url: `/api/projects/${setup.projectId}/import`,
      headers: setup.admin.headers,
      payload: { format: 'jsonl', content: promptsJsonl(2, 2) },
    });
    expect(imported.statusCode, imported.body).toBe(200);
    expect(await t.prisma.prompt.count({ where: { projectId: setup.projectId } })).toBe(2);
  });
});

describe('the OpenAPI document', () => {
  it('marks the former paths deprecated, with the new path in their summary', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/api/docs/json' });
    expect(response.statusCode).toBe(200);
    const doc = response.json<{
      paths: Record<string, Record<string, { operationId?: string; deprecated?: boolean; summary?: string }>>;
    }>();
    for (const [former, current] of Object.entries(FORMER)) {
      const old = doc.paths[former]?.post;
      const now = doc.paths[current]?.post;
      expect(old?.deprecated, former).toBe(true);
      expect(old?.summary).toContain(current.replace(/\{(\w+)\}/g, ':$1'));
      expect(now?.deprecated, current).toBeUndefined();
      expect(old?.operationId).toBe(`${now?.operationId}Deprecated`);
    }
  });

  it('names every operation, once', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/api/docs/json' })).json<{
      paths: Record<string, Record<string, { operationId?: string; tags?: string[]; summary?: string }>>;
    }>();
    const operations = Object.values(doc.paths).flatMap((methods) => Object.values(methods));
    expect(operations.length).toBeGreaterThan(50);
    for (const operation of operations) {
      expect(operation.operationId).toMatch(/^[a-z][A-Za-z]+$/);
      expect(operation.tags?.length).toBeGreaterThan(0);
      expect(operation.summary).toBeTruthy();
    }
    const ids = operations.map((operation) => operation.operationId);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
