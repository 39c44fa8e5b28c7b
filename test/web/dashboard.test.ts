import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, HTTPRequest, Page } from 'puppeteer-core';
import type { Generation } from '../../src/domain/schemas/generations.js';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import { api, makePhotos } from '../e2e/scenario.js';
import {
  artifactsOf,
  describePage,
  dropFiles,
  launchBrowser,
  makeJpegs,
  openTab,
  screenshot,
  sha256,
  startDashboard,
  taskOf,
  textOf,
  visit,
  waitForPage,
  waitIn,
  type Dashboard,
  type WatchedPage,
} from '../helpers/browser.js';
import { tmpDir } from '../helpers/harness.js';
import { mintToken, until } from '../helpers/processes.js';

const FINISHED = ['COMPLETED', 'FAILED', 'CANCELLED'];
const ORDER = ['PENDING', 'PREPROCESSING', 'QUEUED', 'TRAINING', 'COMPLETED'];
const PROMPT = 'a photo of [trigger]';

/** Locator.fill: waits for the field to be visible and enabled, then sets it as typing would. */
const fill = (page: Page, selector: string, value: string) => page.locator(selector).setTimeout(10_000).fill(value);

const isDisabled = (page: Page, selector: string) => page.$eval(selector, (el) => (el as HTMLButtonElement).disabled);

