// Import routes read their JSON body as a stream: the file's text (`content`) goes to a private
// temporary file as it arrives (removed once the request is answered) and the importer reads it
// from there line by line, so a 64 MB file is never a 64 MB string in the server. A body may be
// gzip-encoded (Content-Encoding: gzip); sent and unpacked sizes are bounded by the route's limit.
// Use inside an encapsulated plugin that holds only import routes: it replaces the JSON parser.
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import type { IncomingMessage } from 'node:http';
import type {
  FastifyInstance,
  FastifyRequest,
  FastifySchemaCompiler,
  FastifySchemaValidationError,
} from 'fastify';
import { Type, type TObject, type TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { ImportUpload, receiveUpload } from '../../core/services/import-source.js';

export function streamImportBodies(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', async (request: FastifyRequest, payload: IncomingMessage) => {
    const limit = request.routeOptions.bodyLimit ?? app.config.importLimit;
    const { fields, upload } = await receiveUpload(payload, request.headers['content-encoding'], limit);
    return upload ? { ...fields, content: upload } : fields;
  });
  const dispose = async (request: { body?: unknown }) => {
    const content = (request.body as { content?: unknown } | undefined)?.content;
    if (content instanceof ImportUpload) await content.dispose();
  };
  app.addHook('onResponse', dispose);
  app.addHook('onRequestAbort', dispose);
}

/**
 * Validates an import body whose `content` is an upload: the other fields against the schema
 * (without content), content present. Other parts of the request as usual.
 */
export const importBodyValidator: FastifySchemaCompiler<TSchema> = (route) => {
  if (route.httpPart !== 'body') return TypeBoxValidatorCompiler(route);
  const schema = route.schema as TObject;
  const rest = Compile(
    Type.Omit(schema, ['content'], {
      additionalProperties: (schema as { additionalProperties?: boolean }).additionalProperties ?? true,
    }),
  );
  return (value: unknown) => {
    const body = value as Record<string, unknown>;
    const { content, ...fields } = body;
    const errors: FastifySchemaValidationError[] = [];
    if (!(content instanceof ImportUpload))
      errors.push({
        keyword: 'type',
        instancePath: '/content',
        schemaPath: '#/properties/content',
        params: {},
        message: content === undefined ? 'is required (the file’s text)' : 'must be string',
      });
    else if (content.bytes === 0)
      errors.push({
        keyword: 'minLength',
        instancePath: '/content',
        schemaPath: '#/properties/content',
        params: {},
        message: 'must not be empty',
      });
    if (!rest.Check(fields)) errors.push(...(rest.Errors(fields) as FastifySchemaValidationError[]));
    return errors.length ? { error: errors } : { value: body };
  };
};
