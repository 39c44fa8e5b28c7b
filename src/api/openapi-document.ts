/** Keywords that describe a value rather than constrain it: they stay beside `anyOf`. */
const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', 'example', 'deprecated', 'readOnly', 'writeOnly']);

type Json = unknown;

/**
 * A nullable value (`"type": ["string", "null"]`, as `Nullable` writes it for Ajv) as the seed's
 * document writes it: `anyOf` of the value's schema and `null`. Both say the same to a validator,
 * but in the second a constraint such as `format` plainly belongs to the string alone, so
 * generators and client code generators read it as FastAPI's document meant it.
 */
function nullableAsAnyOf(node: Record<string, Json>): Record<string, Json> {
  const types = node.type;
  if (!Array.isArray(types) || !types.includes('null') || types.length !== 2) return node;
  const value: Record<string, Json> = { type: types.find((t) => t !== 'null') };
  const outer: Record<string, Json> = {};
  for (const [key, v] of Object.entries(node)) {
    if (key === 'type') continue;
    if (ANNOTATIONS.has(key)) outer[key] = v;
    else value[key] = key === 'enum' && Array.isArray(v) ? v.filter((item) => item !== null) : v;
  }
  return { anyOf: [value, { type: 'null' }], ...outer };
}

/** The served OpenAPI document, rewritten where it would otherwise read differently from the seed's. */
export function seedStyleDocument<T>(document: T): T {
  const walk = (node: Json): Json => {
    if (Array.isArray(node)) return node.map(walk);
    if (node === null || typeof node !== 'object') return node;
    const children = Object.fromEntries(Object.entries(node).map(([key, value]) => [key, walk(value)]));
    return nullableAsAnyOf(children);
  };
  return walk(document) as T;
}
