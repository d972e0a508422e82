// suite: lab (root: network namespaces, nftables)
// A running agent takes events that change its chains — a local pod of a new identity, the
// last local pod of one going, a pod changing labels, a policy changing — without a full
// render: the pods' elements in the cluster-wide sets are patched and only the chains of the
// node's identities are rendered over them (AgentStatus.change `chains`). After every step the
// agent's model equals a fresh render of the same state (reasons included), and its kernel
// table (nft -j list, in its own namespace) equals that fresh render loaded in full into
// another namespace. Namespace label changes stay the counted full-render fallback.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Namespace, NetworkPolicy, Pod } from '../src/model/cluster.js';
import { NodeAgent } from '../src/agent/index.js';
import { netlinkIdle, nftRunner } from '../src/nft/index.js';
import { fullScript, renderRuleset, type LocalPod } from '../src/render/index.js';
import { collectReasons } from '../src/render/reasons.js';
import { snapshotEvents } from '../src/source/diff.js';
import { snapshotOfCluster } from '../src/source/files.js';
import type { ClusterEvent } from '../src/source/types.js';
import { run } from '../src/exec/run.js';
import { generateCluster } from '../bench/generate.js';

const isRoot = process.getuid?.() === 0;
const PREFIX = `wac${randomBytes(2).toString('hex')}`;
const NODE = 'n0';
const policyOnly = { podCidrs: ['10.0.0.0/16', '172.16.0.0/16'] };

/** The namespace's tables (weir's and the source chains') as nft lists them in JSON, handles dropped, elements sorted, objects sorted. */
async function listing(ns: string): Promise<string[]> {
  const json = JSON.parse((await run(['ip', 'netns', 'exec', ns, 'nft', '-j', 'list', 'ruleset'])).stdout) as { nftables: Record<string, Record<string, unknown>>[] };
  return json.nftables
    .filter((o) => !('metainfo' in o))
    .map((o) => {
      const [kind, body] = Object.entries(o)[0];
      const { handle: _h, ...rest } = body;
      if (Array.isArray(rest.elem)) rest.elem = rest.elem.map((e) => JSON.stringify(e)).sort();
      return JSON.stringify([kind, rest]);
    })
    .sort();
}

