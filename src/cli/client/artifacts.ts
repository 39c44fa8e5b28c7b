import path from 'node:path';
import type { Artifact } from '../../domain/schemas/artifacts.js';
import { entryLabel, type ManifestEntry } from '../../domain/schemas/manifest.js';
import type { Command } from '../commands.js';
import { CONNECTION_OPTIONS, CONNECTION_USAGE, KilnClient, runClient, taskIdArgument, UsageError } from './http.js';

export function listArtifacts(client: KilnClient, id: string): Promise<Artifact[]> {
  return client.json<Artifact[]>('GET', `/api/v1/training/${id}/artifacts`);
}

/** Artifact paths may hold any character a file name can; each segment is escaped on its own. */
export function artifactUrl(id: string, artifactPath: string): string {
  return `/api/v1/training/${id}/artifacts/${artifactPath.split('/').map(encodeURIComponent).join('/')}`;
}

export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let n = bytes;
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${n.toFixed(1)} ${units[unit]}`;
}

const usage = `Usage: kiln artifacts <task-id> [--download PATH [--out DIR]]

Lists a task's artifacts (kind, size, path); with --download, fetches one and checks its sha256.

  --download PATH  the artifact's path as listed, e.g. output/lora.safetensors
  --out DIR        where to save it (default ./kiln-output/<task-id>/)
${CONNECTION_USAGE}`;

export const artifactsCommand: Command = {
  usage,
  options: { download: { type: 'string' }, out: { type: 'string' }, ...CONNECTION_OPTIONS },
  run: (values, positionals) =>
    runClient('artifacts', usage, async () => {
      const id = taskIdArgument(positionals);
      const client = KilnClient.fromOptions(values);
      const artifacts = await listArtifacts(client, id);
      const wanted = values.download as string | undefined;
      if (wanted === undefined) {
        if (artifacts.length === 0) console.error('no artifacts yet');
        for (const a of artifacts) console.log(`${a.kind.padEnd(11)}${formatSize(a.size).padStart(11)}  ${a.path}`);
        return 0;
      }
      const artifact = artifacts.find((a) => a.path === wanted);
      if (!artifact) throw new UsageError(`${wanted}: not among this task's artifacts (run "kiln artifacts ${id}" to list them)`);
      const dest = path.join((values.out as string | undefined) ?? path.join('kiln-output', id), path.basename(artifact.path));
      await client.download(artifactUrl(id, artifact.path), dest, artifact.sha256);
      console.log(dest);
      return 0;
    }),
};

/**
 * Downloads a finished task's weights into `outDir`, paths kept relative to output/: a
 * LoRA's .safetensors, or every file of a FULL fine-tune's model folder.
 */
export async function downloadWeights(client: KilnClient, id: string, artifacts: Artifact[], trainingType: string, outDir: string): Promise<string[]> {
  const weights = artifacts.filter((a) => a.kind === 'weights' && (trainingType === 'FULL' || a.path.endsWith('.safetensors')));
  if (weights.length === 0) throw new Error(`task ${id} completed but lists no weights`);
  return downloadInto(client, id, weights, outDir, 1);
}

/** What preprocessing left out, one line per source (`name: reason`); none before it has run. */
export async function unusedSources(client: KilnClient, id: string, artifacts: Artifact[]): Promise<string[]> {
  const manifest = artifacts.find((a) => a.kind === 'manifest');
  if (!manifest) return [];
  const { entries } = await client.json<{ entries: ManifestEntry[] }>('GET', artifactUrl(id, manifest.path));
  return entries.filter((e) => e.status === 'rejected').map((e) => `${entryLabel(e)}: ${e.reason}`);
}

/** Downloads a task's samples into `outDir/samples/`, named as the trainer named them (step_<n>_<prompt index>.png). */
export async function downloadSamples(client: KilnClient, id: string, artifacts: Artifact[], outDir: string): Promise<string[]> {
  const samples = artifacts.filter((a) => a.kind === 'sample');
  return downloadInto(client, id, samples, outDir, 0);
}

/** Saves artifacts under `outDir`, each at its path less the first `strip` folders. */
async function downloadInto(client: KilnClient, id: string, artifacts: Artifact[], outDir: string, strip: number): Promise<string[]> {
  const root = path.resolve(outDir);
  const saved: string[] = [];
  for (const a of artifacts) {
    const dest = path.resolve(root, ...a.path.split('/').slice(strip));
    // The listing comes from the network: never let it write outside the chosen folder.
    if (!dest.startsWith(root + path.sep)) throw new Error(`refusing artifact path ${a.path}`);
    await client.download(artifactUrl(id, a.path), dest, a.sha256);
    saved.push(dest);
  }
  return saved;
}
