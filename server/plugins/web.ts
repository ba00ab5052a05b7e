// Serves the built SvelteKit SPA: hashed assets with long caching, and index.html (never cached)
// for every other GET outside /api, so client-side routes load on refresh.
import { existsSync } from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { webBuildDir } from '../../core/paths.js';

export default fp(async function web(app: FastifyInstance, options: { webDir?: string }) {
  const root = options.webDir ?? webBuildDir;
  const hasBuild = existsSync(path.join(root, 'index.html'));
  if (hasBuild) {
    await app.register(fastifyStatic, {
      root,
      wildcard: false,
      index: false,
      setHeaders(res, filePath) {
        const immutable = filePath.includes(`${path.sep}_app${path.sep}immutable${path.sep}`);
        res.header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
      },
    });
  } else {
    app.log.warn(`No web build in ${root}; run "npm run build" to serve the UI.`);
  }

  app.setNotFoundHandler((request, reply) => {
    const pathname = request.url.split('?')[0] ?? '';
    if (!pathname.startsWith('/api') && (request.method === 'GET' || request.method === 'HEAD') && hasBuild) {
      return reply
        .header('cache-control', 'no-cache')
        .type('text/html; charset=utf-8')
        .sendFile('index.html', root);
    }
    return reply.status(404).send({
      statusCode: 404,
      error: 'Not Found',
      message: `No route ${request.method} ${pathname}.`,
      requestId: request.id,
    });
  });
});
