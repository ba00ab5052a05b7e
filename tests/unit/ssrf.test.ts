// The SSRF guard: every refused kind of address, in every spelling the URL parser accepts, names
// that resolve to one, redirects to one, and the operator's allow-list letting a loopback port
// through. Requests go through the real endpoint client to a real server on loopback.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEndpointClient, EndpointError } from '../../core/endpoints/client.js';
import {
  checkUrl,
  checkUrlResolved,
  createGuardedFetch,
  OutboundRefusedError,
  parseAllowList,
  refusedAddressReason,
} from '../../core/endpoints/ssrf.js';
import { startFakeOpenAI, type FakeOpenAI } from '../support/fake-openai.js';

const none = parseAllowList([]);

describe('refused addresses', () => {
  it.each([
    ['127.0.0.1', /loopback/],
    ['127.255.1.2', /loopback/],
    ['::1', /loopback/],
    ['0.0.0.0', /unspecified/],
    ['::', /unspecified/],
    ['169.254.169.254', /link-local/],
    ['fe80::1', /link-local/],
    ['10.1.2.3', /private/],
    ['172.16.0.1', /private/],
    ['172.31.255.255', /private/],
    ['192.168.1.1', /private/],
    ['100.64.0.1', /carrier-grade/],
    ['fc00::1', /unique-local/],
    ['fd12:3456::1', /unique-local/],
    ['::ffff:127.0.0.1', /IPv4-mapped.*loopback/],
    ['::ffff:7f00:1', /IPv4-mapped.*loopback/],
    ['::ffff:169.254.169.254', /IPv4-mapped.*link-local/],
    ['::ffff:10.0.0.1', /IPv4-mapped.*private/],
    ['64:ff9b::7f00:1', /NAT64.*loopback/],
    ['2002:c0a8:101::', /6to4.*private/],
    ['224.0.0.1', /multicast/],
    ['ff02::1', /multicast/],
    ['255.255.255.255', /broadcast/],
    ['240.0.0.1', /reserved/],
    ['192.0.2.10', /documentation/],
  ])('%s is refused as %s', (address, why) => {
    expect(refusedAddressReason(address)).toMatch(why);
  });

  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8'])(
    '%s is public',
    (address) => {
      expect(refusedAddressReason(address)).toBeNull();
    },
  );
});

describe('URLs', () => {
  it.each([
    ['http://127.0.0.1/v1', /127\.0\.0\.1.*loopback/],
    ['http://[::1]:8000/v1', /loopback/],
    ['http://169.254.169.254/latest/meta-data/', /link-local/],
    ['http://10.0.0.5:8000/v1', /private/],
    ['http://172.16.3.4/v1', /private/],
    ['http://192.168.0.10/v1', /private/],
    ['http://[fc00::5]/v1', /unique-local/],
    ['http://[::ffff:127.0.0.1]/v1', /IPv4-mapped.*loopback/],
    // Decimal, octal and hex spellings of 127.0.0.1: the URL parser normalises them.
    ['http://2130706433/v1', /127\.0\.0\.1.*loopback/],
    ['http://0177.0.0.1/v1', /127\.0\.0\.1.*loopback/],
    ['http://0x7f.0.0.1/v1', /127\.0\.0\.1.*loopback/],
    ['http://0x7f000001/v1', /127\.0\.0\.1.*loopback/],
    ['http://0/v1', /unspecified/],
  ])('%s is refused', (url, why) => {
    expect(() => checkUrl(url, none)).toThrow(why);
  });

  it('only http and https, and no credentials in the URL', () => {
    expect(() => checkUrl('file:///etc/passwd', none)).toThrow(/only http and https/);
    expect(() => checkUrl('gopher://example.com/', none)).toThrow(/only http and https/);
    expect(() => checkUrl('https://user:pw@example.com/v1', none)).toThrow(/user name or password/);
    expect(() => checkUrl('not a url', none)).toThrow(/not a valid URL/);
    expect(checkUrl('https://api.example.com/v1', none).host).toBe('api.example.com');
  });

  it('a name that resolves to loopback is refused when resolved', async () => {
    await expect(checkUrlResolved('http://localhost:8000/v1', none)).rejects.toThrow(
      /localhost.*resolves to (127\.0\.0\.1|::1).*loopback/,
    );
  });

  it('the allow-list takes hosts, host:port and CIDR ranges', () => {
    const allow = parseAllowList(['127.0.0.1:8000', 'localhost', '10.0.0.0/8', '[::1]:11434']);
    expect(checkUrl('http://127.0.0.1:8000/v1', allow).trusted).toBe(true);
    expect(() => checkUrl('http://127.0.0.1:8001/v1', allow)).toThrow(/loopback/);
    expect(checkUrl('http://2130706433:8000/v1', allow).trusted).toBe(true);
    expect(checkUrl('http://localhost:1234/v1', allow).trusted).toBe(true);
    expect(() => checkUrl('http://10.2.3.4/v1', allow)).not.toThrow();
    expect(() => checkUrl('http://192.168.1.1/v1', allow)).toThrow(/private/);
    expect(checkUrl('http://[::1]:11434/v1', allow).trusted).toBe(true);
    expect(() => parseAllowList(['10.0.0.0/99'])).toThrow(OutboundRefusedError);
  });
});

