// Hubble-like flow filters, shared by the API (query string), the CLI (flags) and the live
// stream. Bad input names the field: `since: invalid time "yesterday" (use a duration like 5m or RFC3339)`.
import { FLOW_PROTOCOLS, VERDICTS, type Endpoint, type FlowProtocol, type FlowRecord, type Verdict } from './record.js';

export interface FlowFilter {
  fromNamespace?: string;
  fromPod?: string;
  fromWorkload?: string;
  fromIdentity?: string;
  toNamespace?: string;
  toPod?: string;
  toWorkload?: string;
  toIdentity?: string;
  /** Either endpoint (group-level edge queries use from/to). */
  namespace?: string;
  verdict?: Verdict;
  port?: number;
  protocol?: FlowProtocol;
  policy?: string;
  node?: string;
  /** Epoch ms, inclusive. */
  since?: number;
  /** Epoch ms, inclusive. */
  until?: number;
  limit: number;
}

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 10_000;

export class FilterError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'FilterError';
  }
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `500ms`, `30s`, `5m`, `1h30m`, `2d` → milliseconds; undefined when not a duration. */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(t)) return undefined;
  let total = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) total += Number(m[1]) * (UNIT_MS[m[2] as string] ?? 0);
  return total;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** A point in time: a duration means "that long ago", else an RFC3339 timestamp. */
export function parseTimeSpec(field: string, text: string, now: number): number {
  const d = parseDuration(text);
  if (d !== undefined) return now - d;
  if (RFC3339.test(text.trim())) {
    const t = Date.parse(text.trim());
    if (!Number.isNaN(t)) return t;
  }
  throw new FilterError(field, `invalid time "${text}" (use a duration like 5m or an RFC3339 timestamp)`);
}

export type RawQuery = Readonly<Record<string, unknown>>;

function str(q: RawQuery, field: string): string | undefined {
  const v = q[field];
  if (v === undefined || v === null || v === '') return undefined;
  if (Array.isArray(v)) throw new FilterError(field, 'given more than once');
  if (typeof v !== 'string' && typeof v !== 'number') throw new FilterError(field, 'must be a string');
  return String(v);
}

function int(q: RawQuery, field: string, min: number, max: number): number | undefined {
  const s = str(q, field);
  if (s === undefined) return undefined;
  if (!/^\d+$/.test(s) || Number(s) < min || Number(s) > max) throw new FilterError(field, `must be an integer between ${min} and ${max}, got "${s}"`);
  return Number(s);
}

/** `ns/pod` sets both namespace and pod, as `hubble observe --from-pod` does. */
function podRef(q: RawQuery, field: string, nsField: string): { ns?: string; pod?: string } {
  const s = str(q, field);
  if (s === undefined) return { ns: str(q, nsField) };
  const i = s.indexOf('/');
  if (i < 0) return { ns: str(q, nsField), pod: s };
  const ns = s.slice(0, i);
  const pod = s.slice(i + 1);
  if (!ns || !pod) throw new FilterError(field, `expected "pod" or "namespace/pod", got "${s}"`);
  const other = str(q, nsField);
  if (other !== undefined && other !== ns) throw new FilterError(field, `namespace "${ns}" conflicts with ${nsField}="${other}"`);
  return { ns, pod };
}

export const FILTER_FIELDS = [
  'from_namespace',
  'from_pod',
  'from_workload',
  'from_identity',
  'to_namespace',
  'to_pod',
  'to_workload',
  'to_identity',
  'namespace',
  'verdict',
  'port',
  'protocol',
  'policy',
  'node',
  'since',
  'until',
  'limit',
] as const;

