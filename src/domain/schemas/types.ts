import { Type, type TSchema, type Static, type SchemaOptions } from '@sinclair/typebox';

/**
 * Schema helpers that keep the JSON Schema plain enough for three readers at once:
 * Ajv (validation), fast-json-stringify (responses) and the OpenAPI document.
 * Nullable values are a type array rather than anyOf, so Ajv's coercion never turns a
 * null into 0 or "" on its way through a union.
 */
export function StringEnum<const T extends readonly string[]>(values: T, options: SchemaOptions = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

export function IntEnum<const T extends readonly number[]>(values: T, options: SchemaOptions = {}) {
  return Type.Unsafe<T[number]>({ type: 'integer', enum: [...values], ...options });
}

export function Nullable<T extends TSchema>(schema: T, options: SchemaOptions = {}) {
  const { type, enum: values, $id: _id, ...rest } = schema as TSchema & { type?: string; enum?: unknown[] };
  const nullable: Record<string, unknown> = { ...rest, type: [type, 'null'], ...options };
  if (values) nullable.enum = [...values, null];
  return Type.Unsafe<Static<T> | null>(nullable);
}
