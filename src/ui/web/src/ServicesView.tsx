import { useEffect, useState } from 'react';
import { getJson } from './api';
import { serviceId, type ServiceApiView } from './serviceMap';

type ServiceView = ServiceApiView;

/**
 * Okabe–Ito colours (told apart with every common colour-vision deficiency), ordered for the
 * dark background; beyond eight endpoints the colours repeat with a hatch, so no two bands
 * look alike.
 */
export const COLORS = ['#56B4E9', '#E69F00', '#009E73', '#CC79A7', '#F0E442', '#D55E00', '#4A90D9', '#BBBBBB'];
const hatched = (i: number): boolean => i >= COLORS.length;
const colorOf = (i: number): string => COLORS[i % COLORS.length] as string;

const idOf = serviceId;
const pct = (x: number | undefined): string => (x === undefined ? '–' : `${(100 * x).toFixed(1)}%`);

/** An endpoint's swatch: its colour, hatched past the eighth. */
export function Swatch({ i }: { i: number }) {
  return <span className={`sw ep-sw${hatched(i) ? ' hatched' : ''}`} style={{ background: colorOf(i) }} />;
}

/**
 * Shares of new connections over time, stacked: one band per endpoint, so endpoints with equal
 * weights are two bands of equal height rather than two lines drawn on top of each other.
 */
export function WeightChart(props: { history: ServiceView['nodes'][number]['history']; endpoints: readonly { key: string; pod?: string | undefined }[] }) {
  const { history, endpoints } = props;
  const w = 410;
  const h = 150;
  if (history.length < 2) return <div className="muted small">collecting…</div>;
  const t0 = history[0].t;
  const span = Math.max(1, history[history.length - 1].t - t0);
  const x = (t: number): number => 34 + ((t - t0) / span) * (w - 44);
  const y = (v: number): number => 8 + (1 - v) * (h - 28);
  // Cumulative shares per point: bottom[k] and top[k] of endpoint k's band.
  const stacks = history.map((p) => {
    const ws = endpoints.map((e) => Math.max(0, p.weights[e.key] ?? 0));
    const total = ws.reduce((a, b) => a + b, 0);
    let acc = 0;
    return ws.map((v) => {
      const lo = acc;
      acc += total > 0 ? v / total : 0;
      return [lo, acc] as const;
    });
  });
  const last = stacks[stacks.length - 1] ?? [];
  return (
    <div className="weights-box">
      <svg width={w} height={h} className="weights" data-testid="weight-chart" role="img" aria-label="share of new connections per endpoint over time, stacked">
        <defs>
          {endpoints.map((_, i) =>
            hatched(i) ? (
              <pattern key={i} id={`hatch-${i}`} width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
                <rect width="6" height="6" fill={colorOf(i)} opacity="0.35" />
                <line x1="0" y1="0" x2="0" y2="6" stroke={colorOf(i)} strokeWidth="3" />
              </pattern>
            ) : null,
          )}
        </defs>
        {[0, 0.5, 1].map((v) => (
          <g key={v}>
            <line x1={34} x2={w - 10} y1={y(v)} y2={y(v)} className="grid" />
            <text x={2} y={y(v) + 4} className="axis">{`${v * 100}%`}</text>
          </g>
        ))}
        <text x={34} y={h - 4} className="axis">{`−${Math.round(span / 1000)} s`}</text>
        <text x={w - 10} y={h - 4} className="axis" textAnchor="end">now</text>
        {endpoints.map((e, k) => {
          const top = history.map((p, i) => `${x(p.t).toFixed(1)},${y(stacks[i]?.[k]?.[1] ?? 0).toFixed(1)}`);
          const bottom = history.map((p, i) => `${x(p.t).toFixed(1)},${y(stacks[i]?.[k]?.[0] ?? 0).toFixed(1)}`).reverse();
          const share = (last[k]?.[1] ?? 0) - (last[k]?.[0] ?? 0);
          return (
            <path
              key={e.key}
              className="band"
              data-testid="weight-series"
              data-endpoint={e.key}
              data-share={share.toFixed(4)}
              d={`M ${top.join(' L ')} L ${bottom.join(' L ')} Z`}
              fill={hatched(k) ? `url(#hatch-${k})` : colorOf(k)}
            >
              <title>{`${e.pod ?? e.key}: ${(100 * share).toFixed(1)}% now`}</title>
            </path>
          );
        })}
      </svg>
      <ul className="weight-legend" data-testid="weight-legend">
        {endpoints.map((e, k) => (
          <li key={e.key}>
            <Swatch i={k} /> {e.pod ?? e.key} <b>{pct((last[k]?.[1] ?? 0) - (last[k]?.[0] ?? 0))}</b>
          </li>
        ))}
      </ul>
    </div>
  );
}

/** `ports`: every view of the same Service (its ports and frontends), to switch between them. */
export function ServicePanel(props: { view: ServiceView; onClose: () => void; ports?: readonly ServiceView[]; onPort?: (id: string) => void }) {
  const { view } = props;
  const [node, setNode] = useState(view.nodes[0]?.node);
  const n = view.nodes.find((x) => x.node === node) ?? view.nodes[0];
  if (!n) return null;
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
      {props.ports && props.ports.length > 1 && props.onPort && (
        <h3>
          port{' '}
          <select value={idOf(view)} onChange={(e) => props.onPort?.(e.target.value)} data-testid="service-port">
            {props.ports.map((v) => (
              <option key={idOf(v)} value={idOf(v)}>
                {v.frontend === 'node-port' ? `NodePort ${v.port}` : v.port}/{v.protocol}
              </option>
            ))}
          </select>
        </h3>
      )}
      <h3>
        as balanced by{' '}
        <select value={n.node} onChange={(e) => setNode(e.target.value)} data-testid="balanced-by">
          {view.nodes.map((x) => (
            <option key={x.node}>{x.node}</option>
          ))}
        </select>
      </h3>
      {n.reject && <div className="error">no endpoint may take a connection: the kernel rejects</div>}
      <h3>share of new connections over time</h3>
      <WeightChart history={n.history} endpoints={n.endpoints} />
      <table className="flows compact" data-testid="endpoint-table">
        <thead>
          <tr><th></th><th>endpoint</th><th>loc.</th><th>weight</th><th>health</th><th>latency</th><th>errors</th><th title="requests in flight">infl.</th><th title="share of recent connections">share</th></tr>
        </thead>
        <tbody>
          {n.endpoints.map((e, i) => (
            <tr key={e.key} className={e.weight === 0 ? 'unused' : ''}>
              <td><Swatch i={i} /></td>
              <td className="pol" title={e.key}>{e.pod ?? e.key}</td>
              <td>{e.location ?? '–'}</td>
              <td>{e.weight}</td>
              <td className={e.healthy ? (e.drained ? 'warn' : '') : 'bad'}>{e.healthy ? (e.drained ? 'drained' : 'ok') : 'failing'}</td>
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
                        <i key={e.key} title={`${e.pod ?? e.key}: ${e.weight}`} style={{ width: `${(100 * e.weight) / total}%`, background: colorOf(i) }} />
                      ))}
                    </div>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {view && <ServicePanel key={idOf(view)} view={view} onClose={() => setSelected(undefined)} ports={services?.filter((v) => v.service === view.service)} onPort={setSelected} />}
    </div>
  );
}
