// Synthetic traffic for tests, the bench and demos: a cluster of pods with addresses, and
// records or raw kernel text (conntrack event lines, nft set JSON) in the real formats.
import type { PodInfo } from './enrich.js';
import type { FlowRecord, Verdict } from './record.js';
import type { Reason } from './reasons.js';
import { DENIED_SET, FAMILY, TABLE } from '../render/names.js';

export interface SyntheticCluster {
  pods: PodInfo[];
  byIp: Map<string, PodInfo>;
  lookup: (ip: string) => PodInfo | undefined;
}

export function syntheticCluster(namespaces = 3, workloadsPerNamespace = 3, podsPerWorkload = 2): SyntheticCluster {
  const pods: PodInfo[] = [];
  for (let n = 0; n < namespaces; n++) {
    const ns = namespaces <= 3 ? ['x', 'y', 'z'][n] ?? `ns${n}` : `ns${n}`;
    for (let w = 0; w < workloadsPerNamespace; w++) {
      const wl = workloadsPerNamespace <= 3 ? ['a', 'b', 'c'][w] ?? `w${w}` : `w${w}`;
      for (let p = 0; p < podsPerWorkload; p++) {
        const ip = `10.${(n >> 8) & 255}.${n & 255}.${w * podsPerWorkload + p + 1}`;
        pods.push({ ip, namespace: ns, name: `${wl}-${p}`, workload: `${ns}/${wl}[Deployment]`, labels: { pod: wl } });
      }
    }
  }
  const byIp = new Map(pods.map((p) => [p.ip, p]));
  return { pods, byIp, lookup: (ip) => byIp.get(ip) };
}


export interface RecordOptions {
  time?: number;
  verdict?: Verdict;
  policy?: string;
  rule?: string;
  bytes?: number;
  dstPort?: number;
}

/** An enriched record between two pods of the cluster. */
export function podRecord(src: PodInfo, dst: PodInfo, o: RecordOptions = {}): FlowRecord {
  const verdict = o.verdict ?? 'FORWARDED';
  return {
    time: o.time ?? Date.now(),
    node: 'node-1',
    src: { ip: src.ip, namespace: src.namespace, pod: src.name, workload: src.workload ?? '', identity: `${src.namespace}:pod=${src.labels?.pod ?? ''}` },
    dst: { ip: dst.ip, namespace: dst.namespace, pod: dst.name, workload: dst.workload ?? '', identity: `${dst.namespace}:pod=${dst.labels?.pod ?? ''}` },
    srcPort: 40000,
    dstPort: o.dstPort ?? 80,
    protocol: 'TCP',
    verdict,
    policy: o.policy ?? (verdict === 'FORWARDED' ? 'default' : `NetworkPolicy ${dst.namespace}/default-deny`),
    rule: o.rule ?? (verdict === 'FORWARDED' ? 'default-allow' : 'default-deny'),
    tier: o.policy === 'default' || (!o.policy && verdict === 'FORWARDED') ? 'default' : 'NetworkPolicy',
    bytes: o.bytes ?? (verdict === 'FORWARDED' ? 1500 : 60),
    packets: verdict === 'FORWARDED' ? 10 : 1,
    durationMs: 12,
    event: 'sample',
  };
}

/** Conntrack NEW + DESTROY lines for one TCP connection, as `conntrack -E -o timestamp,extended,id` prints them. */
export function conntrackLines(src: string, dst: string, sport: number, dport: number, id: number, startMs: number, endMs: number, bytes = 433, mark = 0): [string, string] {
  const ts = (ms: number): string => `[${Math.floor(ms / 1000)}.${String((ms % 1000) * 1000).padStart(6, '0')}]`;
  const m = mark ? ` mark=${mark}` : '';
  return [
    `${ts(startMs)}\t    [NEW] ipv4     2 tcp      6 120 SYN_SENT src=${src} dst=${dst} sport=${sport} dport=${dport} [UNREPLIED] src=${dst} dst=${src} sport=${dport} dport=${sport}${m} id=${id}`,
    `${ts(endMs)}\t[DESTROY] ipv4     2 tcp      6 118 TIME_WAIT src=${src} dst=${dst} sport=${sport} dport=${dport} packets=6 bytes=${bytes} src=${dst} dst=${src} sport=${dport} dport=${sport} packets=6 bytes=1594 [ASSURED]${m} id=${id}`,
  ];
}

export interface DeniedSpec {
  saddr: string;
  daddr: string;
  proto: 'tcp' | 'udp';
  dport: number;
  mark: number;
  packets: number;
  bytes: number;
}

/** `nft -j list set inet weir denied` output with the given elements. */
export function deniedSetJson(elements: readonly DeniedSpec[], name = DENIED_SET): string {
  return JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
      {
        set: {
          family: FAMILY,
          name,
          table: TABLE,
          type: ['ipv4_addr', 'ipv4_addr', 'inet_proto', 'inet_service', 'mark'],
          handle: 3,
          size: 65535,
          flags: ['timeout'],
          timeout: 300,
          elem: elements.map((e) => ({ elem: { val: { concat: [e.saddr, e.daddr, e.proto, e.dport, e.mark] }, expires: 293, counter: { packets: e.packets, bytes: e.bytes } } })),
          stmt: [{ counter: null }],
        },
      },
    ],
  });
}

export const SAMPLE_REASONS: Record<number, Reason> = {
  1: { policy: 'NetworkPolicy y/allow-x', rule: 'ingress[0]', tier: 'NetworkPolicy', direction: 'ingress', verdict: 'allow' },
  3: { policy: 'NetworkPolicy y/default-deny', rule: 'default-deny', tier: 'NetworkPolicy', direction: 'ingress', verdict: 'deny' },
  4: { policy: 'AdminNetworkPolicy deny-z', rule: 'deny-from-z', tier: 'AdminNetworkPolicy', direction: 'ingress', verdict: 'deny' },
  5: { policy: 'NetworkPolicy z/audit-lockdown', rule: 'default-deny', tier: 'NetworkPolicy', direction: 'ingress', verdict: 'audit' },
};
