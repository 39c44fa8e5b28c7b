import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { CompiledQuery, Kysely, PostgresDialect, SqliteDialect, SqliteDriver, type DatabaseConnection, type Driver, type Generated } from 'kysely';

/**
 * One row shape for both dialects. Timestamps are ISO-8601 UTC text with a fixed width
 * (`2026-01-02T03:04:05.678Z`), so they compare and sort correctly as text in SQLite and
 * Postgres alike; JSON columns are text for the same reason.
 */
export interface TrainingTaskRow {
  id: string;
  created_at: string;
  updated_at: string;
  origin_instance: string;
  origin_zone: string | null;
  origin_version: string | null;
  origin_tenant_id: string | null;
  training_type: string;
  entity_type: string;
  entity_id: string | null;
  status: string;
  progress: number;
  current_step: number;
  total_steps: number;
  eta_seconds: number | null;
  trigger_word: string;
  training_folder: string;
  rank: number;
  save_every: number;
  max_step_saves_to_keep: number;
  batch_size: number;
  steps: number;
  learning_rate: number;
  gradient_accumulation: number;
  optimizer: string;
  bypass_guidance_embedding: number;
  base_model_path: string;
  local_model_path: string | null;
  sample_every: number;
  sample_steps: number;
  sample_prompts: string;
  started_at: string | null;
  completed_at: string | null;
  logs: string;
  error_message: string | null;
  webhook_url: string;
  celery_training_task_id: string | null;
  celery_preprocessing_task_id: string | null;
  celery_chain_task_id: string | null;
  preprocessing_stage: string | null;
  processed_files_count: number | null;
  total_files_count: number | null;
  preprocessing_started_at: string | null;
  preprocessing_completed_at: string | null;
  source_images: string;
  processed_dataset_path: string | null;
  preprocessing_transforms: string | null;
  preprocessing_captioning_strategy: string;
  preprocessing_captioning_prompt: string | null;
  priority: number;
  priority_changed_at: string | null;
  /** Engine bookkeeping, not part of the seed's shape. */
  attempt: number;
  lease_owner: string | null;
  lease_expires_at: string | null;
  queued_at: string;
  /** The COMPLETED LoRA task this one continues from (migration 0009). */
  init_lora_task_id: string | null;
  photos_deleted_at: string | null;
}

export interface StageRunRow {
  id: Generated<number>;
  task_id: string;
  stage: string;
  attempt: number;
  worker_id: string;
  started_at: string;
  ended_at: string | null;
  outcome: string | null;
  /** The job's tenant, kept with the run so that usage outlives a deleted job (decision 0013). */
  tenant_id: string | null;
  /** What the run held: 'gpu', 'cpu' or 'preprocess'; null for runs recorded before migration 0008. */
  slot: string | null;
}

export interface WebhookDeliveryRow {
  id: string;
  task_id: string;
  event_type: string;
  url: string;
  payload: string;
  status: string;
  attempts: number;
  next_attempt_at: string;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
}

/** A generation job: a short run of the sampler on a training slot, with LoRAs of finished tasks. */
export interface GenerationRow {
  id: string;
  created_at: string;
  updated_at: string;
  tenant_id: string | null;
  status: string;
  /** The validated request, JSON: prompt, loras (with their weights paths), sizes, seed. */
  request: string;
  base_model_path: string;
  images: string;
  error_message: string | null;
  started_at: string | null;
  completed_at: string | null;
  attempt: number;
  lease_owner: string | null;
  lease_expires_at: string | null;
  webhook_url: string | null;
}

/** Which task or generation a create with an Idempotency-Key made, and a digest of its request. */
export interface IdempotencyKeyRow {
  /** JSON of the tenant id, so the tenant-less space ("null") differs from every tenant. */
  tenant: string;
  operation: string;
  key: string;
  request_sha256: string;
  resource_id: string;
  created_at: string;
}

export interface KilnDatabase {
  idempotency_keys: IdempotencyKeyRow;
  training_tasks: TrainingTaskRow;
  generations: GenerationRow;
  stage_runs: StageRunRow;
  webhook_deliveries: WebhookDeliveryRow;
}

export type Dialect = 'sqlite' | 'postgres';

export interface Store {
  db: Kysely<KilnDatabase>;
  dialect: Dialect;
  /** Postgres pool, for LISTEN/NOTIFY; null on SQLite. */
  pool: pg.Pool | null;
  close(): Promise<void>;
}

export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//.test(url);
}

/**
 * SQLite transactions start IMMEDIATE: every transaction of ours writes, and taking the write
 * lock up front means two processes queue on busy_timeout instead of one failing with
 * SQLITE_BUSY when it upgrades a read lock. This is what makes the claim safe across processes.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  constructor(private readonly options: ConstructorParameters<typeof SqliteDialect>[0]) {
    super(options);
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.options);
  }
}

/** How long a query waits for a connection, and for its answer, before it fails as unavailable. */
export const PG_CONNECT_TIMEOUT_MS = 5000;
export const PG_QUERY_TIMEOUT_MS = 30_000;

// int8 (COUNT(*)) arrives as a string by default; our counts fit a JS number.
pg.types.setTypeParser(20, (v) => Number(v));

/**
 * Opens the store the configuration names: Postgres for a postgres URL, else a SQLite file.
 * `pgSchema` puts every table in its own schema (tests use it to run side by side).
 */
export function openStore(opts: { databaseUrl: string; dataDir: string; pgSchema?: string; poolSize?: number }): Store {
  if (isPostgresUrl(opts.databaseUrl)) {
    const pool = new pg.Pool({
      connectionString: opts.databaseUrl,
      max: opts.poolSize ?? 10,
      options: opts.pgSchema ? `-c search_path=${opts.pgSchema}` : undefined,
      // While the database is down a query fails within seconds (a 503, a retried write)
      // instead of waiting for a connection forever; keep-alive finds half-open sockets.
      connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS,
      query_timeout: PG_QUERY_TIMEOUT_MS,
      keepAlive: true,
    });
    // A connection the server drops emits 'error' on its client, checked out or idle. Without
    // a listener that is an uncaught exception that takes the whole process (and its trainers)
    // down; the query that next uses the connection fails instead, and is handled there.
    pool.on('error', () => undefined);
    pool.on('connect', (client) => client.on('error', () => undefined));
    const db = new Kysely<KilnDatabase>({ dialect: new PostgresDialect({ pool }) });
    return { db, dialect: 'postgres', pool, close: () => db.destroy() };
  }
  const file = opts.databaseUrl.startsWith('sqlite:') ? opts.databaseUrl.slice('sqlite:'.length) : path.join(opts.dataDir, 'kiln.db');
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
  const sqlite = new Database(file);
  sqlite.pragma('journal_mode = WAL');
  // Several processes (API, CLI, a second worker) may share the file: wait for the write lock.
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('synchronous = NORMAL');
  const db = new Kysely<KilnDatabase>({ dialect: new ImmediateSqliteDialect({ database: sqlite }) });
  return { db, dialect: 'sqlite', pool: null, close: () => db.destroy() };
}
