import type { Endpoint } from './record.js';

/** `ns/pod`, or the address (with its CIDR) for external endpoints. */
export function endpointLabelPlain(ep: Endpoint): string {
  if (ep.external || !ep.namespace) return ep.cidr ? `${ep.ip}(${ep.cidr})` : ep.ip;
  return `${ep.namespace}/${ep.pod ?? ep.ip}`;
}
