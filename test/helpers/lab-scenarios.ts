// The shared conformance cases (helpers/scenarios.ts) run with real packets: one lab with the
// upstream e2e model on two nodes, the in-process nft agents of src/nft enforcing it, and for
// every step of a case the desired state applied live, the agents' sync confirmed from their
// status, all 9×9 pairs probed on 80/TCP, 81/TCP, 80/UDP and 81/UDP, and every cell compared
// twice: with the upstream truth table of the step and with the engine's verdict
// (src/lab/compare.ts). SCTP checks stay with the analyzer (this kernel has no SCTP).
//
// The lab is built once; a case starts from the bare model and leaves it as it found it
// (policies removed, labels restored) so the next case starts clean.

import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import type { Cluster, Labels } from '../../src/model/cluster.js';
import { compareWithDesired, formatComparison, type Comparison } from '../../src/lab/compare.js';
import { labDown, labUp, portLabel, probe, readState, runInNetns, updatePodLabels, type LabState, type PortSpec, type ProbeCell, type ProbeResult } from '../../src/lab/index.js';
import { readAgentStatus } from '../../src/agent/index.js';
import { labEnforcer } from '../../src/lab/agent.js';
import { allPodKeys, e2eModel, NAMESPACES } from './model.js';
import { TruthTable } from './reachability.js';
import { Scenario, type Check, type ConformanceCase } from './scenarios.js';

/** What the kernel can be probed on (no SCTP here). */
export const LAB_PORTS: readonly PortSpec[] = [
  { port: 80, protocol: 'TCP' },
  { port: 81, protocol: 'TCP' },
  { port: 80, protocol: 'UDP' },
  { port: 81, protocol: 'UDP' },
];

/** Probe settings: a blocked TCP cell costs one timeout, a blocked UDP cell two. */
export const PROBE = { timeoutMs: 500, udpAttempts: 2, concurrency: 64, sources: 9 } as const;
/** A cell the engine allows but the first probe missed is probed again, patiently, before it counts. */
const RETRY = { timeoutMs: 2000, udpAttempts: 3 } as const;
/** Issue acceptance: a live label change is enforced within a second. */
export const LABEL_FOLLOW_LIMIT_MS = 1000;

/**
 * The e2e model as the lab builds it: the model's own pod IPs (10.<ns>.0.<pod+10>, so the
 * ipBlock cases address the pods they name) from one pool per namespace, and pods placed
 * alternately on node-0 and node-1 so that same-node and cross-node paths both occur.
 */
export function labModel(): Cluster {
  const model = e2eModel();
  return { ...model, pods: model.pods.map((p, i) => ({ ...p, node: `node-${i % 2}` })) };
}

export const NAMESPACE_POOLS: Readonly<Record<string, string>> = Object.fromEntries(NAMESPACES.map((ns, i) => [ns, `10.${i + 1}.0.0/24`]));

export interface StepReport {
  readonly label: string;
  /** Desired state written → every agent confirmed the sync (ms). */
  readonly syncMs: number;
  /** Label change → first probe that saw every changed cell with its new verdict (label steps only). */
  readonly followMs?: number;
  readonly probeMs: number;
  readonly cells: number;
  /** Cells the engine allows that the first probe missed and the patient re-probe reached. */
  readonly retried: number;
  /** What the first probe saw on those cells, e.g. `UDP timeout: 12`. */
  readonly retriedWhy?: string;
  readonly compared: number;
}

export interface CaseReport {
  readonly name: string;
  readonly ms: number;
  readonly steps: readonly StepReport[];
}

const cellKey = (c: Pick<ProbeCell, 'from' | 'to' | 'port' | 'protocol'>): string => `${c.from} -> ${c.to} ${c.port}/${c.protocol}`;

function sameLabels(a: Labels, b: Labels): boolean {
  const norm = (l: Labels): string => JSON.stringify(Object.entries(l).sort(([x], [y]) => x.localeCompare(y)));
  return norm(a) === norm(b);
}

