export { classifyAddress, isPublicAddress, isMetadataHostname, type AddressKind } from './address.js';
export { checkOutboundUrl, systemResolver, OutboundUrlError, type OutboundPolicy, type OutboundRefusal, type Resolver, type ResolvedAddress, type VettedUrl } from './outbound.js';
export { safeRequest, FetchError, type FetchFailure, type SafeRequestOptions, type SafeResponse } from './safe-fetch.js';
