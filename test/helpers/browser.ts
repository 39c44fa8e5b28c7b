import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import puppeteer, { TimeoutError, type Browser, type EvaluateFunc, type Page } from 'puppeteer-core';
import sharp from 'sharp';
import { REPO_ROOT } from '../../src/config.js';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import { api, makePhotos, type Target } from '../e2e/scenario.js';
import { freePort } from './free-port.js';
import { tmpDir } from './harness.js';
import { mintToken, startKiln, until, waitForHttp, type KilnProcess } from './processes.js';

/** Debian's Chromium; puppeteer-core drives it, nothing is downloaded. */
export const CHROMIUM = '/usr/bin/chromium';
/** Tests run as root (no sandbox) in containers with a small /dev/shm. */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-dev-shm-usage'];
export const VIEWPORT = { width: 1280, height: 800 };
/** The built dashboard (`npx vite build --config web/vite.config.ts`), which `kiln serve` serves at `/`. */
export const WEB_INDEX = path.join(REPO_ROOT, 'dist', 'web', 'index.html');
export const SCREENSHOTS = path.join(REPO_ROOT, 'docs', 'screenshots');

/** A real `kiln serve` (SQLite, in-process worker, CPU trainer) on a temp data dir, with an admin token. */
export interface Dashboard extends Target {
  kiln: KilnProcess;
  stop(): Promise<void>;
}

export async function startDashboard(tenant = 'web'): Promise<Dashboard> {
  assert.ok(fs.existsSync(WEB_INDEX), `${WEB_INDEX} is missing: build the dashboard first (npx vite build --config web/vite.config.ts)`);
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing (apt-get install chromium)`);
  const dataDir = tmpDir('kiln-web-');
  const port = await freePort();
  const env = { KILN_DATA_DIR: dataDir, KILN_PORT: String(port), KILN_HOST: '127.0.0.1', KILN_LOG_LEVEL: 'warn' };
  const kiln = startKiln(['serve'], env, path.join(dataDir, 'serve.log'));
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitForHttp(`${baseUrl}/readyz`, 60_000);
  return { baseUrl, dataDir, token: await mintToken(tenant, true), kiln, stop: async () => void (await kiln.stop()) };
}

import type { Artifact } from '../../src/domain/schemas/artifacts.js';
export type { Artifact };

export async function artifactsOf(t: Target, id: string): Promise<Artifact[]> {
  const res = await api(t).json<Artifact[]>('GET', `/api/v1/training/${id}/artifacts`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

export async function taskOf(t: Target, id: string): Promise<TrainingTask> {
  const res = await api(t).json<TrainingTask>('GET', `/api/v1/training/${id}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body;
}

const FINISHED = ['COMPLETED', 'FAILED', 'CANCELLED'];

/** Waits, through the API, for a task to finish; returns it, whatever it ended as. */
export async function finished(t: Target, id: string, timeoutMs = 300_000): Promise<TrainingTask> {
  return until(
    async () => {
      const task = await taskOf(t, id);
      return FINISHED.includes(task.status) && task;
    },
    `task ${id} to finish`,
    timeoutMs,
    500,
  );
}

/** A small task trained through the API on the tiny model, with samples at two steps and the LoRA. */
export async function trainSmallTask(t: Target, trigger = 'KLNWEB'): Promise<{ task: TrainingTask; artifacts: Artifact[] }> {
  const client = api(t);
  const refs = await client.upload(await makePhotos(3, 11));
  const created = await client.json<TrainingTask>('POST', '/api/v1/training/', {
    trigger_word: trigger,
    base_model_path: 'builtin:tiny-flux',
    steps: 20,
    save_every: 10,
    sample_every: 10,
    sample_steps: 2,
    sample_prompts: ['a photo of [trigger]'],
    learning_rate: 0.001,
    source_images: refs,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const task = await finished(t, created.body.id);
  assert.equal(task.status, 'COMPLETED', task.error_message ?? undefined);
  return { task, artifacts: await artifactsOf(t, task.id) };
}

/** Distinct JPEG photos of `size` px a side, made by sharp (the PNGs of the e2e scenario, re-encoded). */
export async function makeJpegs(count: number, seed = 1): Promise<Buffer[]> {
  return Promise.all((await makePhotos(count, seed)).map((png) => sharp(png).jpeg({ quality: 90 }).toBuffer()));
}

export const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

export async function launchBrowser(): Promise<Browser> {
  return puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, defaultViewport: VIEWPORT });
}

