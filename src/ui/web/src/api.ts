// Types shared with the server (type-only imports: nothing of the server ends up in the bundle).
import type { Edge, GroupBy, PolicyCounter } from '../../../flows/aggregate';
import type { FlowRecord, Verdict } from '../../../flows/record';
import type { AlertRecord, StoredFlow } from '../../../flows/store';
import type { WebhookStatus } from '../../../flows/webhook-status';

export type { Edge, GroupBy, PolicyCounter, FlowRecord, Verdict, AlertRecord, StoredFlow, WebhookStatus };

export interface ApiErrorBody {
  message: string;
  field?: string;
}

export async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path);
  const body = (await res.json().catch(() => ({}))) as T & Partial<ApiErrorBody>;
  if (!res.ok) throw new Error(body.message ?? `HTTP ${res.status}`);
  return body;
}

/** Query keys that select one side of an edge under a grouping. */
export function edgeFilter(group: GroupBy, src: string, dst: string): Record<string, string> {
  const key = group === 'namespace' ? 'namespace' : group;
  return { [`from_${key}`]: src, [`to_${key}`]: dst };
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const u = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${u[i]}`;
}

export function formatCount(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : String(n);
}

export function ago(t: number, now = Date.now()): string {
  if (!t) return 'never';
  const s = Math.max(0, Math.round((now - t) / 1000));
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.floor(s / 60)}m ago` : `${Math.floor(s / 3600)}h ago`;
}

export function endpointLabel(ep: FlowRecord['src']): string {
  if (ep.external || !ep.namespace) return ep.cidr ? `${ep.ip} (${ep.cidr})` : ep.ip;
  return `${ep.namespace}/${ep.pod ?? ep.ip}`;
}
