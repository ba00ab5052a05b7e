// The guard on every outbound request to a model endpoint (server-side request forgery). A URL
// must be http or https; its host, once the WHATWG URL parser has normalised it (so 2130706433,
// 0177.0.0.1 and 0x7f.0.0.1 all read 127.0.0.1), may not be an address in a loopback, private,
// link-local, unique-local, shared, multicast or reserved range, nor an IPv6 address that embeds
// such an IPv4 address. Names are resolved when the connection is made: every address the name
// resolves to is checked, and the socket connects to the checked addresses only, so no second
// resolution can slip another address in between the check and the connection. The operator can
// allow hosts (`host`, `host:port`) or address ranges (CIDR) in the configuration.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';

/** A URL or address the guard does not let a request reach; its message says why. */
export class OutboundRefusedError extends Error {
  override name = 'OutboundRefusedError';
}

interface Range {
  family: 4 | 6;
  base: bigint;
  bits: number;
}

interface Rule {
  range: Range;
  why: string;
}

/** Ranges never reached unless allow-listed, with what they are. */
const REFUSED: readonly Rule[] = [
  ['0.0.0.0/8', 'an unspecified ("this network") address'],
  ['10.0.0.0/8', 'a private address (10.0.0.0/8)'],
  ['100.64.0.0/10', 'a shared carrier-grade NAT address (100.64.0.0/10)'],
  ['127.0.0.0/8', 'a loopback address'],
  ['169.254.0.0/16', 'a link-local address (169.254.0.0/16, where cloud metadata services answer)'],
  ['172.16.0.0/12', 'a private address (172.16.0.0/12)'],
  ['192.0.0.0/24', 'a reserved address (IETF protocol assignments)'],
  ['192.0.2.0/24', 'a reserved documentation address'],
  ['192.88.99.0/24', 'a reserved relay address'],
  ['192.168.0.0/16', 'a private address (192.168.0.0/16)'],
  ['198.18.0.0/15', 'a reserved benchmarking address'],
  ['198.51.100.0/24', 'a reserved documentation address'],
  ['203.0.113.0/24', 'a reserved documentation address'],
  ['224.0.0.0/4', 'a multicast address'],
  ['240.0.0.0/4', 'a reserved or broadcast address'],
  ['::/128', 'an unspecified address'],
  ['::1/128', 'a loopback address'],
  ['100::/64', 'a reserved discard address'],
  ['2001::/23', 'a reserved address (IETF protocol assignments)'],
  ['2001:db8::/32', 'a reserved documentation address'],
  ['fc00::/7', 'a unique-local (private) address'],
  ['fe80::/10', 'a link-local address'],
  ['fec0::/10', 'a site-local address'],
  ['ff00::/8', 'a multicast address'],
].map(([cidr, why]) => ({ range: parseCidr(cidr!)!, why: why! }));

/** IPv6 ranges that carry an IPv4 address, checked as that address: where its bits sit. */
const EMBEDDING: readonly { range: Range; shift: number; what: string }[] = [
  { range: parseCidr('::ffff:0:0/96')!, shift: 0, what: 'an IPv4-mapped IPv6 address' },
  { range: parseCidr('::/96')!, shift: 0, what: 'an IPv4-compatible IPv6 address' },
  { range: parseCidr('64:ff9b::/96')!, shift: 0, what: 'a NAT64 address' },
  { range: parseCidr('2002::/16')!, shift: 80, what: 'a 6to4 address' },
];

function parseIPv4(text: string): bigint | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let value = 0n;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return null;
    value = (value << 8n) | BigInt(Number(part));
  }
  return value;
}