/** Snake_case query parameters (API, CLI flags) → filter; throws FilterError naming the field. */
export function parseFlowFilter(q: RawQuery, now = Date.now(), allowUnknown = false): FlowFilter {
  if (!allowUnknown) {
    for (const k of Object.keys(q)) {
      if (!(FILTER_FIELDS as readonly string[]).includes(k)) throw new FilterError(k, `unknown filter (known: ${FILTER_FIELDS.join(', ')})`);
    }
  }
  const from = podRef(q, 'from_pod', 'from_namespace');
  const to = podRef(q, 'to_pod', 'to_namespace');
  const f: FlowFilter = { limit: int(q, 'limit', 1, MAX_LIMIT) ?? DEFAULT_LIMIT };
  if (from.ns !== undefined) f.fromNamespace = from.ns;
  if (from.pod !== undefined) f.fromPod = from.pod;
  if (to.ns !== undefined) f.toNamespace = to.ns;
  if (to.pod !== undefined) f.toPod = to.pod;
  const simple: [string, 'fromWorkload' | 'toWorkload' | 'fromIdentity' | 'toIdentity' | 'policy' | 'node' | 'namespace'][] = [
    ['from_workload', 'fromWorkload'],
    ['to_workload', 'toWorkload'],
    ['from_identity', 'fromIdentity'],
    ['to_identity', 'toIdentity'],
    ['policy', 'policy'],
    ['node', 'node'],
    ['namespace', 'namespace'],
  ];
  for (const [field, key] of simple) {
    const v = str(q, field);
    if (v !== undefined) f[key] = v;
  }
  const verdict = str(q, 'verdict');
  if (verdict !== undefined) {
    const v = verdict.toUpperCase();
    if (!(VERDICTS as readonly string[]).includes(v)) throw new FilterError('verdict', `must be one of ${VERDICTS.join(', ')}, got "${verdict}"`);
    f.verdict = v as Verdict;
  }
  const port = int(q, 'port', 0, 65535);
  if (port !== undefined) f.port = port;
  const protocol = str(q, 'protocol');
  if (protocol !== undefined) {
    const p = FLOW_PROTOCOLS.find((x) => x.toLowerCase() === protocol.toLowerCase());
    if (!p) throw new FilterError('protocol', `must be one of ${FLOW_PROTOCOLS.join(', ')}, got "${protocol}"`);
    f.protocol = p;
  }
  const since = str(q, 'since');
  if (since !== undefined) f.since = parseTimeSpec('since', since, now);
  const until = str(q, 'until');
  if (until !== undefined) f.until = parseTimeSpec('until', until, now);
  if (f.since !== undefined && f.until !== undefined && f.since > f.until) throw new FilterError('until', 'is before since');
  return f;
}

/** `external:<cidr>` / `external:world` group names select external endpoints (see groupOf). */
export function externalCidrOf(group: string): string | undefined {
  return group.startsWith('external:') ? group.slice('external:'.length) : undefined;
}

function groupField(ep: Endpoint, value: string | undefined, pick: (ep: Endpoint) => string | undefined): boolean {
  if (value === undefined) return true;
  const ext = externalCidrOf(value);
  if (ext !== undefined) return !!ep.external && (ep.cidr ?? 'world') === ext;
  return pick(ep) === value;
}

/** Same semantics as the store's SQL, for the live stream. */
export function matchesFilter(r: FlowRecord, f: FlowFilter): boolean {
  if (!groupField(r.src, f.fromNamespace, (e) => e.namespace)) return false;
  if (f.fromPod !== undefined && r.src.pod !== f.fromPod) return false;
  if (!groupField(r.src, f.fromWorkload, (e) => e.workload)) return false;
  if (!groupField(r.src, f.fromIdentity, (e) => e.identity)) return false;
  if (!groupField(r.dst, f.toNamespace, (e) => e.namespace)) return false;
  if (f.toPod !== undefined && r.dst.pod !== f.toPod) return false;
  if (!groupField(r.dst, f.toWorkload, (e) => e.workload)) return false;
  if (!groupField(r.dst, f.toIdentity, (e) => e.identity)) return false;
  if (f.namespace !== undefined && r.src.namespace !== f.namespace && r.dst.namespace !== f.namespace) return false;
  if (f.verdict !== undefined && r.verdict !== f.verdict) return false;
  if (f.port !== undefined && r.dstPort !== f.port) return false;
  if (f.protocol !== undefined && r.protocol !== f.protocol) return false;
  if (f.policy !== undefined && r.policy !== f.policy) return false;
  if (f.node !== undefined && r.node !== f.node) return false;
  if (f.since !== undefined && r.time < f.since) return false;
  if (f.until !== undefined && r.time > f.until) return false;
  return true;
}
