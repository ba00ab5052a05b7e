// Endpoints' API keys at rest: AES-256-GCM (authenticated) under the key ENDPOINT_KEY names, or,
// when it is unset, a key derived from SESSION_SECRET with HKDF-SHA256 under a label of its own
// (so the session hashes and this cipher never share a key). Each ciphertext is
// version byte || 96-bit random nonce || ciphertext || 128-bit tag, and binds the policy version
// id as additional data: a ciphertext copied to another version does not decrypt.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { Config } from '../config.js';

const VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HKDF_LABEL = 'loom endpoint api keys v1';

export class SecretDecryptError extends Error {
  override name = 'SecretDecryptError';
}

/** The 32-byte key: ENDPOINT_KEY, else derived from the session secret. */
export function endpointCipherKey(config: Pick<Config, 'endpointKey' | 'sessionSecret'>): Buffer {
  if (config.endpointKey) return config.endpointKey;
  return Buffer.from(hkdfSync('sha256', config.sessionSecret, Buffer.alloc(0), HKDF_LABEL, 32));
}

export function encryptSecret(key: Buffer, plaintext: string, aad: string): Buffer {
  if (key.length !== 32) throw new Error('The endpoint key must be 32 bytes');
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), nonce, body, cipher.getAuthTag()]);
}

/** The plaintext, or SecretDecryptError when the ciphertext, its additional data or the key differ. */
export function decryptSecret(key: Buffer, sealed: Uint8Array, aad: string): string {
  const data = Buffer.from(sealed);
  if (data.length < 1 + NONCE_BYTES + TAG_BYTES || data[0] !== VERSION)
    throw new SecretDecryptError('The stored API key is not in a format this version reads');
  const nonce = data.subarray(1, 1 + NONCE_BYTES);
  const tag = data.subarray(data.length - TAG_BYTES);
  const body = data.subarray(1 + NONCE_BYTES, data.length - TAG_BYTES);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
  } catch {
    throw new SecretDecryptError(
      'The stored API key could not be decrypted (ENDPOINT_KEY or SESSION_SECRET changed, or the record was altered); set the key again',
    );
  }
}
