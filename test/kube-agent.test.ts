// suite: lab (root: network namespaces, nftables)
// The agent on a Kubernetes node, fed by the (test) API server, in policy-only mode beside a
// CNI it knows nothing of: a node namespace with pods attached by `cali*` veths, the agent
// enforcing by address on the forward, input and output hooks; pods it does not know fail
// closed; /readyz, /livez, /metrics, /status on its local port; an Event on a policy it cannot
// enforce; and the `weir agent` process killed mid-sync converging on restart.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runKubeAgent } from '../src/agent/kube.js';
import { NodeAgent } from '../src/agent/agent.js';
import { KubeSource } from '../src/source/kube/index.js';
import { snapshotEvents } from '../src/source/diff.js';
import { fullScript } from '../src/render/script.js';
import type { KubeObject } from '../src/testing/apiserver/index.js';
import { CniNode } from './helpers/cni-node.js';
import { namespace, pod, startApiServer, waitFor, type ApiFixture } from './helpers/kube.js';
import { cleanupPrefix, netnsSkipReason, testPrefix } from './helpers/netns.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const NODE = 'n1';
const FAST = { watchdogMs: 60_000, backoffBaseMs: 50, backoffMaxMs: 400, watchTimeoutSeconds: [60, 60] as [number, number], absentRetryMs: 1000 };

function nodeObject(ip: string, podCidr: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE } },
    spec: { podCIDR: podCidr, podCIDRs: [podCidr] },
    status: { addresses: [{ type: 'InternalIP', address: ip }] },
  };
}

function policy(name: string, spec: Record<string, unknown>): KubeObject {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: 'shop' }, spec };
}

const WEB_INGRESS = policy('web-from-client', {
  podSelector: { matchLabels: { app: 'web' } },
  policyTypes: ['Ingress'],
  ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ protocol: 'TCP', port: 80 }] }],
});
const OTHER_EGRESS = policy('other-to-web', {
  podSelector: { matchLabels: { app: 'other' } },
  policyTypes: ['Egress'],
  egress: [{ to: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ protocol: 'TCP', port: 80 }] }],
});

async function get(url: string): Promise<{ status: number; text: string }> {
  const r = await fetch(url);
  return { status: r.status, text: await r.text() };
}

const skip = await netnsSkipReason();

