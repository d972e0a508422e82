// The engine against synthetic probe results (no root): `weir lab probe --compare` must list
// exactly the cells where the kernel disagrees with the engine, explain each one, treat the
// enforce verdict as the expectation and flag cells audit-mode policies would change.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compareWithDesired, comparisonJson, formatComparison, labCluster, mergeProbeCells, timedOutAllowedCells } from '../src/lab/compare.js';
import { EXTERNAL_PEER, formatProbeSummary, planLab, type LabState, type ProbeCell, type ProbeResult } from '../src/lab/index.js';
import { loadManifestText } from '../src/load/index.js';
import type { Cluster } from '../src/model/cluster.js';

const MANIFESTS = `
apiVersion: v1
kind: Namespace
metadata: { name: x, labels: { ns: x } }
---
apiVersion: v1
kind: Pod
metadata: { name: a, namespace: x, labels: { pod: a } }
spec: { containers: [{ name: c, image: i, ports: [{ containerPort: 80 }] }] }
---
apiVersion: v1
kind: Pod
metadata: { name: b, namespace: x, labels: { pod: b } }
spec: { containers: [{ name: c, image: i, ports: [{ containerPort: 80 }] }] }
---
apiVersion: v1
kind: Pod
metadata: { name: c, namespace: x, labels: { pod: c } }
spec: { containers: [{ name: c, image: i, ports: [{ containerPort: 80 }] }] }
---
# b accepts TCP 80 from a only.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: b-from-a, namespace: x }
spec:
  podSelector: { matchLabels: { pod: b } }
  ingress: [{ from: [{ podSelector: { matchLabels: { pod: a } } }], ports: [{ port: 80 }] }]
`;

const AUDIT = `
---
# Would isolate c's ingress entirely, but only in audit mode.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: c-closed, namespace: x, annotations: { weir.dev/mode: audit } }
spec:
  podSelector: { matchLabels: { pod: c } }
  policyTypes: [Ingress]
`;

function load(text: string): Cluster {
  const { cluster, diagnostics } = loadManifestText(text, 'fixture.yaml');
  assert.deepEqual(
    diagnostics.filter((d) => d.severity === 'error'),
    [],
  );
  return cluster;
}

function stateOf(cluster: Cluster): LabState {
  return planLab(cluster, { dir: '/tmp/weir-compare-test', prefix: 'weir-t0000-' }).state;
}

const PEERS = ['x/a', 'x/b', 'x/c', EXTERNAL_PEER];

/** A full 80/TCP probe where `reachable(from, to)` says what the "kernel" did. */
function probeResult(reachable: (from: string, to: string) => boolean): ProbeResult {
  const cells: ProbeCell[] = [];
  for (const from of PEERS) {
    for (const to of PEERS) {
      const ok = reachable(from, to);
      cells.push({ from, to, port: 80, protocol: 'TCP', ok, ms: 1, ...(ok ? { reply: to } : { error: 'timeout' }) });
    }
  }
  return { from: PEERS, to: PEERS, ports: [{ port: 80, protocol: 'TCP' }], cells, durationMs: 1 };
}

/** What a correct kernel does with MANIFESTS: only a (and b itself) reach b. */
const truth = (from: string, to: string): boolean => to !== 'x/b' || from === 'x/a' || from === 'x/b';

