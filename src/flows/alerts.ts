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
import { readFile, stat } from 'node:fs/promises';
import { Counter, Gauge, type Registry } from 'prom-client';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { GROUP_BYS, groupOf } from './aggregate.js';
import { cidrContains, parseCidrOrAddress } from '../policy/ip.js';
import { parseDuration } from './filter.js';
import type { FlowPipeline } from './pipeline.js';
import { VERDICTS, flowCount, type Endpoint, type FlowRecord } from './record.js';
import type { AlertRecord, FlowStore, NewAlert } from './store.js';
import type { WebhookStatus } from './webhook-status.js';

export type { WebhookStatus };

const duration = z.string().refine((s) => (parseDuration(s) ?? 0) > 0, { message: 'must be a duration like 30s, 5m or 1h' });
const cidr = z.string().refine((s) => parseCidrOrAddress(s) !== undefined, { message: 'must be a CIDR like 10.0.0.0/8' });
// Selectors that could never match a flow are refused at load, not left to stay silent: a
// namespace must be a DNS label, a workload a key like `shop/cart[Deployment]`, an identity
// `shop:app=cart`, and the namespace of a workload or identity must agree with `namespace`.
const namespaceName = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, { message: 'must be a namespace name (a DNS label such as "shop"); no namespace is named otherwise, so the rule could never match' }).max(63);
const workloadKey = z.string().regex(/^[^/\s]+\/[^/\s[]+\[[A-Za-z]+\]$/, { message: 'must be a workload key like "shop/cart[Deployment]" (namespace/name[Kind]); no flow carries another form, so the rule could never match' });
const identityKey = z.string().regex(/^[^:\s]+:\S*$/, { message: 'must be an identity like "shop:app=cart" (namespace:labels); no flow carries another form, so the rule could never match' });
const namespaceOfKey = (k: string, sep: string): string => k.slice(0, k.indexOf(sep));
const groupSel = z
  .object({ namespace: namespaceName.optional(), workload: workloadKey.optional(), identity: identityKey.optional(), cidr: cidr.optional() })
  .strict()
  .refine((g) => Object.values(g).some((v) => v !== undefined), { message: 'needs at least one of namespace, workload, identity, cidr' })
  .superRefine((g, ctx) => {
    if (g.namespace === undefined) return;
    if (g.workload !== undefined && namespaceOfKey(g.workload, '/') !== g.namespace)
      ctx.addIssue({ code: 'custom', path: ['workload'], message: `workload "${g.workload}" is not in namespace "${g.namespace}": the selector could never match` });
    if (g.identity !== undefined && namespaceOfKey(g.identity, ':') !== g.namespace)
      ctx.addIssue({ code: 'custom', path: ['identity'], message: `identity "${g.identity}" is not in namespace "${g.namespace}": the selector could never match` });
  });
const policyName = z
  .string()
  .regex(/^(NetworkPolicy [^/\s]+\/[^/\s]+|AdminNetworkPolicy \S+|BaselineAdminNetworkPolicy \S+)$/, {
    message: 'must name a policy as flows do: "NetworkPolicy <namespace>/<name>", "AdminNetworkPolicy <name>" or "BaselineAdminNetworkPolicy default"; the rule could never match otherwise',
  });
const webhookUrl = z.url({ message: 'must be an http:// or https:// URL' }).refine((u) => /^https?:$/.test(new URL(u).protocol), { message: 'must be an http:// or https:// URL (no other scheme is delivered)' });

const base = { name: z.string().min(1), cooldown: duration.optional() };

export const alertRuleSchema = z.discriminatedUnion('kind', [
  z.object({ ...base, kind: z.literal('denied-rate'), namespace: namespaceName.optional(), threshold: z.number().int().nonnegative(), window: duration }).strict(),
  z
    .object({
      ...base,
      kind: z.literal('new-external'),
      cidrs: z.array(cidr).min(1).default(['0.0.0.0/0', '::/0']),
      namespace: namespaceName.optional(),
      verdicts: z.array(z.enum(VERDICTS)).min(1).default(['FORWARDED', 'AUDIT']),
    })
    .strict(),
  z.object({ ...base, kind: z.literal('policy-unused'), policy: policyName, for: duration }).strict(),
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
        url: webhookUrl,
        /** Time to wait for the receiver's answer before the attempt counts as failed (default 10s). */
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
  const st = await stat(file).catch((e: NodeJS.ErrnoException) => {
    throw new AlertConfigError(file, '(file)', e.code === 'ENOENT' ? 'no such file' : `cannot read it (${e.code ?? e.message})`);
  });
  if (st.isDirectory()) throw new AlertConfigError(file, '(file)', 'is a folder; give the alert rules YAML file');
  const bytes = await readFile(file).catch((e: NodeJS.ErrnoException) => {
    throw new AlertConfigError(file, '(file)', `cannot read it (${e.code ?? e.message})`);
  });
  const text = bytes.toString('utf8');
  if (bytes.includes(0) || text.includes('\uFFFD')) throw new AlertConfigError(file, '(file)', 'is not a text file (binary bytes); give the alert rules YAML file');
  return parseAlertConfig(text, file);
}

/** What a running lab has, to warn about rules that name none of it. */
export interface KnownNames {
  namespaces: ReadonlySet<string>;
  workloads: ReadonlySet<string>;
  policies: ReadonlySet<string>;
}

/**
 * Rules that name a namespace, workload or policy the cluster does not have (yet): valid, since
 * the cluster may change, but silent until it does, so they are reported at load.
 */
export function alertRuleWarnings(file: string, rules: readonly AlertRule[], known: KnownNames): string[] {
  const out: string[] = [];
  const warn = (i: number, field: string, what: string): void => {
    out.push(`${file}: rules[${i}].${field}: ${what}: the rule "${rules[i]?.name ?? ''}" cannot match until it exists`);
  };
  const sel = (i: number, field: string, g: z.infer<typeof groupSel>): void => {
    if (g.namespace !== undefined && !known.namespaces.has(g.namespace)) warn(i, `${field}.namespace`, `no namespace "${g.namespace}" in the cluster`);
    if (g.workload !== undefined && !known.workloads.has(g.workload)) warn(i, `${field}.workload`, `no workload "${g.workload}" in the cluster`);
  };
  rules.forEach((r, i) => {
    if ((r.kind === 'denied-rate' || r.kind === 'new-external') && r.namespace !== undefined && !known.namespaces.has(r.namespace)) warn(i, 'namespace', `no namespace "${r.namespace}" in the cluster`);
    if (r.kind === 'policy-unused' && !known.policies.has(r.policy)) warn(i, 'policy', `no policy "${r.policy}" in the cluster`);
    if (r.kind === 'bytes-between') {
      sel(i, 'from', r.from);
      sel(i, 'to', r.to);
    }
  });
  return out;
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
    const c = parseCidrOrAddress(sel.cidr);
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
            if (r.verdict !== 'DROPPED' || flowCount(r) === 0) continue;
            if (rule.namespace !== undefined && r.src.namespace !== rule.namespace) continue;
            this.addToWindow(st, r.time, flowCount(r), rule.threshold, () => `${st.window?.sum ?? 0} denied flows from ${rule.namespace ?? 'any namespace'} in ${rule.window} (threshold ${rule.threshold})`, {
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
              const p = parseCidrOrAddress(c);
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

export const DEFAULT_WEBHOOK_TIMEOUT_MS = 10_000;

export interface WebhookOptions {
  store: FlowStore;
  /** The configured receiver (for status and logs; jobs carry their own URL). */
  url?: string;
  /** Per-attempt timeout: the config's `webhook.timeout` (default 10 s). */
  timeoutMs?: number;
  /** Failures are logged here (one line each). */
  log?: (line: string) => void;
  /** Registers weir_webhook_* metrics here. */
  registry?: Registry;
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
  private readonly o: Required<Omit<WebhookOptions, 'store' | 'now' | 'url' | 'log' | 'registry'>>;
  private readonly failuresTotal: Counter | undefined;
  private readonly deliveredTotal: Counter | undefined;
  private readonly deadTotal: Counter | undefined;
  delivered = 0;
  failures = 0;
  dead = 0;
  lastError: string | undefined;
  lastErrorAt: number | undefined;
  lastDeliveredAt: number | undefined;

  constructor(private readonly opts: WebhookOptions) {
    this.now = opts.now ?? Date.now;
    const registry = opts.registry;
    if (registry) {
      const registers = [registry];
      const store = opts.store;
      this.failuresTotal = new Counter({ name: 'weir_webhook_failures_total', help: 'Webhook delivery attempts that failed (error, timeout or non-2xx answer).', registers });
      this.deliveredTotal = new Counter({ name: 'weir_webhook_deliveries_total', help: 'Alerts delivered to the webhook (2xx answer).', registers });
      new Gauge({
        name: 'weir_webhook_queue_depth',
        help: 'Alerts waiting for webhook delivery (including retries).',
        registers,
        collect() {
          this.set(store.webhookPending());
        },
      });
      this.deadTotal = new Counter({ name: 'weir_webhook_dead_total', help: 'Alerts given up on after webhook.maxAttempts failed attempts.', registers });
    }
    this.o = { timeoutMs: opts.timeoutMs ?? DEFAULT_WEBHOOK_TIMEOUT_MS, baseDelayMs: opts.baseDelayMs ?? 500, maxDelayMs: opts.maxDelayMs ?? 60_000, maxAttempts: opts.maxAttempts ?? 20, idlePollMs: opts.idlePollMs ?? 1000 };
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

  status(): WebhookStatus {
    const s: WebhookStatus = {
      url: this.opts.url ?? '',
      timeoutMs: this.o.timeoutMs,
      delivered: this.delivered,
      failures: this.failures,
      dead: this.dead,
      queued: this.opts.store.webhookPending(),
    };
    if (this.lastError !== undefined) s.lastError = this.lastError;
    if (this.lastErrorAt !== undefined) s.lastErrorAt = this.lastErrorAt;
    if (this.lastDeliveredAt !== undefined) s.lastDeliveredAt = this.lastDeliveredAt;
    return s;
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
          // The delivery id lets a receiver drop a retry of an alert it already took (at-least-once).
          const res = await fetch(job.url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-weir-delivery': String(job.id), 'x-weir-attempt': String(job.attempts + 1) },
            body: job.payload,
            signal: AbortSignal.timeout(this.o.timeoutMs),
          });
          await res.arrayBuffer().catch(() => undefined);
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          this.opts.store.webhookDelivered(job.id, this.now());
          this.delivered++;
          this.lastDeliveredAt = this.now();
          this.deliveredTotal?.inc();
        } catch (e) {
          this.failures++;
          this.failuresTotal?.inc();
          const attempts = job.attempts + 1;
          const delay = Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** (attempts - 1));
          const err = e as Error;
          const reason = err.name === 'TimeoutError' ? `no answer within ${this.o.timeoutMs} ms (webhook.timeout)` : String(err.cause ?? err.message);
          const dead = attempts >= this.o.maxAttempts;
          if (dead) {
            this.dead++;
            this.deadTotal?.inc();
          }
          this.lastError = reason;
          this.lastErrorAt = this.now();
          this.opts.store.webhookFailed(job.id, this.now() + delay, reason, dead);
          this.opts.log?.(
            `weir alerts: webhook ${job.url}: alert ${job.alertId}, attempt ${attempts}: ${reason}; ${dead ? `giving up after ${attempts} attempts (webhook.maxAttempts)` : `retrying in ${Math.round(delay / 1000)} s`}`,
          );
        }
      }
    }
  }
}
