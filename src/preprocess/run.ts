import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../config.js';
import { taskPaths } from '../domain/task-folder.js';
import { CaptionError, localCaption, vlmCaption, type CaptionContext } from './captions.js';
import { localVlmCaptions } from './local-vlm.js';
import { mapLimit, sha256, writeFileAtomic } from './fs-util.js';
import { gatherSources, type Gathered } from './gather.js';
import { hammingDistance, ImageRejected, inspectImage, type ImageFacts } from './inspect.js';
import { entryLabel, type ManifestEntry } from '../domain/schemas/manifest.js';
import { buildManifest, newEntry } from './manifest.js';
import { renderImage } from './render.js';
import { SourceIndex } from './source-index.js';
import { parseTransforms } from './transform-spec.js';
import { isDiskFull } from '../util/disk-space.js';
import { PreprocessError, type PreprocessHooks, type PreprocessJob, type PreprocessOptions, type PreprocessResult, type PreprocessStage, type ZipLimits } from './types.js';

/** dHash distance at or below which two images count as the same picture. */
const NEAR_DUPLICATE_DISTANCE = 4;
const ZIP_MAX_ENTRIES = 2000;
const ZIP_MAX_TOTAL_BYTES = 1024 ** 3;

/**
 * The preprocessing stage: gather sources, validate, transform, caption, and write
 * taskDir/dataset/ with NNNN.<ext> + NNNN.txt and manifest.json. Rejected sources are recorded,
 * not fatal; the stage fails (PreprocessError) only when fewer than KILN_MIN_IMAGES remain.
 */
