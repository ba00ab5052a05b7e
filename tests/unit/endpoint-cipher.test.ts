// API keys at rest: AES-256-GCM with the policy version id as additional data.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  decryptSecret,
  encryptSecret,
  endpointCipherKey,
  SecretDecryptError,
} from '../../core/endpoints/cipher.js';

const key = randomBytes(32);
const versionId = '6f1c2d3e-0000-4000-8000-000000000001';

describe('endpoint API key cipher', () => {
  it('round-trips, with a fresh nonce each time', () => {
    const a = encryptSecret(key, 'sk-live-äöü-123', versionId);
    const b = encryptSecret(key, 'sk-live-äöü-123', versionId);
    expect(decryptSecret(key, a, versionId)).toBe('sk-live-äöü-123');
    expect(a[0]).toBe(1);
    expect(a.length).toBe(1 + 12 + Buffer.byteLength('sk-live-äöü-123') + 16);
    expect(a.equals(b)).toBe(false);
    expect(a.includes(Buffer.from('sk-live'))).toBe(false);
  });

  it('detects tampering anywhere', () => {
    const sealed = encryptSecret(key, 'sk-secret', versionId);
    for (const at of [1, 13, sealed.length - 1]) {
      const altered = Buffer.from(sealed);
      altered[at]! ^= 0x01;
      expect(() => decryptSecret(key, altered, versionId)).toThrow(SecretDecryptError);
    }
    const versioned = Buffer.from(sealed);
    versioned[0] = 2;
    expect(() => decryptSecret(key, versioned, versionId)).toThrow(/format/);
    expect(() => decryptSecret(key, sealed.subarray(0, 20), versionId)).toThrow(SecretDecryptError);
  });

  it('refuses another version id (AAD) and another key', () => {
    const sealed = encryptSecret(key, 'sk-secret', versionId);
    expect(() => decryptSecret(key, sealed, versionId.replace(/1$/, '2'))).toThrow(SecretDecryptError);
    expect(() => decryptSecret(randomBytes(32), sealed, versionId)).toThrow(SecretDecryptError);
  });

  it('derives a key from the session secret unless one is given, and never the secret itself', () => {
    const derived = endpointCipherKey({ endpointKey: undefined, sessionSecret: 's'.repeat(48) });
    expect(derived.length).toBe(32);
    expect(endpointCipherKey({ endpointKey: undefined, sessionSecret: 's'.repeat(48) }).equals(derived)).toBe(
      true,
    );
    expect(endpointCipherKey({ endpointKey: undefined, sessionSecret: 't'.repeat(48) }).equals(derived)).toBe(
      false,
    );
    expect(endpointCipherKey({ endpointKey: key, sessionSecret: 's'.repeat(48) })).toBe(key);
    expect(derived.toString('utf8')).not.toContain('ssss');
  });
});