function labelsOf(s: Scenario): string {
  const pods = [...s.pods.values()].map((p) => [`${p.namespace}/${p.name}`, Object.entries(p.labels).sort()]);
  const namespaces = [...s.namespaces.values()].map((n) => [n.name, Object.entries(n.labels).sort()]);
  return JSON.stringify([pods.sort(), namespaces.sort()]);
}

/** A probe result holding exactly `cells` (the probe's own ordering fields recomputed). */
function resultOf(cells: readonly ProbeCell[], durationMs: number): ProbeResult {
  const pods = allPodKeys();
  return { from: pods, to: pods, ports: LAB_PORTS, cells, durationMs };
}

/** The kernel's truth table for one port, from probe cells. */
function kernelTable(cells: readonly ProbeCell[], p: PortSpec): TruthTable {
  const t = new TruthTable(allPodKeys());
  for (const c of cells) if (c.port === p.port && c.protocol === p.protocol) t.set(c.from, c.to, c.ok);
  return t;
}

/** Upstream's ValidateOrFail output: expected, observed and a comparison, loopback ignored. */
function tableDiff(title: string, expected: TruthTable, observed: TruthTable, names: readonly [string, string] = ['expected', 'observed (kernel)']): string | undefined {
  let wrong = 0;
  const comparison = (f: string, t: string): string => {
    if (f === t) return '-';
    return expected.get(f, t) === observed.get(f, t) ? '.' : 'X';
  };
  for (const f of expected.pods) for (const t of expected.pods) if (comparison(f, t) === 'X') wrong++;
  if (wrong === 0) return undefined;
  return [`${title}: ${wrong} wrong results in reachability matrix`, `${names[0]}:`, expected.pretty(), `${names[1]}:`, observed.pretty(), 'comparison (X = wrong, - = ignored loopback):', observed.pretty(comparison)].join('\n');
}

export interface ConformanceLabOptions {
  readonly dir: string;
  readonly prefix: string;
  readonly log?: (line: string) => void;
}

type Enforcer = ReturnType<typeof labEnforcer>;

/** One lab for a whole test file; see the file comment. */
export class ConformanceLab {
  private constructor(
    readonly opts: ConformanceLabOptions,
    public state: LabState,
    readonly enforcer: Enforcer,
    /** The desired state the agents enforce (read by the enforcer at every sync). */
    private readonly target: { desired: Scenario },
  ) {}

  private get desired(): Scenario {
    return this.target.desired;
  }

  /** Builds the lab with the agents enforcing from the moment each node exists, before any pod runs. */
  static async up(opts: ConformanceLabOptions): Promise<ConformanceLab> {
    const target = { desired: new Scenario(labModel()) };
    const enforcer = labEnforcer(() => target.desired.cluster());
    const state = await labUp(labModel(), { dir: opts.dir, prefix: opts.prefix, nodes: 2, namespacePools: NAMESPACE_POOLS, onNodeReady: enforcer.onNodeReady });
    return new ConformanceLab(opts, state, enforcer, target);
  }

  async down(): Promise<void> {
    await labDown({ dir: this.opts.dir, prefix: this.opts.prefix, force: true });
  }

  private generations(): Map<string, number> {
    return new Map(this.state.nodes.map((n) => [n.name, this.enforcer.agents.get(n.name)?.last?.generation ?? 0]));
  }