/** A tab whose console errors, page errors and failed requests are kept, to say what went wrong. */
export interface WatchedPage {
  page: Page;
  problems: string[];
}

export async function openTab(browser: Browser): Promise<WatchedPage> {
  const page = await browser.newPage();
  await page.setViewport(VIEWPORT);
  const problems: string[] = [];
  page.on('console', (m) => {
    // A 4xx the page asked for and handled (a 422 shown next to its field) is logged too; not a fault.
    if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => void problems.push(`pageerror: ${e instanceof Error ? e.message : String(e)}`));
  page.on('requestfailed', (r) => {
    // An SSE stream or a refresh cut by a navigation is no fault of the page.
    if (r.failure()?.errorText !== 'net::ERR_ABORTED') problems.push(`requestfailed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on('response', (r) => void (r.status() >= 500 && problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`)));
  return { page, problems };
}

/** Where the page is and what it shows: the message of every wait that times out. */
export async function describePage(tab: WatchedPage): Promise<string> {
  const seen = await tab.page
    .evaluate(() => ({
      url: location.href,
      page: document.body?.dataset.page,
      ready: document.body?.dataset.ready,
      main: (document.querySelector('main')?.textContent ?? document.body?.textContent ?? '').replace(/\s+/g, ' ').trim().slice(0, 600),
    }))
    .catch((err: Error) => ({ error: err.message }));
  return `${JSON.stringify(seen)}${tab.problems.length ? `\nproblems: ${tab.problems.slice(-10).join('\n  ')}` : ''}`;
}

/** page.waitForFunction, whose timeout says what was awaited and what the page showed instead. */
export async function waitIn<Args extends unknown[]>(tab: WatchedPage, what: string, timeoutMs: number, fn: EvaluateFunc<Args>, ...args: Args): Promise<void> {
  try {
    await tab.page.waitForFunction(fn, { timeout: timeoutMs, polling: 100 }, ...args);
  } catch (err) {
    if (!(err instanceof TimeoutError)) throw err;
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; the page: ${await describePage(tab)}`, { cause: err });
  }
}

/** Waits for `document.body.dataset.page === name` and its first data (`data-ready="1"`). */
export async function waitForPage(tab: WatchedPage, name: string, timeoutMs = 20_000): Promise<void> {
  await waitIn(tab, `body[data-page="${name}"][data-ready="1"]`, timeoutMs, (n: string) => document.body?.dataset.page === n && document.body.dataset.ready === '1', name);
}

/** Opens a dashboard path (client-side routes included) and waits for it to render with its data. */
export async function visit(tab: WatchedPage, baseUrl: string, urlPath: string, name: string, timeoutMs = 20_000): Promise<void> {
  await tab.page.goto(`${baseUrl}${urlPath}`, { waitUntil: 'domcontentloaded' });
  await waitForPage(tab, name, timeoutMs);
}

/** The trimmed text of the first element matching `selector`, or null when there is none. */
export async function textOf(page: Page, selector: string): Promise<string | null> {
  return page.$eval(selector, (el) => (el.textContent ?? '').trim()).catch(() => null);
}

/**
 * Drops files on an element as a user dragging them from the desktop would: dragenter, dragover
 * and drop, each a real DragEvent carrying one DataTransfer of File objects built in the page.
 */
export async function dropFiles(page: Page, selector: string, files: { name: string; type: string; bytes: Buffer }[]): Promise<void> {
  const payload = files.map((f) => ({ name: f.name, type: f.type, base64: f.bytes.toString('base64') }));
  await page.$eval(
    selector,
    (zone, items) => {
      const dt = new DataTransfer();
      for (const item of items) {
        const binary = atob(item.base64);
        const bytes = new Uint8Array(binary.length);
        for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
        dt.items.add(new File([bytes], item.name, { type: item.type }));
      }
      for (const type of ['dragenter', 'dragover', 'drop']) zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
    },
    payload,
  );
}

export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.setViewport(VIEWPORT);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: file, type: 'png' });
  const meta = await sharp(file).metadata();
  assert.deepEqual({ width: meta.width, height: meta.height }, VIEWPORT, `${file} is 1280x800`);
  return file;
}

/**
 * The DOM Chromium holds after `budgetMs` of virtual time, as `chromium --headless --dump-dom`
 * prints it: the page's scripts ran, its fetches answered, no puppeteer in between.
 */
export async function dumpDom(url: string, budgetMs = 15_000): Promise<string> {
  const profile = tmpDir('kiln-chromium-');
  try {
    return await new Promise<string>((resolve, reject) => {
      execFile(
        CHROMIUM,
        ['--headless', ...CHROMIUM_ARGS, `--user-data-dir=${profile}`, '--dump-dom', `--virtual-time-budget=${budgetMs}`, url],
        { timeout: 120_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
        (err, stdout, stderr) => {
          if (err) reject(new Error(`chromium --dump-dom ${url.replace(/#.*/, '#…')}: ${err.message}\n${stderr.slice(-2000)}`, { cause: err }));
          else resolve(stdout);
        },
      );
    });
  } finally {
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

// A few readers of serialized HTML (what --dump-dom prints), enough for the assertions here.

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", nbsp: ' ' };
export const decodeHtml = (s: string) => s.replace(/&(amp|lt|gt|quot|#39|nbsp);/g, (_, e: string) => ENTITIES[e]);

/**
 * Every element whose tag matches `tag` (a regex source: `div`, or `[a-z][a-z0-9-]*` for any) and
 * whose opening tag holds `attrs` (a regex source, see hasAttr), as outer HTML.
 */
export function elements(html: string, tag: string, attrs = ''): string[] {
  const out: string[] = [];
  const open = new RegExp(`<(${tag})\\b(?=[^>]*${attrs})[^>]*>`, 'gi');
  const VOID = ['img', 'input', 'br', 'hr', 'meta', 'link', 'source'];
  for (let m = open.exec(html); m; m = open.exec(html)) {
    const name = m[1].toLowerCase();
    if (VOID.includes(name)) {
      out.push(m[0]);
      continue;
    }
    // Balance the tag's own opens and closes to find where this element ends.
    const scan = new RegExp(`<(/?)${name}\\b[^>]*>`, 'gi');
    scan.lastIndex = m.index + m[0].length;
    let depth = 1;
    let end = html.length;
    for (let s = scan.exec(html); s; s = scan.exec(html)) {
      depth += s[1] ? -1 : 1;
      if (depth === 0) {
        end = s.index + s[0].length;
        break;
      }
    }
    out.push(html.slice(m.index, end));
  }
  return out;
}

/** The element with this id (any tag), as outer HTML, or undefined. */
export const byId = (html: string, id: string): string | undefined => elements(html, '[a-z][a-z0-9-]*', hasAttr('id', id))[0];

/** The value of one attribute of an element's opening tag (entities decoded), or undefined. */
export function attr(element: string, name: string): string | undefined {
  const openTag = /^<[^>]*>/.exec(element)?.[0] ?? '';
  const m = new RegExp(`\\s${name}="([^"]*)"`, 'i').exec(openTag);
  return m ? decodeHtml(m[1]) : undefined;
}

/** The text of an HTML fragment: tags out, entities decoded, whitespace collapsed. */
export const htmlText = (fragment: string) =>
  decodeHtml(fragment.replace(/<(script|style)\b[\s\S]*?<\/\1>/gi, '').replace(/<[^>]*>/g, ' '))
    .replace(/\s+/g, ' ')
    .trim();

/** An attribute test for `elements`: `name="value"` with the value escaped as a regex. */
export const hasAttr = (name: string, value: string) => `\\s${name}="${value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/&/g, '&amp;')}"`;

/** An attribute test for `elements`: the class list holds `name`. */
export const hasClass = (name: string) => `\\sclass="(?:[^"]*\\s)?${name}(?:\\s[^"]*)?"`;
