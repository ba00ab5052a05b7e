// The console's log format: a real Fastify server logging through pino into the console stream.
// Requests that went well leave no line; refusals neither; failures leave one short line with the
// stack; nothing is JSON. Production keeps pino's JSON.
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { consoleStream, prettyLine, prettyStream } from '../../server/logging.js';

function server(lines: string[]) {
  const app = Fastify({
    logger: { level: 'info', stream: prettyStream({ write: (text: string) => lines.push(text) }) },
  });
  app.get('/fine', async () => ({ ok: true }));
  app.get('/broken', async () => {
    throw new Error('the disk is full');
  });
  return app;
}

describe('console log format', () => {
  it('leaves out requests that went well and writes failures as short lines', async () => {
    const lines: string[] = [];
    const app = server(lines);
    await app.ready();
    for (let i = 0; i < 20; i++) expect((await app.inject({ url: '/fine' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/missing' })).statusCode).toBe(404);
    expect(lines).toEqual([]);

    expect((await app.inject({ url: '/broken' })).statusCode).toBe(500);
    const text = lines.join('');
    expect(text).toMatch(/^\[loom\] error: .*the disk is full/m);
    expect(text).toMatch(/^\[loom\] {3}at /m);
    for (const line of text.split('\n').filter(Boolean)) {
      expect(line.startsWith('{'), line).toBe(false);
      expect(line.length).toBeLessThan(300);
    }

    app.log.warn('the trainer is slow');
    app.log.info('a note for the person at the terminal');
    expect(lines.slice(-2)).toEqual([
      '[loom] warning: the trainer is slow\n',
      '[loom] a note for the person at the terminal\n',
    ]);
    await app.close();
  });

  it('formats single pino lines', () => {
    expect(prettyLine('{"level":30,"reqId":"req-1","msg":"request completed"}')).toBeNull();
    expect(prettyLine('{"level":30,"msg":"Server listening at http://127.0.0.1:3000"}')).toBeNull();
    expect(
      prettyLine('{"level":40,"reqId":"req-2","req":{"method":"POST","url":"/api/x"},"msg":"slow"}'),
    ).toBe('[loom] warning: slow (POST /api/x, request req-2)');
    expect(prettyLine('{"level":50,"reqId":"0f3c-77","msg":"request failed"}')).toBe(
      '[loom] error: request failed (request 0f3c-77)',
    );
    expect(prettyLine('not json')).toBe('not json');
  });

  it('keeps JSON in production', () => {
    expect(consoleStream({ logFormat: 'json' })).toBeUndefined();
    expect(consoleStream({ logFormat: 'pretty' })).toBeDefined();
  });
});