describe('weir agent on a Kubernetes node (policy-only beside a CNI)', { skip }, () => {
  const prefix = testPrefix();
  const node = new CniNode(prefix, '10.78.0.1');
  let api: ApiFixture;
  const pids: number[] = [];

  before(async () => {
    await node.create();
    for (const [name, ip] of [['a', '10.77.0.2'], ['b', '10.77.0.3'], ['c', '10.77.0.4'], ['d', '10.77.0.5']] as const) {
      const p = await node.addPod(name, ip);
      await node.serve(p.netns, name);
    }
    await node.serve(node.netns, 'node');
    api = await startApiServer();
    const s = api.server;
    s.create(namespace('shop'));
    s.create(nodeObject(node.ip, '10.77.0.0/24'));
    s.create(pod('shop', 'a', { labels: { app: 'web' }, node: NODE, ip: '10.77.0.2' }));
    s.create(pod('shop', 'b', { labels: { app: 'client' }, node: NODE, ip: '10.77.0.3' }));
    s.create(pod('shop', 'c', { labels: { app: 'other' }, node: NODE, ip: '10.77.0.4' }));
    // d runs (it has a namespace and an address) but the API does not know it yet.
    s.create(WEB_INGRESS);
    s.create(OTHER_EGRESS);
  });

  after(async () => {
    await api?.close();
    await cleanupPrefix(prefix, pids);
  });

  it('enforces by address on forward, input and output, fails closed for unknown pods, reports health, metrics, status and Events', async () => {
    const controller = new AbortController();
    let healthUrl = '';
    const logs: string[] = [];
    const running = runKubeAgent({
      node: NODE,
      auth: { kind: 'kubeconfig', path: api.kubeconfig },
      version: 'test',
      netns: node.netns,
      health: { host: '127.0.0.1', port: 0 },
      timing: FAST,
      signal: controller.signal,
      log: (l) => logs.push(l),
      onStarted: (i) => (healthUrl = i.healthUrl ?? ''),
    });
    try {
      await waitFor('the agent serves its port', () => healthUrl !== '', 20_000);
      for (let i = 0; i < 200 && (await get(`${healthUrl}/readyz`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal((await get(`${healthUrl}/readyz`)).status, 200, logs.join('\n'));
      assert.equal((await get(`${healthUrl}/livez`)).status, 200);

      const ruleset = await node.nft('list', 'table', 'inet', 'weir');
      assert.match(ruleset, /hook input/);
      assert.match(ruleset, /hook output/);
      assert.doesNotMatch(ruleset, /wp\*|iifname "cali/, 'no interface names: pods are known by address');

      const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => node.pods.get(n)!);
      // forward: b may reach a (allowed client); c may not (a's ingress), c may not reach b (c's egress)
      assert.deepEqual(await node.probe(b.netns, [{ ip: a.ip }, { ip: c.ip }, { ip: node.ip }]), [true, true, true], 'b → a, b → c, b → its node');
      assert.deepEqual(await node.probe(c.netns, [{ ip: a.ip }, { ip: b.ip }, { ip: node.ip }]), [false, false, false], 'c: a is isolated for ingress; c is isolated for egress (to web:80 only), its node included (input hook)');
      // d is not in the API: unknown in the node's pod CIDR, it fails closed both ways
      assert.deepEqual(await node.probe(d.netns, [{ ip: b.ip }, { ip: node.ip }]), [false, false], 'unknown pod d: nothing out');
      assert.deepEqual(await node.probe(b.netns, [{ ip: d.ip }]), [false], 'unknown pod d: nothing in');
      // output: the node's own traffic is never filtered (the pod's node may always reach it)
      assert.deepEqual(await node.probe(node.netns, [{ ip: a.ip }, { ip: c.ip }]), [true, true], 'node → isolated pod a (kubelet probes)');

      // d appears in the API as a client: allowed to a within a few seconds
      api.server.create(pod('shop', 'd', { labels: { app: 'client' }, node: NODE, ip: '10.77.0.5' }));
      let ok = false;
      for (let i = 0; i < 50 && !ok; i++) ok = (await node.probe(d.netns, [{ ip: a.ip }], 400))[0];
      assert.ok(ok, 'd → a once the API knows d');
      // the policy on a goes away: c reaches a
      api.server.delete('networking.k8s.io/v1', 'NetworkPolicy', 'shop', 'web-from-client');
      ok = false;
      for (let i = 0; i < 50 && !ok; i++) ok = (await node.probe(c.netns, [{ ip: a.ip }], 400))[0];
      assert.ok(ok, 'c → a once the ingress policy is deleted');

      // a policy the agent cannot read as written: enforced in part, and an Event says so
      api.server.create(
        policy('bad-cidr', { podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }] }),
      );
      await waitFor(
        'an Event on bad-cidr',
        () => api.server.list('v1', 'Event').some((e) => (e as { involvedObject?: { name?: string } }).involvedObject?.name === 'bad-cidr'),
        10_000,
      );
      const event = api.server.list('v1', 'Event').find((e) => (e as { involvedObject?: { name?: string } }).involvedObject?.name === 'bad-cidr') as unknown as { type: string; reason: string; message: string; involvedObject: { kind: string; namespace: string } };
      assert.equal(event.type, 'Warning');
      assert.equal(event.reason, 'PolicyNotEnforceable');
      assert.equal(event.involvedObject.kind, 'NetworkPolicy');
      assert.equal(event.involvedObject.namespace, 'shop');
      assert.match(event.message, /cidr/);

      const metrics = (await get(`${healthUrl}/metrics`)).text;
      assert.match(metrics, /weir_agent_sync_lag_seconds_count \d+/);
      assert.match(metrics, /weir_agent_apply_errors_total 0/);
      assert.match(metrics, /weir_agent_ruleset\{what="rules"\} \d+/);
      assert.match(metrics, /weir_agent_kube_events\{outcome="written"\} 1/);
      const status = JSON.parse((await get(`${healthUrl}/status`)).text) as { version: string; ready: boolean; lastSyncAt: string; ruleset: { rules: number }; applyErrors: number; lagMs: { p99: number }; podCidrs: string[]; localPods: number };
      assert.equal(status.version, 'test');
      assert.equal(status.ready, true);
      assert.ok(status.ruleset.rules > 0);
      assert.equal(status.applyErrors, 0);
      assert.deepEqual(status.podCidrs, ['10.77.0.0/24']);
      assert.equal(status.localPods, 4);
      assert.ok(Date.now() - Date.parse(status.lastSyncAt) < 60_000);
    } finally {
      controller.abort();
      await running;
    }
    // The ruleset stays when the agent stops: enforcement does not depend on it being alive.
    assert.match(await node.nft('list', 'table', 'inet', 'weir'), /hook forward/);
  });

  it('`weir agent` killed mid-sync converges on restart: the kernel holds exactly a fresh render', async () => {
    // Enough objects that the initial sync takes a while, so SIGKILL lands inside it.
    for (let i = 0; i < 300; i++) api.server.create(pod('shop', `x-${i}`, { labels: { app: `x${i % 40}` }, node: i % 3 === 0 ? NODE : 'n2', ip: `10.77.${1 + (i >> 8)}.${i & 255}` }));
    for (let i = 0; i < 60; i++) {
      api.server.create(policy(`p-${i}`, { podSelector: { matchLabels: { app: `x${i % 40}` } }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: { app: `x${(i + 1) % 40}` } } }], ports: [{ protocol: 'TCP', port: 8000 + i }] }] }));
    }
    await node.nft('delete', 'table', 'inet', 'weir');
    const start = (): ChildProcess => {
      const child = spawn(process.execPath, [join(ROOT, 'bin', 'weir.js'), 'agent', '--node', NODE, '--kubeconfig', api.kubeconfig, '--netns', node.netns, '--no-health'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
      if (child.pid) pids.push(child.pid);
      return child;
    };
    const first = start();
    let err = '';
    first.stderr?.on('data', (c: Buffer) => (err += c.toString()));
    // Killed as soon as it has put its bootstrap table in (mid-sync), or after at most 20 s.
    for (let i = 0; i < 200 && !err.includes('no weir table'); i++) await new Promise((r) => setTimeout(r, 100));
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    // Changes while no agent runs.
    api.server.create(pod('shop', 'late', { labels: { app: 'x1' }, node: NODE, ip: '10.77.9.9' }));
    api.server.delete('v1', 'Pod', 'shop', 'x-0');

    const second = start();
    let out = '';
    second.stderr?.on('data', (c: Buffer) => (out += c.toString()));
    try {
      await waitFor('the restarted agent synced', () => out.includes('synced and enforcing'), 120_000);
      // What a fresh agent renders from the same API state, with a runner that only records.
      const source = new KubeSource({ auth: { kind: 'kubeconfig', path: api.kubeconfig }, node: NODE });
      await source.start({ onEvents: () => undefined });
      const snap = source.snapshot();
      await source.stop();
      const scripts: string[] = [];
      const fresh = new NodeAgent({ node: NODE, runner: async (s) => (scripts.push(s), { ok: true, stderr: '' }), policyOnly: { podCidrs: ['10.77.0.0/24'] } });
      const locals = snap.cluster.pods.filter((p) => p.node === NODE && p.ip).map((p) => ({ key: `${p.namespace}/${p.name}`, ip: p.ip }));
      await fresh.apply({ events: snapshotEvents(snap), localPods: locals });
      const want = fresh.lastRuleset!;
      // The kernel's listing, read back as sets and chains, against the fresh render.
      const listing = JSON.parse(await node.nft('-j', 'list', 'table', 'inet', 'weir')) as { nftables: Record<string, { name?: string; elem?: unknown[] }>[] };
      const chains = new Set(listing.nftables.flatMap((o) => (o.chain?.name ? [o.chain.name] : [])));
      assert.deepEqual([...chains].sort(), [...want.chains.keys()].sort(), 'chains');
      const kernelSets = new Map(listing.nftables.flatMap((o) => (o.set?.name ? [[o.set.name, o.set.elem?.length ?? 0] as const] : o.map?.name ? [[o.map.name, o.map.elem?.length ?? 0] as const] : [])));
      for (const [name, set] of want.sets) if (!set.dynamic) assert.equal(kernelSets.get(name) ?? 0, set.elements.length, `elements of ${name}`);
      const rules = listing.nftables.filter((o) => o.rule).length;
      assert.equal(rules, [...want.chains.values()].reduce((n, c) => n + c.rules.length, 0), 'rules');
      assert.ok(fullScript(want).length > 0);
      assert.ok(want.sets.get('local_ips')?.elements.includes('10.77.9.9'), 'the pod created while no agent ran is known');
    } finally {
      second.kill('SIGTERM');
      await new Promise((r) => second.once('exit', r));
    }
  });
});
