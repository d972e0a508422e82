// A reachability truth table in the style of the upstream NetworkPolicy e2e suite
// (kubernetes test/e2e/network/netpol/reachability.go): an expected matrix built with
// `expect`, `expectAllIngress`, `expectAllEgress` and `expectPeer`, compared cell by cell with
// what the engine says for one port and protocol.
//
// The engine is asked three ways and all three must agree before the verdict is compared
// with the expectation: the class matrix of `analyze()` (mapped back to pod pairs),
// `evaluatePair()` per pod pair (the full connection set, not only the probed port), and
// `explain()` for the probed port.

import assert from 'node:assert/strict';
import type { Protocol } from '../../src/model/cluster.js';
import {
  allows,
  analyze,
  connKey,
  evaluatePair,
  explain,
  formatConns,
  podEndpoint,
  type ConnSet,
  type ConnectivityResult,
  type PolicyEngine,
  type ProgramMode,
} from '../../src/policy/index.js';
import { allPodKeys } from './model.js';

export interface Peer {
  readonly namespace?: string;
  readonly pod?: string;
}

export interface Probe {
  readonly port: number;
  readonly protocol: Protocol;
}

function matches(peer: Peer, podKey: string): boolean {
  const [ns, name] = podKey.split('/');
  return (peer.namespace === undefined || peer.namespace === ns) && (peer.pod === undefined || peer.pod === name);
}

/** A from × to table of booleans over a fixed list of pods (`ns/name`). */
export class TruthTable {
  private readonly cells = new Map<string, boolean>();
  constructor(
    readonly pods: readonly string[],
    fill?: boolean,
  ) {
    if (fill !== undefined) for (const f of pods) for (const t of pods) this.set(f, t, fill);
  }

  private key(from: string, to: string): string {
    return `${from}\u0000${to}`;
  }

  set(from: string, to: string, value: boolean): void {
    if (!this.pods.includes(from) || !this.pods.includes(to)) throw new Error(`unknown pod in ${from} -> ${to}`);
    this.cells.set(this.key(from, to), value);
  }

  get(from: string, to: string): boolean {
    const v = this.cells.get(this.key(from, to));
    if (v === undefined) throw new Error(`no value for ${from} -> ${to}`);
    return v;
  }

  /** Upstream's PrettyPrint: one row per source, `.` for connected, `X` for not. */
  pretty(cell: (from: string, to: string) => string = (f, t) => (this.get(f, t) ? '.' : 'X')): string {
    const width = Math.max(...this.pods.map((p) => p.length));
    const header = `${' '.repeat(width)} ${this.pods.map((p) => p.padStart(width)).join(' ')}`;
    const rows = this.pods.map((f) => `${f.padEnd(width)} ${this.pods.map((t) => cell(f, t).padStart(width)).join(' ')}`);
    return [header, ...rows].join('\n');
  }
}

/** The expectation side of upstream's Reachability. */
export class Reachability {
  readonly expected: TruthTable;
  constructor(
    readonly pods: readonly string[] = allPodKeys(),
    defaultExpectation = true,
  ) {
    this.expected = new TruthTable(pods, defaultExpectation);
  }

  expect(from: string, to: string, connected: boolean): this {
    this.expected.set(from, to, connected);
    return this;
  }

  /** Every connection *to* `pod`. */
  expectAllIngress(pod: string, connected: boolean): this {
    for (const from of this.pods) this.expected.set(from, pod, connected);
    return this;
  }

  /** Every connection *from* `pod`. */
  expectAllEgress(pod: string, connected: boolean): this {
    for (const to of this.pods) this.expected.set(pod, to, connected);
    return this;
  }

  expectPeer(from: Peer, to: Peer, connected: boolean): this {
    for (const f of this.pods) {
      if (!matches(from, f)) continue;
      for (const t of this.pods) if (matches(to, t)) this.expected.set(f, t, connected);
    }
    return this;
  }

  allowLoopback(): this {
    for (const p of this.pods) this.expected.set(p, p, true);
    return this;
  }
}

