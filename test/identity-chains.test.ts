// The identity-chain cache (src/render/identity-chains.ts) between renders of one node's
// table: a render with it equals a render without it, and it re-renders exactly the identity
// chains whose inputs changed — a policy change re-renders the identities it selects, a
// NetworkPolicy chain that stops being shared is inlined again, and an identity that left the
// node takes its chains and its entry with it. No root: the renderer is pure.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NetworkPolicy, Pod } from '../src/model/cluster.js';
import { PolicyEngine } from '../src/policy/engine.js';
import { IdentityChainCache, fullScript, renderRuleset, type LocalPod, type Ruleset } from '../src/render/index.js';
import { collectReasons, type ReasonIds } from '../src/render/reasons.js';
import { ReasonLedger } from '../src/render/reason-ledger.js';
import { generateCluster } from '../bench/generate.js';

const policyOnly = { podCidrs: ['10.0.0.0/8'] };

function setup(): { engine: PolicyEngine; pods: Pod[]; policies: readonly NetworkPolicy[] } {
  const generated = generateCluster({ pods: 400, policiesPerPod: 0.5, seed: 11 });
  // Two of every four pods here: most workloads have a local pod, several identities share policies.
  const pods = generated.pods.map((p, i) => ({ ...p, node: i % 4 < 2 ? 'n0' : 'n1' }));
  const engine = new PolicyEngine({ ...generated, pods });
  return { engine, pods, policies: generated.networkPolicies };
}

const localsOf = (pods: readonly Pod[]): LocalPod[] => pods.filter((p) => p.node === 'n0' && p.ip).map((p) => ({ key: `${p.namespace}/${p.name}`, ip: p.ip }));

/** A render with the cache, checked against one without it. */
function render(engine: PolicyEngine, locals: readonly LocalPod[], cache: IdentityChainCache, reasons: ReasonIds = collectReasons(engine)): Ruleset {
  const cached = renderRuleset({ engine, localPods: locals, reasons, chainCache: cache, policyOnly });
  const fresh = renderRuleset({ engine, localPods: locals, reasons: collectReasons(engine), policyOnly });
  // The first differing line, not assert's diff of two large scripts (slow).
  const [a, b] = [fullScript(cached).split('\n'), fullScript(fresh).split('\n')];
  const at = a.findIndex((line, i) => line !== b[i]);
  assert.ok(at < 0 && a.length === b.length, `a render with the cache equals one without: line ${at + 1}: ${a[at]} vs ${b[at]}`);
  return cached;
}

/** The node's identities (ids) that chains are rendered for. */
function localIdentities(engine: PolicyEngine, locals: readonly LocalPod[]): Set<number> {
  return new Set(locals.map((l) => engine.identityOfPod(l.key)?.id).filter((id): id is number => id !== undefined));
}

const both = (ids: Iterable<number>): string[] => [...ids].flatMap((id) => [`egress ${id}`, `ingress ${id}`]).sort();

