import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout: src/ (tsx) and dist/ (compiled) both sit one level below it. */
export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * Every KILN_* variable, read once. The table below is the single source of the names,
 * defaults and descriptions; README's configuration table is checked against it by a test.
 */
type Kind = 'string' | 'int' | 'number' | 'bool' | 'list';

interface VarSpec {
  name: string;
  kind: Kind;
  default: string;
  doc: string;
}

export const CONFIG_VARS = [
  { name: 'KILN_PORT', kind: 'int', default: '8000', doc: 'HTTP port of the API' },
  { name: 'KILN_HOST', kind: 'string', default: '127.0.0.1', doc: 'Interface the API listens on (0.0.0.0 to expose it)' },
  { name: 'KILN_DATA_DIR', kind: 'string', default: './data', doc: 'Tasks, uploads, generations, generated secrets and the SQLite file' },
  { name: 'KILN_DATABASE_URL', kind: 'string', default: '', doc: 'postgres://… for fleet mode; empty means SQLite at $KILN_DATA_DIR/kiln.db' },
  { name: 'KILN_JWT_SECRET', kind: 'string', default: '', doc: 'HS256 secret; empty (and no JWKS/public key) means one is created in the data dir' },
  { name: 'KILN_JWT_JWKS_URL', kind: 'string', default: '', doc: 'JWKS endpoint for RS256/ES256 tokens' },
  { name: 'KILN_JWT_PUBLIC_KEY', kind: 'string', default: '', doc: 'PEM public key (or path to one) for RS256/ES256 tokens' },
  { name: 'KILN_JWT_ISSUER', kind: 'string', default: '', doc: 'Required `iss` claim when set' },
  { name: 'KILN_JWT_AUDIENCE', kind: 'string', default: '', doc: 'Required `aud` claim when set' },
  { name: 'KILN_PYTHON', kind: 'string', default: '', doc: 'Interpreter that runs the trainer; empty means the project venv, <repo>/.venv/bin/python' },
  { name: 'KILN_GPUS', kind: 'list', default: '', doc: 'GPU indices the in-process worker trains on (one slot each); empty means CPU' },
  { name: 'KILN_CPU_SLOTS', kind: 'int', default: '1', doc: 'CPU training slots of the in-process worker when no GPU is listed' },
  { name: 'KILN_PREPROCESS_SLOTS', kind: 'int', default: '2', doc: 'Concurrent preprocessing stages per worker' },
  { name: 'KILN_DEFAULT_BASE_MODEL', kind: 'string', default: 'black-forest-labs/FLUX.1-dev', doc: 'base_model_path of a task that names none' },
  { name: 'KILN_SOURCE_ROOTS', kind: 'list', default: '', doc: 'Comma-separated folders that local paths in source_images may come from; empty refuses local paths' },
  { name: 'KILN_ALLOW_PRIVATE_NETWORKS', kind: 'bool', default: '0', doc: 'Allow outbound requests (downloads, webhooks) to loopback and private addresses' },
  { name: 'KILN_MAX_ATTEMPTS', kind: 'int', default: '3', doc: 'Attempts per stage before a task is failed' },
  { name: 'KILN_MAX_RUNNING_PER_TENANT', kind: 'int', default: '4', doc: 'Running stages one tenant may hold at once (0 = no cap)' },
  {
    name: 'KILN_TENANT_MONTHLY_TRAINING_HOURS',
    kind: 'int',
    default: '0',
    doc: "Hours of GPU or CPU slot time (training and generation) a tenant may use per calendar month (UTC); past it, its new tasks and generations are a 429 until the month ends. A token's kiln_monthly_training_hours claim sets its tenant's own (0 = no cap; admins exempt)",
  },
  { name: 'KILN_LEASE_SECONDS', kind: 'int', default: '30', doc: 'Lease length of a claimed stage; renewed at a quarter of it' },
  { name: 'KILN_URL_SIGNING_SECRET', kind: 'string', default: '', doc: 'Key of the signed artifact links; empty means one is created in the data dir' },
  { name: 'KILN_SIGNED_LINK_TTL_SECONDS', kind: 'int', default: '3600', doc: 'How long a signed artifact link works' },
  { name: 'KILN_WEBHOOK_SECRET', kind: 'string', default: '', doc: 'whsec_… signing secret; empty means one is created in the data dir' },
  { name: 'KILN_MAX_INPUT_PIXELS', kind: 'int', default: '100000000', doc: 'Largest source image in pixels (decompression-bomb guard)' },
  { name: 'KILN_MIN_IMAGE_SIDE', kind: 'int', default: '256', doc: 'Smallest accepted side of a source image in px' },
  { name: 'KILN_MIN_IMAGES', kind: 'int', default: '1', doc: 'Usable images a dataset needs, else the task fails' },
  { name: 'KILN_DATASET_MAX_SIDE', kind: 'int', default: '1536', doc: 'Longest side of a dataset image after transforms' },
  { name: 'KILN_MAX_DOWNLOAD_BYTES', kind: 'int', default: '52428800', doc: 'Size cap of one downloaded or uploaded source file' },
  {
    name: 'KILN_UPLOAD_RETENTION_HOURS',
    kind: 'int',
    default: '168',
    doc: 'Hours an upload stays usable in source_images before it is deleted, unless a task still waits to preprocess it (0 = until deleted by DELETE /api/v1/uploads/{id})',
  },
  {
    name: 'KILN_GENERATION_RETENTION_HOURS',
    kind: 'int',
    default: '0',
    doc: 'Hours after a generation finishes that it is deleted with its images (0 = kept until deleted by DELETE /api/v1/generations/{id})',
  },
  {
    name: 'KILN_PHOTO_RETENTION_HOURS',
    kind: 'int',
    default: '0',
    doc: 'Hours after a task finishes that its photos, dataset and caches are deleted, keeping its weights, samples and logs; it can then not be retried (0 = kept until the task is deleted)',
  },
  {
    name: 'KILN_MIN_FREE_DISK_MB',
    kind: 'int',
    default: '1024',
    doc: "Free space the data dir's disk keeps: below it, uploads are refused (507) and workers start no new stage until space is freed (0 = no minimum)",
  },
  { name: 'KILN_TRAINER_STALL_SECONDS', kind: 'int', default: '900', doc: 'A trainer silent this long is killed and its task failed' },
  {
    name: 'KILN_RATE_LIMIT_CREATES_PER_MINUTE',
    kind: 'int',
    default: '0',
    doc: 'Task creations, and apart from them generation creations, one tenant may make per minute per API process (0 = no limit; admins exempt)',
  },
  { name: 'KILN_RATE_LIMIT_UPLOADS_PER_MINUTE', kind: 'int', default: '0', doc: 'Upload requests one tenant may make per minute per API process (0 = no limit; admins exempt)' },
  { name: 'KILN_VLM_URL', kind: 'string', default: '', doc: 'OpenAI-compatible chat-completions URL used by the vlm captioning strategy' },
  { name: 'KILN_VLM_MODEL', kind: 'string', default: '', doc: 'Model name sent to KILN_VLM_URL, or a local model path for the Python captioner' },
  { name: 'KILN_VLM_API_KEY', kind: 'string', default: '', doc: 'Bearer key sent to KILN_VLM_URL' },
  { name: 'KILN_LOG_LEVEL', kind: 'string', default: 'info', doc: 'pino log level' },
  { name: 'KILN_DEV_PRINT_TOKEN', kind: 'bool', default: '1', doc: 'Print a ready admin token at start when the secret was generated locally' },
] as const satisfies readonly VarSpec[];

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  databaseUrl: string;
  jwt: { secret: string; jwksUrl: string; publicKey: string; issuer: string; audience: string };
  python: string;
  gpus: string[];
  cpuSlots: number;
  preprocessSlots: number;
  defaultBaseModel: string;
  sourceRoots: string[];
  allowPrivateNetworks: boolean;
  maxAttempts: number;
  maxRunningPerTenant: number;
  /** A tenant's default training allowance per month, in hours; 0 sets none. */
  tenantMonthlyTrainingHours: number;
  leaseSeconds: number;
  webhookSecret: string;
  urlSigningSecret: string;
  signedLinkTtlSeconds: number;
  maxInputPixels: number;
  minImageSide: number;
  minImages: number;
  datasetMaxSide: number;
  maxDownloadBytes: number;
  /** 0 keeps uploads until they are deleted. */
  uploadRetentionHours: number;
  trainerStallSeconds: number;
  /** 0 keeps a finished generation until it is deleted. */
  generationRetentionHours: number;
  /** 0 keeps a finished task's photos until the task is deleted. */
  photoRetentionHours: number;
  /** MiB the data dir's disk keeps free; 0 sets no minimum. */
  minFreeDiskMb: number;
  /** Requests per tenant per minute and API process; 0 turns a limit off. */
  rateLimit: { createsPerMinute: number; uploadsPerMinute: number };
  vlm: { url: string; model: string; apiKey: string };
  logLevel: string;
  devPrintToken: boolean;
}

