// The pods a batch touches, as the engine held them before the batch and holds them after:
// what their elements in the cluster-wide sets follow from (render/filter.ts
// membershipChanges). Taken per pod key rather than per event, so that a pod added and
// deleted in one batch, or updated twice, comes down to its state before and after.

import type { PolicyEngine } from '../policy/engine.js';
import type { PodMembership } from '../render/filter.js';
import type { ClusterEvent } from '../source/types.js';

function stateOf(engine: PolicyEngine, key: string): PodMembership | undefined {
  const pod = engine.pods.get(key);
  const identity = engine.identityOfPod(key);
  return pod && identity ? { pod, identity, groups: [...engine.cache.podGroupsOf(identity)] } : undefined;
}

/** Before applying `events`: each touched pod's state (undefined: the engine did not have it). */
export function podsBefore(engine: PolicyEngine, events: readonly ClusterEvent[]): Map<string, PodMembership | undefined> {
  const out = new Map<string, PodMembership | undefined>();
  for (const e of events) {
    if (e.kind !== 'Pod') continue;
    const key = `${e.object.namespace}/${e.object.name}`;
    if (!out.has(key)) out.set(key, stateOf(engine, key));
  }
  return out;
}

/** After applying them: the same pods' states (those the engine still has). */
export function podsAfter(engine: PolicyEngine, keys: Iterable<string>): PodMembership[] {
  const out: PodMembership[] = [];
  for (const key of keys) {
    const s = stateOf(engine, key);
    if (s) out.push(s);
  }
  return out;
}
