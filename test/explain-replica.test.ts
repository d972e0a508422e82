// Replicas are counted, not materialised (a Deployment is one representative pod `<name>-0`
// with a count): `ns/<name>-N` still names a replica for explain while N < replicas.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadManifests } from '../src/load/index.js';
import { EndpointNotFoundError, PolicyEngine, explain, resolveEndpoint } from '../src/policy/index.js';

test('explain resolves every replica name of a counted workload, and no name past the count', async () => {
  const { cluster } = await loadManifests(['examples/demo']);
  const engine = new PolicyEngine(cluster);
  // frontend has replicas: 2 in examples/demo/shop-workloads.yaml.
  const one = resolveEndpoint(engine, 'shop/frontend-1');
  assert.equal(one.label, 'shop/frontend-1');
  assert.deepEqual(one.endpoint, resolveEndpoint(engine, 'shop/frontend-0').endpoint);
  assert.throws(() => resolveEndpoint(engine, 'shop/frontend-2'), EndpointNotFoundError);
  assert.throws(() => resolveEndpoint(engine, 'shop/cart-1'), EndpointNotFoundError);
  assert.equal(explain(engine, 'shop/frontend-1', 'shop/cart-0', 'TCP', 8080).verdict, explain(engine, 'shop/frontend-0', 'shop/cart-0', 'TCP', 8080).verdict);
});