export async function runPreprocessing(job: PreprocessJob, config: Config, hooks: PreprocessHooks, options: PreprocessOptions = {}): Promise<PreprocessResult> {
  const { signal } = hooks;
  signal.throwIfAborted();
  const { transforms, issues } = parseTransforms(job.transforms);
  if (issues.length) {
    throw new PreprocessError(`invalid preprocessing_transforms: ${issues.map((i) => `[${i.loc.slice(2).join('.')}] ${i.msg}`).join('; ')}`);
  }
  const imageConcurrency = options.imageConcurrency ?? Math.max(1, Math.min(4, os.availableParallelism()));
  const { sources: sourcesDir, dataset: datasetDir, manifest: manifestPath } = taskPaths(job.taskDir);
  await mkdir(sourcesDir, { recursive: true });
  const progress = async (stage: PreprocessStage, processed: number, total: number) => hooks.onProgress({ stage, processed, total });

  // downloading
  let fetched = 0;
  await progress('downloading', 0, job.sources.length);
  const zipLimits: ZipLimits = {
    maxEntries: ZIP_MAX_ENTRIES,
    maxEntryBytes: config.maxDownloadBytes,
    maxTotalBytes: ZIP_MAX_TOTAL_BYTES,
    ...options.zipLimits,
  };
  const gathered = await gatherSources(job.sources, {
    config,
    tenantId: job.tenantId,
    sourcesDir,
    index: await SourceIndex.load(sourcesDir),
    concurrency: options.downloadConcurrency ?? 4,
    zipLimits,
    download: {
      allowPrivateNetworks: config.allowPrivateNetworks,
      allowedOrigins: options.allowedOrigins,
      lookup: options.lookup,
      maxBytes: config.maxDownloadBytes,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      timeoutMs: options.timeoutMs ?? 60_000,
      retryBackoffMs: options.retryBackoffMs ?? 500,
      signal,
    },
    onSourceDone: () => progress('downloading', ++fetched, job.sources.length),
  });
  const entries = gathered.map((g) => ({ ...newEntry(g.source, g.zipEntry, g.filename), reason: g.reason }));

  const finishIfTooFew = async () => {
    const accepted = entries.filter((e) => e.status === 'accepted').length;
    if (accepted >= config.minImages) return;
    await writeManifest(datasetDir, manifestPath, job, entries);
    throw new PreprocessError(failureMessage(accepted, config.minImages, entries));
  };
  const decodedDir = path.join(sourcesDir, 'decoded');
  try {
    // validating
    const facts = await validate(gathered, entries, decodedDir, config, imageConcurrency, signal, progress);
    await finishIfTooFew();

    // transforming
    await rm(datasetDir, { recursive: true, force: true });
    await mkdir(datasetDir, { recursive: true });
    const accepted = entries.map((e, i) => ({ e, i })).filter(({ e }) => e.status === 'accepted');
    // Each flip doubles the outputs of a source, so file numbers are known before rendering.
    const perSource = 2 ** transforms.filter((t) => t.type === 'flip_horizontal').length;
    let rendered = 0;
    await progress('transforming', 0, accepted.length);
    await mapLimit(accepted, imageConcurrency, async ({ e, i }, k) => {
      signal.throwIfAborted();
      try {
        const outputs = await renderImage(await readFile(facts[i]!.renderFrom), facts[i]!.format, transforms, {
          maxInputPixels: config.maxInputPixels,
          maxSide: config.datasetMaxSide,
        });
        for (const [j, out] of outputs.entries()) {
          const file = `${String(k * perSource + j + 1).padStart(4, '0')}.${out.ext}`;
          await writeFile(path.join(datasetDir, file), out.data);
          e.outputs.push({ file, width: out.width, height: out.height });
        }
      } catch (err) {
        // A full disk is no fault of the photo: the stage fails, and gives back what it wrote.
        if (isDiskFull(err)) throw err;
        e.status = 'rejected';
        e.reason = `could not be processed (${(err as Error).message.split('\n')[0]})`;
      }
      await progress('transforming', ++rendered, accepted.length);
    });
  } catch (err) {
    // The half-written dataset would keep the disk full, and the failure could not even be recorded.
    if (isDiskFull(err)) await rm(datasetDir, { recursive: true, force: true });
    throw err;
  } finally {
    // HEIC photos' decoded PNGs are large, and once the dataset is written they are spent.
    await rm(decodedDir, { recursive: true, force: true });
  }
  await finishIfTooFew();

  // captioning
  const captionCtx: CaptionContext = { ...job.captioning, triggerWord: job.triggerWord, entityType: job.entityType };
  const toCaption = entries.map((e, i) => ({ e, i })).filter(({ e }) => e.status === 'accepted');
  let captioned = 0;
  await progress('captioning', 0, toCaption.length);
  // Without an endpoint, vlm captions come from the local model, all in one process.
  const local =
    captionCtx.strategy === 'vlm' && !config.vlm.url
      ? await localVlmCaptions(
          toCaption.map(({ e }) => path.join(datasetDir, e.outputs[0].file)),
          captionCtx,
          config,
          job.taskDir,
          signal,
        ).catch((err) => {
          if (err instanceof CaptionError) throw new PreprocessError(`captioning failed: ${err.message}`);
          throw err;
        })
      : null;
  await mapLimit(toCaption, imageConcurrency, async ({ e, i }) => {
    signal.throwIfAborted();
    let caption: string;
    if (local) {
      caption = local.get(path.join(datasetDir, e.outputs[0].file))!;
    } else if (captionCtx.strategy === 'vlm') {
      const image = await readFile(path.join(datasetDir, e.outputs[0].file));
      try {
        caption = await vlmCaption(image, captionCtx, config, {
          connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
          timeoutMs: options.timeoutMs ?? 60_000,
          signal,
        });
      } catch (err) {
        if (err instanceof CaptionError) throw new PreprocessError(`captioning ${entryLabel(e)} failed: ${err.message}`);
        throw err;
      }
    } else {
      caption = localCaption(captionCtx, gathered[i].providedCaption);
    }
    e.caption = caption;
    for (const out of e.outputs) await writeFile(path.join(datasetDir, out.file.replace(/\.[a-z]+$/, '.txt')), `${caption}\n`);
    await progress('captioning', ++captioned, toCaption.length);
  });

  // finalizing
  await progress('finalizing', 0, 1);
  await writeManifest(datasetDir, manifestPath, job, entries);
  await progress('finalizing', 1, 1);
  return {
    datasetDir,
    manifestPath,
    accepted: toCaption.length,
    rejected: entries.filter((e) => e.status === 'rejected').map((e) => ({ source: entryLabel(e), reason: e.reason! })),
  };
}