/** Connection sets per ordered pod pair, from the class matrix of one analysis. */
export function podMatrix(engine: PolicyEngine, result: ConnectivityResult = analyze(engine)): Map<string, ConnSet> {
  const classOf = new Map<string, number>();
  for (const c of result.classes) for (const p of c.pods) classOf.set(`${p.namespace}/${p.name}`, c.index);
  const out = new Map<string, ConnSet>();
  for (const [from, fc] of classOf) {
    for (const [to, tc] of classOf) out.set(`${from} -> ${to}`, result.conns.get(result.connId(fc, tc)));
  }
  return out;
}

/**
 * Connection sets per pod pair, computed by `analyze()` and by `evaluatePair()`; throws with
 * both tables when they disagree on any pair (full connection sets, every port).
 */
export function observedConns(engine: PolicyEngine, pods: readonly string[] = allPodKeys(), mode: ProgramMode = 'enforce'): Map<string, ConnSet> {
  const fromAnalysis = podMatrix(engine, analyze(engine, mode));
  const out = new Map<string, ConnSet>();
  const problems: string[] = [];
  for (const from of pods) {
    for (const to of pods) {
      const key = `${from} -> ${to}`;
      const src = engine.pods.get(from);
      const dst = engine.pods.get(to);
      if (!src || !dst) throw new Error(`pod missing from engine: ${!src ? from : to}`);
      const pair = evaluatePair(engine, podEndpoint(engine, src), podEndpoint(engine, dst), mode).allowed;
      const matrix = fromAnalysis.get(key);
      if (!matrix) {
        problems.push(`${key}: absent from analyze() classes`);
        continue;
      }
      if (connKey(pair) !== connKey(matrix)) {
        problems.push(`${key}: analyze()=${formatConns(matrix)} evaluatePair()=${formatConns(pair)}`);
      }
      out.set(key, pair);
    }
  }
  if (problems.length > 0) throw new assert.AssertionError({ message: `analyze() and evaluatePair() disagree:\n${problems.join('\n')}` });
  return out;
}

/** The observed truth table for one probe, cross-checked three ways (see the file comment). */
export function observe(engine: PolicyEngine, probe: Probe, pods: readonly string[] = allPodKeys()): TruthTable {
  const conns = observedConns(engine, pods);
  const table = new TruthTable(pods);
  const problems: string[] = [];
  for (const from of pods) {
    for (const to of pods) {
      const ok = allows(conns.get(`${from} -> ${to}`) as ConnSet, probe.protocol, probe.port);
      const e = explain(engine, from, to, probe.protocol, probe.port);
      if ((e.verdict === 'Allowed') !== ok) problems.push(`${from} -> ${to}: explain()=${e.verdict}, matrix=${ok ? 'Allowed' : 'Denied'}`);
      table.set(from, to, ok);
    }
  }
  if (problems.length > 0) throw new assert.AssertionError({ message: `explain() disagrees with the matrix:\n${problems.join('\n')}` });
  return table;
}

export interface ValidateOptions {
  /**
   * Upstream ignores pod → same pod ("loopback") cells: "The semantics of the effect of
   * network policies on loopback calls may be undefined" (kubernetes#95879). Default true.
   */
  readonly ignoreLoopback?: boolean;
  readonly label?: string;
}

/** Upstream's ValidateOrFail: every cell must match; prints expected/observed/comparison on failure. */
export function validateOrFail(engine: PolicyEngine, probe: Probe, reach: Reachability, opts: ValidateOptions = {}): void {
  const ignoreLoopback = opts.ignoreLoopback ?? true;
  const observed = observe(engine, probe, reach.pods);
  let wrong = 0;
  const comparison = (f: string, t: string): string => {
    if (ignoreLoopback && f === t) return '-';
    return reach.expected.get(f, t) === observed.get(f, t) ? '.' : 'X';
  };
  for (const f of reach.pods) for (const t of reach.pods) if (comparison(f, t) === 'X') wrong++;
  if (wrong > 0) {
    const title = `${opts.label ? `${opts.label}: ` : ''}${probe.protocol}/${probe.port}: ${wrong} wrong results in reachability matrix`;
    throw new assert.AssertionError({
      message: [
        title,
        'expected:',
        reach.expected.pretty(),
        'observed:',
        observed.pretty(),
        'comparison (X = wrong, - = ignored loopback):',
        observed.pretty(comparison),
      ].join('\n'),
    });
  }
}
