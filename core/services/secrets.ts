// Random bearer secrets (session cookies, API tokens, one-time links) and their keyed hashes.
// Only hashes are stored, keyed with SESSION_SECRET, so a copy of the database grants nothing.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** 256 random bits, URL-safe, with a readable kind prefix (e.g. `loom_at_...` for API tokens). */
export function newSecret(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

export function hashSecret(key: string, secret: string): string {
  return createHmac('sha256', key).update(secret).digest('hex');
}

export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
