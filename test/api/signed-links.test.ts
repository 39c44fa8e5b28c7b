import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createSignedLinks } from '../../src/auth/signed-links.js';
import { testConfig } from '../../src/config.js';
import { DIALECTS, openHarness, tmpDir, type Harness } from '../helpers/harness.js';
import { insertTask } from '../helpers/tasks.js';

interface Listed {
  path: string;
  kind: string;
  size: number;
  url: string;
}

const WEIGHTS = Buffer.from('weights of the final LoRA');
const SAMPLE = Buffer.from('a sample, as png bytes would be');

for (const dialect of DIALECTS) {
  describe(`signed artifact links (${dialect})`, () => {
    let h: Harness;
    let headers: Record<string, string>;
    let id: string;
    let otherTenantsId: string;
    let listed: Listed[];
    before(async () => {
      h = await openHarness(dialect);
      headers = await h.auth('acme');
      const folder = tmpDir('kiln-links-');
      fs.mkdirSync(path.join(folder, 'output'), { recursive: true });
      fs.mkdirSync(path.join(folder, 'samples', 'step 250'), { recursive: true });
      fs.writeFileSync(path.join(folder, 'output', 'lora.safetensors'), WEIGHTS);
      fs.writeFileSync(path.join(folder, 'samples', 'step 250', 'a+b#1.png'), SAMPLE);
      id = (await insertTask(h.runtime.taskStore, { set: { training_folder: folder, status: 'COMPLETED' } })).id;
      otherTenantsId = (await insertTask(h.runtime.taskStore, { tenant: 'globex', set: { training_folder: folder, status: 'COMPLETED' } })).id;
      const res = await h.app.inject({ method: 'GET', url: `/api/v1/training/${id}/artifacts`, headers });
      assert.equal(res.statusCode, 200);
      listed = res.json<Listed[]>();
    });
    after(() => h.close());

    const open = (url: string) => h.app.inject({ method: 'GET', url });
    const byPath = (p: string) => listed.find((a) => a.path === p)!;

    test('each listed artifact has a url that opens that file without a bearer header', async () => {
      assert.deepEqual(
        listed.map((a) => a.path),
        ['output/lora.safetensors', 'samples/step 250/a+b#1.png'],
      );
      const weights = byPath('output/lora.safetensors');
      assert.match(weights.url, new RegExp(`^/api/v1/training/${id}/artifacts/output/lora\\.safetensors\\?exp=\\d+&sig=[0-9a-f]{64}$`));
      const res = await open(weights.url);
      assert.equal(res.statusCode, 200);
      assert.deepEqual(res.rawPayload, WEIGHTS);
      // Slashes stay literal and the rest of the name is escaped, so the link is the file's path.
      const sample = byPath('samples/step 250/a+b#1.png');
      assert.match(sample.url, /\/artifacts\/samples\/step%20250\/a%2Bb%231\.png\?exp=/);
      const image = await open(sample.url);
      assert.equal(image.statusCode, 200);
      assert.equal(image.headers['content-type'], 'image/png');
      assert.deepEqual(image.rawPayload, SAMPLE);
      const ranged = await h.app.inject({ method: 'GET', url: weights.url, headers: { range: 'bytes=0-6' } });
      assert.equal(ranged.statusCode, 206);
      assert.equal(ranged.body, 'weights');
    });

    test('the link expires after KILN_SIGNED_LINK_TTL_SECONDS, an hour by default', () => {
      const exp = Number(new URL(byPath('output/lora.safetensors').url, 'http://x').searchParams.get('exp'));
      const inSeconds = exp - Date.now() / 1000;
      assert.ok(inSeconds > 3590 && inSeconds <= 3600, `expires in ${inSeconds} s`);
    });

    test("an altered, expired or other file's signature is a 403 that says which", async () => {
      const url = new URL(byPath('output/lora.safetensors').url, 'http://x');
      const exp = url.searchParams.get('exp')!;
      const sig = url.searchParams.get('sig')!;
      const flipped = `${sig.slice(0, -1)}${sig.endsWith('0') ? '1' : '0'}`;
      const sampleSig = new URL(byPath('samples/step 250/a+b#1.png').url, 'http://x').searchParams.get('sig')!;
      const base = `/api/v1/training/${id}/artifacts`;
      const cases: [string, RegExp][] = [
        [`${base}/output/lora.safetensors?exp=${exp}&sig=${flipped}`, /invalid/],
        [`${base}/output/lora.safetensors?exp=${Number(exp) + 3600}&sig=${sig}`, /invalid/],
        [`${base}/output/lora.safetensors?exp=${exp}&sig=${sampleSig}`, /invalid/],
        [`${base}/samples/step%20250/a%2Bb%231.png?exp=${exp}&sig=${sig}`, /invalid/],
        [`/api/v1/training/${otherTenantsId}/artifacts/output/lora.safetensors?exp=${exp}&sig=${sig}`, /invalid/],
        [`${base}/output/lora.safetensors?exp=${exp}`, /malformed/],
        [`${base}/output/lora.safetensors?exp=soon&sig=${sig}`, /malformed/],
      ];
      for (const [link, reason] of cases) {
        const res = await open(link);
        assert.equal(res.statusCode, 403, link);
        assert.match(res.json<{ detail: string }>().detail, reason, link);
      }
      // Signed an hour and a second ago by the same key: the signature holds, the time does not.
      const links = createSignedLinks(h.config);
      const stale = links.query(id, 'output/lora.safetensors', Date.now() - 3_601_000);
      const expired = await open(`${base}/output/lora.safetensors${stale}`);
      assert.equal(expired.statusCode, 403);
      assert.match(expired.json<{ detail: string }>().detail, /expired/);
    });

    test('a link opens nothing but its file: not the listing, not another task, not another route', async () => {
      const query = new URL(byPath('output/lora.safetensors').url, 'http://x').search;
      for (const url of [`/api/v1/training/${id}/artifacts${query}`, `/api/v1/training/${id}${query}`, `/api/v1/training/${query}`]) {
        assert.equal((await open(url)).statusCode, 401, url);
      }
      const signedForOther = createSignedLinks(h.config).query(otherTenantsId, 'output/lora.safetensors');
      assert.equal((await open(`/api/v1/training/${otherTenantsId}/artifacts/output/lora.safetensors${signedForOther}`)).statusCode, 200, 'a link names its task');
      const post = await h.app.inject({ method: 'POST', url: byPath('output/lora.safetensors').url });
      assert.equal(post.statusCode, 405);
    });

    test('a bearer header is checked as always, even beside a signature', async () => {
      const res = await h.app.inject({ method: 'GET', url: byPath('output/lora.safetensors').url, headers: { authorization: 'Bearer not.a.jwt' } });
      assert.equal(res.statusCode, 401);
    });
  });
}

describe('the link signing key', () => {
  test('is generated once in the data dir, owner-only, when KILN_URL_SIGNING_SECRET is unset, and a set one wins', () => {
    const dataDir = tmpDir();
    const a = createSignedLinks(testConfig(dataDir));
    const b = createSignedLinks(testConfig(dataDir));
    const q = a.query('t', 'output/lora.safetensors');
    const [exp, sig] = [...new URLSearchParams(q).values()];
    assert.equal(b.refusal('t', 'output/lora.safetensors', exp, sig), null, 'a second process agrees');
    assert.equal(fs.statSync(path.join(dataDir, 'secrets', 'url-signing-secret')).mode & 0o777, 0o600);
    const configured = createSignedLinks(testConfig(dataDir, { urlSigningSecret: 'another-key-another-key' }));
    assert.equal(configured.refusal('t', 'output/lora.safetensors', exp, sig), 'Signed link is invalid');
  });
});
