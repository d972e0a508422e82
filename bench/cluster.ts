// Cluster-scale benchmark, policy part: `sudo npx tsx bench/cluster.ts [--pods 100000]
// [--policies 50000] [--nodes 100] [--rate 1000] [--seconds 60]`.
//
// One agent (src/agent/cluster.ts: the agent `weir agent --kubeconfig` runs, in policy-only
// mode) on node-0 of a synthetic cluster (bench/generate.ts: namespaces of 20 pods, the
// policy mix of the other benchmarks; pods spread over `--nodes` nodes), its ruleset applied to
// a real kernel in a network namespace this script creates (and removes, also on failure or
// Ctrl-C). The cluster comes through a direct ClusterSource feed (model objects, as the
// Kubernetes source delivers them after normalization: list parsing and normalization are
// not measured here), first the whole state as one batch, then churn: `--rate` pod events per
// second for `--seconds` (replicas of existing workloads added and deleted on random nodes,
// half each, so ~1/nodes of them are local). Events that arrive while a transaction is in
// flight go into the next one (the agent's batching).
//
// Prints: the initial sync (events, time to the first ruleset in the kernel), event → kernel
// lag p50/p99/max (from the moment the source emitted the event to the end of the transaction
// that carried it), batches and events per batch, ruleset size, the process's peak RSS (the
// agent, with the generator and the synthetic source in the same process), and whether the
// final ruleset equals a fresh render of the final state (no event lost): both the agent's
// model and the kernel's listing (element and rule counts per set and chain).

import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { Namespace, NetworkPolicy, Pod } from '../src/model/cluster.js';
import { ClusterAgent } from '../src/agent/cluster.js';
import { NodeAgent } from '../src/agent/agent.js';
import { snapshotEvents } from '../src/source/diff.js';
import { snapshotOfCluster } from '../src/source/files.js';
import type { ClusterEvent, ClusterSnapshot, ClusterSource, ClusterSourceHandlers } from '../src/source/types.js';
import { run } from '../src/exec/run.js';
import { rng } from '../src/synthetic/random.js';
import { generateCluster } from './generate.js';

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '100000' },
    policies: { type: 'string', default: '50000' },
    nodes: { type: 'string', default: '100' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '60' },
    seed: { type: 'string', default: '7' },
  },
});
const PODS = Number(values.pods);
const POLICIES = Number(values.policies);
const NODES = Number(values.nodes);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const NODE = 'node-0';
const NETNS = `wbench${randomBytes(2).toString('hex')}-cluster`;

/** The synthetic cluster as a ClusterSource: the whole state, then whatever `emit` is given. */
class SyntheticSource implements ClusterSource {
  readonly description = 'synthetic (bench/cluster.ts)';
  private handlers: ClusterSourceHandlers | undefined;
  readonly pods = new Map<string, Pod>();

  constructor(
    private readonly namespaces: readonly Namespace[],
    private readonly policies: readonly NetworkPolicy[],
    pods: readonly Pod[],
  ) {
    for (const p of pods) this.pods.set(`${p.namespace}/${p.name}`, p);
  }

  start(handlers: ClusterSourceHandlers): Promise<void> {
    this.handlers = handlers;
    handlers.onEvents(snapshotEvents(this.snapshot()));
    handlers.onSynced?.();
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.handlers = undefined;
    return Promise.resolve();
  }

  emit(events: readonly ClusterEvent[]): void {
    for (const e of events) {
      if (e.kind !== 'Pod') continue;
      const key = `${e.object.namespace}/${e.object.name}`;
      if (e.type === 'deleted') this.pods.delete(key);
      else this.pods.set(key, e.object);
    }
    this.handlers?.onEvents(events);
  }

  snapshot(): ClusterSnapshot {
    return snapshotOfCluster({
      namespaces: [...this.namespaces],
      nodes: [],
      workloads: [],
      pods: [...this.pods.values()],
      services: [],
      networkPolicies: [...this.policies],
      adminNetworkPolicies: [],
    });
  }
}

async function sh(argv: string[]): Promise<string> {
  return (await run(argv, { timeoutMs: 900_000 })).stdout;
}

