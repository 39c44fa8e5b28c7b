import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tmpDir } from '../helpers/harness.js';
import { until } from '../helpers/processes.js';
import { photoFolder, runKiln, startApiOnly, type ApiServer } from './helpers.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// The CLI run as a child process against the API on a socket, no worker: tasks stay PENDING.
describe('kiln client commands', { timeout: 90_000 }, () => {
  let server: ApiServer;
  let kiln: (...args: string[]) => ReturnType<typeof runKiln>;
  let folder: string;
  let taskId: string;

  before(async () => {
    server = await startApiOnly();
    const token = await server.token();
    kiln = (...args) => runKiln(args, { server: server.url, token });
    folder = await photoFolder(3, { 'photo-0.txt': 'a caption', 'notes.md': 'not an image' });
  });
  after(() => server.close());

  test('train uploads a folder’s images and creates the task with upload:// references', async () => {
    const res = await kiln('train', folder, '--trigger', 'CLITOK', '--steps', '50', '--sample', 'a [trigger]', '--sample', 'b [trigger]');
    assert.equal(res.code, 0, res.stderr);
    taskId = res.stdout.trim();
    assert.match(taskId, UUID);
    assert.match(res.stderr, /captions are not uploaded/);
    const task = await server.runtime.taskStore.get(taskId);
    assert.ok(task);
    const sources = JSON.parse(task.source_images) as string[];
    assert.equal(sources.length, 3, 'the three images, not the .txt or .md');
    for (const s of sources) assert.match(s, /^upload:\/\//);
    assert.equal(task.trigger_word, 'CLITOK');
    assert.equal(task.steps, 50);
    assert.deepEqual(JSON.parse(task.sample_prompts), ['a [trigger]', 'b [trigger]']);
    const keys = await server.runtime.store.db.selectFrom('idempotency_keys').select('operation').where('resource_id', '=', taskId).execute();
    assert.deepEqual(keys, [{ operation: 'create_training_task' }], 'the create carried an Idempotency-Key, so a retry of it cannot make a second task');
  });

  test('status prints a summary, --json the raw task', async () => {
    const res = await kiln('status', taskId);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /status\s+PENDING/);
    assert.match(res.stdout, /step\s+0\/50/);
    assert.match(res.stdout, /queue\s+0 jobs ahead for preprocess/, 'the only task waiting');
    const json = await kiln('status', taskId, '--json');
    assert.equal((JSON.parse(json.stdout) as { id: string }).id, taskId);
  });

  test('list shows the task in a table, filters by status', async () => {
    const res = await kiln('list');
    assert.equal(res.code, 0, res.stderr);
    const [header, row] = res.stdout.trim().split('\n');
    assert.match(header, /^ID\s+STATUS\s+TRIGGER\s+STEPS\s+PROGRESS\s+CREATED$/);
    assert.match(row, new RegExp(`^${taskId}\\s+PENDING\\s+CLITOK\\s+0/50\\s+0\\.0%`));
    const none = await kiln('list', '--status', 'COMPLETED', '--json');
    assert.deepEqual(JSON.parse(none.stdout), []);
    const admin = { server: server.url, token: await server.runtime.verifier.mint!({ tenantId: 'ops', admin: true }) };
    const theirs = await runKiln(['list', '--tenant', 'cli', '--json'], admin);
    assert.deepEqual(
      (JSON.parse(theirs.stdout) as { id: string }[]).map((t) => t.id),
      [taskId],
      'an admin lists one tenant’s tasks',
    );
    assert.deepEqual(JSON.parse((await runKiln(['list', '--tenant', 'nobody', '--json'], admin)).stdout), []);
  });

  test('logs and artifacts of a task that has not run are empty, not errors', async () => {
    const logs = await kiln('logs', taskId);
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(logs.stdout, '');
    const artifacts = await kiln('artifacts', taskId);
    assert.equal(artifacts.code, 0, artifacts.stderr);
    assert.equal(artifacts.stdout, '');
  });

  test('cancel cancels; cancelling again is a no-op', async () => {
    const res = await kiln('cancel', taskId);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.trim(), `${taskId} CANCELLED`);
    assert.equal((await server.runtime.taskStore.get(taskId))?.status, 'CANCELLED');
    assert.equal((await kiln('cancel', taskId)).code, 0);
  });

  test('delete --photos keeps the task and removes its uploads', async () => {
    const created = await kiln('train', folder, '--trigger', 'PHOTOTOK');
    const id = created.stdout.trim();
    assert.equal((await kiln('cancel', id)).code, 0);
    const uploads = (JSON.parse((await server.runtime.taskStore.get(id))!.source_images) as string[]).map((s) => s.replace('upload://', ''));
    const res = await kiln('delete', id, '--photos');
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, new RegExp(`^${id}: photos deleted at \\S+; its weights, samples and logs are kept\n$`));
    assert.ok((await server.runtime.taskStore.get(id))?.photos_deleted_at);
    assert.ok(uploads.every((u) => !fs.existsSync(path.join(server.runtime.config.dataDir, 'uploads', 'cli', u))));
    assert.equal((await kiln('delete', id, '--photos', '--with-uploads')).code, 2);
  });

  test('delete --with-uploads removes the cancelled task and the uploads it was made from', async () => {
    const uploads = (JSON.parse((await server.runtime.taskStore.get(taskId))!.source_images) as string[]).map((s) => s.replace('upload://', ''));
    const uploadDir = (id: string) => path.join(server.runtime.config.dataDir, 'uploads', 'cli', id);
    assert.ok(uploads.every((id) => fs.existsSync(uploadDir(id))));
    const res = await kiln('delete', taskId, '--with-uploads');
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, `${taskId} deleted\n3 of its 3 uploads deleted\n`);
    assert.equal(await server.runtime.taskStore.get(taskId), undefined);
    assert.ok(uploads.every((id) => !fs.existsSync(uploadDir(id))));
    const again = await kiln('delete', taskId);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /not found \(HTTP 404\)/);
  });

  test('train --entity-id, list --entity, and erase removes the entity’s task and uploads', async () => {
    const entity = '0193a6c0-0000-7000-8000-00000000c11e';
    const created = await kiln('train', folder, '--trigger', 'PERSONTOK', '--entity', 'subject', '--entity-id', entity);
    assert.equal(created.code, 0, created.stderr);
    const id = created.stdout.trim();
    const listed = await kiln('list', '--entity', entity, '--json');
    assert.deepEqual(
      (JSON.parse(listed.stdout) as { id: string; entity_type: string }[]).map((t) => [t.id, t.entity_type]),
      [[id, 'SUBJECT']],
    );
    const uploads = (JSON.parse((await server.runtime.taskStore.get(id))!.source_images) as string[]).map((s) => s.replace('upload://', ''));
    const erased = await kiln('erase', entity);
    assert.equal(erased.code, 0, erased.stderr);
    assert.equal(erased.stdout, `erased 1 task, 0 generations and 3 uploads of ${entity}\n`);
    assert.equal(await server.runtime.taskStore.get(id), undefined);
    assert.ok(uploads.every((u) => !fs.existsSync(path.join(server.runtime.config.dataDir, 'uploads', 'cli', u))));
    assert.equal((await kiln('erase', 'not-an-id')).code, 1);
  });

  test('generate waits in the queue saying how many are ahead, and a cancel ends it with exit 1', async () => {
    const token = await server.token();
    const ahead = await fetch(`${server.url}/api/v1/generations/`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'first in line', base_model_path: 'builtin:tiny-flux' }),
    });
    assert.equal(ahead.status, 202, await ahead.text());
    const running = kiln('generate', '--prompt', 'second in line', '--base', 'builtin:tiny-flux');
    // No worker here: the CLI's generation waits behind the first until the test cancels it.
    const mine = await until(
      async () => (await server.runtime.store.db.selectFrom('generations').select('id').where('request', 'like', '%second in line%').executeTakeFirst())?.id,
      'the CLI to create its generation',
      30_000,
      100,
    );
    await new Promise((r) => setTimeout(r, 1500));
    const cancelled = await fetch(`${server.url}/api/v1/generations/${mine}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal(cancelled.status, 200);
    const res = await running;
    assert.equal(res.code, 1, res.stderr);
    assert.match(res.stderr, new RegExp(`^generation ${mine}: 1 generation ahead in the queue$`, 'm'));
    assert.match(res.stderr, new RegExp(`^generation ${mine} cancelled: `, 'm'));
  });

  test('usage shows the tenant’s monthly allowance when its token carries one', async () => {
    const capped = { server: server.url, token: await server.runtime.verifier.mint!({ tenantId: 'cli-capped', monthlyTrainingHours: 5 }) };
    const res = await runKiln(['usage'], capped);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^allowance: 0\.00 of 5 training hours used this month; it renews at \d{4}-\d{2}-01T00:00:00\.000Z$/m);
    assert.doesNotMatch((await kiln('usage')).stdout, /allowance/, 'no allowance, no line');
  });

  test('a 422 is printed one issue per line, with a non-zero exit', async () => {
    const res = await kiln('train', folder, '--trigger', 'X', '--steps', '0', '--lr', '2');
    assert.equal(res.code, 1);
    assert.match(res.stderr, /rejected \(422\)/);
    assert.match(res.stderr, /^ {2}body\.steps: Input should be greater than or equal to 1$/m);
    assert.match(res.stderr, /^ {2}body\.learning_rate: Input should be less than or equal to 1$/m);
  });

  test('an unknown task prints the API’s detail', async () => {
    const res = await kiln('status', '00000000-0000-4000-8000-000000000000');
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^kiln status: .*not found.*\(HTTP 404\)$/im);
  });

  test('a missing token says how to get one', async () => {
    const res = await runKiln(['list'], { server: server.url });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /HTTP 401/);
    assert.match(res.stderr, /KILN_TOKEN/);
  });

  test('usage mistakes exit 2 before anything is sent', async () => {
    assert.equal((await kiln('train', folder)).code, 2, 'no --trigger');
    const missing = await kiln('train', path.join(folder, 'nope'), '--trigger', 'X');
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no such file or folder/);
    assert.equal((await kiln('train', folder, '--trigger', 'X', '--steps', 'many')).code, 2);
    assert.equal((await kiln('generate', '--prompt', 'p', '--lora', 'id:big')).code, 2);
  });

  test('an unreachable server is named, with the hint', async () => {
    // A port that was free a moment ago: nothing listens there.
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const url = `http://127.0.0.1:${port}`;
    const res = await runKiln(['list'], { server: url, token: 't' });
    assert.equal(res.code, 1);
    assert.equal(res.stderr.trim(), `kiln list: cannot reach Kiln at ${url}: is \`make run\` running?`);
  });

  test('a .zip is uploaded as it is, http URLs pass through', async () => {
    // The smallest valid zip: just its end-of-central-directory record.
    const zip = path.join(tmpDir('kiln-cli-zip-'), 'set.zip');
    fs.writeFileSync(zip, Buffer.concat([Buffer.from('PK\x05\x06', 'binary'), Buffer.alloc(18)]));
    const res = await kiln('train', zip, 'https://example.com/a.png', '--trigger', 'Z');
    assert.equal(res.code, 0, res.stderr);
    const sources = JSON.parse((await server.runtime.taskStore.get(res.stdout.trim()))!.source_images) as string[];
    assert.equal(sources.length, 2);
    assert.match(sources[0], /^upload:\/\//);
    assert.equal(sources[1], 'https://example.com/a.png');
  });
});
