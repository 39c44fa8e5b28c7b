import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { EntityErasure, EntityIdParams } from '../../domain/schemas/entities.js';
import { eraseEntity } from '../../tasks/erase.js';
import type { ApiDeps } from '../deps.js';
import { errorResponses } from '../responses.js';

/** The entities (people, products) that tasks name by entity_id: erasing one, for a deletion request. */
export const entityRoutes: FastifyPluginAsyncTypebox<ApiDeps> = async (app, deps) => {
  app.delete(
    '/:entity_id',
    {
      schema: {
        summary: 'Erase Entity',
        description:
          "Deletes everything Kiln holds of an entity within the caller's tenant (an admin's: every tenant's): its training tasks with their photos, datasets, checkpoints, weights, samples and logs; the uploads they were made from; and every generation that used one of its LoRAs, with the images. Unfinished work is cancelled first. Work a worker has yet to let go is listed in `stopping`: call again after a few seconds, until `complete` is true. Repeating the call is safe.",
        tags: ['Entities'],
        params: EntityIdParams,
        response: { 200: EntityErasure, ...errorResponses({ path: true }) },
      },
    },
    async (request) => eraseEntity(deps, request.principal, request.params.entity_id),
  );
};
