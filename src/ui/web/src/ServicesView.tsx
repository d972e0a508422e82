import { useEffect, useState } from 'react';
import { getJson } from './api';
import type { ServiceView } from '../../../agent/lb-status';

const COLORS = ['#38bdf8', '#a78bfa', '#f59e0b', '#22c55e', '#f472b6', '#fb7185', '#2dd4bf', '#facc15'];

export const serviceId = (v: ServiceView): string => `${v.service}/${v.portIndex}/${v.frontend}`;
const idOf = serviceId;
const pct = (x: number | undefined): string => (x === undefined ? '–' : `${(100 * x).toFixed(1)}%`);

/** Weights over time: one line per endpoint, 0–1000 on the y axis. */
export function WeightChart(props: { history: ServiceView['nodes'][number]['history']; keys: readonly string[] }) {
  const { history, keys } = props;
  const w = 410;
  const h = 150;
  if (history.length < 2) return <div className="muted small">collecting…</div>;
  const t0 = history[0].t;
  const span = Math.max(1, history[history.length - 1].t - t0);
  const x = (t: number): number => 30 + ((t - t0) / span) * (w - 40);
  const y = (v: number): number => 10 + (1 - v / 1000) * (h - 30);
  return (
    <svg width={w} height={h} className="weights" data-testid="weight-chart" role="img" aria-label="weights over time">
      {[0, 500, 1000].map((v) => (
        <g key={v}>
          <line x1={30} x2={w - 10} y1={y(v)} y2={y(v)} className="grid" />
          <text x={2} y={y(v) + 4} className="axis">{v}</text>
        </g>
      ))}
      <text x={30} y={h - 4} className="axis">{`${Math.round(span / 1000)} s`}</text>
      {keys.map((k, i) => (
        <polyline
          key={k}
          fill="none"
          stroke={COLORS[i % COLORS.length]}
          strokeWidth={2}
          points={history.map((p) => `${x(p.t).toFixed(1)},${y(p.weights[k] ?? 0).toFixed(1)}`).join(' ')}
        />
      ))}
    </svg>
  );
}

