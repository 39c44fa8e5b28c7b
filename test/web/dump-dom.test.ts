import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import type { TrainingTask } from '../../src/domain/schemas/training.js';
import { until } from '../helpers/processes.js';
import { attr, byId, dumpDom, elements, hasAttr, hasClass, htmlText, startDashboard, trainSmallTask, type Artifact, type Dashboard } from '../helpers/browser.js';

/** The body's data-page and data-ready, as the page left them. */
function pageOf(html: string): { page?: string; ready?: string } {
  const body = elements(html, 'body')[0] ?? '';
  return { page: attr(body, 'data-page'), ready: attr(body, 'data-ready') };
}

// Each page of the dashboard as `chromium --headless --dump-dom` prints it after 15 s of virtual
// time: no driver, only the page's own scripts, signed in by the #token= fragment. The server
// holds one COMPLETED task with samples and a LoRA, trained first (tiny model, CPU).
describe('the dashboard rendered by chromium --dump-dom', { timeout: 600_000 }, () => {
  let server: Dashboard;
  let task: TrainingTask;
  let artifacts: Artifact[];
  const dump = (urlPath: string) => dumpDom(`${server.baseUrl}${urlPath}#token=${server.token}`);

  before(async () => {
    server = await startDashboard('dump');
    ({ task, artifacts } = await trainSmallTask(server, 'KLNDUMP'));
  });
  after(() => server?.stop());

  test('/ lists the task, its status and a link to its page', async () => {
    const html = await dump('/');
    assert.deepEqual(pageOf(html), { page: 'list', ready: '1' });
    const table = byId(html, 'task-list');
    assert.ok(table, 'table#task-list');
    const rows = elements(table, 'tr', hasAttr('data-task-id', task.id));
    assert.equal(rows.length, 1, `one tr[data-task-id="${task.id}"] in ${htmlText(table).slice(0, 300)}`);
    const status = elements(rows[0], 'td', hasClass('status'))[0];
    assert.ok(status, 'td.status');
    assert.equal(htmlText(status), 'COMPLETED');
    assert.equal(elements(rows[0], 'a', hasAttr('href', `/tasks/${task.id}`)).length, 1);
    assert.equal(elements(rows[0], 'progress').length, 1);
    assert.match(htmlText(rows[0]), /KLNDUMP/);
  });

  test('/tasks/<id> holds the loss chart, the sample images and the LoRA link', async () => {
    const html = await dump(`/tasks/${task.id}`);
    assert.deepEqual(pageOf(html), { page: 'task', ready: '1' });
    assert.equal(htmlText(byId(html, 'task-status') ?? ''), 'COMPLETED');

    const chart = byId(html, 'loss-chart');
    assert.ok(chart, '#loss-chart');
    assert.match(chart, /<(canvas|svg)\b/, '#loss-chart draws the loss');

    const samples = byId(html, 'samples');
    assert.ok(samples, '#samples');
    const expected = artifacts.filter((a) => a.kind === 'sample').map((a) => a.path);
    assert.ok(expected.length >= 2, `samples listed: ${expected.join(', ')}`);
    const prefix = `/api/v1/training/${task.id}/artifacts/`;
    const shown = elements(samples, 'img').map((img) => {
      const src = attr(img, 'src') ?? '';
      const url = new URL(src, server.baseUrl);
      assert.ok(url.pathname.startsWith(`${prefix}samples/`), `img src ${src} is a sample of the task`);
      assert.ok(url.searchParams.get('sig'), `img src ${src} is signed`);
      return decodeURIComponent(url.pathname.slice(prefix.length));
    });
    assert.deepEqual(shown.sort(), expected.sort(), 'an <img> per sample');
    assert.ok(elements(samples, 'section', '\\sdata-step="\\d+"').length >= 2, 'section[data-step] per sampled step');

    const links = elements(byId(html, 'artifacts') ?? '', 'a', hasAttr('data-path', 'output/lora.safetensors'));
    assert.equal(links.length, 1, '#artifacts a[data-path="output/lora.safetensors"]');
    assert.ok(attr(links[0], 'download') !== undefined, 'the link downloads');
    const href = new URL(attr(links[0], 'href') ?? '', server.baseUrl);
    assert.equal(href.pathname, `${prefix}output/lora.safetensors`);
    assert.ok(href.searchParams.get('sig'), 'the LoRA link is signed');
  });

  test('/tasks/<id> of a FAILED task shows why, prominently, and offers Retry but not Cancel', async () => {
    const headers = { authorization: `Bearer ${server.token}` };
    // One photo far below the smallest accepted side: preprocessing rejects it and the task fails.
    const form = new FormData();
    const tiny = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#c2410c' } })
      .png()
      .toBuffer();
    form.append('files', new Blob([new Uint8Array(tiny)], { type: 'image/png' }), 'thumbnail.png');
    const uploaded = await fetch(`${server.baseUrl}/api/v1/uploads/`, { method: 'POST', headers, body: form });
    assert.equal(uploaded.status, 201);
    const [{ reference }] = ((await uploaded.json()) as { uploads: { reference: string }[] }).uploads;
    const created = await fetch(`${server.baseUrl}/api/v1/training/`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ trigger_word: 'KLNFAIL', base_model_path: 'builtin:tiny-flux', source_images: [reference] }),
    });
    assert.equal(created.status, 201);
    const { id } = (await created.json()) as TrainingTask;
    const failed = await until(
      async () => {
        const t = (await (await fetch(`${server.baseUrl}/api/v1/training/${id}`, { headers })).json()) as TrainingTask;
        return t.status === 'FAILED' && t;
      },
      'the task without images to fail',
      60_000,
      200,
    );
    const html = await dump(`/tasks/${id}`);
    assert.equal(htmlText(byId(html, 'task-status') ?? ''), 'FAILED');
    const shown = htmlText(byId(html, 'error-message') ?? '');
    assert.ok(shown.includes(failed.error_message!.split('\n')[0]), `#error-message says why: ${shown}`);
    assert.equal(attr(byId(html, 'cancel') ?? '', 'disabled'), '');
    assert.equal(attr(byId(html, 'retry') ?? '', 'disabled'), undefined);
  });

  test('/new holds the create form', async () => {
    const html = await dump('/new');
    assert.deepEqual(pageOf(html), { page: 'new', ready: '1' });
    const form = elements(html, 'form', hasAttr('id', 'new-task'))[0];
    assert.ok(form, 'form#new-task');
    const zone = elements(form, 'label', hasClass('drop-zone'))[0];
    assert.ok(zone, 'label.drop-zone');
    const file = elements(zone, 'input', hasAttr('type', 'file'))[0];
    assert.ok(file && attr(file, 'name') === 'files' && attr(file, 'multiple') !== undefined, 'input[type=file][name=files][multiple] in the drop zone');
    for (const name of ['trigger_word', 'steps', 'rank', 'learning_rate']) assert.equal(elements(form, 'input', hasAttr('name', name)).length, 1, `input[name=${name}]`);
    for (const name of ['training_type', 'preprocessing_captioning_strategy']) assert.equal(elements(form, 'select', hasAttr('name', name)).length, 1, `select[name=${name}]`);
    assert.equal(elements(form, 'textarea', hasAttr('name', 'sample_prompts')).length, 1);
    const advanced = elements(form, 'details', hasAttr('id', 'advanced'))[0];
    assert.ok(advanced, 'details#advanced');
    for (const name of ['sample_every', 'save_every', 'batch_size'])
      assert.equal(elements(advanced, 'input', hasAttr('name', name)).length, 1, `details#advanced input[name=${name}]`);
    assert.equal(elements(form, 'button', hasAttr('type', 'submit')).length, 1);
  });

  test('/generate holds its form, offering the COMPLETED task as a LoRA', async () => {
    const html = await dump('/generate');
    assert.deepEqual(pageOf(html), { page: 'generate', ready: '1' });
    const form = elements(html, 'form', hasAttr('id', 'generate'))[0];
    assert.ok(form, 'form#generate');
    assert.equal(elements(form, 'textarea', hasAttr('name', 'prompt')).length, 1);
    const lora = elements(form, 'input', hasAttr('value', task.id)).filter((i) => attr(i, 'name') === 'lora' && attr(i, 'type') === 'checkbox');
    assert.equal(lora.length, 1, `input[type=checkbox][name=lora][value="${task.id}"]`);
    const scale = elements(form, 'input', hasAttr('data-scale-for', task.id));
    assert.equal(scale.length, 1);
    assert.equal(attr(scale[0], 'type'), 'range');
    for (const name of ['seed', 'num_images']) assert.equal(elements(form, 'input', hasAttr('name', name)).length, 1, `input[name=${name}]`);
    assert.equal(elements(form, 'button', hasAttr('type', 'submit')).length, 1);
  });
});
