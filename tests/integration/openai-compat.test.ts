// Loom's own built-in versions behind /v1/chat/completions, called over real HTTP by the endpoint
// client that calls external models (loopback allow-listed): the shipped demo policy answers,
// seeds repeat, max_tokens and stop are honoured, and errors come in OpenAI's shape.
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEndpointClient, EndpointError, type EndpointTarget } from '../../core/endpoints/client.js';
import { saveArtifact } from '../../trainer/checkpoint.js';
import { createAndSignIn, createTestApp, type SignedIn, type TestApp } from '../support/app.js';
import { createProject } from '../support/rating.js';

let t: TestApp;
let admin: SignedIn;
let baseUrl: string;
let adminToken: string;
let raterToken: string;
let versionId: string;
const versionName = `demo-sft-${Date.now()}`;

async function tokenFor(user: SignedIn): Promise<string> {
  const created = await t.app.inject({
    method: 'POST',
    url: '/api/tokens',
    headers: user.headers,
    payload: { name: 'harness' },
  });
  expect(created.statusCode, created.body).toBe(201);
  return created.json<{ token: string }>().token;
}

beforeAll(async () => {
  t = await createTestApp();
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const port = (t.app.server.address() as AddressInfo).port;
  baseUrl = `http://127.0.0.1:${port}/v1`;
  const setup = await createProject(t, {}, { prompts: 0, responses: 0 });
  admin = setup.admin;
  const checkpoint = readFileSync(new URL('../../trainer/checkpoints/demo-sft.bin', import.meta.url));
  const artifactId = await saveArtifact(t.prisma, checkpoint, { projectId: setup.projectId });
  versionId = (
    await t.prisma.policyVersion.create({
      data: { projectId: setup.projectId, name: versionName, kind: 'BUILTIN', status: 'READY', artifactId },
    })
  ).id;
  adminToken = await tokenFor(admin);
  // Raters cannot create tokens in the UI, but scripts acting for them (simulated raters) hold some.
  const rater = await createAndSignIn(t, 'RATER');
  raterToken = (await t.app.services.auth.createApiToken(rater.userId, 'rater script', undefined, null))
    .token;
});
afterAll(() => t.close());

function client(model: string, settings: EndpointTarget['settings'] = {}, apiKey = adminToken) {
  return createEndpointClient(
    { baseUrl, model, apiKey, settings, concurrency: 2 },
    { allowHosts: [new URL(baseUrl).host], timeoutMs: 120_000 },
  );
}

describe('POST /v1/chat/completions', () => {
  it('answers the endpoint client from a built-in version, by name and by id', async () => {
    const byName = await client(versionName, { temperature: 0, maxTokens: 20 }).complete([
      { role: 'user', content: '7+5=' },
    ]);
    expect(byName.text.length).toBeGreaterThan(0);
    expect(byName.text.length).toBeLessThanOrEqual(20);
    expect(['stop', 'length']).toContain(byName.finishReason);
    expect(byName.usage!.promptTokens).toBe('7+5='.length + 2);
    expect(byName.usage!.totalTokens).toBe(byName.usage!.promptTokens + byName.usage!.completionTokens);
    expect(byName.model).toBe(versionName);
    // Greedy decoding: the id gives the same answer.
    const byId = await client(versionId, { temperature: 0, maxTokens: 20 }).complete([
      { role: 'system', content: 'ignored by a built-in policy' },
      { role: 'user', content: '7+5=' },
    ]);
    expect(byId.text).toBe(byName.text);
  }, 120_000);

  it('repeats itself for a seed and honours max_tokens and stop', async () => {
    const seeded = client(versionName, { temperature: 1, seed: 42, maxTokens: 30 });
    const first = await seeded.complete([{ role: 'user', content: 'reverse: fox' }]);
    const second = await seeded.complete([{ role: 'user', content: 'reverse: fox' }]);
    expect(second.text).toBe(first.text);

    const short = await client(versionName, { temperature: 1, seed: 3, maxTokens: 2 }).complete([
      { role: 'user', content: 'reverse: fox' },
    ]);
    expect(short.usage!.completionTokens).toBeLessThanOrEqual(2);
    expect(short.text.length).toBeLessThanOrEqual(2);

    const full = await client(versionName, { temperature: 0, maxTokens: 20 }).complete([
      { role: 'user', content: '7+5=' },
    ]);
    const stopAt = full.text.slice(1, 2);
    if (stopAt !== '') {
      const stopped = await client(versionName, { temperature: 0, maxTokens: 20, stop: [stopAt] }).complete([
        { role: 'user', content: '7+5=' },
      ]);
      expect(stopped.text).toBe(full.text.slice(0, full.text.indexOf(stopAt)));
      expect(stopped.finishReason).toBe('stop');
    }
  }, 120_000);

  it('answers a missing model with 404, a missing token with 401, in OpenAI’s error shape', async () => {
    const error = await client('no-such-model')
      .complete([{ role: 'user', content: 'hi' }])
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(EndpointError);
    expect((error as EndpointError).status).toBe(404);
    expect((error as EndpointError).message).toMatch(/no-such-model.*does not exist/);
    expect((error as EndpointError).retryable).toBe(false);

    // A rater who is not a member of the project does not see the version.
    const hidden = await client(versionName, {}, raterToken)
      .complete([{ role: 'user', content: 'hi' }])
      .catch((caught: unknown) => caught);
    expect((hidden as EndpointError).status).toBe(404);

    const bare = await fetch(`${baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: versionName, messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(bare.status).toBe(401);
    const body = (await bare.json()) as { error: { message: string; type: string; code: string } };
    expect(body.error).toMatchObject({ type: 'invalid_request_error', code: 'missing_api_key' });

    const badToken = await fetch(`${baseUrl}/models`, { headers: { authorization: 'Bearer loom_at_nope' } });
    expect(badToken.status).toBe(401);

    const invalid = await fetch(`${baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
      body: JSON.stringify({
        model: versionName,
        messages: [{ role: 'user', content: 'hi' }],
        temperature: 3,
      }),
    });
    expect(invalid.status).toBe(400);
    expect(((await invalid.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');

    const noUser = await fetch(`${baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
      body: JSON.stringify({ model: versionName, messages: [{ role: 'system', content: 'hi' }] }),
    });
    expect(noUser.status).toBe(400);
  });

  it('lists the versions a token may call', async () => {
    const listed = await fetch(`${baseUrl}/models`, { headers: { authorization: `Bearer ${adminToken}` } });
    expect(listed.status).toBe(200);
    const body = (await listed.json()) as {
      object: string;
      data: { id: string; name: string; object: string }[];
    };
    expect(body.object).toBe('list');
    expect(body.data).toContainEqual(
      expect.objectContaining({ id: versionId, name: versionName, object: 'model' }),
    );
    const asRater = await fetch(`${baseUrl}/models`, { headers: { authorization: `Bearer ${raterToken}` } });
    expect(((await asRater.json()) as { data: { id: string }[] }).data.map((m) => m.id)).not.toContain(
      versionId,
    );
  });
});
