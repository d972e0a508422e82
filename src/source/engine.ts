// Events → engine. The engine's incremental methods are the event handlers: one call per
// event, no cluster diff. What changed is reported so a data plane can choose between an
// element-only patch (pods of known identities coming and going) and a full render.

import type { Group, Identity } from '../policy/cache.js';
import type { PolicyEngine } from '../policy/engine.js';
import type { Pod } from '../model/cluster.js';
import type { ClusterEvent } from './types.js';

export interface EngineChanges {
  /** Anything besides pods being added or removed (policies, namespaces, nodes, changed pods). */
  readonly other: boolean;
  /** Pods that appeared (not replaced: a changed pod counts as `other`). */
  readonly added: Pod[];
  /** Pods that went away. */
  readonly removed: Pod[];
  /** Identity each removed pod had, captured before removal. */
  readonly removedIdentities: Map<string, Identity>;
  /**
   * The pod groups of a removed pod that was its identity's last (the identity is gone with
   * it, and its memberships with the identity): captured before removal.
   */
  readonly removedGroups: Map<string, readonly Group[]>;
  /** Services or EndpointSlices changed (the engine does not hold them; load balancing does). */
  readonly services: boolean;
}

/** Applies a batch of events to `engine`, in order, and says what kind of change it was. */
export function applyEventsToEngine(engine: PolicyEngine, events: readonly ClusterEvent[]): EngineChanges {
  let other = false;
  let services = false;
  const added: Pod[] = [];
  const removed: Pod[] = [];
  const removedIdentities = new Map<string, Identity>();
  const removedGroups = new Map<string, readonly Group[]>();
  for (const e of events) {
    switch (e.kind) {
      case 'Namespace':
        if (e.type === 'deleted') engine.removeNamespace(e.object.name);
        else engine.upsertNamespace(e.object);
        other = true;
        break;
      case 'Node':
        if (e.type === 'deleted') engine.removeNode(e.object.name);
        else engine.upsertNode(e.object);
        other = true;
        break;
      case 'Pod': {
        const key = `${e.object.namespace}/${e.object.name}`;
        if (e.type === 'deleted') {
          const id = engine.identityOfPod(key);
          if (!id) break;
          removedIdentities.set(key, id);
          if (id.pods.size <= 1) removedGroups.set(key, [...engine.cache.podGroupsOf(id)]);
          removed.push(engine.pods.get(key) ?? e.object);
          engine.removePod(e.object.namespace, e.object.name);
        } else {
          // An `added` for a pod the engine already has is a replacement (a source restarted).
          if (e.type === 'updated' || engine.pods.has(key)) other = true;
          else added.push(e.object);
          engine.upsertPod(e.object);
        }
        break;
      }
      case 'NetworkPolicy':
        if (e.type === 'deleted') engine.removePolicy(`NetworkPolicy ${e.object.namespace}/${e.object.name}`);
        else engine.upsertNetworkPolicy(e.object);
        other = true;
        break;
      case 'AdminNetworkPolicy':
        if (e.type === 'deleted') engine.removePolicy(`AdminNetworkPolicy ${e.object.name}`);
        else engine.upsertAdminNetworkPolicy(e.object);
        other = true;
        break;
      case 'BaselineAdminNetworkPolicy':
        engine.setBaselineAdminNetworkPolicy(e.type === 'deleted' ? undefined : e.object);
        other = true;
        break;
      case 'Service':
      case 'EndpointSlice':
        services = true;
        break;
    }
  }
  return { other, added, removed, removedIdentities, removedGroups, services };
}
