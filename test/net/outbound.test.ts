import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkOutboundUrl, OutboundUrlError, type Resolver } from '../../src/net/index.js';

/** A resolver stub: decisions are made from these answers, and nothing is ever connected to. */
const resolver =
  (table: Record<string, string[]>): Resolver =>
  async (host) => {
    const found = table[host];
    if (!found) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
    return found.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

const lookup = resolver({
  'hooks.example': ['93.184.216.34'],
  'split.example': ['93.184.216.34', '10.0.0.5'],
  'v6.example': ['::ffff:192.168.0.10'],
});

async function refusal(url: string, opts: { allowPrivateNetworks?: boolean; allowedOrigins?: string[] } = {}): Promise<OutboundUrlError> {
  try {
    await checkOutboundUrl(url, { allowPrivateNetworks: false, lookup, label: 'webhook_url', ...opts });
  } catch (err) {
    assert.ok(err instanceof OutboundUrlError);
    return err;
  }
  assert.fail(`${url} was allowed`);
}

describe('checkOutboundUrl', () => {
  it('returns the vetted address of a public host', async () => {
    const vetted = await checkOutboundUrl('https://hooks.example/x', { allowPrivateNetworks: false, lookup });
    assert.deepEqual([vetted.address, vetted.family, vetted.url.href], ['93.184.216.34', 4, 'https://hooks.example/x']);
  });

  it('refuses when any resolved address is private, naming it', async () => {
    const err = await refusal('https://split.example/hook');
    assert.equal(err.message, 'webhook_url resolves to 10.0.0.5, a private address; set KILN_ALLOW_PRIVATE_NETWORKS=1 to allow');
    assert.equal(err.reason, 'private');
  });

  it('refuses IP literals and IPv4-mapped IPv6 without resolving', async () => {
    assert.match((await refusal('http://10.0.0.1/')).message, /points to 10\.0\.0\.1, a private address/);
    assert.match((await refusal('http://[::1]:8080/')).message, /points to ::1, a loopback address/);
    assert.match((await refusal('http://[::ffff:127.0.0.1]/')).message, /a loopback address/);
    assert.match((await refusal('http://v6.example/')).message, /resolves to ::ffff:192\.168\.0\.10, a private address/);
    assert.match((await refusal('http://100.64.1.1/')).message, /a shared \(CGNAT\) address/);
    assert.match((await refusal('http://2130706433/')).message, /points to 127\.0\.0\.1/, 'decimal spelling is normalised by URL');
  });

  it('refuses schemes other than http(s), bad URLs and unresolvable hosts', async () => {
    assert.equal((await refusal('ftp://hooks.example/')).reason, 'scheme');
    assert.equal((await refusal('file:///etc/passwd')).reason, 'scheme');
    assert.equal((await refusal('not a url')).reason, 'invalid');
    assert.match((await refusal('http://nowhere.example/')).message, /could not be resolved \(ENOTFOUND\)/);
  });

  it('allowPrivateNetworks admits private addresses but never cloud metadata', async () => {
    const vetted = await checkOutboundUrl('http://10.0.0.1/', { allowPrivateNetworks: true, lookup });
    assert.equal(vetted.address, '10.0.0.1');
    assert.equal((await refusal('http://169.254.169.254/latest/', { allowPrivateNetworks: true })).reason, 'metadata');
    assert.equal((await refusal('http://metadata.google.internal/computeMetadata/v1/', { allowPrivateNetworks: true })).reason, 'metadata');
  });

  it('allowedOrigins exempts exactly the listed origins', async () => {
    await checkOutboundUrl('http://127.0.0.1:9000/v1', { allowPrivateNetworks: false, allowedOrigins: ['http://127.0.0.1:9000'] });
    assert.equal((await refusal('http://127.0.0.1:9001/v1', { allowedOrigins: ['http://127.0.0.1:9000'] })).reason, 'private');
  });
});