export function ServicePanel(props: { view: ServiceView; onClose: () => void }) {
  const { view } = props;
  const [node, setNode] = useState(view.nodes[0]?.node);
  const n = view.nodes.find((x) => x.node === node) ?? view.nodes[0];
  if (!n) return null;
  const keys = n.endpoints.map((e) => e.key);
  return (
    <aside className="panel" data-testid="service-panel">
      <header>
        <div>
          <div className="eyebrow">service · {view.mode}</div>
          <h2>{view.service}</h2>
          <div className="muted small">
            {view.frontend === 'node-port' ? `NodePort ${view.port}` : `${view.clusterIP ?? ''}:${view.port}`}/{view.protocol}
          </div>
        </div>
        <button className="close" onClick={props.onClose} aria-label="close">
          ×
        </button>
      </header>
      <h3>
        as balanced by{' '}
        <select value={n.node} onChange={(e) => setNode(e.target.value)} data-testid="service-node">
          {view.nodes.map((x) => (
            <option key={x.node}>{x.node}</option>
          ))}
        </select>
      </h3>
      {n.reject && <div className="error">no endpoint may take a connection: the kernel rejects</div>}
      <h3>weights over time</h3>
      <WeightChart history={n.history} keys={keys} />
      <table className="flows compact" data-testid="endpoint-table">
        <thead>
          <tr><th></th><th>endpoint</th><th>loc.</th><th>weight</th><th>health</th><th>latency</th><th>errors</th><th title="requests in flight">infl.</th><th title="share of recent connections">share</th></tr>
        </thead>
        <tbody>
          {n.endpoints.map((e, i) => (
            <tr key={e.key} className={e.weight === 0 ? 'unused' : ''}>
              <td><span className="sw" style={{ background: COLORS[i % COLORS.length] }} /></td>
              <td className="pol" title={e.key}>{e.pod ?? e.key}</td>
              <td>{e.location ?? '–'}</td>
              <td>{e.weight}</td>
              <td className={e.healthy ? '' : 'bad'}>{e.healthy ? (e.drained ? 'drained' : 'ok') : 'failing'}</td>
              <td>{e.latencyMs !== undefined ? `${e.latencyMs.toFixed(1)} ms` : '–'}</td>
              <td>{pct(e.errorRate)}</td>
              <td>{e.inFlight}</td>
              <td>{pct(e.recentShare)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {n.notes.length > 0 && (
        <ul className="muted small">
          {n.notes.map((x) => (
            <li key={x}>{x}</li>
          ))}
        </ul>
      )}
    </aside>
  );
}

/** Services on the map: one chip per Service port with its weight split and health; a click opens its panel. */
export function ServiceChips(props: { services: readonly ServiceView[]; selected: string | undefined; onSelect: (id: string) => void }) {
  return (
    <div className="service-chips" data-testid="service-chips">
      <div className="eyebrow">services</div>
      {props.services.map((v) => {
        const eps = v.nodes[0]?.endpoints ?? [];
        const total = Math.max(1, eps.reduce((s, e) => s + e.weight, 0));
        const failing = eps.filter((e) => !e.healthy).length;
        return (
          <button key={idOf(v)} className={props.selected === idOf(v) ? 'chip on' : 'chip'} onClick={() => props.onSelect(idOf(v))} data-testid={`chip-${v.service}`}>
            <span className={`dot${failing > 0 ? ' firing' : ''}`} /> {v.name}:{v.port} <span className="muted">{v.mode}</span>
            <span className="bar">
              {eps.map((e, i) => (
                <i key={e.key} style={{ width: `${(100 * e.weight) / total}%`, background: COLORS[i % COLORS.length] }} />
              ))}
            </span>
          </button>
        );
      })}
    </div>
  );
}

/** Polls /api/services (0: not at all); undefined until the first answer. */
export function useServices(intervalMs = 1000): { services: ServiceView[] | undefined; error: string | undefined } {
  const [services, setServices] = useState<ServiceView[] | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  useEffect(() => {
    if (intervalMs <= 0) return undefined;
    let stop = false;
    const load = (): void => {
      getJson<{ services: ServiceView[] }>('api/services')
        .then((r) => !stop && (setServices(r.services), setError(undefined)))
        .catch((e: unknown) => !stop && setError((e as Error).message));
    };
    load();
    const t = setInterval(load, intervalMs);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [intervalMs]);
  return { services, error };
}

export function ServicesView() {
  const { services, error } = useServices();
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const view = services?.find((v) => idOf(v) === selected);
  return (
    <div className="map-layout">
      <div className="page">
        {error && <div className="error">{error}</div>}
        {services && services.length === 0 && <div className="muted">no Services reported by the agents</div>}
        <table className="flows" data-testid="service-table">
          <thead>
            <tr><th>service</th><th>address</th><th>mode</th><th>endpoints</th><th>healthy</th><th>weights (first node)</th></tr>
          </thead>
          <tbody>
            {(services ?? []).map((v) => {
              const eps = v.nodes[0]?.endpoints ?? [];
              const total = Math.max(1, eps.reduce((s, e) => s + e.weight, 0));
              return (
                <tr key={idOf(v)} onClick={() => setSelected(idOf(v))} className={selected === idOf(v) ? 'selected clickable' : 'clickable'} data-testid={`service-${v.service}`}>
                  <td className="pol">{v.service}</td>
                  <td>{v.frontend === 'node-port' ? `NodePort ${v.port}` : `${v.clusterIP ?? ''}:${v.port}`}/{v.protocol}</td>
                  <td>{v.mode}</td>
                  <td>{eps.length}</td>
                  <td className={eps.some((e) => !e.healthy) ? 'bad' : ''}>{eps.filter((e) => e.healthy).length}</td>
                  <td className="barcell">
                    <div className="bar">
                      {eps.map((e, i) => (
                        <i key={e.key} title={`${e.pod ?? e.key}: ${e.weight}`} style={{ width: `${(100 * e.weight) / total}%`, background: COLORS[i % COLORS.length] }} />
                      ))}
                    </div>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {view && <ServicePanel key={idOf(view)} view={view} onClose={() => setSelected(undefined)} />}
    </div>
  );
}
