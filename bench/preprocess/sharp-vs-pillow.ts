/**
 * Preprocessing throughput, sharp (the stage's own inspect + render code, at the stage's
 * concurrency) against Pillow doing the same work: validate, orient, resize to 1024, JPEG q95.
 * Run directly: node --import tsx bench/preprocess/sharp-vs-pillow.ts
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { mapLimit } from '../../src/preprocess/fs-util.js';
import { inspectImage } from '../../src/preprocess/inspect.js';
import { renderImage } from '../../src/preprocess/render.js';

const IMAGES = 48;
const WIDTH = 4000;
const HEIGHT = 3000;
const MAX_SIDE = 1024;
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface PreprocessBench {
  sharp_ips: number;
  /** Pillow as usually written: full-resolution load(), then thumbnail. */
  pillow_ips: number;
  ratio: number;
  /** Pillow with Image.draft (reduced-scale JPEG decode), the fair match for sharp's shrink-on-load. */
  pillow_draft_ips: number;
  ratio_vs_draft: number;
}

/** Smooth random scenes with film-grain-like noise: photo-sized JPEGs, not flat colour. */
async function generate(dir: string): Promise<void> {
  const grain = randomBytes(WIDTH * HEIGHT * 3);
  for (let i = 0; i < grain.length; i++) grain[i] = 104 + (grain[i] % 48);
  for (let i = 0; i < IMAGES; i++) {
    const scene = await sharp(randomBytes(40 * 30 * 3), { raw: { width: 40, height: 30, channels: 3 } })
      .resize(WIDTH, HEIGHT, { kernel: 'cubic' })
      .raw()
      .toBuffer();
    await sharp(scene, { raw: { width: WIDTH, height: HEIGHT, channels: 3 } })
      .composite([{ input: grain, raw: { width: WIDTH, height: HEIGHT, channels: 3 }, blend: 'soft-light' }])
      .jpeg({ quality: 90 })
      .toFile(path.join(dir, `${String(i).padStart(3, '0')}.jpg`));
  }
}

async function runSharp(inDir: string, outDir: string): Promise<number> {
  const files = (await readdir(inDir)).sort();
  const concurrency = Math.max(1, Math.min(4, os.availableParallelism())); // as runPreprocessing
  const started = performance.now();
  await mapLimit(files, concurrency, async (name) => {
    const bytes = await readFile(path.join(inDir, name));
    const facts = await inspectImage(bytes, { maxInputPixels: 100_000_000, minImageSide: 256 });
    const [out] = await renderImage(bytes, facts.format, [], { maxInputPixels: 100_000_000, maxSide: MAX_SIDE });
    await writeFile(path.join(outDir, name), out.data);
  });
  return (performance.now() - started) / 1000;
}

async function runPillow(inDir: string, outDir: string, draft: boolean): Promise<number> {
  const python = process.env.KILN_PYTHON ?? path.join(repoRoot, '.venv/bin/python');
  const args = [path.join(repoRoot, 'bench/preprocess/pillow_baseline.py'), inDir, outDir, ...(draft ? ['--draft'] : [])];
  const { stdout } = await promisify(execFile)(python, args);
  const { images, seconds } = JSON.parse(stdout.trim().split('\n').at(-1)!) as { images: number; seconds: number };
  if (images !== IMAGES) throw new Error(`pillow processed ${images} images, expected ${IMAGES}`);
  return seconds;
}

/** A timing only counts if every output is there, decodes, and has the expected size. */
async function checkOutputs(dir: string): Promise<void> {
  const files = await readdir(dir);
  if (files.length !== IMAGES) throw new Error(`${dir}: ${files.length} outputs, expected ${IMAGES}`);
  for (const f of files) {
    const meta = await sharp(path.join(dir, f)).metadata();
    if (meta.format !== 'jpeg' || meta.width !== MAX_SIDE || meta.height !== (MAX_SIDE * HEIGHT) / WIDTH) {
      throw new Error(`${dir}/${f}: ${meta.format} ${meta.width}x${meta.height}, expected jpeg ${MAX_SIDE}x${(MAX_SIDE * HEIGHT) / WIDTH}`);
    }
  }
}

export async function benchPreprocess(): Promise<PreprocessBench> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-bench-pre-'));
  try {
    const inDir = path.join(dir, 'in');
    await mkdir(inDir);
    await generate(inDir);
    await mkdir(path.join(dir, 'sharp'));
    const sharpSeconds = await runSharp(inDir, path.join(dir, 'sharp'));
    const pillowSeconds = await runPillow(inDir, path.join(dir, 'pillow'), false);
    const draftSeconds = await runPillow(inDir, path.join(dir, 'pillow-draft'), true);
    for (const out of ['sharp', 'pillow', 'pillow-draft']) await checkOutputs(path.join(dir, out));
    const sharp_ips = IMAGES / sharpSeconds;
    const pillow_ips = IMAGES / pillowSeconds;
    const pillow_draft_ips = IMAGES / draftSeconds;
    return {
      sharp_ips: round(sharp_ips),
      pillow_ips: round(pillow_ips),
      ratio: round(sharp_ips / pillow_ips),
      pillow_draft_ips: round(pillow_draft_ips),
      ratio_vs_draft: round(sharp_ips / pillow_draft_ips),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const round = (n: number) => Math.round(n * 100) / 100;

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const result = await benchPreprocess();
  console.log(JSON.stringify({ bench: 'preprocess', images: IMAGES, size: `${WIDTH}x${HEIGHT}`, cores: os.availableParallelism(), ...result }));
  console.table({
    sharp: { 'images/s': result.sharp_ips },
    pillow: { 'images/s': result.pillow_ips },
    'pillow (draft)': { 'images/s': result.pillow_draft_ips },
  });
  console.log(`sharp / pillow = ${result.ratio}x; sharp / pillow with draft = ${result.ratio_vs_draft}x`);
}
