// Conntrack entries that would keep sending packets to an endpoint the Services no longer have
// (`weir agent --services`). A new connection is translated once, when conntrack creates its
// entry; a later packet that matches the entry follows it, whatever the maps say now. Two kinds
// of entry outlive an endpoint that way:
//
//   - TCP attempts never answered (SYN_SENT: the endpoint was dropping, or gone): a client that
//     reuses the source port within the entry's timeout (2 minutes) has its SYN matched to the old
//     entry and sent to the old endpoint — a pod that no longer exists answers nothing, or its
//     node answers "network unreachable";
//   - UDP "connections": a client that keeps its socket keeps its endpoint (kube-proxy deletes
//     these too, for the same reason).
//
// Established TCP connections are left alone: an endpoint leaves the rotation when its pod is
// not ready or terminating, and those connections are for the pod to finish (graceful
// termination). Run after the transaction that removed the endpoints, so no new entry to them
// can appear once these are gone.

import type { ServicesInput } from '../render/services.js';
import { run } from '../exec/run.js';

/** `tcp 10.244.1.5 8080`: every endpoint of every Service port in the input. */
export function serviceEndpointKeys(input: ServicesInput | undefined): Set<string> {
  const out = new Set<string>();
  for (const svc of input?.services ?? []) {
    for (const port of svc.ports) {
      if (port.protocol === 'SCTP') continue;
      for (const e of port.endpoints) out.add(`${port.protocol.toLowerCase()} ${e.ip} ${e.port}`);
    }
  }
  return out;
}

/** Deletes the entries described above for endpoints in `before` but not in `after`; returns how many went. */
export async function flushStaleEndpoints(before: ReadonlySet<string>, after: ReadonlySet<string>, netns?: string): Promise<number> {
  const removed = [...before].filter((k) => !after.has(k));
  let deleted = 0;
  for (const key of removed) {
    const [proto, ip, port] = key.split(' ');
    const argv = ['conntrack', '-D', '-p', proto, '--reply-src', ip, '--reply-port-src', port, ...(proto === 'tcp' ? ['--state', 'SYN_SENT'] : [])];
    // Exit 1 and "0 flow entries" when there was nothing to delete.
    const r = await run(netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv, { allowFailure: true, timeoutMs: 10_000 });
    deleted += Number(/(\d+) flow entr/.exec(r.stderr)?.[1] ?? 0);
  }
  return deleted;
}
