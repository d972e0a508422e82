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

import type { Ruleset } from '../render/ruleset.js';
import { run } from '../exec/run.js';

const LB_ELEMENT = /: (\d+\.\d+\.\d+\.\d+) \. (\d+)$/;
const EP_DNAT = /\bdnat ip to (\d+\.\d+\.\d+\.\d+):(\d+)\b/;

/**
 * `10.244.1.5 8080`: every endpoint the ruleset translates to — the `lb_*` weight maps
 * (`0-499 : 10.244.1.5 . 8080`) and the per-endpoint chains of ClientIP affinity (`dnat ip to
 * 10.244.1.5:8080`). Read from what was applied, not planned again: planning costs what the
 * cluster holds (bench/kube-services.ts), reading this costs what the Services hold.
 */
export function endpointKeysOfRuleset(rs: Ruleset | undefined): Set<string> {
  const out = new Set<string>();
  if (!rs) return out;
  for (const set of rs.sets.values()) {
    if (!set.name.startsWith('lb_')) continue;
    for (const e of set.elements) {
      const m = LB_ELEMENT.exec(e);
      if (m) out.add(`${m[1]} ${m[2]}`);
    }
  }
  for (const chain of rs.chains.values()) {
    if (!chain.name.startsWith('ep_')) continue;
    for (const r of chain.rules) {
      const m = EP_DNAT.exec(r);
      if (m) out.add(`${m[1]} ${m[2]}`);
    }
  }
  return out;
}

/** Deletes the entries described above for endpoints in `before` but not in `after`; returns how many went. */
export async function flushStaleEndpoints(before: ReadonlySet<string>, after: ReadonlySet<string>, netns?: string): Promise<number> {
  let deleted = 0;
  for (const key of before) {
    if (after.has(key)) continue;
    const [ip, port] = key.split(' ');
    for (const proto of ['tcp', 'udp'] as const) {
      const argv = ['conntrack', '-D', '-p', proto, '--reply-src', ip, '--reply-port-src', port, ...(proto === 'tcp' ? ['--state', 'SYN_SENT'] : [])];
      // Exit 1 and "0 flow entries" when there was nothing to delete.
      const r = await run(netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv, { allowFailure: true, timeoutMs: 10_000 });
      deleted += Number(/(\d+) flow entr/.exec(r.stderr)?.[1] ?? 0);
    }
  }
  return deleted;
}