function pct(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

const mib = (b: number): string => `${Math.round(b / 1024 / 1024)} MiB`;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/cluster.ts needs root (nftables in a network namespace)');
  let peakRss = 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 200);
  const t0 = performance.now();
  const generated = generateCluster({ pods: PODS, policiesPerPod: POLICIES / PODS, seed: Number(values.seed) });
  const pods = generated.pods.map((p, i) => ({ ...p, node: `node-${i % NODES}` }));
  console.log(`cluster: ${pods.length} pods on ${NODES} nodes (${pods.filter((p) => p.node === NODE).length} on ${NODE}), ${generated.networkPolicies.length} NetworkPolicies, ${generated.namespaces.length} namespaces (generated in ${Math.round(performance.now() - t0)} ms)`);
  const source = new SyntheticSource(generated.namespaces, generated.networkPolicies, pods);
  await sh(['ip', 'netns', 'add', NETNS]);
  const agent = new ClusterAgent({ node: NODE, source, policyOnly: { podCidrs: [] }, netns: NETNS, log: (l) => console.error(l) });
  try {
    // ---------------------------------------------------------------- initial sync
    const s0 = performance.now();
    await agent.start();
    const initialMs = performance.now() - s0;
    const st0 = agent.state();
    console.log(`initial sync: ${Object.values(st0.events).reduce((a, b) => a + b, 0)} events → first ruleset in the kernel in ${(initialMs / 1000).toFixed(1)} s; ruleset ${st0.ruleset?.rules} rules, ${st0.ruleset?.chains} chains, ${st0.ruleset?.sets} sets, ${st0.ruleset?.setElements} elements; RSS ${mib(process.memoryUsage().rss)}`);

    // ---------------------------------------------------------------- churn
    const emitted: number[] = []; // emission times, FIFO in event order
    const lags: number[] = [];
    const batches: number[] = [];
    let errors = 0;
    const modes = new Map<string, number>();
    let renderMs = 0;
    let applyMs = 0;
    agent.onApplied = (b) => {
      const m = `${b.status.mode}${b.status.via ? `/${b.status.via}` : ''}`;
      modes.set(m, (modes.get(m) ?? 0) + 1);
      renderMs += b.status.renderMs;
      applyMs += b.status.applyMs;
      const now = performance.now();
      for (let i = 0; i < b.events; i++) {
        const t = emitted.shift();
        if (t !== undefined) lags.push(now - t);
      }
      batches.push(b.events);
      if (!b.status.lastApplyOk) errors++;
    };
    const rand = rng(Number(values.seed) + 1);
    const templates = pods.filter((_, i) => i % 4 === 0); // one replica of each workload
    const live = [...source.pods.keys()];
    let serial = 0;
    let sent = 0;
    let emittedCount = 0;
    const total = RATE * SECONDS;
    const tick = 10; // ms: RATE/100 events per tick
    const c0 = performance.now();
    await new Promise<void>((done) => {
      const timer = setInterval(() => {
        const due = Math.min(total, Math.floor(((performance.now() - c0) / 1000) * RATE));
        const events: ClusterEvent[] = [];
        for (; sent < due; sent++) {
          // A delete in the same tick as the add it picks would name a pod the source has not
          // emitted yet: skipped (not counted as emitted).
          if (sent % 2 === 0) {
            const t = templates[Math.floor(rand() * templates.length)];
            const n = serial++;
            const pod: Pod = { ...t, name: `${t.name}-churn-${n}`, ip: `172.${16 + ((n >> 16) & 15)}.${(n >> 8) & 255}.${n & 255}`, node: `node-${Math.floor(rand() * NODES)}` };
            live.push(`${pod.namespace}/${pod.name}`);
            events.push({ type: 'added', kind: 'Pod', object: pod });
          } else {
            const at = Math.floor(rand() * live.length);
            const key = live[at];
            live[at] = live[live.length - 1];
            live.pop();
            const pod = source.pods.get(key);
            if (pod) events.push({ type: 'deleted', kind: 'Pod', object: pod });
          }
        }
        if (events.length > 0) {
          const now = performance.now();
          for (let i = 0; i < events.length; i++) emitted.push(now);
          emittedCount += events.length;
          source.emit(events);
        }
        if (sent >= total) {
          clearInterval(timer);
          done();
        }
      }, tick);
    });
    await agent.idle();
    const churnMs = performance.now() - c0;
    const st = agent.state();
    console.log(`churn: ${emittedCount} pod events in ${(churnMs / 1000).toFixed(1)} s (${Math.round(emittedCount / (churnMs / 1000))}/s, asked ${RATE}/s) → ${batches.length} transactions (${(emittedCount / Math.max(1, batches.length)).toFixed(1)} events each, max ${Math.max(0, ...batches)}; ${[...modes].map(([m, n]) => `${n} ${m}`).join(', ')}; engine+render ${Math.round(renderMs)} ms, kernel ${Math.round(applyMs)} ms in all), ${errors} apply errors`);
    console.log(`event → kernel lag: p50 ${pct(lags, 0.5).toFixed(1)} ms, p99 ${pct(lags, 0.99).toFixed(1)} ms, max ${Math.max(...lags).toFixed(1)} ms (${lags.length} events; goal p99 ≤ 1000 ms)`);
    console.log(`ruleset after churn: ${st.ruleset?.rules} rules, ${st.ruleset?.chains} chains, ${st.ruleset?.sets} sets, ${st.ruleset?.setElements} elements; ${st.localPods} local pods`);
    console.log(`peak RSS of the agent process (generator and source included): ${mib(peakRss)} (goal ≤ 1024 MiB)`);

    // ---------------------------------------------------------------- no event lost
    const f0 = performance.now();
    const fresh = new NodeAgent({ node: NODE, runner: () => Promise.resolve({ ok: true, stderr: '' }), policyOnly: { podCidrs: [] } });
    const snap = source.snapshot();
    const locals = snap.cluster.pods.filter((p) => p.node === NODE && p.ip).map((p) => ({ key: `${p.namespace}/${p.name}`, ip: p.ip }));
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
    // And the kernel holds what the model says.
    const listing = JSON.parse(await sh(['ip', 'netns', 'exec', NETNS, 'nft', '-j', 'list', 'table', 'inet', 'weir'])) as { nftables: Record<string, { name?: string; elem?: unknown[] }>[] };
    const kernelSets = new Map(listing.nftables.flatMap((o) => (o.set?.name ? [[o.set.name, o.set.elem?.length ?? 0] as const] : o.map?.name ? [[o.map.name, o.map.elem?.length ?? 0] as const] : [])));
    for (const [name, set] of want.sets) if (!set.dynamic && (kernelSets.get(name) ?? 0) !== set.elements.length) diffs.push(`kernel set ${name}: ${kernelSets.get(name) ?? 0} elements, fresh ${set.elements.length}`);
    const kernelRules = listing.nftables.filter((o) => o.rule).length;
    const wantRules = [...want.chains.values()].reduce((n, c) => n + c.rules.length, 0);
    if (kernelRules !== wantRules) diffs.push(`kernel: ${kernelRules} rules, fresh ${wantRules}`);
    console.log(`final ruleset vs a fresh render of the final state (${((performance.now() - f0) / 1000).toFixed(1)} s): ${diffs.length === 0 ? 'equal (model and kernel): no event lost' : `${diffs.length} differences:\n  ${diffs.slice(0, 20).join('\n  ')}`}`);
    if (diffs.length > 0) process.exitCode = 1;
  } finally {
    clearInterval(sampler);
    await agent.stop();
    await run(['ip', 'netns', 'del', NETNS], { allowFailure: true });
  }
}

process.on('SIGINT', () => {
  void run(['ip', 'netns', 'del', NETNS], { allowFailure: true }).then(() => process.exit(130));
});

main().catch(async (e: unknown) => {
  console.error(`bench/cluster: ${(e as Error).stack ?? String(e)}`);
  await run(['ip', 'netns', 'del', NETNS], { allowFailure: true });
  process.exit(1);
});
