// Pure lab planning: validation, IPAM and formatting, without root.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Cluster, Pod } from '../src/model/cluster.js';
import { ValidationError } from '../src/model/diagnostics.js';
import { formatReachability, parsePortSpec, planLab, upstreamE2eCluster } from '../src/lab/index.js';
import type { ProbeResult } from '../src/lab/index.js';
import { isInstanceNetns } from '../src/lab/names.js';

const tcp80 = [{ port: 80, protocol: 'TCP' as const }];

function pod(namespace: string, name: string, extra: Partial<Pod> = {}): Pod {
  return { namespace, name, labels: { pod: name }, ports: tcp80, hostNetwork: false, workload: `${namespace}/${name}[Pod]`, ...extra };
}

function withPods(pods: Pod[]): Cluster {
  return { ...upstreamE2eCluster({ namespaces: [], pods: [] }), pods };
}

function codes(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ValidationError, `expected ValidationError, got ${String(error)}`);
    return error.diagnostics.map((d) => d.code);
  }
  assert.fail('expected a ValidationError');
}

describe('lab plan', () => {
  it('spreads the e2e model round-robin over two nodes with addresses from node pools', () => {
    const { state, diagnostics } = planLab(upstreamE2eCluster(), { dir: '/tmp/x', prefix: 'weir-t0000-' });
    assert.deepEqual(diagnostics, []);
    assert.equal(state.nodes.length, 2);
    assert.deepEqual(
      state.nodes.map((n) => [n.name, n.netns, n.underlayIp, n.podCidr, n.vtepIp]),
      [
        ['node-0', 'weir-t0000-n0', '172.31.255.10', '10.244.0.0/24', '10.244.0.0'],
        ['node-1', 'weir-t0000-n1', '172.31.255.11', '10.244.1.0/24', '10.244.1.0'],
      ],
    );
    assert.equal(state.pods.length, 9);
    assert.deepEqual(
      state.pods.map((p) => `${p.key}@${p.node}=${p.ip}`),
      [
        'x/a@node-0=10.244.0.1',
        'x/b@node-1=10.244.1.1',
        'x/c@node-0=10.244.0.2',
        'y/a@node-1=10.244.1.2',
        'y/b@node-0=10.244.0.3',
        'y/c@node-1=10.244.1.3',
        'z/a@node-0=10.244.0.4',
        'z/b@node-1=10.244.1.4',
        'z/c@node-0=10.244.0.5',
      ],
    );
    for (const p of state.pods) {
      assert.ok(p.hostVeth.length <= 15 && p.hostVeth.startsWith('wp'), p.hostVeth);
      assert.ok(p.netns.startsWith('weir-t0000-p-'));
      assert.equal(p.served.length, 4);
    }
    assert.equal(new Set(state.pods.map((p) => p.netns)).size, 9);
    assert.equal(state.external.ip, '203.0.113.10');
  });

  it('keeps nodes and addresses of the previous state, and places new pods on the least-loaded node', () => {
    const first = planLab(upstreamE2eCluster(), { dir: '/tmp/x' }).state;
    // Reverse the input order and add a pod: nothing that existed moves.
    const cluster = upstreamE2eCluster();
    const second = planLab({ ...cluster, pods: [pod('a', 'new'), ...[...cluster.pods].reverse()] }, { dir: '/tmp/x' }, first).state;
    for (const p of first.pods) {
      const again = second.pods.find((q) => q.key === p.key);
      assert.equal(again?.ip, p.ip);
      assert.equal(again?.node, p.node);
    }
    const added = second.pods.find((p) => p.key === 'a/new');
    assert.equal(added?.node, 'node-1');
    assert.equal(added?.ip, '10.244.1.5');
  });

  it('honours explicit pod IPs and nodeName, and namespace pools', () => {
    const { state } = planLab(
      withPods([pod('x', 'a', { ip: '10.244.1.200' }), pod('x', 'b', { node: 'node-1' }), pod('q', 'p'), pod('x', 'c', { ip: '10.244.0.1' })]),
      { dir: '/tmp/x', namespacePools: { q: '10.99.0.0/24' } },
    );
    const by = new Map(state.pods.map((p) => [p.key, p]));
    assert.equal(by.get('x/a')?.ip, '10.244.1.200');
    assert.equal(by.get('x/a')?.node, 'node-1');
    assert.equal(by.get('x/b')?.node, 'node-1');
    assert.equal(by.get('x/b')?.ip, '10.244.1.1');
    assert.equal(by.get('q/p')?.ip, '10.99.0.1');
    assert.equal(by.get('x/c')?.ip, '10.244.0.1');
  });

  it('uses declared nodes and their labels', () => {
    const cluster: Cluster = { ...withPods([pod('x', 'a', { node: 'w2' })]), nodes: [1, 2, 3].map((i) => ({ name: `w${i}`, labels: { zone: `z${i}` } })) };
    const { state } = planLab(cluster, { dir: '/tmp/x' });
    assert.deepEqual(state.nodes.map((n) => n.name), ['w1', 'w2', 'w3']);
    assert.equal(state.nodes[1]?.labels.zone, 'z2');
    assert.equal(state.nodes[1]?.labels['kubernetes.io/hostname'], 'w2');
    assert.equal(state.pods[0]?.node, 'w2');
    assert.deepEqual(codes(() => planLab(cluster, { dir: '/tmp/x', nodes: 2 })), ['lab-too-few-nodes']);
  });

  it('rejects what the lab cannot realise, all problems at once', () => {
    assert.deepEqual(codes(() => planLab(withPods([pod('x', 'a'), pod('x', 'a')]), { dir: '/tmp/x' })), ['lab-duplicate-pod']);
    assert.deepEqual(
      codes(() =>
        planLab(
          withPods([
            pod('x', 'a', { ip: '192.168.1.1' }),
            pod('x', 'b', { ip: '10.244.0.7' }),
            pod('x', 'c', { ip: '10.244.0.7' }),
            pod('x', 'd', { ip: '10.244.0.0' }),
            pod('x', 'e', { ip: 'nope' }),
            pod('x', 'f', { node: 'ghost' }),
          ]),
          { dir: '/tmp/x' },
        ),
      ),
      ['lab-unknown-node', 'lab-pod-ip-outside-pools', 'lab-pod-ip-clash', 'lab-pod-ip-reserved', 'lab-invalid-pod-ip'],
    );
    assert.deepEqual(codes(() => planLab(withPods([]), { dir: '/tmp/x', clusterCidr: '172.31.0.0/16' })), ['lab-cidr-clash']);
    assert.deepEqual(codes(() => planLab(withPods([]), { dir: '/tmp/x', clusterCidr: '10.0.0.0/8', namespacePools: { q: '10.9.0.0/16' } })), ['lab-cidr-clash']);
    assert.deepEqual(codes(() => planLab(withPods([]), { dir: '/tmp/x', clusterCidr: '10.244.0.1/16' })), ['lab-invalid-cidr']);
    // /30 pools: two usable addresses per node, two nodes, five pods.
    assert.deepEqual(
      codes(() => planLab(withPods(['a', 'b', 'c', 'd', 'e'].map((n) => pod('x', n))), { dir: '/tmp/x', nodeCidrBits: 30 })),
      ['lab-pool-exhausted'],
    );
    assert.deepEqual(codes(() => planLab(withPods([]), { prefix: 'WEIR_', dir: '/tmp/x' })), ['lab-invalid-prefix']);
  });

  it('warns about pods without ports, hostNetwork pods, and skips SCTP with a notice', () => {
    const { state, diagnostics } = planLab(
      withPods([
        pod('x', 'a', { ports: [] }),
        pod('x', 'b', { hostNetwork: true }),
        pod('x', 'c', { ports: [{ port: 80, protocol: 'TCP' }, { port: 9, protocol: 'SCTP' }] }),
      ]),
      { dir: '/tmp/x' },
    );
    assert.deepEqual(
      diagnostics.map((d) => [d.severity, d.code, d.object]),
      [
        ['warning', 'lab-pod-without-ports', 'Pod x/a'],
        ['warning', 'lab-host-network-unsupported', 'Pod x/b'],
        ['notice', 'lab-sctp-skipped', 'Pod x/c'],
      ],
    );
    assert.deepEqual(state.pods.map((p) => p.key), ['x/a', 'x/c']);
    assert.deepEqual(state.pods[1]?.served, [{ port: 80, protocol: 'TCP' }]);
    assert.equal(state.pods[1]?.ports.length, 2);
  });
});

