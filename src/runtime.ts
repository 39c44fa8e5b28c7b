import type { ApiDeps } from './api/deps.js';
import { createVerifier } from './auth/jwt.js';
import { createSignedLinks } from './auth/signed-links.js';
import type { Config } from './config.js';
import { openStore, type Store } from './store/db.js';
import { GenerationStore } from './store/generations.js';
import { migrate } from './store/migrations.js';
import { untilAvailable } from './store/outage.js';
import { TaskStore } from './store/tasks.js';
import { TasksService } from './tasks/service.js';
import { createValidator } from './api/validate-create.js';
import { installNotifications } from './engine/notifications.js';
import { Metrics } from './metrics/metrics.js';
import { GenerationsService } from './generations/service.js';
import { installOutbox } from './webhooks/outbox.js';

export interface Runtime extends ApiDeps {
  close(): Promise<void>;
}

/** A process started while its database restarts waits this long for it before giving up. */
const STARTUP_PATIENCE_MS = 60_000;

/** Opens the store (migrating it), the token verifier and the services: one per process. */
export async function openRuntime(config: Config, opts: { pgSchema?: string; store?: Store; startupPatienceMs?: number } = {}): Promise<Runtime> {
  const store = opts.store ?? openStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, pgSchema: opts.pgSchema });
  await untilAvailable(() => migrate(store.db, store.dialect), opts.startupPatienceMs ?? STARTUP_PATIENCE_MS);
  const taskStore = new TaskStore(store);
  const generationStore = new GenerationStore(store);
  installOutbox(taskStore, generationStore);
  installNotifications(taskStore);
  installNotifications(generationStore);
  const verifier = createVerifier(config);
  const links = createSignedLinks(config);
  return {
    config,
    store,
    taskStore,
    generationStore,
    tasks: new TasksService(taskStore, config),
    verifier,
    links,
    metrics: new Metrics(store, config.dataDir),
    generations: new GenerationsService(generationStore, taskStore, config.dataDir),
    validateCreate: createValidator(config),
    close: () => store.close(),
  };
}
