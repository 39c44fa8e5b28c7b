import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { crc32, deflateRawSync } from 'node:zlib';
import sharp from 'sharp';
import { testConfig, type Config } from '../../src/config.js';
import { runPreprocessing, type PreprocessJob, type PreprocessOptions, type PreprocessResult, type PreprocessStage } from '../../src/preprocess/index.js';

/** A temp dir removed when the test file finishes. */
export async function tempDir(prefix = 'kiln-pre-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A picture of coarse random blocks: distinct seeds give unrelated perceptual hashes, while
 * re-encoding or resizing the same seed keeps the hash, which is what duplicate tests need.
 */
export function blockImage(width: number, height: number, seed: number): sharp.Sharp {
  const gw = 16;
  const gh = 12;
  const grid = Buffer.alloc(gw * gh * 3);
  let state = seed * 2654435761 + 1;
  for (let i = 0; i < grid.length; i++) {
    state = (state * 1103515245 + 12345) % 2147483648;
    grid[i] = state % 256;
  }
  return sharp(grid, { raw: { width: gw, height: gh, channels: 3 } }).resize(width, height, { fit: 'fill', kernel: 'nearest' });
}

export async function jpeg(width: number, height: number, seed: number, quality = 90): Promise<Buffer> {
  return blockImage(width, height, seed).jpeg({ quality }).toBuffer();
}

export interface TestServer {
  url: string;
  port: number;
  hits: Map<string, number>;
}

/** A real HTTP server on 127.0.0.1:0; `handler` answers, `hits` counts requests per path. */
export async function startServer(handler: http.RequestListener): Promise<TestServer> {
  const hits = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const key = new URL(req.url ?? '/', 'http://x').pathname;
    hits.set(key, (hits.get(key) ?? 0) + 1);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port, hits };
}

export interface RunOutcome {
  result?: PreprocessResult;
  error?: Error;
  events: { stage: PreprocessStage; processed: number; total: number }[];
  taskDir: string;
}

/** Runs the stage over `sources` with test-friendly defaults; never throws, returns what happened. */
export async function runJob(
  sources: string[],
  opts: {
    config?: Partial<Config>;
    job?: Partial<PreprocessJob>;
    options?: PreprocessOptions;
    signal?: AbortSignal;
    dataDir?: string;
    onProgress?: (p: RunOutcome['events'][number]) => void;
  } = {},
): Promise<RunOutcome & { config: Config }> {
  const dataDir = opts.dataDir ?? (await tempDir());
  const config = testConfig(dataDir, { allowPrivateNetworks: true, minImageSide: 64, ...opts.config });
  const taskDir = path.join(dataDir, 'tasks', opts.job?.taskId ?? 'task-1');
  const events: RunOutcome['events'] = [];
  const job: PreprocessJob = {
    taskId: 'task-1',
    tenantId: null,
    taskDir,
    sources,
    triggerWord: 'ohwx',
    entityType: 'PRODUCT',
    transforms: null,
    captioning: { strategy: 'trigger_only', prompt: null },
    ...opts.job,
  };
  const hooks = {
    onProgress: (p: RunOutcome['events'][number]) => {
      events.push(p);
      opts.onProgress?.(p);
    },
    signal: opts.signal ?? new AbortController().signal,
  };
  const options: PreprocessOptions = { connectTimeoutMs: 2000, timeoutMs: 3000, retryBackoffMs: 10, ...opts.options };
  try {
    return { result: await runPreprocessing(job, config, hooks, options), events, taskDir, config };
  } catch (error) {
    return { error: error as Error, events, taskDir, config };
  }
}

/**
 * Minimal zip writer (deflated entries; honest sizes unless `claimSize` lies) so tests can
 * build hostile archives that no well-behaved zip library would write.
 */
export function makeZip(files: { name: string; data: Buffer; claimSize?: number }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const f of files) {
    const name = Buffer.from(f.name, 'utf8');
    const compressed = deflateRawSync(f.data);
    const crc = crc32(f.data);
    const size = f.claimSize ?? f.data.length;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(compressed.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(compressed.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, compressed);
    centrals.push(central, name);
    offset += local.length + name.length + compressed.length;
  }
  const centralDir = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(centralDir.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, centralDir, end]);
}
