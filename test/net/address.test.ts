import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyAddress, isMetadataHostname, isPublicAddress } from '../../src/net/index.js';

describe('classifyAddress', () => {
  const cases: [string, string][] = [
    ['127.0.0.1', 'loopback'],
    ['127.255.1.2', 'loopback'],
    ['::1', 'loopback'],
    ['10.0.0.5', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['169.254.169.254', 'metadata'],
    ['fd00:ec2::254', 'metadata'],
    ['169.254.10.10', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['100.64.0.1', 'shared (CGNAT)'],
    ['100.127.255.254', 'shared (CGNAT)'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'reserved'],
    ['::', 'unspecified'],
    ['224.0.0.251', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:10.1.2.3', 'private'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['64:ff9b::192.168.0.1', 'private'],
    ['8.8.8.8', 'public'],
    ['172.32.0.1', 'public'],
    ['100.128.0.1', 'public'],
    ['2606:4700:4700::1111', 'public'],
    ['::ffff:8.8.8.8', 'public'],
  ];
  for (const [ip, kind] of cases) {
    it(`${ip} is ${kind}`, () => {
      assert.equal(classifyAddress(ip), kind);
      assert.equal(isPublicAddress(ip), kind === 'public');
    });
  }

  it('throws on non-addresses', () => {
    assert.throws(() => classifyAddress('example.com'), TypeError);
  });

  it('knows cloud metadata hostnames', () => {
    assert.ok(isMetadataHostname('metadata.google.internal'));
    assert.ok(isMetadataHostname('METADATA.google.internal.'));
    assert.ok(!isMetadataHostname('example.com'));
  });
});
