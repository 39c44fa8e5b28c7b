import type { Logger } from 'pino';
import type { TrainingTaskCreate } from '../domain/schemas/training.js';
import type { TokenVerifier } from '../auth/jwt.js';
import type { SignedLinks } from '../auth/signed-links.js';
import type { Principal } from '../auth/principal.js';
import type { Config } from '../config.js';
import type { Store } from '../store/db.js';
import type { GenerationStore } from '../store/generations.js';
import type { TaskStore } from '../store/tasks.js';
import type { TasksService } from '../tasks/service.js';
import type { Metrics } from '../metrics/metrics.js';
import type { GenerationsService } from '../generations/service.js';

/** Everything the HTTP layer needs, built once by the process that serves it. */
export interface ApiDeps {
  config: Config;
  store: Store;
  taskStore: TaskStore;
  generationStore: GenerationStore;
  tasks: TasksService;
  metrics: Metrics;
  generations: GenerationsService;
  verifier: TokenVerifier;
  /** Expiring artifact links that need no bearer header. */
  links: SignedLinks;
  /** Checks beyond the schema (outbound URLs, transforms, captioning); throws RequestValidationError. */
  validateCreate: (body: TrainingTaskCreate, principal: Principal) => Promise<void>;
  logger?: Logger;
}