describe('at connect time, through the endpoint client', () => {
  let fake: FakeOpenAI;
  let redirector: http.Server;
  let redirectorPort = 0;
  let redirectTo = '';

  beforeAll(async () => {
    fake = await startFakeOpenAI();
    redirector = http.createServer((req, res) => {
      req.resume();
      res.writeHead(307, { location: redirectTo });
      res.end();
    });
    await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
    redirectorPort = (redirector.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await fake.close();
    await new Promise((resolve) => redirector.close(resolve));
  });

  const client = (baseUrl: string, allowHosts: string[]) =>
    createEndpointClient(
      { baseUrl, model: 'm', settings: {}, concurrency: 1 },
      { allowHosts, timeoutMs: 5000 },
    );
  const refusedBy = async (promise: Promise<unknown>) => {
    const error = await promise.then(
      () => null,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(EndpointError);
    expect((error as EndpointError).refused).toBe(true);
    expect((error as EndpointError).retryable).toBe(false);
    return (error as EndpointError).message;
  };

  it('refuses loopback without the allow-list and reaches it with it', async () => {
    const before = fake.requests;
    expect(await refusedBy(client(fake.baseUrl, []).complete([{ role: 'user', content: 'hi' }]))).toMatch(
      /loopback/,
    );
    expect(fake.requests).toBe(before);
    const completion = await client(fake.baseUrl, [`127.0.0.1:${fake.port}`]).complete([
      { role: 'user', content: 'abc' },
    ]);
    expect(completion.text).toBe('m says: cba');
    expect(fake.requests).toBe(before + 1);
  });

  it('refuses a name that resolves to loopback when connecting', async () => {
    const before = fake.requests;
    const message = await refusedBy(
      client(`http://localhost:${fake.port}/v1`, []).complete([{ role: 'user', content: 'hi' }]),
    );
    expect(message).toMatch(/localhost.*resolves to .*loopback/);
    expect(fake.requests).toBe(before);
    // Allowed by name, the same URL works.
    const ok = await client(`http://localhost:${fake.port}/v1`, [`localhost:${fake.port}`]).complete([
      { role: 'user', content: 'x' },
    ]);
    expect(ok.text).toBe('m says: x');
  });

  it.each([
    ['a loopback port not allowed', () => `http://127.0.0.1:${fake.port}/v1/chat/completions`, /loopback/],
    ['cloud metadata', () => 'http://169.254.169.254/latest/meta-data/', /link-local/],
    ['a decimal loopback', () => `http://2130706433:${fake.port}/v1/chat/completions`, /loopback/],
  ])('refuses a redirect from an allowed server to %s', async (_name, target, why) => {
    redirectTo = target();
    const before = fake.requests;
    const message = await refusedBy(
      client(`http://127.0.0.1:${redirectorPort}/v1`, [`127.0.0.1:${redirectorPort}`]).complete([
        { role: 'user', content: 'hi' },
      ]),
    );
    expect(message).toMatch(/redirected to .* refused/);
    expect(message).toMatch(why);
    expect(fake.requests).toBe(before);
  });

  it('follows a redirect to an allowed target and drops the key across origins', async () => {
    redirectTo = `${fake.baseUrl}/chat/completions`;
    const completion = await createEndpointClient(
      {
        baseUrl: `http://127.0.0.1:${redirectorPort}/v1`,
        model: 'm',
        apiKey: 'sk-test-key',
        settings: {},
        concurrency: 1,
      },
      { allowHosts: [`127.0.0.1:${redirectorPort}`, `127.0.0.1:${fake.port}`] },
    ).complete([{ role: 'user', content: 'ok' }]);
    expect(completion.text).toBe('m says: ko');
    expect(fake.received.at(-1)!.authorization).toBeUndefined();
  });

  it('the guarded fetch refuses before any connection', async () => {
    const guarded = createGuardedFetch({ allowHosts: [] });
    await expect(guarded('http://0177.0.0.1:1/')).rejects.toThrow(OutboundRefusedError);
    await expect(guarded('http://[::ffff:127.0.0.1]:1/')).rejects.toThrow(/IPv4-mapped/);
  });
});

describe('what a failed connection is worth retrying', () => {
  it('retries a connection the endpoint drops or resets, not a name that does not resolve', async () => {
    // A server that takes the request and closes the socket without an answer, as an overloaded
    // or restarting endpoint does.
    const server = http.createServer((request) => request.socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const client = createEndpointClient(
        { baseUrl: `http://127.0.0.1:${port}/v1`, model: 'm', settings: {}, concurrency: 1 },
        { allowHosts: [`127.0.0.1:${port}`], timeoutMs: 5000 },
      );
      const dropped = await client
        .complete([{ role: 'user', content: 'hi' }])
        .catch((caught: unknown) => caught);
      expect(dropped).toBeInstanceOf(EndpointError);
      expect((dropped as EndpointError).message).toMatch(/Could not reach the endpoint/);
      expect((dropped as EndpointError).retryable).toBe(true);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    const unknown = createEndpointClient(
      { baseUrl: 'http://no-such-host.invalid/v1', model: 'm', settings: {}, concurrency: 1 },
      { allowHosts: ['no-such-host.invalid'], timeoutMs: 5000 },
    );
    const unresolved = await unknown
      .complete([{ role: 'user', content: 'hi' }])
      .catch((caught: unknown) => caught);
    expect(unresolved).toBeInstanceOf(EndpointError);
    expect((unresolved as EndpointError).retryable).toBe(false);
  });
});
