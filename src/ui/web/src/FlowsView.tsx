import { useEffect, useState, type FormEvent } from 'react';
import { ago, endpointLabel, formatBytes, getJson, type FlowRecord, type StoredFlow } from './api';
import { VerdictBadge } from './EdgePanel';
import type { LiveStore } from './live';

const FIELDS = [
  ['from_namespace', 'from namespace'],
  ['from_pod', 'from pod'],
  ['to_namespace', 'to namespace'],
  ['to_pod', 'to pod'],
  ['port', 'port'],
  ['policy', 'policy'],
  ['since', 'since (5m / RFC3339)'],
] as const;

export function FlowTable({ flows }: { flows: readonly (FlowRecord & { id?: number })[] }) {
  return (
    <table className="flows" data-testid="flow-table">
      <thead>
        <tr>
          <th>when</th><th>node</th><th>from</th><th>to</th><th>proto</th><th>verdict</th><th>policy</th><th>rule</th><th>bytes</th><th>pkts</th>
        </tr>
      </thead>
      <tbody>
        {flows.map((f, i) => (
          <tr key={f.id ?? i}>
            <td>{ago(f.time)}</td>
            <td>{f.node}</td>
            <td>{endpointLabel(f.src)}{f.srcPort ? `:${f.srcPort}` : ''}</td>
            <td>{endpointLabel(f.dst)}:{f.dstPort}{f.service && <span className="muted small" title={`${f.service.ip}:${f.service.port}`}> via svc {f.service.name ?? `${f.service.ip}:${f.service.port}`}</span>}</td>
            <td>{f.protocol}</td>
            <td><VerdictBadge v={f.verdict} /></td>
            <td className="pol">{f.policy}</td>
            <td className="muted">{f.rule}</td>
            <td>{formatBytes(f.bytes)}</td>
            <td>{f.packets}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function FlowsView({ live }: { live: LiveStore }) {
  const [form, setForm] = useState<Record<string, string>>({ verdict: '', protocol: '', limit: '200' });
  const [flows, setFlows] = useState<StoredFlow[]>([]);
  const [error, setError] = useState<string | undefined>(undefined);
  const [mode, setMode] = useState<'query' | 'live'>('query');

  const run = (e?: FormEvent): void => {
    e?.preventDefault();
    const q = new URLSearchParams(Object.entries(form).filter(([, v]) => v !== ''));
    getJson<{ flows: StoredFlow[] }>(`api/flows?${q.toString()}`)
      .then((r) => {
        setFlows(r.flows);
        setError(undefined);
      })
      .catch((err: unknown) => setError((err as Error).message));
  };
  useEffect(() => run(), []); // initial load

  return (
    <div className="page">
      <form className="filters" onSubmit={run}>
        {FIELDS.map(([k, label]) => (
          <label key={k}>
            <span>{label}</span>
            <input value={form[k] ?? ''} onChange={(e) => setForm({ ...form, [k]: e.target.value })} name={k} />
          </label>
        ))}
        <label>
          <span>verdict</span>
          <select value={form.verdict} onChange={(e) => setForm({ ...form, verdict: e.target.value })} name="verdict">
            <option value="">any</option>
            <option>FORWARDED</option>
            <option>DROPPED</option>
            <option>AUDIT</option>
          </select>
        </label>
        <label>
          <span>protocol</span>
          <select value={form.protocol} onChange={(e) => setForm({ ...form, protocol: e.target.value })} name="protocol">
            <option value="">any</option>
            <option>TCP</option>
            <option>UDP</option>
            <option>SCTP</option>
            <option>ICMP</option>
          </select>
        </label>
        <div className="actions">
          <button type="submit" onClick={() => setMode('query')}>Query</button>
          <button type="button" className={mode === 'live' ? 'on' : ''} onClick={() => setMode(mode === 'live' ? 'query' : 'live')}>
            {mode === 'live' ? '● Live' : 'Live'}
          </button>
        </div>
      </form>
      {error && <div className="error" data-testid="filter-error">{error}</div>}
      <FlowTable flows={mode === 'live' ? live.recent : flows} />
    </div>
  );
}
