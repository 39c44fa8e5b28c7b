import { displaySource } from './fs-util.js';
import type { PreprocessJob } from './types.js';

/** One line of manifest.json per source (or per zip entry). */
export interface ManifestEntry {
  source: string;
  /** For an upload, the name it was uploaded under. */
  filename: string | null;
  zip_entry: string | null;
  status: 'accepted' | 'rejected';
  reason: string | null;
  sha256: string | null;
  bytes: number | null;
  format: string | null;
  /** Pixel size as stored in the source file, before orientation and transforms. */
  width: number | null;
  height: number | null;
  outputs: { file: string; width: number; height: number }[];
  caption: string | null;
}

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

/** How a reason names an entry: an upload by the name it was sent under, then its reference. */
export function entryLabel(e: Pick<ManifestEntry, 'source' | 'filename' | 'zip_entry'>): string {
  const named = e.filename ? `${e.filename} (${e.source})` : e.source;
  return e.zip_entry ? `${named} (zip entry ${e.zip_entry})` : named;
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
