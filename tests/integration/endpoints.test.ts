// External versions through the API against real PostgreSQL and a fake OpenAI-compatible server on
// loopback (allow-listed): register with an API key, list, edit, test the connection, refuse bad
// input and other roles. Every answer is scanned for the keys: none carries one.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InjectOptions } from 'fastify';
import { decryptSecret, endpointCipherKey } from '../../core/endpoints/cipher.js';
import { loadEndpointTarget } from '../../core/services/endpoints.js';
import { createAndSignIn, createTestApp, type SignedIn, type TestApp } from '../support/app.js';
import { startFakeOpenAI, type FakeOpenAI } from '../support/fake-openai.js';
import { createProject } from '../support/rating.js';

const API_KEY = 'sk-live-0123456789abcdefSECRETkey';
const WRONG_KEY = 'sk-wrong-9876543210zyxwvuWRONGkey';

let t: TestApp;
let fake: FakeOpenAI;
let admin: SignedIn;
let rater: SignedIn;
let projectId: string;
const bodies: string[] = [];

async function call(options: InjectOptions) {
  const response = await t.app.inject(options);
  bodies.push(response.body);
  for (const key of [API_KEY, WRONG_KEY]) {
    expect(response.body).not.toContain(key);
    expect(response.body).not.toContain(key.slice(8, 24));
  }
  return response;
}

beforeAll(async () => {
  fake = await startFakeOpenAI({ apiKey: API_KEY });
  t = await createTestApp({ OUTBOUND_ALLOW_HOSTS: `127.0.0.1:${fake.port}` });
  admin = await createAndSignIn(t, 'ADMIN');
  rater = await createAndSignIn(t, 'RATER');
  projectId = (await createProject(t, {}, { prompts: 0, responses: 0 })).projectId;
});
afterAll(async () => {
  await t.close();
  await fake.close();
});