function parseIPv6(text: string): bigint | null {
  let address = text.replace(/^\[|\]$/g, '');
  const zone = address.indexOf('%');
  if (zone >= 0) address = address.slice(0, zone);
  if (isIP(address) !== 6) return null;
  const lastColon = address.lastIndexOf(':');
  const last = address.slice(lastColon + 1);
  if (last.includes('.')) {
    const v4 = parseIPv4(last);
    if (v4 === null) return null;
    address = `${address.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = address.split('::');
  const words = (part: string | undefined) =>
    part
      ? part
          .split(':')
          .filter((word) => word !== '')
          .map((word) => BigInt(parseInt(word, 16)))
      : [];
  const head = words(halves[0]);
  const rest = words(halves[1]);
  const missing = 8 - head.length - rest.length;
  if (halves.length === 1 && missing !== 0) return null;
  const all = [...head, ...Array.from({ length: Math.max(missing, 0) }, () => 0n), ...rest];
  if (all.length !== 8) return null;
  return all.reduce((value, word) => (value << 16n) | word, 0n);
}

/** An IP address as its family and value, or null when the text is not one. */
export function parseAddress(text: string): { family: 4 | 6; value: bigint } | null {
  const v4 = parseIPv4(text);
  if (v4 !== null) return { family: 4, value: v4 };
  const v6 = parseIPv6(text);
  return v6 === null ? null : { family: 6, value: v6 };
}

function parseCidr(text: string): Range | null {
  const [address, bitsText] = text.split('/');
  const parsed = parseAddress(address ?? '');
  if (!parsed || bitsText === undefined || !/^\d{1,3}$/.test(bitsText)) return null;
  const bits = Number(bitsText);
  const width = parsed.family === 4 ? 32 : 128;
  if (bits > width) return null;
  const mask = ((1n << BigInt(width)) - 1n) ^ ((1n << BigInt(width - bits)) - 1n);
  return { family: parsed.family, base: parsed.value & mask, bits };
}

function inRange(address: { family: 4 | 6; value: bigint }, range: Range): boolean {
  if (address.family !== range.family) return false;
  const width = address.family === 4 ? 32 : 128;
  return address.value >> BigInt(width - range.bits) === range.base >> BigInt(width - range.bits);
}

/**
 * Why an address may not be reached, or null when it may. IPv6 addresses that embed an IPv4
 * address (mapped, compatible, NAT64, 6to4) are judged by the embedded address.
 */
export function refusedAddressReason(text: string): string | null {
  const address = parseAddress(text);
  if (!address) return `"${text}" is not an IP address`;
  if (address.family === 6) {
    for (const embedding of EMBEDDING) {
      if (address.value <= 1n) break;
      if (!inRange(address, embedding.range)) continue;
      const v4 = (address.value >> BigInt(embedding.shift)) & 0xffffffffn;
      const inner = refusedAddressReason(formatIPv4(v4));
      if (inner) return `${embedding.what} of ${inner}`;
    }
  }
  for (const rule of REFUSED) if (inRange(address, rule.range)) return rule.why;
  return null;
}

function formatIPv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join('.');
}

/** The operator's allow-list: host names or addresses (any port or one port) and address ranges. */
export interface AllowList {
  hosts: readonly { host: string; port?: number }[];
  ranges: readonly Range[];
}

/** Parses `OUTBOUND_ALLOW_HOSTS` entries: `host`, `host:port`, `[v6]:port`, or CIDR. */
export function parseAllowList(entries: readonly string[]): AllowList {
  const hosts: { host: string; port?: number }[] = [];
  const ranges: Range[] = [];
  for (const raw of entries) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry.includes('/')) {
      const range = parseCidr(entry);
      if (!range) throw new OutboundRefusedError(`"${raw}" is not a valid CIDR range`);
      ranges.push(range);
      continue;
    }
    if (isIP(entry) === 6) {
      hosts.push({ host: normaliseHost(entry) });
      continue;
    }
    const match = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(entry);
    if (!match) throw new OutboundRefusedError(`"${raw}" is not a host, host:port or CIDR range`);
    const port = match[2] === undefined ? undefined : Number(match[2]);
    if (port !== undefined && (port < 1 || port > 65535))
      throw new OutboundRefusedError(`"${raw}" has a port outside 1..65535`);
    hosts.push({ host: normaliseHost(match[1]!), port });
  }
  return { hosts, ranges };
}

/** A host as the URL parser writes it (numbers and encodings normalised, IPv6 compressed, lower case). */
function normaliseHost(host: string): string {
  const bare = host.replace(/^\[|\]$/g, '');
  try {
    const url = new URL(`http://${isIP(bare) === 6 ? `[${bare}]` : bare}/`);
    return url.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '');
  } catch {
    return bare;
  }
}

