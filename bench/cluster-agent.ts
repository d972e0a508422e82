// The agent half of bench/cluster.ts, in a process of its own so that its memory is measured
// apart from the generator: a ClusterAgent (the one `weir agent --kubeconfig` runs, policy-only
// mode) fed by a ClusterSource whose events arrive over IPC from the bench, as they would from
// the Kubernetes source's watches. Not a user command: forked by bench/cluster.ts only.
//
// bench → agent: { start: { node, netns } } · { events } · { synced } · { check }
// agent → bench: { ready, initialMs, state } · { applied, events, status } · { idle, state }
//                · { ruleset, sets, chains, reasons } (its last ruleset, then it exits)

import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import type { Pod } from '../src/model/cluster.js';
import { ClusterAgent } from '../src/agent/cluster.js';
import { snapshotOfCluster } from '../src/source/files.js';
import type { ClusterEvent, ClusterSnapshot, ClusterSource, ClusterSourceHandlers } from '../src/source/types.js';
import type { Namespace, NetworkPolicy } from '../src/model/cluster.js';

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

/**
 * WEIR_BENCH_PROF=<file>: a V8 CPU profile of the churn only (from the first ruleset in the
 * kernel to idle), for finding where a batch's time goes (Chrome DevTools, speedscope).
 */
const PROFILE = process.env.WEIR_BENCH_PROF;
let profiler: Session | undefined;

async function startProfile(): Promise<void> {
  if (!PROFILE) return;
  profiler = new Session();
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.setSamplingInterval', { interval: 1000 });
  await profiler.post('Profiler.start');
}

async function stopProfile(): Promise<void> {
  if (!profiler || !PROFILE) return;
  const { profile } = await profiler.post('Profiler.stop');
  writeFileSync(PROFILE, JSON.stringify(profile));
  profiler.disconnect();
  profiler = undefined;
  console.error(`bench/cluster-agent: CPU profile of the churn in ${PROFILE}`);
}

const send = (m: unknown): void => {
  process.send?.(m);
};

const sendAndWait = (m: unknown): Promise<void> => new Promise((ok) => process.send?.(m, undefined, undefined, () => ok()) ?? ok());

const source = new IpcSource();
let agent: ClusterAgent | undefined;
let node = '';
let netns = '';

/**
 * The agent's ruleset, for the bench to compare with a fresh render of the final state (done
 * there: a second engine here would not fit under the agent's heap limit).
 */
async function check(): Promise<void> {
  if (!agent) throw new Error('not started');
  await agent.idle();
  const have = agent.agent.lastRuleset;
  if (!have) throw new Error('no ruleset to compare');
  // Sent before the process exits: a large message still in the channel would be lost.
  await sendAndWait({
    ruleset: true,
    sets: [...have.sets.values()].map((s) => ({ name: s.name, dynamic: s.dynamic, elements: s.dynamic ? [] : [...s.elements] })),
    chains: [...have.chains.values()].map((c) => ({ name: c.name, rules: [...c.rules] })),
    reasons: have.reasons,
  });
}

process.on('message', (m: Message) => {
  if ('start' in m) {
    node = m.start.node;
    netns = m.start.netns;
    agent = new ClusterAgent({ node, source, policyOnly: { podCidrs: [] }, netns, log: (l) => console.error(l) });
    agent.onApplied = (b) => send({ applied: true, events: b.events, status: { mode: b.status.mode, via: b.status.via, change: b.status.change, renderMs: b.status.renderMs, applyMs: b.status.applyMs, ok: b.status.lastApplyOk } });
    const s0 = performance.now();
    const a = agent;
    void a
      .start()
      .then(startProfile)
      .then(() => send({ ready: true, initialMs: performance.now() - s0, state: a.state() }));
  } else if ('events' in m) source.deliver(m.events);
  else if ('synced' in m) source.handlers?.onSynced?.();
  else if ('idle' in m)
    void agent
      ?.idle()
      .then(stopProfile)
      .then(() => send({ idle: true, state: agent?.state() }));
  else if ('check' in m) {
    void check()
      .catch((e: unknown) => sendAndWait({ ruleset: true, error: (e as Error).message }))
      .finally(() => {
        void agent?.stop().then(() => process.exit(0));
      });
  }
});
