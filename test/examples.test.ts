// The shipped examples stay valid: the alert rules the README and scripts/demo.sh use parse,
// and every rule names a policy that exists in the demo.

import assert from 'node:assert/strict';
import { it } from 'node:test';
import { loadAlertConfig } from '../src/flows/alerts.js';
import { loadManifests } from '../src/load/index.js';

it('examples/alerts.yaml parses and refers to the demo', async () => {
  const config = await loadAlertConfig('examples/alerts.yaml');
  assert.deepEqual(
    config.rules.map((r) => r.kind).sort(),
    ['bytes-between', 'denied-rate', 'new-external', 'policy-unused'],
  );
  const { cluster } = await loadManifests(['examples/demo']);
  const policies = new Set(cluster.networkPolicies.map((p) => `NetworkPolicy ${p.namespace}/${p.name}`));
  const workloads = new Set(cluster.workloads.map((w) => `${w.namespace}/${w.name}[${w.kind}]`));
  for (const r of config.rules) {
    if (r.kind === 'policy-unused') assert.ok(policies.has(r.policy), `${r.name}: no ${r.policy} in examples/demo`);
    if (r.kind === 'bytes-between') {
      for (const side of [r.from, r.to]) {
        if (side.workload) assert.ok(workloads.has(side.workload), `${r.name}: no workload ${side.workload} in examples/demo`);
      }
    }
  }
});
