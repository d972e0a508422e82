// `weir explain --from/--to CIDR` answers for the whole range: one verdict when every address
// is explained alike, else the split by sub-range (not just the range's first address).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadManifestText } from '../src/load/index.js';
import { explain, formatExplanation, PolicyEngine } from '../src/policy/index.js';

const MANIFEST = `apiVersion: v1
kind: Pod
metadata: { name: a, namespace: x, labels: { app: a } }
spec: { containers: [{ name: c, image: i }] }
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: out, namespace: x }
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - to: [{ ipBlock: { cidr: 10.0.0.0/8, except: [10.1.0.0/16] } }]
      ports: [{ port: 443 }]
`;

describe('explain over a CIDR', () => {
  const engine = new PolicyEngine(loadManifestText(MANIFEST, 'x.yaml').cluster);

  it('one verdict when the whole range is explained alike', () => {
    const e = explain(engine, 'x/a', '10.2.0.0/16', 'TCP', 443);
    assert.equal(e.verdict, 'Allowed');
    assert.equal(e.ranges, undefined);
    assert.equal(e.to, '10.2.0.0-10.2.255.255[External]');
    // The first address of 10.1.0.0/16 was all that used to be looked at: now the whole range.
    assert.equal(explain(engine, 'x/a', '10.1.0.0/16', 'TCP', 443).verdict, 'Denied');
  });

  it('the split by sub-range when verdicts differ', () => {
    const e = explain(engine, 'x/a', '10.0.0.0/8', 'TCP', 443);
    assert.equal(e.verdict, 'Mixed');
    assert.deepEqual(
      e.ranges?.map((r) => [r.range, r.verdict]),
      [
        ['10.0.0.0-10.0.255.255', 'Allowed'],
        ['10.1.0.0-10.1.255.255', 'Denied'],
        ['10.2.0.0-10.255.255.255', 'Allowed'],
      ],
    );
    const text = formatExplanation(e).split('\n');
    assert.equal(text[0], 'x/a => 10.0.0.0-10.255.255.255[External] : TCP 443');
    assert.equal(text[1], 'verdict: MIXED (the range splits, see below)');
    assert.ok(text.includes('  10.1.0.0-10.1.255.255: DENIED'), text.join('\n'));
  });

  it('a CIDR as the source: ingress of a pod from the range', () => {
    const e = explain(engine, '0.0.0.0/0', 'x/a', 'TCP', 80);
    assert.equal(e.verdict, 'Allowed');
    assert.equal(e.from, '0.0.0.0-255.255.255.255[External]');
  });
});
