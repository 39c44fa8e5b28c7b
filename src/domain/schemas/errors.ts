import { Type, type Static } from '@sinclair/typebox';

export const ValidationError = Type.Object(
  {
    loc: Type.Array(Type.Union([Type.String(), Type.Integer()]), { title: 'Location' }),
    msg: Type.String({ title: 'Message' }),
    type: Type.String({ title: 'Error Type' }),
  },
  { $id: 'ValidationError', title: 'ValidationError' },
);
export type ValidationError = Static<typeof ValidationError>;

export const HTTPValidationError = Type.Object(
  { detail: Type.Array(Type.Ref(ValidationError), { title: 'Detail' }) },
  { $id: 'HTTPValidationError', title: 'HTTPValidationError' },
);
export type HTTPValidationError = Static<typeof HTTPValidationError>;

/** Every error but a 422: FastAPI's HTTPException body. */
export const HTTPError = Type.Object({ detail: Type.String() }, { $id: 'HTTPError', title: 'HTTPError' });
export type HTTPError = Static<typeof HTTPError>;

export const SHARED_SCHEMAS = [ValidationError, HTTPValidationError, HTTPError];
