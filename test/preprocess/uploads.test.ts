import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { testConfig } from '../../src/config.js';
import { openUpload, saveUpload, UploadNotFoundError, UploadTooLargeError } from '../../src/preprocess/index.js';
import { tempDir } from './helpers.js';

describe('uploads', () => {
  it('stores a stream under the tenant and opens it by reference', async () => {
    const config = testConfig(await tempDir());
    const bytes = Buffer.from('pretend these are image bytes');
    const saved = await saveUpload(config, 'acme', '../../etc/pa\u0000sswd.jpg', Readable.from([bytes.subarray(0, 5), bytes.subarray(5)]));
    assert.equal(saved.reference, `upload://${saved.id}`);
    assert.equal(saved.filename, 'passwd.jpg', 'only a clean base name is kept');
    assert.equal(saved.size, bytes.length);
    assert.equal(saved.sha256, (await import('node:crypto')).createHash('sha256').update(bytes).digest('hex'));
    const opened = await openUpload(config, 'acme', saved.reference);
    assert.ok(opened.path.startsWith(path.join(config.dataDir, 'uploads', 'acme', saved.id)));
    assert.deepEqual(await readFile(opened.path), bytes);
  });

  it("another tenant's upload, an unknown id and a malformed reference are all not found", async () => {
    const config = testConfig(await tempDir());
    const saved = await saveUpload(config, 'acme', 'a.jpg', Readable.from([Buffer.from('x')]));
    await assert.rejects(openUpload(config, 'globex', saved.reference), UploadNotFoundError);
    await assert.rejects(openUpload(config, null, saved.reference), UploadNotFoundError);
    await assert.rejects(openUpload(config, 'acme', 'upload://AAAAAAAAAAAAAAAAAAAAAA'), UploadNotFoundError);
    await assert.rejects(openUpload(config, 'acme', 'upload://../acme'), UploadNotFoundError);
  });

  it('refuses an upload over the size cap with a 413 error and leaves nothing behind', async () => {
    const config = testConfig(await tempDir(), { maxDownloadBytes: 1000 });
    const chunks = Array.from({ length: 5 }, () => Buffer.alloc(300));
    await assert.rejects(saveUpload(config, null, 'big.jpg', Readable.from(chunks)), (err: unknown) => {
      assert.ok(err instanceof UploadTooLargeError);
      assert.equal(err.statusCode, 413);
      return true;
    });
    assert.deepEqual(await readdir(path.join(config.dataDir, 'uploads', '_')), []);
  });
});