  /**
   * Brings the lab to `s`: pod labels through the lab's live relabel (the agents re-sync in
   * its onChange hook), policies and namespace labels through a sync of every node. Then
   * checks, per node, that the agent's status (in memory and in agent-<node>.json) reports
   * a newer generation with a successful apply: the kernel has the new ruleset. Returns the
   * time that took; the nodes' conntrack tables are emptied after it (see forgetFlows).
   */
  async apply(s: Scenario): Promise<number> {
    const t0 = performance.now();
    this.target.desired = s;
    const before = this.generations();
    let relabelled = 0;
    for (const pod of this.state.pods) {
      const want = s.pods.get(pod.key)?.labels;
      if (want && !sameLabels(pod.labels, want)) {
        this.state = await this.relabel(pod.key, want);
        relabelled++;
      }
    }
    if (relabelled === 0) await this.enforcer.syncAll(this.state);
    for (const node of this.state.nodes) {
      const agent = this.enforcer.agents.get(node.name);
      const status = agent?.last;
      assert.ok(status, `no agent status for ${node.name}`);
      assert.ok(status.generation > (before.get(node.name) ?? 0), `the agent of ${node.name} did not sync (generation ${status.generation})`);
      assert.ok(status.lastApplyOk, `the agent of ${node.name} failed to apply: ${status.error ?? ''}`);
      const file = await readAgentStatus(this.state.dir, node.name);
      assert.equal(file?.generation, status.generation, `agent-${node.name}.json reports the synced generation`);
    }
    const syncMs = performance.now() - t0;
    await this.forgetFlows();
    return syncMs;
  }

  /**
   * Empties the nodes' conntrack tables. Every probe is a new connection, as upstream's are,
   * but a UDP probe whose random source port repeats one of a still-remembered earlier flow
   * would pass as `established` whatever the policy now says (the agents run without
   * `--strict`, whose per-entry sweep is far too slow for hundreds of flows per step).
   */
  private async forgetFlows(): Promise<void> {
    await Promise.all(this.state.nodes.map((n) => runInNetns(n.netns, ['conntrack', '-F'], undefined, { allowFailure: true })));
  }

  private async relabel(key: string, labels: Labels): Promise<LabState> {
    let saved: LabState | undefined;
    await updatePodLabels(this.opts.dir, key, labels, {
      onChange: async (change, state) => {
        saved = state;
        await this.enforcer.onChange(change, state);
      },
    });
    return saved ?? (await this.current());
  }

  private async current(): Promise<LabState> {
    const state = await readState(this.opts.dir);
    if (!state) throw new Error(`the lab state in ${this.opts.dir} is gone`);
    return state;
  }

  /** The engine's verdict for every probed cell of the current state, without sending a packet. */
  engineVerdicts(s: Scenario = this.desired): Map<string, boolean> {
    const pods = allPodKeys();
    const cells: ProbeCell[] = pods.flatMap((from) => pods.flatMap((to) => LAB_PORTS.map((p) => ({ from, to, port: p.port, protocol: p.protocol, ok: false, ms: 0 }))));
    const cmp = compareWithDesired(s.cluster(), this.state, resultOf(cells, 0));
    return new Map(cmp.cells.map((c) => [cellKey(c), c.expected === 'Allowed']));
  }