describe('chain changes on a running agent equal a fresh render, in the model and in the kernel', { skip: !isRoot && 'needs root' }, () => {
  const nsAgent = `${PREFIX}-ag`;
  const nsFresh = `${PREFIX}-fr`;
  const created: string[] = [];
  before(async () => {
    for (const ns of [nsAgent, nsFresh]) {
      await run(['ip', 'netns', 'add', ns]);
      created.push(ns);
    }
  });
  after(async () => {
    await netlinkIdle();
    for (const ns of created.splice(0)) await run(['ip', 'netns', 'del', ns], { allowFailure: true });
  });

  it('new and vanishing local identities, label and policy changes: chains only; namespace labels: full', async () => {
    const generated = generateCluster({ pods: 240, policiesPerPod: 0.5, seed: 5 });
    const pods = new Map<string, Pod>(generated.pods.map((p, i) => [`${p.namespace}/${p.name}`, { ...p, node: `n${i % 4}` }]));
    const policies = new Map<string, NetworkPolicy>(generated.networkPolicies.map((p) => [`${p.namespace}/${p.name}`, p]));
    const namespaces = new Map<string, Namespace>(generated.namespaces.map((n) => [n.name, n]));
    const locals = (): LocalPod[] => [...pods.values()].filter((p) => p.node === NODE && p.ip).map((p) => ({ key: `${p.namespace}/${p.name}`, ip: p.ip }));
    const agent = new NodeAgent({ node: NODE, netns: nsAgent, policyOnly });
    const freshRunner = nftRunner(nsFresh);
    const web = generated.pods.find((p) => p.namespace === 'ns-0' && p.labels.tier === 'web') as Pod;
    const newPod = (name: string, app: string, ip: string, node = NODE): Pod => ({ ...web, name, labels: { app, tier: 'web' }, ip, node });
    const add = (p: Pod): ClusterEvent => (pods.set(`${p.namespace}/${p.name}`, p), { type: 'added', kind: 'Pod', object: p });
    const del = (key: string): ClusterEvent => {
      const p = pods.get(key) as Pod;
      pods.delete(key);
      return { type: 'deleted', kind: 'Pod', object: p };
    };
    const paths: string[] = [];
    const step = async (what: string, events: readonly ClusterEvent[], want: 'elements' | 'chains' | 'full'): Promise<void> => {
      const st = await agent.apply({ events, localPods: locals() });
      assert.ok(st.lastApplyOk, `${what}: ${st.error ?? ''}`);
      paths.push(`${what}: ${st.change ?? '?'}`);
      const fresh = renderRuleset({ engine: agent.engine, localPods: locals(), reasons: collectReasons(agent.engine), policyOnly });
      assert.equal(fullScript(agent.lastRuleset ?? fresh), fullScript(fresh), `${what}: the model equals a fresh render`);
      assert.deepEqual(agent.lastRuleset?.reasons, fresh.reasons, `${what}: the reasons equal a fresh collection`);
      const loaded = await freshRunner(fullScript(fresh));
      assert.ok(loaded.ok, loaded.stderr);
      assert.deepEqual(await listing(nsAgent), await listing(nsFresh), `${what}: the kernel equals a fresh render loaded in full`);
      assert.equal(st.change, want, `${what}: computed as ${want} (paths so far: ${paths.join('; ')})`);
      assert.equal(st.rendered, want === 'full');
    };
    try {
      const snapshot = snapshotOfCluster({ namespaces: [...namespaces.values()], nodes: [], workloads: [], pods: [...pods.values()], services: [], networkPolicies: [...policies.values()], adminNetworkPolicies: [] });
      await step('initial sync', snapshotEvents(snapshot), 'full');
      const chainsBefore = agent.lastRuleset?.chains.size ?? 0;

      await step('a local pod of a new identity', [add(newPod('new-a', 'ns-0-new', '10.0.9.1'))], 'chains');
      assert.ok((agent.lastRuleset?.chains.size ?? 0) > chainsBefore, 'the identity brought chains');
      await step('a second local pod of it', [add(newPod('new-a2', 'ns-0-new', '10.0.9.2'))], 'elements');
      await step('a pod of a new identity on another node', [add(newPod('remote-b', 'ns-0-remote', '10.0.9.3', 'n1'))], 'elements');
      await step('one of the two local pods goes', [del('ns-0/new-a2')], 'elements');
      await step('the last local pod of the identity goes', [del('ns-0/new-a')], 'chains');
      assert.equal(agent.lastRuleset?.chains.size, chainsBefore, 'its chains went with it');

      // A pod of an identity that lives on other nodes only comes here, with churn elsewhere.
      const remoteKeys = [...pods.keys()].filter((k) => pods.get(k)?.node === 'n3').slice(0, 3);
      await step('a replica of a remote-only identity lands here, pods go elsewhere', [add(newPod('remote-b-here', 'ns-0-remote', '10.0.9.4')), ...remoteKeys.map(del)], 'chains');

      const local = locals()[0].key;
      const was = pods.get(local) as Pod;
      const relabelled: Pod = { ...was, labels: { ...was.labels, app: `${was.labels.app}-v2` } };
      pods.set(local, relabelled);
      await step('a local pod changes labels (a new identity)', [{ type: 'updated', kind: 'Pod', object: relabelled, old: was }], 'chains');

      const [pkey, policy] = [...policies.entries()].find(([, p]) => p.ingress.some((r) => (r.ports?.length ?? 0) > 0)) as [string, NetworkPolicy];
      const changed: NetworkPolicy = { ...policy, ingress: policy.ingress.map((r) => ({ ...r, ports: [{ protocol: 'TCP', port: 7443 }] })) };
      policies.set(pkey, changed);
      await step('a policy changes its ports', [{ type: 'updated', kind: 'NetworkPolicy', object: changed, old: policy }], 'chains');
      policies.delete(pkey);
      await step('the policy goes', [{ type: 'deleted', kind: 'NetworkPolicy', object: changed }], 'chains');

      await step('a mixed batch: a new local identity, its pod gone again, another one arriving', [add(newPod('flash', 'ns-0-flash', '10.0.9.5')), del('ns-0/flash'), add(newPod('new-c', 'ns-0-new-c', '10.0.9.6'))], 'chains');

      const ns0 = namespaces.get('ns-0') as Namespace;
      const relabelledNs: Namespace = { ...ns0, labels: { ...ns0.labels, team: 'team-other' } };
      await step('a namespace changes labels', [{ type: 'updated', kind: 'Namespace', object: relabelledNs, old: ns0 }], 'full');
      assert.deepEqual(agent.changes, { elements: 3, chains: 7, full: 2 }, paths.join('; '));
    } finally {
      agent.close();
    }
  });
});
