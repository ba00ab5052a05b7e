// docker-compose.yml cannot be started here (no Docker engine), so it is parsed and checked: the
// services, their health checks, volumes, environment and commands that point at real entries.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ENV_KEYS } from '../../core/config.js';

const root = path.resolve(import.meta.dirname, '..', '..');

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] | string };
  deploy?: { replicas?: unknown };
}

const compose = parse(readFileSync(path.join(root, 'docker-compose.yml'), 'utf8')) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const { postgres, app, trainer } = compose.services as Record<'postgres' | 'app' | 'trainer', Service>;

/** dist/x/y.js (what the image runs) must come from a source file x/y.ts in the repository. */
function sourceOf(distFile: string): string {
  return path.join(root, distFile.replace(/^dist\//, '').replace(/\.js$/, '.ts'));
}

describe('docker-compose.yml', () => {
  it('has postgres, the app and the trainer, each with a health check', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['app', 'postgres', 'trainer']);
    for (const [name, service] of Object.entries(compose.services)) {
      expect(service.healthcheck?.test, `${name} health check`).toBeTruthy();
    }
  });

  it('keeps data in named volumes', () => {
    expect(postgres.volumes).toContain('postgres-data:/var/lib/postgresql/data');
    for (const service of [postgres, app, trainer]) {
      for (const volume of service.volumes ?? []) {
        expect(Object.keys(compose.volumes)).toContain(volume.split(':')[0]);
      }
    }
  });

  it('connects the app and the trainer to the postgres service with the same URL', () => {
    const url = app.environment?.DATABASE_URL ?? '';
    expect(url).toMatch(/^postgresql:\/\/loom:\$\{POSTGRES_PASSWORD:\?[^}]*\}@postgres:5432\/loom$/);
    expect(trainer.environment?.DATABASE_URL).toBe(url);
    expect(app.depends_on?.postgres?.condition).toBe('service_healthy');
    expect(trainer.depends_on?.app?.condition).toBe('service_healthy');
  });

  it('runs in production mode and requires every secret from outside, with no defaults', () => {
    for (const service of [app, trainer]) expect(service.environment?.NODE_ENV).toBe('production');
    for (const [name, service] of Object.entries(compose.services)) {
      for (const [key, value] of Object.entries(service.environment ?? {})) {
        if (/PASSWORD|SECRET/.test(key)) {
          expect(value, `${name}.${key}`).toMatch(/^\$\{[A-Z_]+:\?[^}]+\}$/);
        }
      }
    }
  });

  it('listens on every interface inside the container (the default elsewhere is 127.0.0.1)', () => {
    expect(app.environment?.HOST).toBe('0.0.0.0');
    const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^\s+HOST=0\.0\.0\.0\b/m);
  });

  it('sets only variables the server understands', () => {
    for (const service of [app, trainer]) {
      for (const key of Object.keys(service.environment ?? {})) expect(ENV_KEYS).toContain(key);
    }
  });

  it('runs commands that exist in the build', () => {
    for (const service of [app, trainer]) {
      const script = service.command?.at(-1) ?? '';
      expect(script).toMatch(/^dist\/.+\.js$/);
      expect(existsSync(sourceOf(script)), script).toBe(true);
    }
    const health = trainer.healthcheck?.test as string[];
    expect(existsSync(sourceOf(health[2] ?? '')), 'trainer health check script').toBe(true);
    const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
    const cmd = /^CMD \[((?:"[^"]+",? ?)+)\]/m.exec(dockerfile)?.[1] ?? '';
    const argv = [...cmd.matchAll(/"([^"]+)"/g)].map((match) => match[1]!);
    expect(existsSync(sourceOf(argv.at(-1) ?? '')), cmd).toBe(true);
    // The image and the compose file run the server exactly as `npm start` does (Node options too).
    const { scripts } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
      scripts: { start: string };
    };
    const start = /\bnode (.*dist\/server\/main\.js)/.exec(scripts.start)?.[1]?.split(' ');
    expect(argv).toEqual(['node', ...(start ?? [])]);
    // ...with the same malloc settings (the image sets them in its environment).
    const tunables = /GLIBC_TUNABLES=\$\{GLIBC_TUNABLES:-([^}]+)\}/.exec(scripts.start)?.[1];
    expect(tunables, 'npm start sets GLIBC_TUNABLES').toBeTruthy();
    expect(dockerfile).toContain(`GLIBC_TUNABLES=${tunables}`);
    expect(app.command).toEqual(argv);
    expect(dockerfile).toMatch(/npm run build/);
    expect(dockerfile).toMatch(/^USER node$/m);
  });
});