  /**
   * Every pod to every pod on LAB_PORTS. Cells the engine allows but the probe missed (a
   * slow reply under load is not a verdict) are probed again with a patient timeout; a cell
   * that is really blocked stays blocked. A reachable cell is never re-probed: a packet that
   * got through is proof.
   */
  async probeAll(): Promise<{ result: ProbeResult; retried: number; retriedWhy?: string }> {
    const first = await probe(this.state, { external: false, ports: LAB_PORTS, ...PROBE });
    const allowed = this.engineVerdicts();
    const missed = first.cells.filter((c) => !c.ok && c.from !== c.to && allowed.get(cellKey(c)) === true);
    if (missed.length === 0) return { result: first, retried: 0 };
    const wanted = new Set(missed.map(cellKey));
    const bySource = new Map<string, { to: Set<string>; ports: Map<string, PortSpec> }>();
    for (const c of missed) {
      const e = bySource.get(c.from) ?? { to: new Set<string>(), ports: new Map<string, PortSpec>() };
      e.to.add(c.to);
      e.ports.set(portLabel(c), { port: c.port, protocol: c.protocol });
      bySource.set(c.from, e);
    }
    const again = new Map<string, ProbeCell>();
    const rounds = await Promise.all([...bySource].map(([from, e]) => probe(this.state, { from: [from], to: [...e.to], ports: [...e.ports.values()], ...RETRY })));
    for (const cell of rounds.flatMap((r) => r.cells)) if (wanted.has(cellKey(cell))) again.set(cellKey(cell), cell);
    const cells = first.cells.map((c) => again.get(cellKey(c)) ?? c);
    const why = new Map<string, number>();
    for (const c of missed) if (again.get(cellKey(c))?.ok) why.set(`${c.protocol} ${c.error ?? '?'}`, (why.get(`${c.protocol} ${c.error ?? '?'}`) ?? 0) + 1);
    const retriedWhy = [...why].map(([k, n]) => `${k}: ${n}`).join(', ');
    return { result: resultOf(cells, first.durationMs), retried: [...again.values()].filter((c) => c.ok).length, ...(retriedWhy ? { retriedWhy } : {}) };
  }

  /**
   * Probes only the cells of `want` until each shows its verdict there; returns the start of
   * the conclusive round, in ms after `t0`. A cell that must become reachable gets a patient
   * timeout (it answers at once when it works); one that must become blocked a short one and
   * a single UDP attempt, since only a reply would prove it wrong.
   */
  private async follow(want: ReadonlyMap<string, boolean>, t0: number, limitMs: number): Promise<number> {
    const groups = new Map<string, { from: string; to: string; allowed: boolean; ports: PortSpec[] }>();
    for (const [k, allowed] of want) {
      const m = /^(\S+) -> (\S+) (\d+)\/(TCP|UDP)$/.exec(k);
      if (!m) throw new Error(`bad cell key ${k}`);
      const [, from = '', to = '', p = '0', protocol = 'TCP'] = m;
      const g = groups.get(`${from} ${to} ${allowed}`) ?? { from, to, allowed, ports: [] };
      g.ports.push({ port: Number(p), protocol: protocol as PortSpec['protocol'] });
      groups.set(`${from} ${to} ${allowed}`, g);
    }
    for (;;) {
      const start = performance.now() - t0;
      const seen = await Promise.all(
        [...groups.values()].map((g) =>
          probe(this.state, { from: [g.from], to: [g.to], ports: g.ports, ...(g.allowed ? { timeoutMs: 1000, udpAttempts: 2 } : { timeoutMs: 300, udpAttempts: 1 }) }),
        ),
      );
      const wrong = seen.flatMap((r) => r.cells).filter((c) => want.get(cellKey(c)) !== c.ok);
      if (wrong.length === 0) return start;
      if (start > limitMs * 3) {
        throw new assert.AssertionError({ message: `enforcement did not follow the label change: ${wrong.map((c) => `${cellKey(c)} ${c.ok ? 'reachable' : 'blocked'}`).join(', ')}` });
      }
    }
  }

