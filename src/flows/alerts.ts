// Alert rules over the flow pipeline, and durable webhook delivery.
//
// Semantics (all windows are sliding, with 1 s buckets):
// - `denied-rate` / `bytes-between` fire on the record that takes the windowed sum strictly
//   above `threshold` (sum > threshold, never at sum == threshold), at that record's time. A
//   firing alert does not fire again; it resolves when, at a batch boundary (~200 ms), the
//   windowed sum is back at or below the threshold. After resolving, the rule stays quiet for
//   `cooldown` (default 0) before it may fire again. Window sums live in memory: after a restart
//   a firing alert resolves at the first batch unless the rate is re-established.
// - `new-external` fires once (state `event`, never resolves) per new (source group,
//   destination CIDR-or-address, port/protocol); the seen set is bounded and persisted.
// - `policy-unused` fires when the policy has had no hit for `for` (measured from its last hit,
//   or from when the rule was first loaded); it resolves on the next hit.
// Fired and resolved alerts are stored, ride on the next live-stream batch, and are queued in
// SQLite for the webhook; delivery is asynchronous, so a dead webhook never slows ingestion.
import { readFile } from 'node:fs/promises';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { GROUP_BYS, groupOf } from './aggregate.js';
import { cidrContains, parseCidr } from './enrich.js';
import { parseDuration } from './filter.js';
import type { FlowPipeline } from './pipeline.js';
import { VERDICTS, type Endpoint, type FlowRecord } from './record.js';
import type { AlertRecord, FlowStore, NewAlert } from './store.js';

const duration = z.string().refine((s) => (parseDuration(s) ?? 0) > 0, { message: 'must be a duration like 30s, 5m or 1h' });
const cidr = z.string().refine((s) => parseCidr(s) !== undefined, { message: 'must be a CIDR like 10.0.0.0/8' });
const groupSel = z
  .object({ namespace: z.string().optional(), workload: z.string().optional(), identity: z.string().optional(), cidr: z.string().optional() })
  .strict()
  .refine((g) => Object.values(g).some((v) => v !== undefined), { message: 'needs at least one of namespace, workload, identity, cidr' });

const base = { name: z.string().min(1), cooldown: duration.optional() };

export const alertRuleSchema = z.discriminatedUnion('kind', [
  z.object({ ...base, kind: z.literal('denied-rate'), namespace: z.string().optional(), threshold: z.number().int().nonnegative(), window: duration }).strict(),
  z
    .object({
      ...base,
      kind: z.literal('new-external'),
      cidrs: z.array(cidr).min(1).default(['0.0.0.0/0', '::/0']),
      namespace: z.string().optional(),
      verdicts: z.array(z.enum(VERDICTS)).min(1).default(['FORWARDED', 'AUDIT']),
    })
    .strict(),
  z.object({ ...base, kind: z.literal('policy-unused'), policy: z.string().min(1), for: duration }).strict(),
  z
    .object({
      ...base,
      kind: z.literal('bytes-between'),
      from: groupSel,
      to: groupSel,
      threshold: z.number().int().nonnegative(),
      window: duration,
      group: z.enum(GROUP_BYS).optional(),
    })
    .strict(),
]);
export type AlertRule = z.infer<typeof alertRuleSchema>;

export const alertConfigSchema = z
  .object({
    webhook: z
      .object({
        url: z.url(),
        timeout: duration.optional(),
        maxAttempts: z.number().int().positive().optional(),
      })
      .strict()
      .optional(),
    rules: z.array(alertRuleSchema).default([]),
  })
  .strict()
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.rules.forEach((r, i) => {
      if (seen.has(r.name)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'name'], message: `duplicate rule name "${r.name}"` });
      seen.add(r.name);
    });
  });
export type AlertConfig = z.infer<typeof alertConfigSchema>;

export class AlertConfigError extends Error {
  constructor(
    readonly file: string,
    readonly field: string,
    message: string,
  ) {
    super(`${file}: ${field}: ${message}`);
    this.name = 'AlertConfigError';
  }
}

function fieldPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((s, p) => (typeof p === 'number' ? `${s}[${p}]` : s ? `${s}.${String(p)}` : String(p)), '') || '(root)';
}

export function parseAlertConfig(text: string, file = 'alerts.yaml'): AlertConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    const line = e instanceof YAMLParseError && e.linePos ? `line ${e.linePos[0].line}` : '(root)';
    throw new AlertConfigError(file, line, `invalid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  const r = alertConfigSchema.safeParse(doc ?? {});
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new AlertConfigError(file, fieldPath(issue?.path ?? []), issue?.message ?? 'invalid');
  }
  return r.data;
}

export async function loadAlertConfig(file: string): Promise<AlertConfig> {
  return parseAlertConfig(await readFile(file, 'utf8'), file);
}

/** Sum over a sliding window of 1 s buckets. */
class WindowSum {
  private readonly buckets = new Map<number, number>();
  sum = 0;
  private latest = 0;
  constructor(private readonly windowMs: number) {}
  evict(now: number): void {
    const oldest = Math.floor((now - this.windowMs) / 1000);
    for (const [s, v] of this.buckets) {
      if (s <= oldest) {
        this.sum -= v;
        this.buckets.delete(s);
      }
    }
  }
  add(t: number, v: number): void {
    // Late records older than the window (relative to the newest seen) no longer count.
    if (t > this.latest) this.latest = t;
    this.evict(this.latest);
    if (Math.floor(t / 1000) <= Math.floor((this.latest - this.windowMs) / 1000)) return;
    const s = Math.floor(t / 1000);
    this.buckets.set(s, (this.buckets.get(s) ?? 0) + v);
    this.sum += v;
  }
}

function matchesGroup(ep: Endpoint, sel: z.infer<typeof groupSel>): boolean {
  if (sel.cidr !== undefined) {
    const c = parseCidr(sel.cidr);
    if (!c || !cidrContains(c, ep.ip)) return false;
  }
  if (sel.namespace !== undefined && ep.namespace !== sel.namespace) return false;
  if (sel.workload !== undefined && groupOf(ep, 'workload') !== sel.workload) return false;
  if (sel.identity !== undefined && groupOf(ep, 'identity') !== sel.identity) return false;
  return true;
}

interface RuleState {
  rule: AlertRule;
  window?: WindowSum;
  firing?: AlertRecord;
  quietUntil: number;
  lastHit?: number;
  seen?: Set<string>;
}

export interface AlertEngineOptions {
  store: FlowStore;
  pipeline?: FlowPipeline;
  rules: readonly AlertRule[];
  webhookUrl?: string;
  /** Called after a webhook job is queued (the dispatcher's kick). */
  onQueued?: () => void;
  now?: () => number;
  maxSeenPerRule?: number;
}

export class AlertEngine {
  private readonly states: RuleState[];
  private readonly now: () => number;
  private readonly maxSeen: number;

  constructor(private readonly opts: AlertEngineOptions) {
    this.now = opts.now ?? Date.now;
    this.maxSeen = opts.maxSeenPerRule ?? 10_000;
    const firing = new Map(opts.store.listAlerts({ state: 'firing', limit: 10_000 }).map((a) => [a.rule, a]));
    const policies = new Map(opts.store.policyCounters().map((p) => [p.policy, p.lastSeen]));
    const start = this.now();
    this.states = opts.rules.map((rule) => {
      const st: RuleState = { rule, quietUntil: 0 };
      const f = firing.get(rule.name);
      if (f) st.firing = f;
      if (rule.kind === 'denied-rate' || rule.kind === 'bytes-between') st.window = new WindowSum(parseDuration(rule.window) ?? 0);
      if (rule.kind === 'new-external') st.seen = new Set(JSON.parse(opts.store.getState(`alert:${rule.name}:seen`) ?? '[]') as string[]);
      if (rule.kind === 'policy-unused') {
        const sinceKey = `alert:${rule.name}:since`;
        let since = Number(opts.store.getState(sinceKey));
        if (!since) {
          since = start;
          opts.store.setState(sinceKey, String(since));
        }
        st.lastHit = Math.max(policies.get(rule.policy) ?? 0, since);
      }
      return st;
    });
    opts.pipeline?.use(this);
  }

  rules(): { name: string; kind: string; state: string }[] {
    return this.states.map((s) => ({ name: s.rule.name, kind: s.rule.kind, state: s.firing ? 'firing' : 'ok' }));
  }

  process(records: readonly FlowRecord[], now: number): void {
    for (const st of this.states) {
      const rule = st.rule;
      switch (rule.kind) {
        case 'denied-rate':
          for (const r of records) {
            if (r.verdict !== 'DROPPED' || r.event === 'end') continue;
            if (rule.namespace !== undefined && r.src.namespace !== rule.namespace) continue;
            this.addToWindow(st, r.time, 1, rule.threshold, () => `${st.window?.sum ?? 0} denied flows from ${rule.namespace ?? 'any namespace'} in ${rule.window} (threshold ${rule.threshold})`, {
              namespace: rule.namespace ?? '*',
            });
          }
          break;
        case 'bytes-between':
          for (const r of records) {
            if (r.bytes === 0 || !matchesGroup(r.src, rule.from) || !matchesGroup(r.dst, rule.to)) continue;
            const g = rule.group ?? 'workload';
            this.addToWindow(st, r.time, r.bytes, rule.threshold, () => `${st.window?.sum ?? 0} bytes from ${groupOf(r.src, g)} to ${groupOf(r.dst, g)} in ${rule.window} (threshold ${rule.threshold})`, {
              from: groupOf(r.src, g),
              to: groupOf(r.dst, g),
            });
          }
          break;
        case 'new-external':
          for (const r of records) {
            if (!r.dst.external || !rule.verdicts.includes(r.verdict)) continue;
            if (rule.namespace !== undefined && r.src.namespace !== rule.namespace) continue;
            const hit = rule.cidrs.find((c) => {
              const p = parseCidr(c);
              return !!p && cidrContains(p, r.dst.ip);
            });
            if (!hit) continue;
            const src = groupOf(r.src, 'workload');
            const dst = r.dst.cidr ?? r.dst.ip;
            const key = `${src}|${dst}|${r.dstPort}/${r.protocol}`;
            if (st.seen?.has(key)) continue;
            if (st.seen && st.seen.size >= this.maxSeen) st.seen.delete(st.seen.values().next().value as string);
            st.seen?.add(key);
            this.opts.store.setState(`alert:${rule.name}:seen`, JSON.stringify([...(st.seen ?? [])]));
            this.emit(st, { state: 'event', firedAt: r.time, value: 1, threshold: 0, message: `new external flow ${src} → ${r.dst.ip}:${r.dstPort}/${r.protocol} (${hit})`, labels: { from: src, to: r.dst.ip, cidr: hit, port: String(r.dstPort) } });
          }
          break;
        case 'policy-unused': {
          for (const r of records) if (r.policy === rule.policy && r.time > (st.lastHit ?? 0)) st.lastHit = r.time;
          const forMs = parseDuration(rule.for) ?? 0;
          const idle = now - (st.lastHit ?? now);
          if (st.firing && idle < forMs) this.resolve(st, now);
          else if (!st.firing && idle >= forMs && now >= st.quietUntil) {
            this.emit(st, { state: 'firing', firedAt: now, value: idle, threshold: forMs, message: `${rule.policy} unused for ${Math.round(idle / 1000)}s (threshold ${rule.for})`, labels: { policy: rule.policy } });
          }
          break;
        }
      }
      if (st.window && st.firing) {
        st.window.evict(now);
        const threshold = rule.kind === 'denied-rate' || rule.kind === 'bytes-between' ? rule.threshold : 0;
        if (st.window.sum <= threshold) this.resolve(st, now);
      }
    }
  }

  private addToWindow(st: RuleState, t: number, v: number, threshold: number, message: () => string, labels: Record<string, string>): void {
    const w = st.window;
    if (!w) return;
    w.add(t, v);
    if (!st.firing && w.sum > threshold && t >= st.quietUntil) {
      this.emit(st, { state: 'firing', firedAt: t, value: w.sum, threshold, message: message(), labels });
    }
  }

  private emit(st: RuleState, a: Omit<NewAlert, 'rule' | 'kind'>): void {
    const alert = this.opts.store.insertAlert({ ...a, rule: st.rule.name, kind: st.rule.kind });
    if (alert.state === 'firing') st.firing = alert;
    this.notify(alert);
  }

  private resolve(st: RuleState, now: number): void {
    const f = st.firing;
    if (!f) return;
    this.opts.store.resolveAlert(f.id, now);
    st.firing = undefined;
    st.quietUntil = now + (st.rule.cooldown ? (parseDuration(st.rule.cooldown) ?? 0) : 0);
    this.notify({ ...f, state: 'resolved', resolvedAt: now });
  }

  private notify(a: AlertRecord): void {
    this.opts.pipeline?.publishAlert(a);
    if (this.opts.webhookUrl) {
      this.opts.store.enqueueWebhook(a.id, this.opts.webhookUrl, JSON.stringify({ source: 'weir', alert: a }), this.now());
      this.opts.onQueued?.();
    }
  }
}

export interface WebhookOptions {
  store: FlowStore;
  timeoutMs?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** After this many failed attempts a job is marked dead (kept for inspection). */
  maxAttempts?: number;
  /** Poll interval when idle (also picks up jobs queued before a restart). */
  idlePollMs?: number;
  now?: () => number;
}

/**
 * Delivers queued alerts with retries and exponential backoff (base · 2^attempts, capped).
 * Jobs live in SQLite until acknowledged by a 2xx, so a restart loses nothing: the next
 * dispatcher picks them up. One request at a time, off the pipeline's path.
 */
export class WebhookDispatcher {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = true;
  private inflight: Promise<void> | undefined;
  private readonly now: () => number;
  private readonly o: Required<Omit<WebhookOptions, 'store' | 'now'>>;
  delivered = 0;
  failures = 0;

  constructor(private readonly opts: WebhookOptions) {
    this.now = opts.now ?? Date.now;
    this.o = { timeoutMs: opts.timeoutMs ?? 2000, baseDelayMs: opts.baseDelayMs ?? 500, maxDelayMs: opts.maxDelayMs ?? 60_000, maxAttempts: opts.maxAttempts ?? 20, idlePollMs: opts.idlePollMs ?? 1000 };
  }

  start(): this {
    this.stopped = false;
    this.kick();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.inflight;
  }

  /** Deliver now (new job queued). */
  kick = (): void => {
    if (this.stopped) return;
    if (this.running) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.run(), 0);
    this.timer.unref();
  };

  private async run(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    const p = this.drain();
    this.inflight = p;
    try {
      await p;
    } finally {
      this.running = false;
      this.inflight = undefined;
    }
    if (this.stopped) return;
    const next = this.opts.store.nextWebhookAt();
    const delay = Math.max(0, Math.min(this.o.idlePollMs, (next ?? Infinity) - this.now()));
    this.timer = setTimeout(() => void this.run(), delay);
    this.timer.unref();
  }

  private async drain(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const jobs = this.opts.store.dueWebhooks(this.now(), 10);
      if (jobs.length === 0) return;
      for (const job of jobs) {
        if (this.stopped) return;
        try {
          const res = await fetch(job.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: job.payload, signal: AbortSignal.timeout(this.o.timeoutMs) });
          await res.arrayBuffer().catch(() => undefined);
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          this.opts.store.webhookDelivered(job.id, this.now());
          this.delivered++;
        } catch (e) {
          this.failures++;
          const attempts = job.attempts + 1;
          const delay = Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** (attempts - 1));
          this.opts.store.webhookFailed(job.id, this.now() + delay, String((e as Error).cause ?? (e as Error).message), attempts >= this.o.maxAttempts);
        }
      }
    }
  }
}
