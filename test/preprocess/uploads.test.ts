import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, utimes } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { testConfig } from '../../src/config.js';
import { deleteUpload, openUpload, saveUpload, sweepUploads, uploadExpiry, UploadNotFoundError, UploadTooLargeError } from '../../src/preprocess/index.js';
import { uploadIdOf } from '../../src/preprocess/sources.js';
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

  it('a source entry names an upload only when it is a well-formed upload:// reference', () => {
    assert.equal(uploadIdOf(' UPLOAD://abcdEFGH_1234 '), 'abcdEFGH_1234');
    for (const other of ['upload://../acme', 'upload://short', 'https://example.com/upload://abcdEFGH_1234', '/srv/photos/a.jpg', '']) {
      assert.equal(uploadIdOf(other), undefined, other);
    }
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

  it('a sweep deletes uploads past KILN_UPLOAD_RETENTION_HOURS, except those a task still waits for, and abandoned partial uploads', async () => {
    const config = testConfig(await tempDir(), { uploadRetentionHours: 2 });
    const save = (tenant: string | null) => saveUpload(config, tenant, 'a.jpg', Readable.from([Buffer.from('x')]));
    const [old, waited, fresh, tenantless] = [await save('acme'), await save('acme'), await save('globex'), await save(null)];
    const created = Date.parse(old.created_at);
    assert.equal(uploadExpiry(config, created), new Date(created + 2 * 3_600_000).toISOString());
    // A staging folder of a request that died mid-transfer, a day and more ago.
    const partial = path.join(config.dataDir, 'uploads', 'acme', '.AAAAAAAAAAAA.partial');
    await mkdir(partial);
    const dayAgo = new Date(Date.now() - 25 * 3_600_000);
    await utimes(partial, dayAgo, dayAgo);

    assert.equal(await sweepUploads(config, new Set(), created + 3_600_000), 0, 'nothing is due an hour in');
    assert.deepEqual((await readdir(path.join(config.dataDir, 'uploads', 'acme'))).sort(), [old.id, waited.id].sort(), 'the partial upload went');

    const deleted = await sweepUploads(config, new Set([waited.id]), created + 3 * 3_600_000);
    assert.equal(deleted, 3);
    await assert.rejects(openUpload(config, 'acme', old.reference), UploadNotFoundError);
    await assert.rejects(openUpload(config, 'globex', fresh.reference), UploadNotFoundError);
    await assert.rejects(openUpload(config, null, tenantless.reference), UploadNotFoundError);
    assert.equal((await openUpload(config, 'acme', waited.reference)).id, waited.id, 'a task still waits for this one');
  });

  it('with KILN_UPLOAD_RETENTION_HOURS=0 uploads never expire', async () => {
    const config = testConfig(await tempDir(), { uploadRetentionHours: 0 });
    const saved = await saveUpload(config, 'acme', 'a.jpg', Readable.from([Buffer.from('x')]));
    assert.equal(uploadExpiry(config, Date.parse(saved.created_at)), null);
    assert.equal(await sweepUploads(config, new Set(), Date.now() + 10 * 365 * 24 * 3_600_000), 0);
    assert.equal((await openUpload(config, 'acme', saved.reference)).id, saved.id);
  });

  it("deleting an upload: the tenant's own only, once", async () => {
    const config = testConfig(await tempDir());
    const saved = await saveUpload(config, 'acme', 'a.jpg', Readable.from([Buffer.from('x')]));
    await assert.rejects(deleteUpload(config, 'globex', saved.id), UploadNotFoundError);
    await deleteUpload(config, 'acme', saved.reference);
    await assert.rejects(openUpload(config, 'acme', saved.reference), UploadNotFoundError);
    await assert.rejects(deleteUpload(config, 'acme', saved.id), UploadNotFoundError);
  });
});
