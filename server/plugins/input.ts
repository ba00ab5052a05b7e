// Text PostgreSQL cannot store is refused before any route sees it: a NUL character (text and jsonb
// cannot hold U+0000) or a lone surrogate (not Unicode; the driver would silently store U+FFFD in
// text, and jsonb refuses it) anywhere in the path, query string or JSON body, keys included, and
// JSON nested deeper than any route takes (a stack overflow in the database's jsonb parser).
// Each answer is a 400 that names the field, like the schema validator's.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { HttpError } from '../../core/errors.js';
import { findUnstorable } from '../../core/unstorable.js';

export default fp(async function input(app: FastifyInstance) {
  app.addHook('preValidation', async (request) => {
    const parts: [string, unknown][] = [
      ['params', request.params],
      ['querystring', request.query],
      ['body', request.body],
    ];
    for (const [part, value] of parts) {
      const problem = findUnstorable(value);
      if (problem) throw new HttpError(400, `Invalid request: ${part}${problem}`, 'VALIDATION');
    }
  });
});
