import { useEffect, useState } from 'react';
import { ago, edgeFilter, endpointLabel, formatBytes, getJson, type GroupBy, type StoredFlow } from './api';
import { shortLabel } from './layout';
import type { LiveEdge } from './live';

interface PolicyUse {
  policy: string;
  rule: string;
  tier: string;
  verdict: string;
  flows: number;
}

export function policiesOf(flows: readonly StoredFlow[]): PolicyUse[] {
  const m = new Map<string, PolicyUse>();
  for (const f of flows) {
    const k = `${f.policy}\u0000${f.rule}\u0000${f.verdict}`;
    const u = m.get(k);
    if (u) u.flows++;
    else m.set(k, { policy: f.policy, rule: f.rule, tier: f.tier, verdict: f.verdict, flows: 1 });
  }
  return [...m.values()].sort((a, b) => b.flows - a.flows);
}

export function VerdictBadge({ v }: { v: string }) {
  return <span className={`badge ${v.toLowerCase()}`}>{v}</span>;
}

export function EdgePanel(props: { edge: LiveEdge; group: GroupBy; onClose: () => void }) {
  const { edge, group } = props;
  const [flows, setFlows] = useState<StoredFlow[] | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  // Refetch when the edge moves, at most every 2 s.
  const tick = Math.floor(Date.now() / 2000);
  const refresh = `${edge.rev}:${tick}`;
  useEffect(() => {
    let cancelled = false;
    const q = new URLSearchParams({ ...edgeFilter(group, edge.src, edge.dst), limit: '100' });
    getJson<{ flows: StoredFlow[] }>(`api/flows?${q.toString()}`)
      .then((r) => !cancelled && (setFlows(r.flows), setError(undefined)))
      .catch((e: unknown) => !cancelled && setError(String((e as Error).message)));
    return () => {
      cancelled = true;
    };
  }, [edge.src, edge.dst, group, refresh]);

  return (
    <aside className="panel" data-testid="edge-panel">
      <header>
        <div>
          <div className="eyebrow">edge</div>
          <h2>
            {shortLabel(edge.src)} <span className="arrow-sep">→</span> {shortLabel(edge.dst)}
          </h2>
          <div className="muted small">
            {edge.src} → {edge.dst}
          </div>
        </div>
        <button className="close" onClick={props.onClose} aria-label="close">
          ×
        </button>
      </header>
      <div className="stats">
        <div><b>{edge.flows}</b><span>flows</span></div>
        <div className="ok"><b>{edge.forwarded}</b><span>forwarded</span></div>
        <div className="bad"><b>{edge.dropped}</b><span>dropped</span></div>
        <div className="warn"><b>{edge.audit}</b><span>audit</span></div>
        <div><b>{formatBytes(edge.bytes)}</b><span>bytes</span></div>
      </div>
      <h3>Policies involved</h3>
      {flows && (
        <ul className="policies" data-testid="edge-policies">
          {policiesOf(flows).map((p) => (
            <li key={`${p.policy}|${p.rule}|${p.verdict}`}>
              <VerdictBadge v={p.verdict} /> <span className="pol">{p.policy}</span> <span className="muted">{p.rule}</span>
              <span className="count">{p.flows}</span>
            </li>
          ))}
        </ul>
      )}
      <h3>Recent flows</h3>
      {error && <div className="error">{error}</div>}
      {!flows && !error && <div className="muted">loading…</div>}
      {flows && (
        <table className="flows compact">
          <thead>
            <tr><th>when</th><th>from</th><th>to</th><th>verdict</th><th>bytes</th></tr>
          </thead>
          <tbody>
            {flows.map((f) => (
              <tr key={f.id} data-testid="edge-flow" title={`${f.policy} · ${f.rule}`}>
                <td>{ago(f.time)}</td>
                <td>{endpointLabel(f.src)}</td>
                <td>{endpointLabel(f.dst)}:{f.dstPort}/{f.protocol}{f.service && <span className="muted small"> via svc {f.service.name ?? `${f.service.ip}:${f.service.port}`}</span>}</td>
                <td><VerdictBadge v={f.verdict} /></td>
                <td>{formatBytes(f.bytes)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </aside>
  );
}
