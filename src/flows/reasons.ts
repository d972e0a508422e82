// The reasons table: written by the nft agent next to the ruleset it applies. Every verdict
// rule that logs into a set or counter stamps a numeric reason id (the packet mark, which
// also keys the `hits` counters); this table maps the id back to the policy and rule that
// decided.
import { readFile } from 'node:fs/promises';
import { REASONS_FILE } from '../agent/status.js';
import { reasonSchema, reasonsFileSchema, type Reason } from '../render/reasons.js';
import type { FlowRecord, Tier, Verdict } from './record.js';

// The file's shape is defined once, beside the renderer that writes it.
export { reasonSchema, reasonsFileSchema as reasonsTableSchema };
export type { Reason };
export type ReasonsTable = ReadonlyMap<number, Reason>;

export class ReasonsError extends Error {
  constructor(
    readonly file: string,
    readonly field: string,
    message: string,
  ) {
    super(`${file}: ${field}: ${message}`);
    this.name = 'ReasonsError';
  }
}

export function parseReasons(json: unknown, file = REASONS_FILE): ReasonsTable {
  if (typeof json === 'object' && json !== null) {
    const bad = Object.keys(json).find((k) => !/^\d+$/.test(k));
    if (bad !== undefined) throw new ReasonsError(file, bad, 'reason ids are non-negative integers');
  }
  const r = reasonsFileSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new ReasonsError(file, issue ? issue.path.join('.') || '(root)' : '(root)', issue?.message ?? 'invalid');
  }
  return new Map(Object.entries(r.data).map(([k, v]) => [Number(k), v]));
}

export async function loadReasons(file: string): Promise<ReasonsTable> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    // No table yet (agent has not applied anything): every mark is unknown.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw e;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ReasonsError(file, '(root)', `invalid JSON: ${(e as Error).message}`);
  }
  return parseReasons(json, file);
}

export function verdictOf(reason: Reason): Verdict {
  return reason.verdict === 'deny' ? 'DROPPED' : reason.verdict === 'audit' ? 'AUDIT' : 'FORWARDED';
}

export type Attribution = Pick<FlowRecord, 'policy' | 'rule' | 'tier' | 'verdict' | 'direction'>;

const DEFAULT_ALLOW: Attribution = { policy: 'default', rule: 'default-allow', tier: 'default' as Tier, verdict: 'FORWARDED' };

/** Attribution of an accepted connection from its ct mark (0 / absent: no policy selected it). */
export function attributeAllowed(reasons: ReasonsTable, mark: number | undefined): Attribution {
  const r = mark ? reasons.get(mark) : undefined;
  if (!r) return DEFAULT_ALLOW;
  // A connection that exists was accepted; an audit reason means "would have been denied".
  return { policy: r.policy, rule: r.rule, tier: r.tier, direction: r.direction, verdict: r.verdict === 'audit' ? 'AUDIT' : 'FORWARDED' };
}

/** Attribution of a denied-set element from its packet mark. */
export function attributeDenied(reasons: ReasonsTable, mark: number): Attribution {
  const r = reasons.get(mark);
  if (!r) return { policy: 'default', rule: `unknown-reason-${mark}`, tier: 'default', verdict: 'DROPPED' };
  return { policy: r.policy, rule: r.rule, tier: r.tier, direction: r.direction, verdict: verdictOf(r) };
}