describe('lab probe formatting', () => {
  it('parses port specs', () => {
    assert.deepEqual(parsePortSpec('80'), { port: 80, protocol: 'TCP' });
    assert.deepEqual(parsePortSpec('53/udp'), { port: 53, protocol: 'UDP' });
    assert.throws(() => parsePortSpec('9/SCTP'), /no SCTP/);
    assert.throws(() => parsePortSpec('70000'), /invalid port/);
  });

  it('prints the upstream-style reachability table', () => {
    const cell = (from: string, to: string, ok: boolean) => ({ from, to, port: 80, protocol: 'TCP' as const, ok, ms: 1 });
    const result: ProbeResult = {
      from: ['x/a', 'x/b'],
      to: ['x/a', 'x/b'],
      ports: tcp80,
      cells: [cell('x/a', 'x/a', true), cell('x/a', 'x/b', false), cell('x/b', 'x/a', true)],
      durationMs: 1,
    };
    assert.equal(formatReachability(result), ['reachability 80/TCP:', '-   x/a x/b', 'x/a .   X', 'x/b .   -', '2/3 reachable'].join('\n'));
  });
});

describe('instance namespaces', () => {
  it('the default instance never claims a test instance whose prefix starts with it', () => {
    assert.equal(isInstanceNetns('weir-', 'weir-n0'), true);
    assert.equal(isInstanceNetns('weir-', 'weir-n12'), true);
    assert.equal(isInstanceNetns('weir-', 'weir-ul'), true);
    assert.equal(isInstanceNetns('weir-', 'weir-ext'), true);
    assert.equal(isInstanceNetns('weir-', 'weir-p-0123abcd'), true);
    assert.equal(isInstanceNetns('weir-', 'weir-t1a2b-n0'), false);
    assert.equal(isInstanceNetns('weir-', 'weir-t1a2b-p-0123abcd'), false);
    assert.equal(isInstanceNetns('weir-t1a2b-', 'weir-t1a2b-n0'), true);
    assert.equal(isInstanceNetns('weir-', 'other-n0'), false);
  });
});
