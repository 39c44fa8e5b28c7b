import dns from 'node:dns';
import net from 'node:net';
import { classifyAddress, isMetadataHostname, type AddressKind } from './address.js';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a hostname to every address it has; injectable so tests decide without DNS. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = async (hostname) => {
  const found = await dns.promises.lookup(hostname, { all: true, verbatim: true });
  return found.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

export interface OutboundPolicy {
  allowPrivateNetworks: boolean;
  lookup?: Resolver;
  /**
   * Origins (`http://host:port`) exempt from the private-address rule, e.g. an endpoint the
   * operator configured. Cloud metadata is never exempt. Every other origin, including
   * redirect targets, is still judged by address.
   */
  allowedOrigins?: readonly string[];
  /** Names the URL in messages: "webhook_url", "source", "redirect to …". */
  label?: string;
}

export type OutboundRefusal = 'invalid' | 'scheme' | 'unresolvable' | 'private' | 'metadata';

export class OutboundUrlError extends Error {
  constructor(
    message: string,
    readonly reason: OutboundRefusal,
  ) {
    super(message);
    this.name = 'OutboundUrlError';
  }
}

export interface VettedUrl {
  url: URL;
  /** The address the connection must go to; pinning it defeats DNS rebinding. */
  address: string;
  family: 4 | 6;
}

function describe(kind: AddressKind): string {
  if (kind === 'metadata') return 'the cloud metadata address';
  return `${/^[aeiou]/.test(kind) ? 'an' : 'a'} ${kind} address`;
}

/**
 * Decides whether `input` may be fetched: http(s) only, and every address its host resolves
 * to must be public unless private networks are allowed. Nothing is connected to here.
 */
export async function checkOutboundUrl(input: string | URL, policy: OutboundPolicy): Promise<VettedUrl> {
  const label = policy.label ?? 'URL';
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new OutboundUrlError(`${label} is not a valid URL`, 'invalid');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new OutboundUrlError(`${label} uses ${url.protocol.replace(/:$/, '')}; only http and https are allowed`, 'scheme');
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isMetadataHostname(host)) {
    throw new OutboundUrlError(`${label} names ${host}, a cloud metadata service`, 'metadata');
  }

  let addresses: ResolvedAddress[];
  if (net.isIP(host)) {
    addresses = [{ address: host, family: net.isIP(host) === 6 ? 6 : 4 }];
  } else {
    try {
      addresses = await (policy.lookup ?? systemResolver)(host);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new OutboundUrlError(`${label} host ${host} could not be resolved (${code})`, 'unresolvable');
    }
    if (addresses.length === 0) throw new OutboundUrlError(`${label} host ${host} has no addresses`, 'unresolvable');
  }

  const exempt = policy.allowPrivateNetworks || (policy.allowedOrigins ?? []).includes(url.origin);
  const verb = net.isIP(host) ? 'points to' : 'resolves to';
  // Every address is judged, not just the first: a client may fall back to any of them.
  for (const { address } of addresses) {
    const kind = classifyAddress(address);
    if (kind === 'metadata') {
      throw new OutboundUrlError(`${label} ${verb} ${address}, ${describe(kind)}`, 'metadata');
    }
    if (kind !== 'public' && !exempt) {
      throw new OutboundUrlError(`${label} ${verb} ${address}, ${describe(kind)}; set KILN_ALLOW_PRIVATE_NETWORKS=1 to allow`, 'private');
    }
  }
  return { url, address: addresses[0].address, family: addresses[0].family };
}