describe('external versions', () => {
  let versionId: string;

  it('registers an endpoint with its key, stored encrypted and never answered', async () => {
    const created = await call({
      method: 'POST',
      url: `/api/projects/${projectId}/endpoints`,
      headers: admin.headers,
      payload: {
        name: 'llama-8b',
        baseUrl: `${fake.baseUrl}/`,
        model: 'llama-3-8b',
        apiKey: API_KEY,
        settings: {
          systemPrompt: 'Be brief.',
          temperature: 0.7,
          topP: 0.9,
          maxTokens: 256,
          seed: 7,
          stop: ['\n\n'],
        },
        concurrency: 8,
      },
    });
    expect(created.statusCode, created.body).toBe(201);
    const version = created.json<{
      id: string;
      kind: string;
      hasApiKey: boolean;
      endpointUrl: string;
      concurrency: number;
    }>();
    expect(version).toMatchObject({
      kind: 'EXTERNAL',
      hasApiKey: true,
      endpointUrl: fake.baseUrl,
      concurrency: 8,
    });
    expect(Object.keys(version)).not.toContain('apiKey');
    versionId = version.id;

    const secret = await t.prisma.endpointSecret.findUniqueOrThrow({ where: { policyVersionId: versionId } });
    expect(Buffer.from(secret.ciphertext).includes(Buffer.from(API_KEY))).toBe(false);
    expect(decryptSecret(endpointCipherKey(t.config), secret.ciphertext, versionId)).toBe(API_KEY);
    const target = await loadEndpointTarget(t.prisma, t.config, versionId);
    expect(target).toMatchObject({
      baseUrl: fake.baseUrl,
      model: 'llama-3-8b',
      apiKey: API_KEY,
      concurrency: 8,
      settings: {
        systemPrompt: 'Be brief.',
        temperature: 0.7,
        topP: 0.9,
        maxTokens: 256,
        seed: 7,
        stop: ['\n\n'],
      },
    });
  });

  it('lists the project’s versions with hasApiKey only', async () => {
    const listed = await call({
      method: 'GET',
      url: `/api/projects/${projectId}/endpoints`,
      headers: admin.headers,
    });
    expect(listed.statusCode).toBe(200);
    const versions = listed.json<{ id: string; hasApiKey: boolean; settings: object }[]>();
    expect(versions.find((v) => v.id === versionId)).toMatchObject({
      hasApiKey: true,
      settings: { temperature: 0.7 },
    });
  });

  it('tests the connection: latency and a sample answer, with the settings sent', async () => {
    const before = fake.requests;
    const tested = await call({
      method: 'POST',
      url: `/api/endpoints/${versionId}/test`,
      headers: admin.headers,
    });
    expect(tested.statusCode, tested.body).toBe(200);
    const result = tested.json<{ ok: boolean; latencyMs: number; text: string; finishReason: string }>();
    expect(result.ok).toBe(true);
    expect(result.text).toMatch(/^llama-3-8b says: /);
    expect(result.latencyMs).toBeGreaterThanOrEqual(0);
    expect(fake.requests).toBe(before + 1);
    const sent = fake.received.at(-1)!;
    expect(sent.authorization).toBe(`Bearer ${API_KEY}`);
    expect(sent.body).toMatchObject({
      model: 'llama-3-8b',
      temperature: 0.7,
      top_p: 0.9,
      seed: 7,
      stop: ['\n\n'],
    });
    expect(sent.body.max_tokens).toBeLessThanOrEqual(64);
    expect(sent.body.messages![0]).toEqual({ role: 'system', content: 'Be brief.' });
  });

  it('updates: keeps the key when left out, replaces it, and the endpoint’s 401 comes back without it', async () => {
    const renamed = await call({
      method: 'PATCH',
      url: `/api/endpoints/${versionId}`,
      headers: admin.headers,
      payload: { name: 'llama-8b-v2', concurrency: 2, settings: { temperature: 0.2 } },
    });
    expect(renamed.statusCode, renamed.body).toBe(200);
    expect(renamed.json()).toMatchObject({
      name: 'llama-8b-v2',
      concurrency: 2,
      hasApiKey: true,
      settings: { temperature: 0.2 },
    });
    expect((await loadEndpointTarget(t.prisma, t.config, versionId)).apiKey).toBe(API_KEY);

    const replaced = await call({
      method: 'PATCH',
      url: `/api/endpoints/${versionId}`,
      headers: admin.headers,
      payload: { apiKey: WRONG_KEY },
    });
    expect(replaced.statusCode).toBe(200);
    const failed = await call({
      method: 'POST',
      url: `/api/endpoints/${versionId}/test`,
      headers: admin.headers,
    });
    expect(failed.statusCode).toBe(200);
    const result = failed.json<{ ok: boolean; status: number; error: string }>();
    expect(result.ok).toBe(false);
    expect(result.status).toBe(401);
    expect(result.error).toMatch(/401.*Incorrect API key provided: \[redacted\]/);
    // The fake did receive the key: it is the answer that was scrubbed.
    expect(fake.received.at(-1)!.authorization).toBe(`Bearer ${WRONG_KEY}`);

    const cleared = await call({
      method: 'PATCH',
      url: `/api/endpoints/${versionId}`,
      headers: admin.headers,
      payload: { apiKey: null },
    });
    expect(cleared.json()).toMatchObject({ hasApiKey: false });
    expect(await t.prisma.endpointSecret.count({ where: { policyVersionId: versionId } })).toBe(0);
    const restored = await call({
      method: 'PATCH',
      url: `/api/endpoints/${versionId}`,
      headers: admin.headers,
      payload: { apiKey: API_KEY },
    });
    expect(restored.json()).toMatchObject({ hasApiKey: true });
  });

  it('tests a draft, borrowing the stored key', async () => {
    const draft = await call({
      method: 'POST',
      url: '/api/endpoints/test',
      headers: admin.headers,
      payload: { baseUrl: fake.baseUrl, model: 'other-model', versionId },
    });
    expect(draft.statusCode, draft.body).toBe(200);
    expect(draft.json()).toMatchObject({ ok: true, model: 'other-model' });
  });

  it('refuses bad input with 400 and a clear message', async () => {
    const post = (payload: Record<string, unknown>) =>
      call({ method: 'POST', url: `/api/projects/${projectId}/endpoints`, headers: admin.headers, payload });
    const base = { name: 'x', baseUrl: fake.baseUrl, model: 'm' };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...base, baseUrl: 'http://169.254.169.254/latest' }, /refused.*link-local/],
      [{ ...base, baseUrl: 'http://127.0.0.1:1/v1' }, /refused.*loopback/],
      [{ ...base, baseUrl: 'http://2130706433/v1' }, /refused.*loopback/],
      [{ ...base, baseUrl: 'http://localhost:9/v1' }, /refused.*resolves to/],
      [{ ...base, baseUrl: 'ftp://example.com/' }, /only http and https/],
      [{ ...base, settings: { temperature: 2.5 } }, /temperature/],
      [{ ...base, settings: { topP: 1.1 } }, /topP/],
      [{ ...base, settings: { maxTokens: 0 } }, /maxTokens/],
      [{ ...base, settings: { maxTokens: 40000 } }, /maxTokens/],
      [{ ...base, settings: { seed: 1.5 } }, /seed/],
      [{ ...base, settings: { stop: ['a', 'b', 'c', 'd', 'e'] } }, /stop/],
      [{ ...base, settings: { systemPrompt: 'x'.repeat(20_001) } }, /systemPrompt/],
      [{ ...base, concurrency: 0 }, /concurrency/],
      [{ ...base, concurrency: 257 }, /concurrency/],
      [{ ...base, apiKey: '' }, /apiKey/],
      [{ ...base, extra: 1 }, /unknown field/],
    ];
    for (const [payload, message] of cases) {
      const response = await post(payload);
      expect(response.statusCode, JSON.stringify(payload).slice(0, 200)).toBe(400);
      expect(response.json<{ message: string }>().message).toMatch(message);
    }
    const duplicate = await post({ ...base, name: 'llama-8b-v2' });
    expect(duplicate.statusCode).toBe(409);
  });

  it('raters get 403, and only external versions are endpoints', async () => {
    for (const [method, url] of [
      ['GET', `/api/projects/${projectId}/endpoints`],
      ['POST', `/api/endpoints/${versionId}/test`],
      ['PATCH', `/api/endpoints/${versionId}`],
      ['DELETE', `/api/endpoints/${versionId}`],
    ] as const) {
      const response = await call({
        method,
        url,
        headers: rater.headers,
        payload: method === 'PATCH' ? {} : undefined,
      });
      expect(response.statusCode, `${method} ${url}`).toBe(403);
    }
    const researcher = await createAndSignIn(t, 'RESEARCHER');
    expect(
      (
        await call({
          method: 'GET',
          url: `/api/projects/${projectId}/endpoints`,
          headers: researcher.headers,
        })
      ).statusCode,
    ).toBe(403);
    const builtin = await t.prisma.policyVersion.create({
      data: { projectId, name: 'sft', kind: 'BUILTIN' },
    });
    const patched = await call({
      method: 'PATCH',
      url: `/api/endpoints/${builtin.id}`,
      headers: admin.headers,
      payload: { model: 'x' },
    });
    expect(patched.statusCode).toBe(400);
  });

  it('audits create, update, test and delete without the key, and deletes only unused versions', async () => {
    const extra = await call({
      method: 'POST',
      url: `/api/projects/${projectId}/endpoints`,
      headers: admin.headers,
      payload: { name: 'to-delete', baseUrl: fake.baseUrl, model: 'm', apiKey: API_KEY },
    });
    const extraId = extra.json<{ id: string }>().id;
    const deleted = await call({
      method: 'DELETE',
      url: `/api/endpoints/${extraId}`,
      headers: admin.headers,
    });
    expect(deleted.statusCode).toBe(204);
    expect(await t.prisma.endpointSecret.count({ where: { policyVersionId: extraId } })).toBe(0);

    const prompt = await t.prisma.prompt.create({
      data: { projectId, messages: [{ role: 'user', content: 'hi' }] },
    });
    await t.prisma.response.create({
      data: { promptId: prompt.id, policyVersionId: versionId, text: 'hello' },
    });
    const refused = await call({
      method: 'DELETE',
      url: `/api/endpoints/${versionId}`,
      headers: admin.headers,
    });
    expect(refused.statusCode).toBe(409);

    const entries = await t.prisma.auditLog.findMany({ where: { action: { startsWith: 'endpoint.' } } });
    const actions = new Set(entries.map((entry) => entry.action));
    expect([...actions].sort()).toEqual([
      'endpoint.create',
      'endpoint.delete',
      'endpoint.test',
      'endpoint.update',
    ]);
    const text = JSON.stringify(entries, (_key, value: unknown) =>
      typeof value === 'bigint' ? String(value) : value,
    );
    expect(text).not.toContain(API_KEY);
    expect(text).not.toContain(WRONG_KEY);
    const log = await call({ method: 'GET', url: '/api/audit', headers: admin.headers });
    expect(log.statusCode).toBe(200);
    expect(bodies.length).toBeGreaterThan(30);
  });
});
