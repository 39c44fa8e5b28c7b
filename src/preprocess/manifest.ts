import { displaySource } from './fs-util.js';
import type { ManifestEntry } from '../domain/schemas/manifest.js';
import type { PreprocessJob } from './types.js';

export interface Manifest {
  version: 1;
  task_id: string;
  trigger_word: string;
  entity_type: PreprocessJob['entityType'];
  captioning: PreprocessJob['captioning'];
  transforms: PreprocessJob['transforms'];
  accepted: number;
  rejected: number;
  entries: ManifestEntry[];
}

export function newEntry(source: string, zipEntry: string | null, filename: string | null): ManifestEntry {
  return {
    // Credentials stripped and data: URIs shortened; the sha256 identifies the bytes.
    source: displaySource(source),
    filename,
    zip_entry: zipEntry,
    status: 'rejected',
    reason: null,
    sha256: null,
    bytes: null,
    format: null,
    width: null,
    height: null,
    outputs: [],
    caption: null,
  };
}

export function buildManifest(job: PreprocessJob, entries: ManifestEntry[]): Manifest {
  const accepted = entries.filter((e) => e.status === 'accepted').length;
  return {
    version: 1,
    task_id: job.taskId,
    trigger_word: job.triggerWord,
    entity_type: job.entityType,
    captioning: job.captioning,
    transforms: job.transforms,
    accepted,
    rejected: entries.length - accepted,
    entries,
  };
}
