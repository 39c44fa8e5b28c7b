import { Ajv, type AnySchema } from 'ajv';
import { createRequire } from 'node:module';
import type { FastifySchemaCompiler } from 'fastify';

// ajv-formats is CommonJS with a default export that ESM type-checking cannot see through.
const addFormats = createRequire(import.meta.url)('ajv-formats') as (ajv: Ajv) => Ajv;

/**
 * Two validators, as FastAPI behaves: query strings and path parameters are text and are
 * converted to the declared types; JSON bodies are taken as sent, so `7` is not a string and
 * `"7"` is not a boolean. Both report every error, not just the first.
 */
export function createValidatorCompiler(sharedSchemas: AnySchema[]): FastifySchemaCompiler<AnySchema> {
  const make = (coerceTypes: boolean | 'array') => {
    const ajv = new Ajv({ allErrors: true, coerceTypes, useDefaults: true, removeAdditional: false, strict: false });
    addFormats(ajv);
    // `uri` (webhook_url) is checked as the webhook sender will read it, WHATWG's URL parser, and ""
    // stays "no webhook" as the seed took it; where it may point is api/validate-create.ts's job.
    ajv.addFormat('uri', { type: 'string', validate: (value: string) => value === '' || URL.canParse(value) });
    for (const schema of sharedSchemas) ajv.addSchema(schema);
    return ajv;
  };
  const bodies = make(false);
  const text = make('array');
  return ({ schema, httpPart }) => (httpPart === 'body' ? bodies : text).compile(schema);
}