describe('identity chain cache', () => {
  it('renders every identity once, then replays them all; equal to a render without it', () => {
    const { engine, pods } = setup();
    const locals = localsOf(pods);
    const cache = new IdentityChainCache();
    render(engine, locals, cache);
    const ids = localIdentities(engine, locals);
    assert.ok(ids.size > 20, `${ids.size} local identities`);
    assert.deepEqual([...cache.rendered].sort(), both(ids));
    assert.equal(cache.replayed, 0);
    render(engine, locals, cache);
    assert.deepEqual(cache.rendered, [], 'nothing changed: nothing rendered');
    assert.equal(cache.replayed, ids.size * 2);
    // A new reasons registry with the same ids (each id checked once again): still replayed.
    const ledger = new ReasonLedger(engine);
    render(engine, locals, cache, ledger);
    assert.deepEqual(cache.rendered, []);
  });

  it('a policy change re-renders exactly the chains of the identities it selects', () => {
    const { engine, pods, policies } = setup();
    const locals = localsOf(pods);
    const cache = new IdentityChainCache();
    render(engine, locals, cache);
    const ids = localIdentities(engine, locals);
    // A policy with ported ingress rules that selects some local identities and not others.
    const policy = policies.find((p) => {
      const key = `NetworkPolicy ${p.namespace}/${p.name}`;
      const selected = [...ids].filter((id) => engine.policiesOf(id).includes(key));
      return p.ingress.some((r) => (r.ports?.length ?? 0) > 0) && selected.length > 0 && selected.length < ids.size;
    }) as NetworkPolicy;
    assert.ok(policy, 'a policy to change');
    const key = `NetworkPolicy ${policy.namespace}/${policy.name}`;
    const selected = [...ids].filter((id) => engine.policiesOf(id).includes(key));
    const before = render(engine, locals, cache);
    engine.upsertNetworkPolicy({ ...policy, ingress: policy.ingress.map((r) => ({ ...r, ports: [{ protocol: 'TCP', port: 7443 }] })) });
    const after = render(engine, locals, cache);
    assert.deepEqual([...cache.rendered].sort(), both(selected), 'only the selected identities are rendered');
    assert.equal(cache.replayed, (ids.size - selected.length) * 2);
    assert.notEqual(fullScript(after), fullScript(before), 'the change reached the table');
    assert.ok([...after.chains.values()].some((c) => c.rules.some((r) => r.includes('7443'))), 'the new port is in a chain');
  });

  it('a NetworkPolicy chain that stops being shared is inlined into its last user', () => {
    const { engine, pods } = setup();
    const all = localsOf(pods);
    const cache = new IdentityChainCache();
    const first = render(engine, all, cache);
    // A shared np_ chain and the identity chains that jump to it.
    const users = new Map<string, string[]>();
    for (const c of first.chains.values()) {
      for (const r of c.rules) {
        const m = /^jump (np_\S+)$/.exec(r);
        if (m && (c.name.startsWith('eg_') || c.name.startsWith('in_'))) users.set(m[1], [...(users.get(m[1]) ?? []), c.name]);
      }
    }
    const [shared, chains] = [...users].find(([, u]) => u.length === 2) ?? [];
    assert.ok(shared && chains, 'a NetworkPolicy chain with two users');
    // The identities of those two chains; drop the local pods of the first.
    const ids = localIdentities(engine, all);
    const byChain = new Map<string, number>();
    for (const l of all) {
      const id = engine.identityOfPod(l.key);
      if (id) for (const c of chains) if (renderedChainOf(first, c, id.id, l.ip as string)) byChain.set(c, id.id);
    }
    const gone = byChain.get(chains[0]) as number;
    const kept = byChain.get(chains[1]) as number;
    assert.ok(gone !== undefined && kept !== undefined && gone !== kept);
    const locals = all.filter((l) => engine.identityOfPod(l.key)?.id !== gone);
    const next = render(engine, locals, cache);
    assert.ok(!next.chains.has(shared), 'the chain is inlined now');
    assert.ok(cache.rendered.some((r) => r.endsWith(` ${kept}`)), 'its last user is rendered again');
    assert.ok(!cache.has(gone, 'egress') && !cache.has(gone, 'ingress'), "the gone identity's entries are dropped");
    assert.ok(cache.replayed > (ids.size - 3) * 2 - 4, 'the others are replayed');
  });

  it('an identity that leaves the node takes its chains and its cache entries with it', () => {
    const { engine, pods } = setup();
    const all = localsOf(pods);
    const cache = new IdentityChainCache();
    const first = render(engine, all, cache);
    const ids = localIdentities(engine, all);
    assert.equal(cache.size, ids.size * 2);
    const chainsOf = (id: number): string[] => {
      const mark = `0x${(0x8000_0000 + id).toString(16)}`;
      return [...(first.sets.get('eg_id')?.elements ?? []), ...(first.sets.get('in_id')?.elements ?? [])].filter((e) => e.startsWith(`${mark} : jump `)).map((e) => e.slice(`${mark} : jump `.length));
    };
    // One that shares no NetworkPolicy chain (its going changes no other identity's inlining).
    const gone = [...ids].find((id) => chainsOf(id).length > 0 && chainsOf(id).every((c) => !(first.chains.get(c)?.rules ?? []).some((r) => r.startsWith('jump np_')))) as number;
    assert.ok(gone !== undefined, 'an identity with chains that shares none');
    const ownChains = chainsOf(gone);
    const locals = all.filter((l) => engine.identityOfPod(l.key)?.id !== gone);
    const next = render(engine, locals, cache);
    for (const n of ownChains) assert.ok(!next.chains.has(n), `${n} is gone`);
    assert.equal(cache.size, (ids.size - 1) * 2);
    assert.deepEqual(cache.rendered, [], 'no other identity re-rendered');
    // And it comes back: rendered afresh.
    render(engine, all, cache);
    assert.deepEqual([...cache.rendered].sort(), both([gone]));
  });
});

/** Whether `chain` is the one the identity's pod at `ip` dispatches to (eg_pod/in_pod → mark → eg_id/in_id). */
function renderedChainOf(rs: Ruleset, chain: string, id: number, ip: string): boolean {
  const mark = `0x${(0x8000_0000 + id).toString(16)}`;
  const podMapped = rs.sets.get(chain.startsWith('eg_') ? 'eg_pod' : 'in_pod')?.elements.includes(`${ip} : ${mark}`) ?? false;
  const verdicts = [...(rs.sets.get('eg_id')?.elements ?? []), ...(rs.sets.get('in_id')?.elements ?? [])];
  return podMapped && verdicts.includes(`${mark} : jump ${chain}`);
}
