import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { PreprocessError } from '../../src/preprocess/index.js';
import { localCaption, withTrigger } from '../../src/preprocess/captions.js';
import { jpeg, runJob, startServer, tempDir } from './helpers.js';

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
    const requests: { auth?: string; body: any }[] = [];
    const vlm = await startServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        requests.push({ auth: req.headers.authorization, body: JSON.parse(body) });
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
    assert.equal(request!.auth, 'Bearer k-123');
    assert.equal(request!.body.model, 'qwen-vl');
    const content = request!.body.messages[0].content;
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
});
