import net from 'node:net';

/**
 * Classification of IP addresses for the outbound-URL guard. Addresses are reduced to
 * integers (IPv4 as a 32-bit number, IPv6 as a 128-bit bigint) and matched against
 * CIDR ranges, so every textual spelling of an address lands on the same rule.
 */
export type AddressKind = 'public' | 'loopback' | 'private' | 'link-local' | 'metadata' | 'shared (CGNAT)' | 'unspecified' | 'multicast' | 'broadcast' | 'reserved';

type Rule = { base: bigint; prefix: number; kind: Exclude<AddressKind, 'public'> };

function parseIPv4(ip: string): bigint {
  return ip.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function parseIPv6(ip: string): bigint {
  let text = ip.split('%')[0].toLowerCase();
  // A trailing dotted quad (::ffff:1.2.3.4) becomes two hextets.
  const dotted = text.match(/^(.*:)(\d+\.\d+\.\d+\.\d+)$/);
  if (dotted) {
    const v4 = parseIPv4(dotted[2]);
    text = `${dotted[1]}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const headParts = head ? head.split(':') : [];
  const tailParts = tail === undefined ? [] : tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : Array<string>(8 - headParts.length - tailParts.length).fill('0');
  return [...headParts, ...fill, ...tailParts].reduce((acc, h) => (acc << 16n) | BigInt(parseInt(h, 16)), 0n);
}

function rules(family: 4 | 6, table: [string, Rule['kind']][]): Rule[] {
  return table.map(([cidr, kind]) => {
    const [base, prefix] = cidr.split('/');
    return { base: family === 4 ? parseIPv4(base) : parseIPv6(base), prefix: Number(prefix), kind };
  });
}

// More specific ranges first: the first match wins.
const V4_RULES = rules(4, [
  ['169.254.169.254/32', 'metadata'],
  ['0.0.0.0/32', 'unspecified'],
  ['0.0.0.0/8', 'reserved'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'shared (CGNAT)'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'reserved'],
  ['192.0.2.0/24', 'reserved'],
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'reserved'],
  ['198.51.100.0/24', 'reserved'],
  ['203.0.113.0/24', 'reserved'],
  ['224.0.0.0/4', 'multicast'],
  ['255.255.255.255/32', 'broadcast'],
  ['240.0.0.0/4', 'reserved'],
]);

const V6_RULES = rules(6, [
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['fd00:ec2::254/128', 'metadata'],
  ['fc00::/7', 'private'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'private'],
  ['ff00::/8', 'multicast'],
  ['2001:db8::/32', 'reserved'],
  ['100::/64', 'reserved'],
]);

function match(value: bigint, bits: number, table: Rule[]): AddressKind {
  for (const rule of table) {
    const shift = BigInt(bits - rule.prefix);
    if (value >> shift === rule.base >> shift) return rule.kind;
  }
  return 'public';
}

/** IPv6 forms that carry an IPv4 address, which must be judged as that IPv4 address. */
function embeddedIPv4(value: bigint): bigint | null {
  const high96 = value >> 32n;
  if (high96 === 0xffffn) return value & 0xffffffffn; // ::ffff:a.b.c.d (mapped)
  if (high96 === 0n && value > 1n) return value & 0xffffffffn; // ::a.b.c.d (deprecated compatible)
  if (high96 === 0x0064ff9b0000000000000000n) return value & 0xffffffffn; // 64:ff9b::/96 (NAT64)
  return null;
}

/** What kind of address `ip` is; anything that is not an IP literal throws. */
export function classifyAddress(ip: string): AddressKind {
  const family = net.isIP(ip.split('%')[0]);
  if (family === 4) return match(parseIPv4(ip), 32, V4_RULES);
  if (family === 6) {
    const value = parseIPv6(ip);
    const v4 = embeddedIPv4(value);
    return v4 === null ? match(value, 128, V6_RULES) : match(v4, 32, V4_RULES);
  }
  throw new TypeError(`not an IP address: ${ip}`);
}

export function isPublicAddress(ip: string): boolean {
  return classifyAddress(ip) === 'public';
}

const METADATA_HOSTS = new Set(['metadata.google.internal', 'metadata.goog', 'metadata', 'instance-data', 'instance-data.ec2.internal']);

/** Cloud metadata services reached by name; refused even when private networks are allowed. */
export function isMetadataHostname(hostname: string): boolean {
  return METADATA_HOSTS.has(hostname.toLowerCase().replace(/\.$/, ''));
}