  /**
   * Runs a case: every step applied live, synced, probed and compared; then the bare model
   * restored. Throws one AssertionError per failing step with upstream-style tables.
   */
  async runCase(c: ConformanceCase): Promise<CaseReport> {
    const started = performance.now();
    const s = new Scenario(labModel());
    const steps: StepReport[] = [];
    try {
      for (const [i, st] of c.steps.entries()) {
        const labelsBefore = labelsOf(s);
        const verdictsBefore = this.engineVerdicts(s);
        st.change(s);
        const label = st.checks.map((ch) => ch.label).find((l) => l !== undefined) ?? `step ${i + 1}`;
        const relabels = labelsOf(s) !== labelsBefore;
        const t0 = performance.now();
        const syncMs = await this.apply(s);
        let followMs: number | undefined;
        if (relabels) {
          const after = this.engineVerdicts(s);
          const changed = new Map([...after].filter(([k, v]) => verdictsBefore.get(k) !== v && !/^(\S+) -> \1 /.test(k)));
          assert.ok(changed.size > 0, `${c.name} / ${label}: the label change changes no verdict, nothing to measure`);
          followMs = await this.follow(changed, t0, LABEL_FOLLOW_LIMIT_MS);
        }
        const p0 = performance.now();
        const { result, retried, retriedWhy } = await this.probeAll();
        const probeMs = performance.now() - p0;
        const cmp = compareWithDesired(s.cluster(), this.state, result);
        const problems = [...this.checkUpstream(s, st.checks, result), ...this.checkEngine(cmp, result)];
        if (problems.length > 0) throw new assert.AssertionError({ message: `${c.name} / ${label}:\n${problems.join('\n\n')}` });
        steps.push({ label, syncMs, ...(followMs !== undefined ? { followMs } : {}), probeMs, cells: result.cells.length, retried, ...(retriedWhy ? { retriedWhy } : {}), compared: cmp.compared });
        if (followMs !== undefined) {
          assert.ok(followMs <= LABEL_FOLLOW_LIMIT_MS, `${c.name} / ${label}: the kernel followed the label change after ${Math.round(followMs)} ms (limit ${LABEL_FOLLOW_LIMIT_MS} ms)`);
        }
      }
    } finally {
      await this.apply(new Scenario(labModel()));
    }
    return { name: c.name, ms: performance.now() - started, steps };
  }

  /** (a) the upstream truth tables of the step; SCTP ones on the engine only. */
  private checkUpstream(s: Scenario, checks: readonly Check[], result: ProbeResult): string[] {
    const problems: string[] = [];
    for (const ch of checks) {
      const what = `${ch.label ? `${ch.label}: ` : ''}${ch.probe.protocol}/${ch.probe.port}`;
      if (ch.probe.protocol === 'SCTP') {
        try {
          s.validate(ch.probe, ch.expected(), `${what} (analyzer only, no SCTP in this kernel)`);
        } catch (error) {
          problems.push(error instanceof Error ? error.message : String(error));
        }
        continue;
      }
      const spec: PortSpec = { port: ch.probe.port, protocol: ch.probe.protocol };
      const diff = tableDiff(`upstream truth table, ${what}`, ch.expected().expected, kernelTable(result.cells, spec));
      if (diff) problems.push(diff);
    }
    return problems;
  }

  /** (b) the engine's verdict for every probed cell, with tables and explain chains on disagreement. */
  private checkEngine(cmp: Comparison, result: ProbeResult): string[] {
    if (cmp.disagreements.length === 0) return [];
    const problems: string[] = [];
    for (const p of LAB_PORTS) {
      const engine = new TruthTable(allPodKeys());
      for (const c of cmp.cells) if (c.port === p.port && c.protocol === p.protocol) engine.set(c.from, c.to, c.expected === 'Allowed');
      const diff = tableDiff(`engine vs kernel, ${portLabel(p)}`, engine, kernelTable(result.cells, p), ['engine (compare.ts)', 'observed (kernel)']);
      if (diff) problems.push(diff);
    }
    problems.push(formatComparison(cmp));
    return problems;
  }
}

/** One line per case and step, for the test log. */
export function formatReport(r: CaseReport): string {
  const steps = r.steps.map(
    (s) =>
      `${s.label}: sync ${Math.round(s.syncMs)} ms${s.followMs !== undefined ? `, label change enforced after ${Math.round(s.followMs)} ms` : ''}, probe ${s.cells} cells ${Math.round(s.probeMs)} ms` +
      (s.retried > 0 ? ` (${s.retried} slow cells reached on a patient re-probe; first probe: ${s.retriedWhy ?? '?'})` : ''),
  );
  return `${Math.round(r.ms)} ms — ${steps.join('; ')}`;
}