export class ConfigError extends Error {}

type VarName = (typeof CONFIG_VARS)[number]['name'];

function reader(env: NodeJS.ProcessEnv) {
  const raw = (name: VarName): string => {
    const spec = CONFIG_VARS.find((v) => v.name === name)!;
    const value = env[name];
    return value === undefined || value === '' ? spec.default : value;
  };
  return {
    str: raw,
    int(name: VarName): number {
      const v = raw(name);
      if (!/^-?\d+$/.test(v)) throw new ConfigError(`${name} must be an integer, got "${v}"`);
      return Number(v);
    },
    bool(name: VarName): boolean {
      const v = raw(name).toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      throw new ConfigError(`${name} must be 0 or 1, got "${v}"`);
    },
    list(name: VarName): string[] {
      return raw(name)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    },
  };
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const r = reader(env);
  if (r.int('KILN_UPLOAD_RETENTION_HOURS') < 0) throw new ConfigError('KILN_UPLOAD_RETENTION_HOURS must be 0 (keep) or a number of hours');
  if (r.int('KILN_GENERATION_RETENTION_HOURS') < 0) throw new ConfigError('KILN_GENERATION_RETENTION_HOURS must be 0 (keep) or a number of hours');
  if (r.int('KILN_PHOTO_RETENTION_HOURS') < 0) throw new ConfigError('KILN_PHOTO_RETENTION_HOURS must be 0 (keep) or a number of hours');
  if (r.int('KILN_MIN_FREE_DISK_MB') < 0) throw new ConfigError('KILN_MIN_FREE_DISK_MB must be 0 (no minimum) or a number of MiB');
  const dataDir = path.resolve(r.str('KILN_DATA_DIR'));
  return {
    port: r.int('KILN_PORT'),
    host: r.str('KILN_HOST'),
    dataDir,
    databaseUrl: r.str('KILN_DATABASE_URL'),
    jwt: {
      secret: r.str('KILN_JWT_SECRET'),
      jwksUrl: r.str('KILN_JWT_JWKS_URL'),
      publicKey: r.str('KILN_JWT_PUBLIC_KEY'),
      issuer: r.str('KILN_JWT_ISSUER'),
      audience: r.str('KILN_JWT_AUDIENCE'),
    },
    python: r.str('KILN_PYTHON') ? path.resolve(r.str('KILN_PYTHON')) : path.join(REPO_ROOT, '.venv', 'bin', 'python'),
    gpus: r.list('KILN_GPUS'),
    cpuSlots: r.int('KILN_CPU_SLOTS'),
    preprocessSlots: r.int('KILN_PREPROCESS_SLOTS'),
    defaultBaseModel: r.str('KILN_DEFAULT_BASE_MODEL'),
    sourceRoots: r.list('KILN_SOURCE_ROOTS').map((p) => path.resolve(p)),
    allowPrivateNetworks: r.bool('KILN_ALLOW_PRIVATE_NETWORKS'),
    maxAttempts: r.int('KILN_MAX_ATTEMPTS'),
    maxRunningPerTenant: r.int('KILN_MAX_RUNNING_PER_TENANT'),
    tenantMonthlyTrainingHours: r.int('KILN_TENANT_MONTHLY_TRAINING_HOURS'),
    leaseSeconds: r.int('KILN_LEASE_SECONDS'),
    webhookSecret: r.str('KILN_WEBHOOK_SECRET'),
    urlSigningSecret: r.str('KILN_URL_SIGNING_SECRET'),
    signedLinkTtlSeconds: r.int('KILN_SIGNED_LINK_TTL_SECONDS'),
    maxInputPixels: r.int('KILN_MAX_INPUT_PIXELS'),
    minImageSide: r.int('KILN_MIN_IMAGE_SIDE'),
    minImages: r.int('KILN_MIN_IMAGES'),
    datasetMaxSide: r.int('KILN_DATASET_MAX_SIDE'),
    maxDownloadBytes: r.int('KILN_MAX_DOWNLOAD_BYTES'),
    uploadRetentionHours: r.int('KILN_UPLOAD_RETENTION_HOURS'),
    trainerStallSeconds: r.int('KILN_TRAINER_STALL_SECONDS'),
    minFreeDiskMb: r.int('KILN_MIN_FREE_DISK_MB'),
    photoRetentionHours: r.int('KILN_PHOTO_RETENTION_HOURS'),
    generationRetentionHours: r.int('KILN_GENERATION_RETENTION_HOURS'),
    rateLimit: { createsPerMinute: r.int('KILN_RATE_LIMIT_CREATES_PER_MINUTE'), uploadsPerMinute: r.int('KILN_RATE_LIMIT_UPLOADS_PER_MINUTE') },
    vlm: { url: r.str('KILN_VLM_URL'), model: r.str('KILN_VLM_MODEL'), apiKey: r.str('KILN_VLM_API_KEY') },
    logLevel: r.str('KILN_LOG_LEVEL'),
    devPrintToken: r.bool('KILN_DEV_PRINT_TOKEN'),
  };
}

/** A config for tests: defaults, a throwaway data dir, overrides on top. */
export function testConfig(dataDir: string, overrides: Partial<Config> = {}): Config {
  return { ...loadConfig({ KILN_DATA_DIR: dataDir, KILN_JWT_SECRET: 'test-secret-test-secret-test-secret!' }), ...overrides };
}
