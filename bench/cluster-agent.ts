// The agent half of bench/cluster.ts, in a process of its own so that its memory is measured
// apart from the generator: a ClusterAgent (the one `weir agent --kubeconfig` runs, policy-only
// mode) fed by a ClusterSource whose events arrive over IPC from the bench, as they would from
// the Kubernetes source's watches. Not a user command: forked by bench/cluster.ts only.
//
// bench → agent: { start: { node, netns } } · { events } · { synced } · { check }
// agent → bench: { ready, initialMs, state } · { applied, events, status } · { idle, state }
//                · { checked, diffs, ms }

import type { Pod } from '../src/model/cluster.js';
import { ClusterAgent } from '../src/agent/cluster.js';
import { NodeAgent } from '../src/agent/agent.js';
import { snapshotEvents } from '../src/source/diff.js';
import { snapshotOfCluster } from '../src/source/files.js';
import type { ClusterEvent, ClusterSnapshot, ClusterSource, ClusterSourceHandlers } from '../src/source/types.js';
import type { Namespace, NetworkPolicy } from '../src/model/cluster.js';
import { run } from '../src/exec/run.js';

type Message = { start: { node: string; netns: string } } | { events: ClusterEvent[] } | { synced: true } | { check: true } | { idle: true };

/** Events as they come over IPC; the state they add up to, for the final check. */
class IpcSource implements ClusterSource {
  readonly description = 'IPC from bench/cluster.ts';
  handlers: ClusterSourceHandlers | undefined;
  private early: ClusterEvent[] = [];
  readonly pods = new Map<string, Pod>();
  readonly namespaces = new Map<string, Namespace>();
  readonly policies = new Map<string, NetworkPolicy>();

  start(handlers: ClusterSourceHandlers): Promise<void> {
    this.handlers = handlers;
    if (this.early.length > 0) handlers.onEvents(this.early);
    this.early = [];
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.handlers = undefined;
    return Promise.resolve();
  }

  deliver(events: ClusterEvent[]): void {
    for (const e of events) {
      if (e.kind === 'Pod') {
        const key = `${e.object.namespace}/${e.object.name}`;
        if (e.type === 'deleted') this.pods.delete(key);
        else this.pods.set(key, e.object);
      } else if (e.kind === 'Namespace') {
        if (e.type === 'deleted') this.namespaces.delete(e.object.name);
        else this.namespaces.set(e.object.name, e.object);
      } else if (e.kind === 'NetworkPolicy') {
        const key = `${e.object.namespace}/${e.object.name}`;
        if (e.type === 'deleted') this.policies.delete(key);
        else this.policies.set(key, e.object);
      }
    }
    if (this.handlers) this.handlers.onEvents(events);
    else for (const e of events) this.early.push(e);
  }

  snapshot(): ClusterSnapshot {
    return snapshotOfCluster({ namespaces: [...this.namespaces.values()], nodes: [], workloads: [], pods: [...this.pods.values()], services: [], networkPolicies: [...this.policies.values()], adminNetworkPolicies: [] });
  }
}

const send = (m: unknown): void => {
  process.send?.(m);
};

const source = new IpcSource();
let agent: ClusterAgent | undefined;
let node = '';
let netns = '';

async function check(): Promise<void> {
  if (!agent) throw new Error('not started');
  await agent.idle();
  const f0 = performance.now();
  const fresh = new NodeAgent({ node, runner: () => Promise.resolve({ ok: true, stderr: '' }), policyOnly: { podCidrs: [] } });
  const snap = source.snapshot();
  const locals = snap.cluster.pods.filter((p) => p.node === node && p.ip).map((p) => ({ key: `${p.namespace}/${p.name}`, ip: p.ip }));
  await fresh.apply({ events: snapshotEvents(snap), localPods: locals });
  const want = fresh.lastRuleset;
  const have = agent.agent.lastRuleset;
  if (!want || !have) throw new Error('no ruleset to compare');
  const diffs: string[] = [];
  for (const [name, set] of want.sets) {
    const h = have.sets.get(name);
    if (!h) diffs.push(`set ${name} missing`);
    else if (!set.dynamic && h.elements.join('\n') !== set.elements.join('\n')) diffs.push(`set ${name}: ${h.elements.length} elements, fresh ${set.elements.length}`);
  }
  for (const name of have.sets.keys()) if (!want.sets.has(name)) diffs.push(`set ${name} extra`);
  for (const [name, chain] of want.chains) if (have.chains.get(name)?.rules.join('\n') !== chain.rules.join('\n')) diffs.push(`chain ${name} differs`);
  for (const name of have.chains.keys()) if (!want.chains.has(name)) diffs.push(`chain ${name} extra`);
  if (JSON.stringify(have.reasons) !== JSON.stringify(want.reasons)) diffs.push('reasons table differs');
  // And the kernel holds what the model says.
  const listing = JSON.parse((await run(['ip', 'netns', 'exec', netns, 'nft', '-j', 'list', 'table', 'inet', 'weir'], { timeoutMs: 900_000 })).stdout) as { nftables: Record<string, { name?: string; elem?: unknown[] }>[] };
  const kernelSets = new Map(listing.nftables.flatMap((o) => (o.set?.name ? [[o.set.name, o.set.elem?.length ?? 0] as const] : o.map?.name ? [[o.map.name, o.map.elem?.length ?? 0] as const] : [])));
  for (const [name, set] of want.sets) if (!set.dynamic && (kernelSets.get(name) ?? 0) !== set.elements.length) diffs.push(`kernel set ${name}: ${kernelSets.get(name) ?? 0} elements, fresh ${set.elements.length}`);
  const kernelRules = listing.nftables.filter((o) => o.rule).length;
  const wantRules = [...want.chains.values()].reduce((n, c) => n + c.rules.length, 0);
  if (kernelRules !== wantRules) diffs.push(`kernel: ${kernelRules} rules, fresh ${wantRules}`);
  send({ checked: true, diffs, ms: performance.now() - f0 });
}

process.on('message', (m: Message) => {
  if ('start' in m) {
    node = m.start.node;
    netns = m.start.netns;
    agent = new ClusterAgent({ node, source, policyOnly: { podCidrs: [] }, netns, log: (l) => console.error(l) });
    agent.onApplied = (b) => send({ applied: true, events: b.events, status: { mode: b.status.mode, via: b.status.via, change: b.status.change, renderMs: b.status.renderMs, applyMs: b.status.applyMs, ok: b.status.lastApplyOk } });
    const s0 = performance.now();
    const a = agent;
    void a.start().then(() => send({ ready: true, initialMs: performance.now() - s0, state: a.state() }));
  } else if ('events' in m) source.deliver(m.events);
  else if ('synced' in m) source.handlers?.onSynced?.();
  else if ('idle' in m) void agent?.idle().then(() => send({ idle: true, state: agent?.state() }));
  else if ('check' in m) {
    void check()
      .catch((e: unknown) => send({ checked: true, diffs: [`check failed: ${(e as Error).message}`], ms: 0 }))
      .finally(() => {
        void agent?.stop().then(() => process.exit(0));
      });
  }
});