// The dashboard end to end, in a real browser (Chromium driven by puppeteer-core) against a real
// `kiln serve`: SQLite, the in-process worker and the CPU trainer on the tiny model. Long: it trains.
describe('dashboard end to end (Chromium, kiln serve, tiny model)', { timeout: 900_000 }, () => {
  let server: Dashboard;
  let browser: Browser;
  let tab: WatchedPage;
  let page: Page;
  let doneId: string;
  let cancelledId: string;
  const entityId = randomUUID();

  before(async () => {
    server = await startDashboard();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('signs in through /#token=, keeps the token in sessionStorage and drops the fragment', async () => {
    tab = await openTab(browser);
    page = tab.page;
    await page.goto(`${server.baseUrl}/#token=${server.token}`, { waitUntil: 'domcontentloaded' });
    await waitForPage(tab, 'list');
    assert.equal(await page.evaluate(() => location.hash), '', 'the fragment is gone from the address bar');
    assert.equal(page.url(), `${server.baseUrl}/`);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('kiln.token')), server.token);
    for (const href of ['/', '/new', '/generate', '/usage']) assert.ok(await page.$(`nav a[href="${href}"]`), `nav a[href="${href}"]`);
    // No tasks yet: the list may say so instead of drawing an empty table#task-list.
    assert.ok(await page.$('main'), `main: ${await describePage(tab)}`);
    assert.equal((await page.$$('tr[data-task-id]')).length, 0, 'no tasks yet');

    // A reload stays signed in: the token is read back from sessionStorage.
    await page.reload({ waitUntil: 'domcontentloaded' });
    await waitForPage(tab, 'list');
  });

  test('without a token the page asks for one in form#sign-in, and a pasted token signs in', async () => {
    const fresh = await openTab(browser);
    try {
      await fresh.page.goto(`${server.baseUrl}/generate`, { waitUntil: 'domcontentloaded' });
      await waitIn(fresh, 'body[data-page="sign-in"] with form#sign-in', 20_000, () => document.body?.dataset.page === 'sign-in' && !!document.querySelector('form#sign-in'));
      assert.equal(await fresh.page.$('nav a[href="/new"]'), null, 'no navigation before signing in');
      // The contract says input[name=token]; a textarea (a JWT is long) serves as well.
      await fill(fresh.page, 'form#sign-in [name=token]', server.token);
      await fresh.page.click('form#sign-in [type=submit]');
      await waitIn(
        fresh,
        'a signed-in page with its data',
        20_000,
        () => !!document.body?.dataset.page && document.body.dataset.page !== 'sign-in' && document.body.dataset.ready === '1',
      );
      assert.equal(await fresh.page.evaluate(() => sessionStorage.getItem('kiln.token')), server.token);
      assert.ok(await fresh.page.$('nav a[href="/"]'));
    } finally {
      await fresh.page.close();
    }
  });

  test('/new: dropped and chosen photos upload, a 422 lands next to its field, submit opens the new task', async () => {
    await page.click('nav a[href="/new"]');
    await waitForPage(tab, 'new');
    assert.equal(new URL(page.url()).pathname, '/new');
    assert.ok(await page.$('form#new-task label.drop-zone input[type=file][name=files][multiple]'), 'the file input sits in the drop zone');

    // Four photos dropped as a DataTransfer of Files, a fifth chosen through the file input.
    const jpegs = await makeJpegs(5, 21);
    const dropped = jpegs.slice(0, 4).map((bytes, i) => ({ name: `photo-${i + 1}.jpg`, type: 'image/jpeg', bytes }));
    await dropFiles(page, 'form#new-task .drop-zone', dropped);
    const chosen = path.join(tmpDir('kiln-web-photo-'), 'chosen-5.jpg');
    fs.writeFileSync(chosen, jpegs[4]);
    const input = await page.$('form#new-task input[type=file][name=files]');
    await input!.uploadFile(chosen);
    const names = [...dropped.map((f) => f.name), 'chosen-5.jpg'];
    await waitIn(
      tab,
      `li[data-file] with a progress for ${names.join(', ')}`,
      10_000,
      (n: string[]) => n.every((name) => document.querySelector(`li[data-file="${name}"] progress`)),
      names,
    );
    assert.equal((await page.$$('li[data-file]')).length, 5, 'each file listed once');

    await fill(page, 'input[name=trigger_word]', 'KLNDROP');
    await fill(page, 'input[name=steps]', '30');
    await fill(page, 'input[name=rank]', '8');
    await fill(page, 'input[name=learning_rate]', '0.001');
    assert.ok(await page.$('select[name=training_type]'));
    assert.ok(await page.$('select[name=preprocessing_captioning_strategy]'));
    if (!(await page.$eval('details#advanced', (d) => d.open))) await page.click('details#advanced > summary');
    await fill(page, 'details#advanced input[name=sample_every]', '15');
    await fill(page, 'details#advanced input[name=save_every]', '15');
    await fill(page, 'details#advanced input[name=sample_steps]', '2');
    // The CPU trains the built-in tiny model; the API's default base is FLUX.1-dev, which needs a GPU.
    await fill(page, 'details#advanced input[name=base_model_path]', 'builtin:tiny-flux');
    assert.ok(await page.$('details#advanced input[name=batch_size]'));

    await fill(page, 'textarea[name=sample_prompts]', PROMPT);
    await screenshot(page, 'new');

    // 51 prompts: only the API refuses them (at most 50), so its 422 is what the page shows.
    await fill(page, 'textarea[name=sample_prompts]', Array.from({ length: 51 }, (_, i) => `prompt ${i}`).join('\n'));
    await page.click('form#new-task button[type=submit]');
    await waitIn(
      tab,
      '.field-error[data-field="sample_prompts"] with a message',
      60_000,
      () => !!document.querySelector('.field-error[data-field="sample_prompts"]')?.textContent?.trim(),
    );
    assert.equal(new URL(page.url()).pathname, '/new', 'a refused create stays on the form');
    const uploaded = await page.$$eval('li[data-file] progress', (ps) => ps.map((p) => p.position));
    assert.deepEqual(uploaded, [1, 1, 1, 1, 1], 'every upload progress bar is full');

    await fill(page, 'textarea[name=sample_prompts]', PROMPT);
    await page.click('form#new-task button[type=submit]');
    await waitIn(tab, 'the address /tasks/<new id>', 60_000, () => /^\/tasks\/[0-9a-f-]{36}$/.test(location.pathname));
    doneId = new URL(page.url()).pathname.split('/')[2];

    const task = await taskOf(server, doneId);
    assert.equal(task.trigger_word, 'KLNDROP');
    assert.equal(task.steps, 30);
    assert.equal(task.rank, 8);
    assert.equal(task.learning_rate, 0.001);
    assert.equal(task.sample_every, 15);
    assert.equal(task.save_every, 15);
    assert.deepEqual(task.sample_prompts, [PROMPT]);
    assert.equal(task.base_model_path, 'builtin:tiny-flux');
    assert.equal(task.source_images.length, 5, 'the five photos were uploaded and referenced');
  });

  test('the task page follows the run live to COMPLETED: chart, samples, artifacts, signed LoRA download', async () => {
    await waitForPage(tab, 'task');
    for (const sel of ['#task-status', 'progress#progress', '#eta', 'button#cancel', 'button#retry']) assert.ok(await page.$(sel), `${sel} on the task page`);

    const seen: { status: string; position: number }[] = [];
    try {
      await until(
        async () => {
          const now = await page.evaluate(() => ({
            status: document.querySelector('#task-status')?.textContent?.trim() ?? '',
            position: document.querySelector<HTMLProgressElement>('progress#progress')?.position ?? -1,
          }));
          if (seen.at(-1)?.status !== now.status || seen.at(-1)?.position !== now.position) seen.push(now);
          return ['COMPLETED', 'FAILED', 'CANCELLED'].includes(now.status);
        },
        '#task-status to show a final status',
        300_000,
        200,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; seen ${JSON.stringify(seen)}; the page: ${await describePage(tab)}`, { cause: err });
    }
    const fromApi = await taskOf(server, doneId);
    assert.equal(
      seen.at(-1)!.status,
      'COMPLETED',
      `the page ended on ${seen.at(-1)!.status} (API: ${fromApi.status}, ${fromApi.error_message}); #error-message: ${await textOf(page, '#error-message')}`,
    );
    const statuses = seen.map((s) => s.status).filter((s, i, a) => a[i - 1] !== s);
    assert.notEqual(statuses[0], 'COMPLETED', 'the page showed the run before it finished, and followed it without a reload');
    assert.ok(statuses.includes('TRAINING'), `the page showed TRAINING: ${statuses.join(' → ')}`);
    assert.deepEqual(
      statuses,
      [...statuses].sort((a, b) => ORDER.indexOf(a) - ORDER.indexOf(b)),
      `statuses in order: ${statuses.join(' → ')}`,
    );
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i].position >= seen[i - 1].position, `progress never goes back: ${JSON.stringify(seen)}`);
    for (const sel of ['#loss-chart', '#samples', '#artifacts', 'pre#log-tail', '#webhooks', '#manifest']) assert.ok(await page.$(sel), `${sel} on the page of a COMPLETED task`);
    await waitIn(tab, 'progress#progress full', 10_000, () => (document.querySelector('progress#progress') as HTMLProgressElement).position === 1);
    // What preprocessing made of each photo, named as it was dropped or chosen.
    await waitIn(tab, '#manifest entries', 10_000, () => document.querySelectorAll('#manifest li').length === 5);
    const names = await page.$$eval('#manifest li .small', (spans) => spans.map((s) => s.textContent ?? ''));
    for (const file of ['photo-1.jpg', 'photo-4.jpg', 'chosen-5.jpg'])
      assert.ok(
        names.some((n) => n.startsWith(`${file} (upload://`)),
        `${file} in ${names.join(', ')}`,
      );

    // The loss chart (uPlot draws on a canvas) and every sample the API lists, loaded.
    await waitIn(tab, '#loss-chart canvas', 15_000, () => !!document.querySelector('#loss-chart canvas'));
    const artifacts = await artifactsOf(server, doneId);
    const samples = artifacts.filter((a) => a.kind === 'sample');
    assert.ok(samples.length >= 2, `samples listed: ${samples.map((s) => s.path).join(', ')}`);
    await waitIn(
      tab,
      `${samples.length} loaded sample images in #samples section[data-step] figure img`,
      30_000,
      (n: number) => {
        const imgs = [...document.querySelectorAll<HTMLImageElement>('#samples section[data-step] figure img')];
        // Images may load lazily: bring the first one still loading into view, as a reader scrolling would.
        imgs.find((img) => !img.complete)?.scrollIntoView();
        return imgs.length === n && imgs.every((img) => img.complete && img.naturalWidth > 0);
      },
      samples.length,
    );
    const shown = await page.$$eval('#samples section[data-step]', (sections) =>
      sections.map((s) => ({
        step: s.dataset.step,
        heading: s.querySelector('h3')?.textContent ?? '',
        figures: [...s.querySelectorAll('figure')].map((f) => ({ src: f.querySelector('img')!.src, caption: f.querySelector('figcaption')?.textContent?.trim() ?? '' })),
      })),
    );
    const shownPaths: string[] = [];
    for (const section of shown) {
      assert.match(section.step ?? '', /^\d+$/, 'section[data-step] is a step number');
      for (const figure of section.figures) {
        const url = new URL(figure.src);
        assert.equal(url.origin, server.baseUrl);
        assert.ok(url.pathname.startsWith(`/api/v1/training/${doneId}/artifacts/samples/`), figure.src);
        assert.ok(url.searchParams.get('sig'), `a signed link: ${figure.src}`);
        assert.match(figure.caption, /a photo of/, 'the figcaption is the prompt');
        assert.match(figure.caption, /colours [0-2]\.\d\d from the photos/, "and the sample's colour distance to the training photos");
        const artifactPath = decodeURIComponent(url.pathname.slice(`/api/v1/training/${doneId}/artifacts/`.length));
        assert.ok(artifactPath.includes(section.step!.replace(/^0+(?=\d)/, '')), `${artifactPath} belongs to step ${section.step}`);
        shownPaths.push(artifactPath);
      }
    }
    assert.deepEqual(shownPaths.sort(), samples.map((s) => s.path).sort(), 'one figure per listed sample');
    assert.ok(shown.length >= 2, `a section per sampled step: ${shown.map((s) => s.step).join(', ')}`);
    // Newest first, down to what the base model drew before the first step.
    assert.deepEqual(
      shown.map((s) => Number(s.step)),
      shown.map((s) => Number(s.step)).sort((a, b) => b - a),
    );
    assert.equal(shown[shown.length - 1].heading, 'Step 0: the base model, before training');

    // Artifacts: the final LoRA first, each a signed download link.
    const links = await page.$$eval('#artifacts a[data-path][download]', (as) => as.map((a) => ({ path: (a as HTMLElement).dataset.path!, href: a.href })));
    assert.equal(links[0]?.path, 'output/lora.safetensors', `the LoRA is listed first: ${links.map((l) => l.path).join(', ')}`);
    for (const link of links) {
      assert.ok(
        artifacts.some((a) => a.path === link.path),
        `${link.path} is an artifact`,
      );
      assert.ok(new URL(link.href).searchParams.get('sig'), `${link.path} links signed: ${link.href}`);
    }
    for (const a of artifacts.filter((x) => x.kind === 'weights' || x.kind === 'checkpoint'))
      assert.ok(
        links.some((l) => l.path === a.path),
        `${a.path} offered for download`,
      );
    const lora = artifacts.find((a) => a.path === 'output/lora.safetensors')!;
    const res = await fetch(links[0].href); // no bearer header: the signed link alone opens it
    assert.equal(res.status, 200);
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), lora.sha256, 'the downloaded LoRA is the listed one');

    assert.equal(await isDisabled(page, 'button#cancel'), true, 'a COMPLETED task cannot be cancelled');
    assert.equal(await isDisabled(page, 'button#retry'), true, 'a COMPLETED task cannot be retried');
    const errorShown = await page.$eval('#error-message', (el) => (el as HTMLElement).offsetParent !== null && !!el.textContent?.trim()).catch(() => false);
    assert.equal(errorShown, false, 'no error message on a COMPLETED task');
    assert.ok(((await textOf(page, 'pre#log-tail')) ?? '').length > 0, 'the log tail shows the trainer log');
    // Read again when the status changed: both stages' runs, ended.
    await waitIn(tab, '#runs: preprocess and train, completed', 10_000, () => {
      const rows = [...document.querySelectorAll('#runs tbody tr')].map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent));
      return (
        rows.length === 2 && rows[0][0] === 'preprocess' && rows[1][0] === 'train' && rows.every((r) => r[2] === (r[0] === 'train' ? 'cpu' : 'preprocess') && r[6] === 'completed')
      );
    });

    await screenshot(page, 'task');

    // "Train more" opens the new-task form filled in to continue this LoRA.
    const done = await taskOf(server, doneId);
    await page.click('a#train-more');
    await waitForPage(tab, 'new');
    const value = (id: string) => page.$eval(`input#${id}`, (el) => el.value);
    assert.equal(await value('init_lora_task_id'), doneId);
    assert.equal(await value('base_model_path'), done.base_model_path);
    assert.equal(await value('rank'), String(done.rank));
    assert.equal(await value('trigger_word'), done.trigger_word);
    assert.equal(await page.$eval('details#advanced', (el) => el.open), true, 'Advanced is open: the id and the base model are there');
  });

  test('a task cancelled from its page: #cancel turns it CANCELLED and #retry becomes possible', async () => {
    const client = api(server);
    const refs = await client.upload(await makePhotos(2, 99));
    const created = await client.json<TrainingTask>('POST', '/api/v1/training/', {
      trigger_word: 'KLNLONG',
      base_model_path: 'builtin:tiny-flux',
      steps: 5000,
      save_every: 5000,
      sample_prompts: [],
      entity_id: entityId,
      source_images: refs,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    cancelledId = created.body.id;

    // While it holds the one CPU slot, another task waits in the queue, and its page says where.
    await until(async () => (await taskOf(server, cancelledId)).current_step > 0, 'training steps of the long task', 180_000, 250);
    const waiting = await client.json<TrainingTask>('POST', '/api/v1/training/', {
      trigger_word: 'KLNWAIT',
      base_model_path: 'builtin:tiny-flux',
      steps: 10,
      source_images: await client.upload(await makePhotos(1, 7)),
    });
    assert.equal(waiting.status, 201, JSON.stringify(waiting.body));
    await until(async () => (await taskOf(server, waiting.body.id)).status === 'QUEUED', 'the second task to wait for training', 60_000, 200);
    await visit(tab, server.baseUrl, `/tasks/${waiting.body.id}`, 'task');
    // The first task's run is the history the estimate of its training time comes from.
    await waitIn(tab, '#queue-place: next to start, with an estimate', 10_000, () =>
      /^next to start; about \d.* of training$/.test(document.querySelector('#queue-place')?.textContent ?? ''),
    );
    assert.equal((await client.json('POST', `/api/v1/training/${waiting.body.id}/cancel`)).status, 200);
    await waitIn(tab, '#queue-place empty once cancelled', 10_000, () => document.querySelector('#queue-place')?.textContent === '');
    assert.equal((await client.json('DELETE', `/api/v1/training/${waiting.body.id}`)).status, 204);

    await visit(tab, server.baseUrl, `/tasks/${cancelledId}`, 'task');
    // Cancelled mid-run: steps are being done (the trainer process is up) and the page shows TRAINING.
    await waitIn(tab, '#task-status TRAINING', 15_000, () => document.querySelector('#task-status')?.textContent?.trim() === 'TRAINING');
    assert.equal(await isDisabled(page, 'button#cancel'), false, 'a TRAINING task can be cancelled');
    assert.equal(await isDisabled(page, 'button#retry'), true, 'a TRAINING task cannot be retried');

    page.on('dialog', (d) => void d.accept()); // should the page confirm first
    await page.click('button#cancel');
    await waitIn(tab, '#task-status CANCELLED', 15_000, () => document.querySelector('#task-status')?.textContent?.trim() === 'CANCELLED');
    await waitIn(tab, 'button#cancel disabled and button#retry enabled', 10_000, () => {
      const [cancel, retry] = ['#cancel', '#retry'].map((s) => document.querySelector<HTMLButtonElement>(s)!);
      return cancel.disabled && !retry.disabled;
    });
    assert.equal((await taskOf(server, cancelledId)).status, 'CANCELLED');
  });

  test('/generate: an image from the finished LoRA, shown from a blob: URL with a download link', async () => {
    await page.click('nav a[href="/generate"]');
    await waitForPage(tab, 'generate');
    assert.ok(await page.$(`form#generate input[type=checkbox][name=lora][value="${doneId}"]`), 'the COMPLETED task is offered');
    assert.ok(await page.$(`form#generate input[type=range][data-scale-for="${doneId}"]`), 'with a scale');
    assert.equal(await page.$(`input[name=lora][value="${cancelledId}"]`), null, 'a CANCELLED task is not offered');

    await page.click(`input[type=checkbox][name=lora][value="${doneId}"]`);
    await fill(page, 'textarea[name=prompt]', PROMPT);
    await fill(page, 'input[name=seed]', '7');
    await fill(page, 'input[name=num_images]', '1');
    const posted = page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname.replace(/\/$/, '') === '/api/v1/generations', { timeout: 15_000 });
    await page.click('form#generate button[type=submit]');
    const body = JSON.parse((await posted).postData() ?? '{}') as { prompt: string; seed: number; num_images: number; loras: { training_task_id: string; scale: number }[] };
    assert.equal(body.prompt, PROMPT);
    assert.equal(body.seed, 7);
    assert.equal(body.num_images, 1);
    assert.deepEqual(
      body.loras.map((l) => l.training_task_id),
      [doneId],
    );
    assert.equal(typeof body.loras[0].scale, 'number');

    await waitIn(tab, '#images figure img (blob:) loaded', 240_000, () => {
      const img = document.querySelector<HTMLImageElement>('#images figure img');
      return !!img && img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0;
    });
    assert.ok(await page.$('#images a[download]'), '#images a[download]');
    assert.ok(((await textOf(page, '#generation-status')) ?? '').length > 0, '#generation-status says something');
    const response = (await posted).response();
    const generation = (await response!.json()) as Generation;
    const finalGeneration = (await api(server).json<Generation>('GET', `/api/v1/generations/${generation.id}`)).body;
    assert.equal(finalGeneration.status, 'COMPLETED');
    assert.equal(finalGeneration.prompt, 'a photo of KLNDROP');
    // The list below is read again once the generation ends: it leads with this one, its image loaded.
    await waitIn(
      tab,
      'the generation first under Recent generations, COMPLETED, its image loaded',
      15_000,
      (id: string) => {
        const first = document.querySelector('#recent-generations li');
        const img = first?.querySelector<HTMLImageElement>('img.thumb');
        return (
          first?.getAttribute('data-generation-id') === id &&
          first.querySelector('.badge')?.textContent === 'COMPLETED' &&
          !!img &&
          img.src.startsWith('blob:') &&
          img.complete &&
          img.naturalWidth > 0
        );
      },
      generation.id,
    );
    await screenshot(page, 'generate');

    // A second generation: the list is read again and shows both, fetching only the new image.
    const firstImage = new URL(finalGeneration.images[0]).pathname;
    const fetched: string[] = [];
    const onRequest = (r: HTTPRequest) => void fetched.push(new URL(r.url()).pathname);
    page.on('request', onRequest);
    await fill(page, 'input[name=seed]', '8');
    const second = page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname.replace(/\/$/, '') === '/api/v1/generations', { timeout: 15_000 });
    await page.click('form#generate button[type=submit]');
    const secondId = ((await (await second).json()) as Generation).id;
    await waitIn(
      tab,
      'both generations under Recent generations, the new one first, both images loaded',
      240_000,
      (ids: string[]) => {
        const items = [...document.querySelectorAll('#recent-generations li')];
        return (
          items.map((li) => li.getAttribute('data-generation-id')).join() === ids.join() &&
          items.every((li) => {
            const img = li.querySelector<HTMLImageElement>('img.thumb');
            return !!img && img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0;
          })
        );
      },
      [secondId, generation.id],
    );
    page.off('request', onRequest);
    assert.ok(
      fetched.some((p) => p.startsWith(`/api/v1/generations/${secondId}/images/`)),
      'the new image was fetched',
    );
    assert.deepEqual(
      fetched.filter((p) => p === firstImage),
      [],
      'the image already listed was not fetched again',
    );
  });

  test('/usage: this month’s slot time, the training and the generation above among it', async () => {
    await page.click('nav a[href="/usage"]');
    await waitForPage(tab, 'usage');
    assert.equal(await page.$eval('input#usage-month', (el) => el.value), new Date().toISOString().slice(0, 7));
    const rows = await page.$$eval('table#usage tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));
    const runsOf = (job: string) => Number(rows.find((r) => r[1] === job && r[2] === 'cpu')?.[3] ?? 0);
    assert.ok(runsOf('train') >= 1 && runsOf('generate') >= 1, JSON.stringify(rows));
    assert.ok(
      rows.some((r) => r[1] === 'preprocess' && r[2] === 'preprocess'),
      JSON.stringify(rows),
    );
    assert.match((await textOf(page, '#gpu-hours')) ?? '', /^0\.00 GPU hours in \d{4}-\d{2}$/, 'nothing ran on a GPU');
    assert.equal(await page.$('#allowance'), null, 'an admin has no allowance');
    await screenshot(page, 'usage');

    // A customer whose token carries a monthly allowance sees how much of it is used.
    const capped = await openTab(browser);
    try {
      await visit(capped, server.baseUrl, `/usage#token=${await mintToken('capped', false, { kiln_monthly_training_hours: 3 })}`, 'usage');
      assert.match((await textOf(capped.page, '#allowance')) ?? '', /^0\.00 of 3 training hours used this month; the allowance renews /);
    } finally {
      await capped.page.close();
    }
  });

  test('the list shows every task with its status, follows changes by itself, and filters', async () => {
    await page.click('nav a[href="/"]');
    await waitForPage(tab, 'list');
    const row = (id: string) => `#task-list tr[data-task-id="${id}"]`;
    await waitIn(tab, 'both rows', 10_000, (ids: string[]) => ids.every((id) => document.querySelector(`#task-list tr[data-task-id="${id}"]`)), [doneId, cancelledId]);
    assert.equal(await textOf(page, `${row(doneId)} td.status`), 'COMPLETED');
    assert.equal(await textOf(page, `${row(cancelledId)} td.status`), 'CANCELLED');
    for (const [id, trigger] of [
      [doneId, 'KLNDROP'],
      [cancelledId, 'KLNLONG'],
    ]) {
      assert.ok(await page.$(`${row(id)} a[href="/tasks/${id}"]`), `${row(id)} links to its page`);
      assert.ok(await page.$(`${row(id)} progress`), `${row(id)} has a progress bar`);
      assert.match((await textOf(page, row(id))) ?? '', new RegExp(trigger));
    }

    // Without a reload: a task created elsewhere appears, and its cancel shows, within a few refreshes.
    const client = api(server);
    const refs = await client.upload(await makePhotos(1, 5));
    const extra = await client.json<TrainingTask>('POST', '/api/v1/training/', {
      trigger_word: 'KLNEXTRA',
      base_model_path: 'builtin:tiny-flux',
      steps: 5000,
      source_images: refs,
    });
    assert.equal(extra.status, 201);
    const extraId = extra.body.id;
    await waitIn(tab, `${row(extraId)} to appear by itself`, 10_000, (id: string) => !!document.querySelector(`#task-list tr[data-task-id="${id}"]`), extraId);
    assert.equal((await client.json('POST', `/api/v1/training/${extraId}/cancel`)).status, 200);
    await waitIn(
      tab,
      `${row(extraId)} td.status CANCELLED by itself`,
      10_000,
      (id: string) => document.querySelector(`#task-list tr[data-task-id="${id}"] td.status`)?.textContent?.trim() === 'CANCELLED',
      extraId,
    );
    await screenshot(page, 'list');

    const shownIds = () => page.$$eval('#task-list tr[data-task-id]', (rows) => rows.map((r) => (r as HTMLElement).dataset.taskId!).sort());
    await page.select('select[name=status]', 'COMPLETED');
    await waitIn(tab, 'only COMPLETED rows', 10_000, () =>
      [...document.querySelectorAll('#task-list tr[data-task-id] td.status')].every((td) => td.textContent?.trim() === 'COMPLETED'),
    );
    assert.deepEqual(await shownIds(), [doneId]);
    await page.select('select[name=status]', await page.$eval('select[name=status]', (s) => s.options[0].value));
    await waitIn(tab, 'all three rows again', 10_000, () => document.querySelectorAll('#task-list tr[data-task-id]').length === 3);

    // An admin narrows the list to one tenant.
    await fill(page, 'input[name=tenant_id]', 'nobody-here');
    await waitIn(tab, 'no rows for an unknown tenant', 10_000, () => document.querySelectorAll('#task-list tr[data-task-id]').length === 0);
    await page.click('input[name=tenant_id]', { count: 3 });
    await page.keyboard.press('Backspace');
    await waitIn(tab, 'all three rows once more', 10_000, () => document.querySelectorAll('#task-list tr[data-task-id]').length === 3);

    await fill(page, 'input[name=entity_id]', entityId);
    await waitIn(tab, `only the row of entity ${entityId}`, 10_000, () => document.querySelectorAll('#task-list tr[data-task-id]').length === 1);
    assert.deepEqual(await shownIds(), [cancelledId]);
    for (const id of [doneId, cancelledId, extraId]) assert.ok(FINISHED.includes((await taskOf(server, id)).status));
    assert.deepEqual(tab.problems, [], 'no console errors, page errors or failed requests');
  });

  test('a finished task deleted from its page: asked once more, then gone from the list and the API', async () => {
    await visit(tab, server.baseUrl, `/tasks/${cancelledId}`, 'task');
    // Its photos first: asked once more, then gone, and the task can no longer be retried.
    assert.equal(await textOf(page, '#photos'), 'kept');
    assert.equal(await isDisabled(page, 'button#retry'), false);
    await page.click('button#delete-photos');
    await page.waitForSelector('button#delete-photos-confirm', { timeout: 5_000 });
    await page.click('button#delete-photos-confirm');
    await waitIn(tab, '#photos: deleted', 10_000, () => document.querySelector('#photos')?.textContent?.startsWith('deleted ') === true);
    assert.equal(await isDisabled(page, 'button#retry'), true, 'no photos, no retry');
    assert.equal(await isDisabled(page, 'button#delete-photos'), true);
    assert.ok((await taskOf(server, cancelledId)).photos_deleted_at);
    assert.equal(await isDisabled(page, 'button#delete'), false, 'a CANCELLED task can be deleted');
    await page.click('button#delete');
    await page.waitForSelector('button#delete-confirm', { timeout: 5_000 });
    await page.click('button#delete-keep');
    await page.waitForSelector('button#delete', { timeout: 5_000 });
    assert.equal((await taskOf(server, cancelledId)).status, 'CANCELLED', 'Keep keeps it');

    await page.click('button#delete');
    await page.waitForSelector('button#delete-confirm', { timeout: 5_000 });
    await page.click('button#delete-confirm');
    await waitForPage(tab, 'list');
    await waitIn(
      tab,
      'the list without the deleted task',
      10_000,
      (id: string) => !!document.querySelector('#task-list tr[data-task-id]') && !document.querySelector(`#task-list tr[data-task-id="${id}"]`),
      cancelledId,
    );
    assert.equal((await api(server).json('GET', `/api/v1/training/${cancelledId}`)).status, 404);
    assert.deepEqual(tab.problems, [], 'no console errors, page errors or failed requests');
  });

  test('an entity erased from the filtered list: its training task cancelled, then everything of it deleted', async () => {
    const client = api(server);
    const person = randomUUID();
    const created = await client.json<TrainingTask>('POST', '/api/v1/training/', {
      trigger_word: 'KLNERASE',
      base_model_path: 'builtin:tiny-flux',
      steps: 5000,
      entity_type: 'SUBJECT',
      entity_id: person,
      source_images: await client.upload(await makePhotos(1, 31)),
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await until(async () => (await taskOf(server, created.body.id)).status === 'TRAINING', 'the task of the entity to train', 120_000, 200);

    await visit(tab, server.baseUrl, `/?entity_id=${person}`, 'list');
    await waitIn(tab, 'its row', 10_000, (id: string) => !!document.querySelector(`#task-list tr[data-task-id="${id}"]`), created.body.id);
    await page.click('button#erase-entity');
    await page.waitForSelector('button#erase-confirm', { timeout: 5_000 });
    await page.click('button#erase-confirm');
    await waitIn(tab, '#erase-outcome: nothing left', 60_000, () => /nothing of .* is left\.$/.test(document.querySelector('#erase-outcome')?.textContent ?? ''));
    assert.match((await textOf(page, '#erase-outcome')) ?? '', /^Erased 1 task, 0 generations and 1 upload: nothing of /);
    assert.equal((await client.json('GET', `/api/v1/training/${created.body.id}`)).status, 404);
    await waitIn(tab, 'the list empty for the entity', 10_000, () => !document.querySelector('#task-list tr[data-task-id]'));
    assert.deepEqual(tab.problems, [], 'no console errors, page errors or failed requests');
  });
});