/** What validation learnt of an image, and the file its dataset images are rendered from. */
type Inspected = Omit<ImageFacts, 'decoded'> & { renderFrom: string };

/**
 * Inspects every gathered file, then rules on duplicates in source order (the first one wins).
 * A photo sharp cannot decode itself is rendered from the PNG its inspection decoded, kept in
 * `decodedDir` (never beside an upload, which other tasks may share).
 */
async function validate(
  gathered: Gathered[],
  entries: ManifestEntry[],
  decodedDir: string,
  config: Config,
  concurrency: number,
  signal: AbortSignal,
  progress: (stage: PreprocessStage, processed: number, total: number) => Promise<void>,
): Promise<(Inspected | null)[]> {
  const total = gathered.filter((g) => g.file !== null).length;
  let checked = 0;
  await progress('validating', 0, total);
  const facts = await mapLimit(gathered, concurrency, async (g, i) => {
    if (g.file === null) return null;
    signal.throwIfAborted();
    const entry = entries[i];
    const bytes = await readFile(g.file);
    entry.sha256 = sha256(bytes);
    entry.bytes = bytes.length;
    let result: Inspected | null = null;
    try {
      if (bytes.length > config.maxDownloadBytes) {
        throw new ImageRejected(`file is ${bytes.length} bytes, over the ${config.maxDownloadBytes}-byte limit (KILN_MAX_DOWNLOAD_BYTES)`);
      }
      const { decoded, ...facts } = await inspectImage(bytes, config, signal);
      let renderFrom = g.file;
      if (decoded) {
        renderFrom = path.join(decodedDir, `${entry.sha256.slice(0, 16)}.png`);
        await mkdir(decodedDir, { recursive: true });
        await writeFileAtomic(renderFrom, decoded);
      }
      result = { ...facts, renderFrom };
      Object.assign(entry, { format: result.format, width: result.width, height: result.height });
    } catch (err) {
      if (!(err instanceof ImageRejected)) throw err;
      entry.reason = err.message;
    }
    await progress('validating', ++checked, total);
    return result;
  });

  const bySha = new Map<string, ManifestEntry>();
  const kept: { entry: ManifestEntry; dhash: bigint }[] = [];
  facts.forEach((f, i) => {
    const entry = entries[i];
    if (!f) return;
    const same = bySha.get(entry.sha256!);
    const near = same ? undefined : kept.find((k) => hammingDistance(k.dhash, f.dhash) <= NEAR_DUPLICATE_DISTANCE);
    if (same) entry.reason = `exact duplicate of ${entryLabel(same)}`;
    else if (near) entry.reason = `near-duplicate of ${entryLabel(near.entry)} (perceptual hash distance ${hammingDistance(near.dhash, f.dhash)})`;
    else {
      entry.status = 'accepted';
      kept.push({ entry, dhash: f.dhash });
    }
    bySha.set(entry.sha256!, same ?? entry);
  });
  return facts;
}

async function writeManifest(datasetDir: string, manifestPath: string, job: PreprocessJob, entries: ManifestEntry[]): Promise<void> {
  await mkdir(datasetDir, { recursive: true });
  await writeFileAtomic(manifestPath, `${JSON.stringify(buildManifest(job, entries), null, 2)}\n`);
}

function failureMessage(accepted: number, minImages: number, entries: ManifestEntry[]): string {
  const rejected = entries.filter((e) => e.status === 'rejected');
  const lines = rejected.map((e) => `- ${entryLabel(e)}: ${e.reason}`);
  return [`not enough usable images: ${accepted} of ${entries.length} usable, at least ${minImages} needed (KILN_MIN_IMAGES); ${rejected.length} rejected:`, ...lines].join('\n');
}
