import { Type, type Static } from '@sinclair/typebox';

/** One file of a task's artifact listing, as the API sends it (the CLI and the dashboard read the same). */
export const Artifact = Type.Object(
  {
    path: Type.String({ description: 'Relative to the task folder' }),
    kind: Type.String({ description: 'weights, checkpoint, sample, manifest, dataset (a prepared training image), log or image' }),
    size: Type.Integer(),
    sha256: Type.String(),
    url: Type.String({ description: 'A link to the file that needs no bearer header and expires (KILN_SIGNED_LINK_TTL_SECONDS, an hour by default)' }),
  },
  { title: 'Artifact' },
);
export type Artifact = Static<typeof Artifact>;
