// `--strict`: when an allow goes away, connections it admitted would live on through
// `ct state established accept`. The sweep lists the node's conntrack table, asks the engine
// about each flow that starts or ends at a local pod, and deletes the ones no longer allowed.

import type { Protocol } from '../model/cluster.js';
import { allows, evaluatePair, externalEndpoint, parseIp, podEndpoint, type Endpoint } from '../policy/index.js';
import type { PolicyEngine } from '../policy/engine.js';
import { run } from '../exec/run.js';

export interface ConntrackEntry {
  readonly protocol: string;
  readonly src: string;
  readonly dst: string;
  readonly sport?: number;
  readonly dport?: number;
}

/** Parses `conntrack -L` lines; the first src/dst/sport/dport of a line are the original direction. */
export function parseConntrack(text: string): ConntrackEntry[] {
  const out: ConntrackEntry[] = [];
  for (const line of text.split('\n')) {
    const protocol = /^\s*(\S+)\s+\d+/.exec(line)?.[1];
    const src = /\bsrc=(\S+)/.exec(line)?.[1];
    const dst = /\bdst=(\S+)/.exec(line)?.[1];
    if (!protocol || !src || !dst) continue;
    const sport = /\bsport=(\d+)/.exec(line)?.[1];
    const dport = /\bdport=(\d+)/.exec(line)?.[1];
    out.push({ protocol, src, dst, sport: sport ? Number(sport) : undefined, dport: dport ? Number(dport) : undefined });
  }
  return out;
}

/** Is this flow allowed by the engine's enforced policies? */
export function flowAllowed(engine: PolicyEngine, byIp: ReadonlyMap<string, Endpoint>, e: ConntrackEntry): boolean {
  const ep = (ip: string): Endpoint => byIp.get(ip) ?? externalEndpoint(parseIp(ip) ?? 0n);
  const pair = evaluatePair(engine, ep(e.src), ep(e.dst));
  const proto = e.protocol.toUpperCase();
  if ((proto === 'TCP' || proto === 'UDP' || proto === 'SCTP') && e.dport !== undefined) return allows(pair.allowed, proto as Protocol, e.dport);
  return pair.allowed.other;
}

export function endpointsByIp(engine: PolicyEngine): Map<string, Endpoint> {
  const byIp = new Map<string, Endpoint>();
  for (const pod of engine.pods.values()) if (pod.ip && !pod.hostNetwork) byIp.set(pod.ip, podEndpoint(engine, pod));
  return byIp;
}

/**
 * Deletes conntrack entries of local flows the engine no longer allows; returns how many.
 * The verdict does not depend on the source port, so entries are grouped by (protocol,
 * source, destination, destination port): one verdict and one `conntrack -D` per group
 * (which removes every entry of the group), a few at a time — not a process per entry.
 */
export async function sweepConntrack(engine: PolicyEngine, netns: string | undefined, localIps: ReadonlySet<string>): Promise<number> {
  const prefix = netns ? ['ip', 'netns', 'exec', netns] : [];
  const listed = await run([...prefix, 'conntrack', '-L'], { allowFailure: true });
  if (listed.code !== 0) return 0;
  const byIp = endpointsByIp(engine);
  const groups = new Map<string, { entry: ConntrackEntry; count: number }>();
  for (const e of parseConntrack(listed.stdout)) {
    if (!localIps.has(e.src) && !localIps.has(e.dst)) continue;
    const key = `${e.protocol}|${e.src}|${e.dst}|${e.dport ?? ''}`;
    const g = groups.get(key);
    if (g) g.count++;
    else groups.set(key, { entry: e, count: 1 });
  }
  const doomed = [...groups.values()].filter((g) => !flowAllowed(engine, byIp, g.entry));
  let deleted = 0;
  const concurrency = 8;
  for (let i = 0; i < doomed.length; i += concurrency) {
    const batch = doomed.slice(i, i + concurrency);
    const results = await Promise.all(
      batch.map(({ entry: e }) => {
        const argv = [...prefix, 'conntrack', '-D', '-p', e.protocol, '-s', e.src, '-d', e.dst];
        if (e.dport !== undefined) argv.push('--dport', String(e.dport));
        return run(argv, { allowFailure: true });
      }),
    );
    results.forEach((r, j) => {
      if (r.code === 0) deleted += batch[j].count;
    });
  }
  return deleted;
}