function effectivePort(url: URL): number {
  if (url.port !== '') return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}

function hostAllowed(allow: AllowList, host: string, port: number): boolean {
  return allow.hosts.some(
    (entry) => entry.host === host && (entry.port === undefined || entry.port === port),
  );
}

function addressAllowed(allow: AllowList, address: string): boolean {
  const parsed = parseAddress(address);
  return parsed !== null && allow.ranges.some((range) => inRange(parsed, range));
}

/** What a checked URL leaves to the connection: the host, and whether its addresses are trusted. */
export interface CheckedTarget {
  url: URL;
  /** The host without IPv6 brackets or a trailing dot. */
  host: string;
  port: number;
  /** The operator allow-listed the host itself: whatever it resolves to may be reached. */
  trusted: boolean;
  /** The host is an IP address literal (already checked). */
  literal: boolean;
}

/**
 * Checks what can be checked without resolving: the scheme, credentials in the URL, and a host
 * that is an address. Names are checked when they are resolved (`guardedLookup`).
 */
export function checkUrl(input: string | URL, allow: AllowList): CheckedTarget {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new OutboundRefusedError(`"${String(input)}" is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new OutboundRefusedError(`${url.protocol.replace(/:$/, '')} URLs are refused: only http and https`);
  if (url.username !== '' || url.password !== '')
    throw new OutboundRefusedError(
      'URLs with a user name or password are refused: give the API key separately',
    );
  const host = url.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '');
  const port = effectivePort(url);
  const trusted = hostAllowed(allow, host, port);
  const literal = isIP(host) !== 0;
  if (literal && !trusted && !addressAllowed(allow, host)) {
    const why = refusedAddressReason(host);
    if (why) throw new OutboundRefusedError(refusal(url.host, why));
  }
  return { url, host, port, trusted, literal };
}

function refusal(host: string, why: string, address?: string): string {
  const via = address ? ` resolves to ${address}, ${why}` : ` is ${why}`;
  return `Outbound requests to ${host} are refused: it${via}. Allow it in OUTBOUND_ALLOW_HOSTS if this is intended.`;
}

/** Checks resolved addresses; throws for the first that may not be reached. */
export function checkAddresses(target: CheckedTarget, addresses: readonly string[], allow: AllowList): void {
  if (target.trusted) return;
  if (addresses.length === 0) throw new OutboundRefusedError(`${target.host} resolves to no address`);
  for (const address of addresses) {
    if (addressAllowed(allow, address)) continue;
    const why = refusedAddressReason(address);
    if (why) throw new OutboundRefusedError(refusal(target.host, why, address));
  }
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for http(s).request / net.connect: resolves the name once, refuses it when any
 * address is refused, and hands the connection exactly the addresses it checked.
 */
export function guardedLookup(target: CheckedTarget, allow: AllowList) {
  return (
    hostname: string,
    options: { all?: boolean; family?: number | string },
    callback: LookupCallback,
  ) => {
    dnsLookup(
      hostname,
      { all: true, family: typeof options.family === 'number' ? options.family : 0 },
      (error, list) => {
        if (error) return callback(error, []);
        try {
          checkAddresses(
            target,
            list.map((entry) => entry.address),
            allow,
          );
        } catch (refused) {
          return callback(refused as NodeJS.ErrnoException, []);
        }
        if (options.all) callback(null, list);
        else callback(null, list[0]!.address, list[0]!.family);
      },
    );
  };
}

/** Resolves a URL's host now and checks every address (for saving an endpoint; connections check again). */
export async function checkUrlResolved(input: string | URL, allow: AllowList): Promise<CheckedTarget> {
  const target = checkUrl(input, allow);
  if (target.trusted || target.literal) return target;
  const addresses = await new Promise<string[]>((resolve, reject) =>
    dnsLookup(target.host, { all: true }, (error, list) => {
      if (error)
        reject(
          new OutboundRefusedError(`${target.host} could not be resolved (${error.code ?? error.message})`),
        );
      else resolve(list.map((entry) => entry.address));
    }),
  );
  checkAddresses(target, addresses, allow);
  return target;
}

export interface GuardedFetchOptions {
  allowHosts: readonly string[];
  /** Larger answers are refused (the whole answer is read before it is handed on). */
  maxResponseBytes?: number;
  /** Method-preserving redirects (307, 308) followed, each target checked like the first. */
  maxRedirects?: number;
  /** Open connections per host (keep-alive). */
  maxSockets?: number;
}

interface RawAnswer {
  status: number;
  statusText: string;
  headers: Headers;
  body: Buffer;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * A fetch for the openai client that only reaches what the guard allows: addresses checked at
 * connect time, redirects to refused targets refused, redirects that would change the method
 * refused, and the Authorization header never carried to another origin.
 */
export function createGuardedFetch(options: GuardedFetchOptions): typeof fetch {
  const allow = parseAllowList(options.allowHosts);
  const maxBytes = options.maxResponseBytes ?? 16 * 1024 * 1024;
  const maxRedirects = options.maxRedirects ?? 3;
  const agents = {
    http: new http.Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 64 }),
    https: new https.Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 64 }),
  };

  const send = (
    target: CheckedTarget,
    method: string,
    headers: Headers,
    body: Buffer | null,
    signal?: AbortSignal,
  ) =>
    new Promise<RawAnswer>((resolve, reject) => {
      const secure = target.url.protocol === 'https:';
      const request = (secure ? https : http).request(
        target.url,
        {
          method,
          headers: Object.fromEntries(headers.entries()),
          agent: secure ? agents.https : agents.http,
          ...(target.literal ? {} : { lookup: guardedLookup(target, allow) as unknown as typeof dnsLookup }),
          signal,
        },
        (response) => {
          const chunks: Buffer[] = [];
          let size = 0;
          response.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > maxBytes) {
              response.destroy(
                new OutboundRefusedError(`The endpoint's answer is larger than ${maxBytes} bytes`),
              );
              return;
            }
            chunks.push(chunk);
          });
          response.on('error', reject);
          response.on('end', () => {
            const answerHeaders = new Headers();
            for (const [name, value] of Object.entries(response.headers)) {
              if (value === undefined) continue;
              for (const one of Array.isArray(value) ? value : [value]) answerHeaders.append(name, one);
            }
            resolve({
              status: response.statusCode ?? 502,
              statusText: response.statusMessage ?? '',
              headers: answerHeaders,
              body: Buffer.concat(chunks),
            });
          });
        },
      );
      request.on('error', reject);
      request.end(body ?? undefined);
    });

  return async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    let url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const method = (init.method ?? 'GET').toUpperCase();
    const headers = new Headers(init.headers);
    const body = init.body == null ? null : Buffer.from(await new Response(init.body).arrayBuffer());
    const signal = init.signal ?? undefined;
    for (let hop = 0; ; hop++) {
      const target = checkUrl(url, allow);
      const answer = await send(target, method, headers, body, signal);
      const location = answer.headers.get('location');
      if (REDIRECTS.has(answer.status) && location) {
        const next = new URL(location, target.url);
        try {
          checkUrl(next, allow);
        } catch (error) {
          throw new OutboundRefusedError(
            `The endpoint redirected to ${next.origin}, which is refused: ${(error as Error).message}`,
          );
        }
        if (answer.status !== 307 && answer.status !== 308)
          throw new OutboundRefusedError(
            `The endpoint redirected (${answer.status}) to ${next.origin}${next.pathname}; such redirects are not followed: use the final address as the base URL`,
          );
        if (hop >= maxRedirects)
          throw new OutboundRefusedError(`The endpoint redirected more than ${maxRedirects} times`);
        if (next.origin !== target.url.origin) headers.delete('authorization');
        url = next.href;
        continue;
      }
      const empty = answer.status === 204 || answer.status === 205 || answer.status === 304;
      return new Response(empty ? null : new Uint8Array(answer.body), {
        status: answer.status,
        statusText: answer.statusText,
        headers: answer.headers,
      });
    }
  };
}
