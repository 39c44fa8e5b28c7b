import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import { REPO_ROOT } from '../../src/config.js';
import { PreprocessError } from '../../src/preprocess/index.js';
import { localCaption, withTrigger } from '../../src/preprocess/captions.js';
import { jpeg, runJob, startServer, tempDir } from './helpers.js';

/** The part of an OpenAI-compatible chat request these tests read. */
interface ChatRequest {
  model: string;
  messages: { content: [unknown, { image_url: { url: string } }] }[];
}

describe('captions', () => {
  it('prepends the trigger word only where it is missing', () => {
    assert.equal(withTrigger('a red mug', 'ohwx'), 'ohwx, a red mug');
    assert.equal(withTrigger('an ohwx mug', 'ohwx'), 'an ohwx mug');
    assert.equal(withTrigger('ohwxy mug', 'ohwx'), 'ohwx, ohwxy mug');
    assert.equal(withTrigger('  ', 'ohwx'), 'ohwx');
  });

  it('fills templates with the trigger and the entity word', () => {
    const ctx = { strategy: 'template' as const, triggerWord: 'sks', entityType: 'STYLE' as const };
    assert.equal(localCaption({ ...ctx, prompt: null }, null), 'a photo of sks style');
    assert.equal(localCaption({ ...ctx, prompt: 'painting of a harbour, [entity] of [trigger]' }, null), 'painting of a harbour, style of sks');
    assert.equal(localCaption({ ...ctx, entityType: 'PRODUCT', prompt: 'studio shot of a [entity]' }, null), 'sks, studio shot of a product');
    assert.equal(localCaption({ ...ctx, strategy: 'trigger_only', prompt: 'ignored' }, 'ignored'), 'sks');
  });

  it('vlm: asks an OpenAI-compatible endpoint and writes its caption', async () => {
    const requests: { auth?: string; body: ChatRequest }[] = [];
    const vlm = await startServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        requests.push({ auth: req.headers.authorization, body: JSON.parse(body) as ChatRequest });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ choices: [{ message: { role: 'assistant', content: 'A ceramic mug on a wooden table.' } }] }));
      });
    });
    const root = await tempDir();
    await writeFile(path.join(root, 'mug.jpg'), await jpeg(640, 480, 71));
    const out = await runJob([path.join(root, 'mug.jpg')], {
      // Private networks are not allowed: the configured endpoint's own origin is trusted.
      config: { sourceRoots: [root], allowPrivateNetworks: false, vlm: { url: `${vlm.url}/v1/chat/completions`, model: 'qwen-vl', apiKey: 'k-123' } },
      job: { captioning: { strategy: 'vlm', prompt: 'Describe the [entity].' } },
    });
    assert.ifError(out.error);
    assert.equal(await readFile(path.join(out.result!.datasetDir, '0001.txt'), 'utf8'), 'ohwx, A ceramic mug on a wooden table.\n');
    assert.equal(requests.length, 1);
    const [request] = requests;
    assert.equal(request.auth, 'Bearer k-123');
    assert.equal(request.body.model, 'qwen-vl');
    const content = request.body.messages[0].content;
    assert.deepEqual(content[0], { type: 'text', text: 'Describe the product.' });
    assert.match(content[1].image_url.url, /^data:image\/jpeg;base64,\/9j\//);
  });

  it('vlm: a failing endpoint fails the task with a clear message', async () => {
    const vlm = await startServer((_req, res) => res.writeHead(500).end('boom'));
    const root = await tempDir();
    await writeFile(path.join(root, 'mug.jpg'), await jpeg(640, 480, 72));
    const out = await runJob([path.join(root, 'mug.jpg')], {
      config: { sourceRoots: [root], vlm: { url: `${vlm.url}/v1/chat/completions`, model: 'm', apiKey: '' } },
      job: { captioning: { strategy: 'vlm', prompt: null } },
    });
    assert.ok(out.error instanceof PreprocessError);
    assert.match(out.error.message, /captioning .*mug\.jpg failed: vlm endpoint answered HTTP 500/);
  });

  it('vlm: with only KILN_VLM_MODEL, a local model captions every image in one process', async () => {
    const root = await tempDir();
    const model = path.join(root, 'captioner');
    execFileSync(path.join(REPO_ROOT, '.venv/bin/python'), ['-m', 'kiln_trainer', 'build-tiny-captioner', '--out', model], { stdio: 'ignore' });
    await writeFile(path.join(root, 'a.jpg'), await jpeg(640, 480, 81));
    await writeFile(path.join(root, 'b.jpg'), await jpeg(480, 640, 82));
    const out = await runJob([path.join(root, 'a.jpg'), path.join(root, 'b.jpg')], {
      config: { sourceRoots: [root], vlm: { url: '', model, apiKey: '' } },
      job: { captioning: { strategy: 'vlm', prompt: null } },
    });
    assert.ifError(out.error);
    for (const file of ['0001.txt', '0002.txt']) {
      const caption = (await readFile(path.join(out.result!.datasetDir, file), 'utf8')).trim();
      const [trigger, ...words] = caption.replace(',', '').split(' ');
      assert.equal(trigger, 'ohwx');
      assert.ok(words.length > 0, caption);
    }
  });

  it('vlm: a local model that cannot load fails the task naming it', async () => {
    const root = await tempDir();
    await writeFile(path.join(root, 'a.jpg'), await jpeg(640, 480, 83));
    const out = await runJob([path.join(root, 'a.jpg')], {
      config: { sourceRoots: [root], vlm: { url: '', model: path.join(root, 'no-such-model'), apiKey: '' } },
      job: { captioning: { strategy: 'vlm', prompt: null } },
    });
    assert.ok(out.error instanceof PreprocessError);
    assert.match(out.error.message, /local captioning model \(KILN_VLM_MODEL=.*no-such-model\) failed: spec error at spec.model_path/);
  });
});
