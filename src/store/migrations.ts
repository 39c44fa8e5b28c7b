import { Migrator, sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import type { Dialect, KilnDatabase } from './db.js';

/**
 * Migrations for both dialects, applied at start. Each one is written once with the few
 * dialect differences (float type, autoincrement) spelled out where they occur.
 */
function migrations(dialect: Dialect): Record<string, Migration> {
  const float = dialect === 'postgres' ? 'double precision' : 'real';
  return {
    '0001_training_tasks': {
      async up(db) {
        await db.schema
          .createTable('training_tasks')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addColumn('origin_instance', 'text', (c) => c.notNull().defaultTo('unknown'))
          .addColumn('origin_zone', 'text')
          .addColumn('origin_version', 'text')
          .addColumn('origin_tenant_id', 'text')
          .addColumn('training_type', 'text', (c) => c.notNull())
          .addColumn('entity_type', 'text', (c) => c.notNull())
          .addColumn('entity_id', 'text')
          .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('PENDING','PREPROCESSING','QUEUED','TRAINING','COMPLETED','FAILED','CANCELLED')`))
          .addColumn('progress', float, (c) => c.notNull().defaultTo(0))
          .addColumn('current_step', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('total_steps', 'integer', (c) => c.notNull())
          .addColumn('eta_seconds', 'integer')
          .addColumn('trigger_word', 'text', (c) => c.notNull())
          .addColumn('training_folder', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('rank', 'integer', (c) => c.notNull())
          .addColumn('save_every', 'integer', (c) => c.notNull())
          .addColumn('max_step_saves_to_keep', 'integer', (c) => c.notNull())
          .addColumn('batch_size', 'integer', (c) => c.notNull())
          .addColumn('steps', 'integer', (c) => c.notNull())
          .addColumn('learning_rate', float, (c) => c.notNull())
          .addColumn('gradient_accumulation', 'integer', (c) => c.notNull())
          .addColumn('optimizer', 'text', (c) => c.notNull())
          .addColumn('bypass_guidance_embedding', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('base_model_path', 'text', (c) => c.notNull())
          .addColumn('local_model_path', 'text')
          .addColumn('sample_every', 'integer', (c) => c.notNull())
          .addColumn('sample_steps', 'integer', (c) => c.notNull())
          .addColumn('sample_prompts', 'text', (c) => c.notNull().defaultTo('[]'))
          .addColumn('started_at', 'text')
          .addColumn('completed_at', 'text')
          .addColumn('logs', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('error_message', 'text')
          .addColumn('webhook_url', 'text', (c) => c.notNull().defaultTo(''))
          .addColumn('celery_training_task_id', 'text')
          .addColumn('celery_preprocessing_task_id', 'text')
          .addColumn('celery_chain_task_id', 'text')
          .addColumn('preprocessing_stage', 'text')
          .addColumn('processed_files_count', 'integer')
          .addColumn('total_files_count', 'integer')
          .addColumn('preprocessing_started_at', 'text')
          .addColumn('preprocessing_completed_at', 'text')
          .addColumn('source_images', 'text', (c) => c.notNull().defaultTo('[]'))
          .addColumn('processed_dataset_path', 'text')
          .addColumn('preprocessing_transforms', 'text')
          .addColumn('preprocessing_captioning_strategy', 'text', (c) => c.notNull())
          .addColumn('preprocessing_captioning_prompt', 'text')
          .addColumn('priority', 'integer', (c) =>
            c
              .notNull()
              .defaultTo(1)
              .check(sql`priority between 0 and 3`),
          )
          .addColumn('priority_changed_at', 'text')
          .addColumn('attempt', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('lease_owner', 'text')
          .addColumn('lease_expires_at', 'text')
          .addColumn('queued_at', 'text', (c) => c.notNull())
          .execute();
        // The claim's index: runnable statuses ordered by priority, then creation time.
        await db.schema.createIndex('training_tasks_claim').on('training_tasks').columns(['status', 'priority desc', 'created_at']).execute();
        await db.schema.createIndex('training_tasks_tenant_created').on('training_tasks').columns(['origin_tenant_id', 'created_at desc']).execute();
        await db.schema.createIndex('training_tasks_created').on('training_tasks').columns(['created_at desc']).execute();
        await db.schema.createIndex('training_tasks_entity').on('training_tasks').column('entity_id').execute();
        await db.schema.createIndex('training_tasks_lease').on('training_tasks').column('lease_expires_at').execute();
      },
    },
    '0002_engine': {
      async up(db) {
        await db.schema
          .createTable('stage_runs')
          .addColumn('id', dialect === 'postgres' ? 'bigserial' : 'integer', (c) => (dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement()))
          .addColumn('task_id', 'text', (c) => c.notNull())
          .addColumn('stage', 'text', (c) => c.notNull())
          .addColumn('attempt', 'integer', (c) => c.notNull())
          .addColumn('worker_id', 'text', (c) => c.notNull())
          .addColumn('started_at', 'text', (c) => c.notNull())
          .addColumn('ended_at', 'text')
          .addColumn('outcome', 'text')
          .execute();
        await db.schema.createIndex('stage_runs_task').on('stage_runs').column('task_id').execute();
        await db.schema
          .createTable('webhook_deliveries')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('task_id', 'text', (c) => c.notNull())
          .addColumn('event_type', 'text', (c) => c.notNull())
          .addColumn('url', 'text', (c) => c.notNull())
          .addColumn('payload', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('next_attempt_at', 'text', (c) => c.notNull())
          .addColumn('last_status_code', 'integer')
          .addColumn('last_error', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('delivered_at', 'text')
          .execute();
        await db.schema.createIndex('webhook_deliveries_due').on('webhook_deliveries').columns(['status', 'next_attempt_at']).execute();
        await db.schema.createIndex('webhook_deliveries_task').on('webhook_deliveries').column('task_id').execute();
      },
    },
    '0003_generations': {
      async up(db) {
        await db.schema
          .createTable('generations')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addColumn('tenant_id', 'text')
          .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('PENDING','RUNNING','COMPLETED','FAILED','CANCELLED')`))
          .addColumn('request', 'text', (c) => c.notNull())
          .addColumn('base_model_path', 'text', (c) => c.notNull())
          .addColumn('images', 'text', (c) => c.notNull().defaultTo('[]'))
          .addColumn('error_message', 'text')
          .addColumn('started_at', 'text')
          .addColumn('completed_at', 'text')
          .addColumn('attempt', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('lease_owner', 'text')
          .addColumn('lease_expires_at', 'text')
          .execute();
        await db.schema.createIndex('generations_claim').on('generations').columns(['status', 'created_at']).execute();
        await db.schema.createIndex('generations_lease').on('generations').column('lease_expires_at').execute();
      },
    },
    // Generations became a job kind of the engine: they announce their end by webhook too.
    '0004_generation_webhooks': {
      async up(db) {
        await db.schema.alterTable('generations').addColumn('webhook_url', 'text').execute();
      },
    },
    // The list orders by created_at and then id; indexes that end with the id hand a page over
    // in index order. Without it SQLite sorted each run of equal timestamps in a temp b-tree
    // and Postgres sorted the page (incrementally) after the index scan.
    '0005_list_indexes': {
      async up(db) {
        await db.schema.dropIndex('training_tasks_tenant_created').execute();
        await db.schema.dropIndex('training_tasks_created').execute();
        await db.schema.createIndex('training_tasks_tenant_list').on('training_tasks').columns(['origin_tenant_id', 'created_at desc', 'id desc']).execute();
        await db.schema.createIndex('training_tasks_list').on('training_tasks').columns(['created_at desc', 'id desc']).execute();
      },
    },
    // A create sent again with the same Idempotency-Key gets the task or generation the first
    // one made. Keyed by tenant, so one tenant's keys never meet another's.
    '0006_idempotency_keys': {
      async up(db) {
        await db.schema
          .createTable('idempotency_keys')
          .addColumn('tenant', 'text', (c) => c.notNull())
          .addColumn('operation', 'text', (c) => c.notNull())
          .addColumn('key', 'text', (c) => c.notNull())
          .addColumn('request_sha256', 'text', (c) => c.notNull())
          .addColumn('resource_id', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('idempotency_keys_pk', ['tenant', 'operation', 'key'])
          .execute();
        await db.schema.createIndex('idempotency_keys_resource').on('idempotency_keys').column('resource_id').execute();
        await db.schema.createIndex('idempotency_keys_created').on('idempotency_keys').column('created_at').execute();
      },
    },
    // Generations are listed as tasks are: newest first, by tenant or across them (admins).
    '0007_generation_list_indexes': {
      async up(db) {
        await db.schema.createIndex('generations_tenant_list').on('generations').columns(['tenant_id', 'created_at desc', 'id desc']).execute();
        await db.schema.createIndex('generations_list').on('generations').columns(['created_at desc', 'id desc']).execute();
      },
    },
    // Usage is summed from the runs (decision 0013): each carries its job's tenant and the kind of
    // slot it held, so that it can be counted without its job, which may have been deleted since.
    '0008_usage': {
      async up(db) {
        await db.schema.alterTable('stage_runs').addColumn('tenant_id', 'text').execute();
        await db.schema.alterTable('stage_runs').addColumn('slot', 'text').execute();
        await sql`update stage_runs set tenant_id = (select t.origin_tenant_id from training_tasks t where t.id = stage_runs.task_id) where stage <> 'generate'`.execute(db);
        await sql`update stage_runs set tenant_id = (select g.tenant_id from generations g where g.id = stage_runs.task_id) where stage = 'generate'`.execute(db);
        await db.schema.createIndex('stage_runs_started').on('stage_runs').column('started_at').execute();
      },
    },
    // A task may continue from another's LoRA; deleting that one is refused while this one waits.
    '0009_init_lora': {
      async up(db) {
        await db.schema.alterTable('training_tasks').addColumn('init_lora_task_id', 'text').execute();
        await db.schema.createIndex('training_tasks_init_lora').on('training_tasks').column('init_lora_task_id').execute();
      },
    },
    // A finished task's photos may be deleted before the task (KILN_PHOTO_RETENTION_HOURS, DELETE …/photos).
    '0010_photos_deleted': {
      async up(db) {
        await db.schema.alterTable('training_tasks').addColumn('photos_deleted_at', 'text').execute();
      },
    },
  };
}

export async function migrate(db: Kysely<KilnDatabase>, dialect: Dialect): Promise<void> {
  const provider: MigrationProvider = { getMigrations: async () => migrations(dialect) };
  // Kysely looks for its bookkeeping tables in every schema unless told which: name ours, or a
  // second Kiln (or any Kysely app) in another schema of the same database would shadow it.
  const schema = dialect === 'postgres' ? (await sql<{ s: string }>`select current_schema() as s`.execute(db)).rows[0].s : undefined;
  const { error, results } = await new Migrator({ db, provider, migrationTableSchema: schema }).migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${String((error as Error)?.message ?? error)}`);
  }
}
