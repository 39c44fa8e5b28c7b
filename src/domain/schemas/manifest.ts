/**
 * One entry of a task's `dataset/manifest.json` per source (or per zip entry): what
 * preprocessing made of it. Written by the preprocessing stage, read by the CLI and the dashboard.
 */
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

/** How a reason names an entry: an upload by the name it was sent under, then its reference. */
export function entryLabel(e: Pick<ManifestEntry, 'source' | 'filename' | 'zip_entry'>): string {
  const named = e.filename ? `${e.filename} (${e.source})` : e.source;
  return e.zip_entry ? `${named} (zip entry ${e.zip_entry})` : named;
}
