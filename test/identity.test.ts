// Stable identities (no root): an identity's id is derived from its key (namespace, labels,
// ports), so engines that see the same pods agree on every id whatever the order, and a group
// that disappears and comes back gets its number back.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Pod } from '../src/model/cluster.js';
import { IDENTITY_ID_MAX, IDENTITY_ID_MIN, identityIdOf } from '../src/policy/cache.js';
import { PolicyEngine } from '../src/policy/index.js';
import { e2eModel } from './helpers/model.js';

function ids(engine: PolicyEngine): Map<string, number> {
  return new Map([...engine.pods.keys()].map((k) => [k, engine.identityOfPod(k)?.id ?? -1]));
}

/** A deterministic shuffle (xorshift), so a failure reproduces. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let x = seed;
  for (let i = out.length - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = Math.abs(x) % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

describe('identity ids', () => {
  const cluster = e2eModel();
  // Replicas: pods sharing labels share an identity.
  const pods: Pod[] = [...cluster.pods, ...cluster.pods.map((p) => ({ ...p, name: `${p.name}-2`, ip: undefined }))];

  it('two engines fed the same pods in different orders give every identity the same id', () => {
    const one = new PolicyEngine();
    for (const p of pods) one.upsertPod(p);
    for (let seed = 1; seed <= 5; seed++) {
      const other = new PolicyEngine();
      for (const p of shuffled(pods, seed * 7919)) other.upsertPod(p);
      assert.deepEqual(ids(other), ids(one), `order ${seed}`);
    }
    assert.equal(new Set(ids(one).values()).size, 9, 'nine label sets, nine identities');
  });

  it('ids are the hash of the key, in [256, 2^31), and come back after the group was gone', () => {
    const engine = new PolicyEngine(cluster);
    for (const id of engine.identities()) {
      assert.equal(id.id, identityIdOf(id.key));
      assert.ok(id.id >= IDENTITY_ID_MIN && id.id <= IDENTITY_ID_MAX);
    }
    const a = engine.identityOfPod('x/a')?.id;
    engine.removePod('x', 'a');
    engine.upsertPod({ ...(cluster.pods[0] as Pod), labels: { pod: 'other' } });
    assert.notEqual(engine.identityOfPod('x/a')?.id, a);
    engine.upsertPod(cluster.pods[0] as Pod);
    assert.equal(engine.identityOfPod('x/a')?.id, a);
  });

  it('a label, a port or the namespace makes another identity', () => {
    const base = cluster.pods[0] as Pod;
    const key = (p: Pod): number => {
      const e = new PolicyEngine();
      e.upsertPod(p);
      return e.identityOfPod(`${p.namespace}/${p.name}`)?.id ?? -1;
    };
    const id = key(base);
    assert.equal(key({ ...base, name: 'zz', ip: '10.9.9.9' }), id, 'name and address are not part of the identity');
    assert.notEqual(key({ ...base, labels: { ...base.labels, v: '2' } }), id);
    assert.notEqual(key({ ...base, ports: base.ports.slice(1) }), id);
    assert.notEqual(key({ ...base, namespace: 'y' }), id);
  });
});
