// Validation of a shipped batch at ingest speed. The zod schemas (record.ts, ship-protocol.ts)
// stay the single source of truth; this file adds a fast path for the records, which are
// nearly all of a batch: one server takes ~100 batches/s of ~60 records each, and zod's
// generic object parsing cost ~4.6 µs per record there (a tenth of the server's CPU).
//
// The fast path may only ever be *stricter* than the schema, never weaker: a record it accepts
// is one zod accepts, and it returns what zod would (the known fields only, unknown keys
// stripped). Whatever it refuses is handed to zod, which either accepts it after all (then
// zod's result is used) or names the field that is wrong. test/flows-ship-validate.test.ts
// checks the two against each other on valid records and on every field broken in many ways.
import { FLOW_EVENTS, FLOW_PROTOCOLS, TIERS, VERDICTS, flowRecordSchema, type Endpoint, type FlowRecord } from './record.js';
import { shipBatchSchema, type ShipBatch } from './ship-protocol.js';

/** Records per batch at most (the schema's `records.max`). */
export const MAX_BATCH_RECORDS = 50_000;

const PROTOCOLS: ReadonlySet<unknown> = new Set(FLOW_PROTOCOLS);
const VERDICT_SET: ReadonlySet<unknown> = new Set(VERDICTS);
const TIER_SET: ReadonlySet<unknown> = new Set(TIERS);
const EVENTS: ReadonlySet<unknown> = new Set(FLOW_EVENTS);

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const isPort = (v: unknown): v is number => isInt(v) && v >= 0 && v <= 65535;
const optStr = (v: unknown): boolean => v === undefined || typeof v === 'string';
/** A key present with the value `undefined` (never from JSON): the schema keeps it, so let it decide. */
const undefinedKey = (o: Obj, keys: readonly string[]): boolean => keys.some((k) => o[k] === undefined && Object.hasOwn(o, k));
const ENDPOINT_OPTIONAL = ['namespace', 'pod', 'workload', 'identity', 'identityId', 'external', 'cidr'] as const;
const RECORD_OPTIONAL = ['direction', 'event', 'service', 'count'] as const;

function endpoint(v: unknown): Endpoint | undefined {
  if (!isObj(v) || undefinedKey(v, ENDPOINT_OPTIONAL)) return undefined;
  const { ip, namespace, pod, workload, identity, identityId, external, cidr } = v;
  if (typeof ip !== 'string' || ip.length === 0) return undefined;
  if (!optStr(namespace) || !optStr(pod) || !optStr(workload) || !optStr(identity) || !optStr(cidr)) return undefined;
  if (identityId !== undefined && !(isInt(identityId) && identityId > 0)) return undefined;
  if (external !== undefined && typeof external !== 'boolean') return undefined;
  const e: Endpoint = { ip };
  if (namespace !== undefined) e.namespace = namespace as string;
  if (pod !== undefined) e.pod = pod as string;
  if (workload !== undefined) e.workload = workload as string;
  if (identity !== undefined) e.identity = identity as string;
  if (identityId !== undefined) e.identityId = identityId;
  if (external !== undefined) e.external = external;
  if (cidr !== undefined) e.cidr = cidr as string;
  return e;
}

/**
 * The record as `flowRecordSchema` would return it, or undefined when this fast check cannot
 * vouch for it (the caller then asks the schema).
 */
export function fastFlowRecord(v: unknown): FlowRecord | undefined {
  if (!isObj(v) || undefinedKey(v, RECORD_OPTIONAL)) return undefined;
  const { time, node, srcPort, dstPort, protocol, verdict, policy, rule, tier, direction, bytes, packets, durationMs, event, service, count } = v;
  if (!isNum(time) || time < 0 || typeof node !== 'string') return undefined;
  if (!isPort(srcPort) || !isPort(dstPort)) return undefined;
  if (!PROTOCOLS.has(protocol) || !VERDICT_SET.has(verdict) || !TIER_SET.has(tier)) return undefined;
  if (typeof policy !== 'string' || typeof rule !== 'string') return undefined;
  if (direction !== undefined && direction !== 'ingress' && direction !== 'egress') return undefined;
  if (!isInt(bytes) || bytes < 0 || !isInt(packets) || packets < 0 || !isNum(durationMs) || durationMs < 0) return undefined;
  if (event !== undefined && !EVENTS.has(event)) return undefined;
  if (count !== undefined && !(isInt(count) && count >= 0)) return undefined;
  const src = endpoint(v.src);
  const dst = endpoint(v.dst);
  if (!src || !dst) return undefined;
  const r: FlowRecord = {
    time,
    node,
    src,
    dst,
    srcPort,
    dstPort,
    protocol: protocol as FlowRecord['protocol'],
    verdict: verdict as FlowRecord['verdict'],
    policy,
    rule,
    tier: tier as FlowRecord['tier'],
    bytes,
    packets,
    durationMs,
  };
  if (direction !== undefined) r.direction = direction;
  if (event !== undefined) r.event = event as FlowRecord['event'] & string;
  if (service !== undefined) {
    if (!isObj(service) || undefinedKey(service, ['name'])) return undefined;
    const { ip, port, name } = service;
    if (typeof ip !== 'string' || !isPort(port) || !optStr(name)) return undefined;
    r.service = name !== undefined ? { ip, port, name: name as string } : { ip, port };
  }
  if (count !== undefined) r.count = count;
  return r;
}

export type ParsedBatch = { ok: true; batch: ShipBatch } | { ok: false; message: string };

function issueMessage(prefix: string, issue: { path: PropertyKey[]; message: string } | undefined): string {
  const path = [...prefix.split('.').filter((p) => p !== ''), ...(issue?.path ?? []).map(String)].join('.');
  return `field ${path || '(body)'}: ${issue?.message ?? 'invalid'}`;
}

/**
 * A POSTed batch, checked as `shipBatchSchema` checks it (same acceptance, same output): the
 * envelope and report by the schema itself, the records by the fast path with the schema behind
 * it. On refusal, a message naming the field (`field records.3.dstPort: …`).
 */
export function parseShipBatch(body: unknown): ParsedBatch {
  const records = isObj(body) ? body.records : undefined;
  if (!Array.isArray(records) || records.length > MAX_BATCH_RECORDS) {
    // Absent (a heartbeat), not an array, too long: rare, and the schema says exactly what is wrong.
    const p = shipBatchSchema.safeParse(body);
    return p.success ? { ok: true, batch: p.data } : { ok: false, message: issueMessage('', p.error.issues[0]) };
  }
  const env = shipBatchSchema.safeParse({ ...(body as Obj), records: [] });
  if (!env.success) return { ok: false, message: issueMessage('', env.error.issues[0]) };
  const out: FlowRecord[] = new Array<FlowRecord>(records.length);
  for (let i = 0; i < records.length; i++) {
    const fast = fastFlowRecord(records[i]);
    if (fast) {
      out[i] = fast;
      continue;
    }
    const p = flowRecordSchema.safeParse(records[i]);
    if (!p.success) return { ok: false, message: issueMessage(`records.${i}`, p.error.issues[0]) };
    out[i] = p.data;
  }
  return { ok: true, batch: { ...env.data, records: out } };
}
