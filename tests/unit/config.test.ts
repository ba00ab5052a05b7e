// Configuration: defaults, validation messages, and the production session-secret rules.
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, weakSecretReason } from '../../core/config.js';

const STRONG = 'Zx8-kQ2!vN7#pL4@wR9$tY6%uB3^mC1&'; // 32 characters, all distinct

function dataDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'loom-config-'));
}

describe('configuration', () => {
  it('has working defaults on the embedded default', () => {
    const dir = dataDir();
    const config = loadConfig({ DATA_DIR: dir });
    expect(config.port).toBe(3000);
    expect(config.databaseUrl).toBeUndefined();
    expect(config.dataDir).toBe(path.resolve(dir));
    expect(config.production).toBe(false);
    // Outside production a secret is generated once and kept, so restarts keep sessions valid.
    expect(config.sessionSecret.length).toBeGreaterThanOrEqual(48);
    expect(readFileSync(path.join(dir, 'session-secret'), 'utf8').trim()).toBe(config.sessionSecret);
    expect(loadConfig({ DATA_DIR: dir }).sessionSecret).toBe(config.sessionSecret);
  });

  it('listens on this machine only unless HOST says otherwise', () => {
    expect(loadConfig({ DATA_DIR: dataDir() }).host).toBe('127.0.0.1');
    expect(loadConfig({ DATA_DIR: dataDir(), HOST: '' }).host).toBe('127.0.0.1');
    expect(loadConfig({ DATA_DIR: dataDir(), HOST: '0.0.0.0' }).host).toBe('0.0.0.0');
    const production = { DATA_DIR: dataDir(), NODE_ENV: 'production', SESSION_SECRET: STRONG };
    expect(loadConfig(production).host).toBe('127.0.0.1');
  });

  it('logs short lines for a terminal outside production and JSON in production', () => {
    expect(loadConfig({ DATA_DIR: dataDir() }).logFormat).toBe('pretty');
    const production = { DATA_DIR: dataDir(), NODE_ENV: 'production', SESSION_SECRET: STRONG };
    expect(loadConfig(production).logFormat).toBe('json');
    expect(loadConfig({ ...production, LOG_FORMAT: 'pretty' }).logFormat).toBe('pretty');
    expect(loadConfig({ DATA_DIR: dataDir(), LOG_FORMAT: 'json' }).logFormat).toBe('json');
    expect(() => loadConfig({ DATA_DIR: dataDir(), LOG_FORMAT: 'xml' })).toThrow(/LOG_FORMAT/);
  });

  it('reads PORT and DATABASE_URL', () => {
    const config = loadConfig({
      DATA_DIR: dataDir(),
      PORT: '8080',
      DATABASE_URL: 'postgresql://u@db:5432/loom',
    });
    expect(config.port).toBe(8080);
    expect(config.databaseUrl).toBe('postgresql://u@db:5432/loom');
  });

  it('names every invalid variable', () => {
    expect(() => loadConfig({ DATA_DIR: dataDir(), PORT: 'eighty', DATABASE_URL: 'mysql://x' })).toThrow(
      ConfigError,
    );
    try {
      loadConfig({ DATA_DIR: dataDir(), PORT: 'eighty', DATABASE_URL: 'mysql://x' });
    } catch (error) {
      expect((error as Error).message).toMatch(/PORT/);
      expect((error as Error).message).toMatch(/DATABASE_URL/);
    }
  });

  it('refuses to start in production without a strong session secret', () => {
    const base = { DATA_DIR: dataDir(), NODE_ENV: 'production' };
    expect(() => loadConfig(base)).toThrow(/SESSION_SECRET must be set/);
    expect(() => loadConfig({ ...base, SESSION_SECRET: 'short' })).toThrow(/too weak/);
    expect(() => loadConfig({ ...base, SESSION_SECRET: 'a'.repeat(64) })).toThrow(/too weak/);
    expect(() =>
      loadConfig({ ...base, SESSION_SECRET: 'changeme-changeme-changeme-changeme-1234567' }),
    ).toThrow(/too weak/);
    expect(loadConfig({ ...base, SESSION_SECRET: STRONG }).sessionSecret).toBe(STRONG);
  });

  it('judges secrets', () => {
    expect(weakSecretReason('abc')).toMatch(/shorter/);
    expect(weakSecretReason('ab'.repeat(20))).toMatch(/distinct/);
    expect(weakSecretReason(STRONG)).toBeNull();
  });
});