describe('lab compare (engine vs probe)', () => {
  it('agreement yields zero disagreements', () => {
    const desired = load(MANIFESTS);
    const cmp = compareWithDesired(desired, stateOf(desired), probeResult(truth));
    assert.equal(cmp.cells.length, 16);
    // 4 loopback cells are not compared (a pod's own address never leaves its namespace).
    assert.equal(cmp.compared, 12);
    assert.deepEqual(cmp.disagreements, []);
    assert.deepEqual(cmp.auditCells, []);
    assert.match(formatComparison(cmp), /^12 cells, 0 disagreements \(4 not compared/m);
  });

  it('reports a disagreement in either direction, with the explain() chain', () => {
    const desired = load(MANIFESTS);
    // The "kernel" lets c into b (a missed deny) and drops a -> c (a spurious deny).
    const kernel = (from: string, to: string): boolean => (from === 'x/c' && to === 'x/b') || (truth(from, to) && !(from === 'x/a' && to === 'x/c'));
    const cmp = compareWithDesired(desired, stateOf(desired), probeResult(kernel));
    const found = cmp.disagreements.map((d) => [d.cell.from, d.cell.to, d.cell.expected, d.cell.observed]);
    assert.deepEqual(found, [
      ['x/a', 'x/c', 'Allowed', 'Denied'],
      ['x/c', 'x/b', 'Denied', 'Allowed'],
    ]);
    const missedDeny = cmp.disagreements[1];
    assert.equal(missedDeny.explanation.verdict, 'Denied');
    assert.equal(missedDeny.explanation.ingress.decidedBy.tier, 'default');
    const text = formatComparison(cmp);
    assert.match(text, /DISAGREE x\/c -> x\/b 80\/TCP: the engine says DENIED, the kernel: reachable/);
    assert.match(text, /DISAGREE x\/a -> x\/c 80\/TCP: the engine says ALLOWED, the kernel: not reachable \(timeout\)/);
    assert.match(text, /x\/b is isolated for ingress by NetworkPolicy x\/[a-z-]+ and no rule of those policies allows this/);
    assert.match(text, /^12 cells, 2 disagreements/m);
    const json = comparisonJson(cmp) as { cells: number; disagreements: unknown[] };
    assert.equal(json.cells, 12);
    assert.equal(json.disagreements.length, 2);
  });

  it('uses the lab pod addresses, so an ipBlock covering a pod IP is judged as the kernel sees it', () => {
    const base = load(MANIFESTS);
    const state = stateOf(base);
    const aIp = state.pods.find((p) => p.key === 'x/a')?.ip;
    assert.ok(aIp);
    // Only a's address (by ipBlock, not by selector) may reach c.
    const desired = load(`${MANIFESTS}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: c-from-ip, namespace: x }
spec:
  podSelector: { matchLabels: { pod: c } }
  ingress: [{ from: [{ ipBlock: { cidr: ${aIp}/32 } }] }]
`);
    assert.equal(labCluster(desired, state).pods.find((p) => p.name === 'a')?.ip, aIp);
    const kernel = (from: string, to: string): boolean => truth(from, to) && (to !== 'x/c' || from === 'x/a' || from === 'x/c');
    const cmp = compareWithDesired(desired, state, probeResult(kernel));
    assert.deepEqual(cmp.disagreements, []);
  });

  it('expects the enforce verdict and marks cells where audit-mode policies would deny', () => {
    const desired = load(MANIFESTS + AUDIT);
    const cmp = compareWithDesired(desired, stateOf(desired), probeResult(truth));
    assert.deepEqual(cmp.disagreements, [], 'audit policies change nothing in the kernel');
    assert.deepEqual(
      cmp.auditCells.map((c) => [c.from, c.to, c.expected, c.audit]),
      [
        ['x/a', 'x/c', 'Allowed', 'Denied'],
        ['x/b', 'x/c', 'Allowed', 'Denied'],
        [EXTERNAL_PEER, 'x/c', 'Allowed', 'Denied'],
      ],
    );
    assert.match(formatComparison(cmp), /x\/a -> x\/c 80\/TCP: Allowed \(audit: would deny\)/);
  });

  it('does not compare cells the target does not serve', () => {
    const desired = load(MANIFESTS);
    const result = probeResult(truth);
    const extra: ProbeCell = { from: 'x/a', to: 'x/b', port: 81, protocol: 'TCP', ok: false, error: 'refused', ms: 1 };
    const cmp = compareWithDesired(desired, stateOf(desired), { ...result, cells: [...result.cells, extra] });
    assert.equal(cmp.cells.at(-1)?.skipped, 'not-served');
    assert.deepEqual(cmp.disagreements, []);
  });

  it('re-probes only allowed cells that timed out, never a cell that got through where denied', () => {
    const desired = load(MANIFESTS);
    const state = stateOf(desired);
    // a -> c timed out (slow machine) and c -> b got through (a real missed deny).
    const kernel = (from: string, to: string): boolean => (from === 'x/c' && to === 'x/b') || (truth(from, to) && !(from === 'x/a' && to === 'x/c'));
    const first = compareWithDesired(desired, state, probeResult(kernel));
    assert.deepEqual(
      timedOutAllowedCells(first).map((c) => `${c.from}->${c.to}`),
      ['x/a->x/c'],
    );
    // The patient second look reaches x/c: only the real disagreement is left.
    const retry = probeResult(() => true);
    const again: ProbeResult = { ...retry, cells: retry.cells.filter((c) => c.from === 'x/a' && c.to === 'x/c') };
    const merged = mergeProbeCells(probeResult(kernel), [again]);
    assert.equal(merged.cells.length, 16);
    const second = compareWithDesired(desired, state, merged);
    assert.deepEqual(
      second.disagreements.map((d) => `${d.cell.from}->${d.cell.to}`),
      ['x/c->x/b'],
    );
  });
});

describe('probe text output', () => {
  it('a summary line for the whole probe; audit cells capped, all counted', () => {
    const desired = load(MANIFESTS + AUDIT);
    const result = probeResult(truth);
    assert.match(formatProbeSummary(result), /^\d+ cells on 1 port \(80\/TCP\) in \d+ ms: \d+ reachable, \d+ not/);
    assert.equal(formatProbeSummary({ ...result, cells: [] }), 'nothing probed (no target serves the requested ports)');
    const cmp = compareWithDesired(desired, stateOf(desired), result);
    assert.ok(cmp.auditCells.length >= 2, 'the audit policy changes several cells');
    const capped = formatComparison(cmp, { auditLimit: 1 });
    assert.match(capped, new RegExp(`… and ${cmp.auditCells.length - 1} more`));
    assert.match(capped, new RegExp(`; ${cmp.auditCells.length} audit changes$`));
  });
});
