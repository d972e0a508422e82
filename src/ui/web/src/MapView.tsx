import { memo, useCallback, useMemo, useRef, useState, type PointerEvent, type WheelEvent } from 'react';
import type { GroupBy } from './api';
import { computeLayout, groupBoxes, namespaceOfGroup, overlaps, serviceBoxes, serviceLabel, shortLabel, SUB_DY, type Box, type Layout, type Point } from './layout';
import type { LiveEdge, LiveStore } from './live';
import { buildServiceMap, isSelected, type ServiceApiView, type ServiceLink, type ServiceNode } from './serviceMap';

/** Service nodes drawn at most before the map keeps only the selected, troubled and busiest ones. */
export const MAX_SERVICE_NODES = 40;
export type ServiceMode = 'through' | 'direct';

function hue(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  // Golden-angle spread so neighbouring names get clearly different hues.
  return Math.round(((h % 1000) * 137.508) % 360);
}

export function edgeClass(e: { dropped: number; audit: number }): 'dropped' | 'audit' | 'forwarded' {
  return e.dropped > 0 ? 'dropped' : e.audit > 0 ? 'audit' : 'forwarded';
}

/**
 * Stroke width in half-pixel steps. Counters grow on every batch; if the width followed them
 * exactly, every edge would change (and the whole SVG repaint) several times a second under
 * load. Quantized, an edge's props change only when its visible width does, so memoized edges
 * skip rendering and the browser skips painting.
 */
export function edgeWidth(weight: number, maxWeight: number): number {
  return Math.round((1 + (2.5 * weight) / maxWeight) * 2) / 2;
}

interface EdgeProps {
  edgeKey: string;
  src: string;
  dst: string;
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  width: number;
  cls: string;
  selected: boolean;
  onSelect: (key: string) => void;
}

const EdgeView = memo(function EdgeView(p: EdgeProps) {
  let d: string;
  let mx: number;
  let my: number;
  if (p.x1 === p.x2 && p.y1 === p.y2) {
    d = `M ${p.x1} ${p.y1} c -30 -40, 30 -40, 0 0`;
    mx = p.x1;
    my = p.y1 - 30;
  } else {
    // Bend to the right of the direction of travel, so A→B and B→A stay apart.
    const dx = p.x2 - p.x1;
    const dy = p.y2 - p.y1;
    const len = Math.hypot(dx, dy) || 1;
    const bend = Math.min(60, len * 0.15);
    const cx = (p.x1 + p.x2) / 2 - (dy / len) * bend;
    const cy = (p.y1 + p.y2) / 2 + (dx / len) * bend;
    d = `M ${p.x1} ${p.y1} Q ${cx} ${cy} ${p.x2} ${p.y2}`;
    mx = 0.25 * p.x1 + 0.5 * cx + 0.25 * p.x2;
    my = 0.25 * p.y1 + 0.5 * cy + 0.25 * p.y2;
  }
  const select = (): void => p.onSelect(p.edgeKey);
  return (
    <g className={`edge ${p.cls}${p.selected ? ' selected' : ''}`} data-testid="edge" data-src={p.src} data-dst={p.dst} data-verdict={p.cls} onClick={select}>
      <path className="edge-line" d={d} strokeWidth={p.width} markerEnd={`url(#arrow-${p.cls})`} />
      <path className="edge-hit" d={d} />
      <circle className="edge-handle" data-testid="edge-handle" cx={mx} cy={my} r={Math.max(3.5, p.width)} />
    </g>
  );
});

const NodeView = memo(function NodeView(p: { group: string; x: number; y: number; active: boolean }) {
  const ns = namespaceOfGroup(p.group);
  const color = ns === 'external' ? 'hsl(220 10% 60%)' : `hsl(${hue(ns)} 70% 62%)`;
  return (
    <g className={`node${p.active ? ' active' : ''}`} data-testid="group-node" data-group={p.group} transform={`translate(${p.x} ${p.y})`}>
      <title>{p.group}</title>
      <circle r={13} fill={color} />
      <text y={27} textAnchor="middle">
        {shortLabel(p.group)}
      </text>
    </g>
  );
});

const HEX = Array.from({ length: 6 }, (_, i) => {
  const a = (Math.PI / 3) * i;
  return `${(15 * Math.cos(a)).toFixed(2)},${(15 * Math.sin(a)).toFixed(2)}`;
}).join(' ');

const ServiceNodeView = memo(function ServiceNodeView(p: { node: ServiceNode; x: number; y: number; active: boolean; onSelect: (viewId: string) => void }) {
  const n = p.node;
  const title = `Service ${n.label} · ${n.address}${n.protocol ? `/${n.protocol}` : ''} · ${n.mode}${n.state === 'rejecting' ? ' · rejecting: no endpoint may take a connection' : n.state === 'degraded' ? ' · endpoints failing or drained' : n.state === 'unknown' ? ' · seen in flows, not reported by any agent' : ''}`;
  const click = (): void => {
    if (n.viewId !== undefined) p.onSelect(n.viewId);
  };
  return (
    <g className={`svc-node ${n.state}${p.active ? ' active' : ''}`} data-testid="service-node" data-service={n.label} data-id={n.id} data-state={n.state} transform={`translate(${p.x} ${p.y})`} onClick={click}>
      <title>{title}</title>
      <polygon points={HEX} />
      <text className="glyph" y={4} textAnchor="middle">
        ⇉
      </text>
      <text y={27} textAnchor="middle" className="svc-name">
        {serviceLabel(n.label)}
      </text>
      <text y={27 + SUB_DY} textAnchor="middle" className="svc-addr">
        {n.address}
      </text>
    </g>
  );
});

const SHARE_STATES = ['ok', 'idle', 'degraded', 'down'] as const;

/** Service → endpoint group: width and label the weight share, colour the endpoints' health, one dot per endpoint. */
const ServiceLinkView = memo(function ServiceLinkView(p: { link: ServiceLink; a: Point; b: Point; avoid: readonly Box[]; viewId: string | undefined; onSelect: (viewId: string) => void }) {
  const { link, a, b } = p;
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const len = Math.hypot(dx, dy) || 1;
  // Stop short of both nodes so the arrow lands on the group's rim; a link leaving downwards
  // starts (or arrives) below the label it would cross instead.
  const trim = (from: Box[], sign: 1 | -1): number => {
    const label = from[0];
    const dir = sign * dy;
    if (!label || dir <= 0) return 16;
    const down = label.y1 - (sign === 1 ? a.y : b.y);
    const xAt = Math.abs((dx / dy) * down);
    const half = (label.x1 - label.x0) / 2;
    return xAt < half ? Math.max(16, (down / Math.abs(dy)) * len + 2) : 16;
  };
  const t1 = trim(p.avoid.slice(0, 1), 1);
  const t2 = trim(p.avoid.slice(2, 3), -1);
  const x1 = a.x + (dx / len) * t1;
  const y1 = a.y + (dy / len) * t1;
  const x2 = b.x - (dx / len) * Math.max(15, t2);
  const y2 = b.y - (dy / len) * Math.max(15, t2);
  const pct = link.share * 100;
  const text = pct === 0 ? '0%' : pct < 1 ? '<1%' : `${Math.round(pct)}%`;
  const dots = link.endpoints.slice(0, 8);
  const w = 7 * text.length + 12 + dots.length * 8 + (link.endpoints.length > dots.length ? 16 : 0);
  // The label sits where it touches neither end's node or label: halfway when it can.
  let mx = x1 + (x2 - x1) * 0.5;
  let my = y1 + (y2 - y1) * 0.5;
  // On the link if it fits there, else beside its middle (a short link between close nodes).
  const nx = -dy / len;
  const ny = dx / len;
  const side = Math.abs(nx) * (w / 2 + 4) + Math.abs(ny) * 12;
  const spots: [number, number][] = [0.5, 0.6, 0.4, 0.7, 0.3].map((t) => [x1 + (x2 - x1) * t, y1 + (y2 - y1) * t]);
  for (const t of [0.5, 0.35, 0.65]) for (const k of [1, -1]) spots.push([x1 + (x2 - x1) * t + k * nx * side, y1 + (y2 - y1) * t + k * ny * side]);
  for (const [x, y] of spots) {
    const box: Box = { x0: x - w / 2 - 2, x1: x + w / 2 + 2, y0: y - 10, y1: y + 10 };
    if (!p.avoid.some((b) => overlaps(b, box))) {
      mx = x;
      my = y;
      break;
    }
  }
  const tip = `${Math.round(pct * 10) / 10}% of new connections → ${link.group}\n${link.endpoints.map((e) => `${e.pod ?? e.key}: ${(e.share * 100).toFixed(1)}% ${e.state}`).join('\n')}`;
  return (
    <g className={`svc-link ${link.state}`} data-testid="service-link" data-svc={link.svc} data-group={link.group} data-share={link.share.toFixed(4)} data-state={link.state} onClick={() => p.viewId !== undefined && p.onSelect(p.viewId)}>
      <title>{tip}</title>
      <line x1={x1} y1={y1} x2={x2} y2={y2} strokeWidth={1.5 + 5 * link.share} markerEnd={`url(#svc-arrow-${link.state})`} />
      <line className="edge-hit" x1={x1} y1={y1} x2={x2} y2={y2} />
      <g transform={`translate(${mx} ${my})`} className="share">
        <rect x={-w / 2} y={-8} width={w} height={16} rx={8} />
        <text x={-w / 2 + 6} y={4} data-testid="service-link-share">
          {text}
        </text>
        {dots.map((e, i) => (
          <circle key={e.key} className={`ep ${e.state}`} cx={-w / 2 + 7 * text.length + 12 + i * 8} cy={0} r={3}>
            <title>{`${e.pod ?? e.key}: ${e.state}`}</title>
          </circle>
        ))}
        {link.endpoints.length > dots.length && (
          <text x={w / 2 - 16} y={4} className="more">
            +{link.endpoints.length - dots.length}
          </text>
        )}
      </g>
    </g>
  );
});

export interface MapServices {
  views: readonly ServiceApiView[] | undefined;
  mode: ServiceMode;
  onMode: (m: ServiceMode) => void;
  filter: string;
  onFilter: (f: string) => void;
  /** The open Service panel's view id. */
  selected: string | undefined;
  onSelect: (viewId: string) => void;
}

export function MapView(props: { live: LiveStore; group: GroupBy; selected: string | undefined; onSelect: (key: string | undefined) => void; services?: MapServices }) {
  const { live } = props;
  const svc = props.services;
  const model =
    svc?.views && svc.mode === 'through' && svc.views.length + live.edges.size > 0
      ? buildServiceMap(svc.views, [...live.edges.values()], { group: props.group, filter: svc.filter, max: MAX_SERVICE_NODES, selected: svc.selected, podGroups: live.podGroups })
      : undefined;
  const layoutKey = model?.layoutKey ?? '';
  // Stable callbacks (memoized edges and nodes must not re-render for a new function every
  // frame) that read the current model.
  const latest = useRef({ model, svc, onSelectEdge: props.onSelect });
  latest.current = { model, svc, onSelectEdge: props.onSelect };
  const selectService = useCallback((viewId: string) => latest.current.svc?.onSelect(viewId), []);
  // An edge into a Service opens the Service's panel (its flows are the Service's).
  const onSelect = useCallback((key: string) => {
    const { model: m, svc: s, onSelectEdge } = latest.current;
    const dst = key.split('\u0000')[1] ?? '';
    const node = m?.nodes.find((n) => n.id === dst);
    if (node) {
      if (node.viewId !== undefined) s?.onSelect(node.viewId);
    } else onSelectEdge(key);
  }, []);
  // Layout depends only on the set of groups: recomputed when a group appears, never per event.
  // `layouts` counts recomputations and is exposed as `data-layouts`, so tests can check that
  // traffic never triggers a re-layout.
  const groupsVersion = live.groupsVersion;
  const layouts = useRef(0);
  const layout: Layout = useMemo(() => {
    layouts.current++;
    return computeLayout([...live.groups, ...(model?.extraGroups ?? [])], model?.nodes.map((n) => ({ id: n.id, namespace: n.namespace, label: n.label, sub: n.address, groups: model.links.filter((l) => l.svc === n.id).map((l) => l.group) })) ?? []);
  }, [groupsVersion, layoutKey]);
  const [view, setView] = useState<{ x: number; y: number; k: number } | undefined>(undefined);
  const drag = useRef<{ x: number; y: number; vx: number; vy: number } | undefined>(undefined);
  const svgRef = useRef<SVGSVGElement>(null);
  const pad = 40;
  // Extra room at the bottom for the legend, which floats over the map.
  const base = { x: -pad, y: -pad, w: Math.max(layout.width, 300) + 2 * pad, h: Math.max(layout.height, 300) + 2 * pad + 50 };
  const v = view ?? { x: base.x, y: base.y, k: 1 };
  const vb = `${v.x} ${v.y} ${base.w / v.k} ${base.h / v.k}`;

  const onWheel = useCallback(
    (e: WheelEvent<SVGSVGElement>) => {
      const k = Math.min(8, Math.max(0.5, v.k * (e.deltaY < 0 ? 1.15 : 1 / 1.15)));
      const rect = svgRef.current?.getBoundingClientRect();
      if (!rect) return;
      const fx = (e.clientX - rect.left) / rect.width;
      const fy = (e.clientY - rect.top) / rect.height;
      const wx = v.x + fx * (base.w / v.k);
      const wy = v.y + fy * (base.h / v.k);
      setView({ k, x: wx - fx * (base.w / k), y: wy - fy * (base.h / k) });
    },
    [v.k, v.x, v.y, base.w, base.h],
  );
  const onDown = (e: PointerEvent<SVGSVGElement>): void => {
    if ((e.target as Element).closest('.edge')) return;
    drag.current = { x: e.clientX, y: e.clientY, vx: v.x, vy: v.y };
  };
  const onMove = (e: PointerEvent<SVGSVGElement>): void => {
    const d = drag.current;
    const rect = svgRef.current?.getBoundingClientRect();
    if (!d || !rect) return;
    const s = base.w / v.k / rect.width;
    setView({ k: v.k, x: d.vx - (e.clientX - d.x) * s, y: d.vy - (e.clientY - d.y) * s });
  };
  const onUp = (): void => {
    drag.current = undefined;
  };

  // Through Services: the flows a client addressed to a Service go into its node, and only what
  // is left of the direct edge (traffic to pod addresses) stays.
  const edges: LiveEdge[] = model ? [...model.direct, ...model.clients] : [...live.edges.values()];
  const serviceIds = new Set(model?.nodes.map((n) => n.id));
  const weight = (e: LiveEdge): number => Math.log1p(e.bytes + e.flows * 100);
  const maxW = edges.reduce((m, e) => Math.max(m, weight(e)), 1);
  const sel = props.selected ? live.edges.get(props.selected) : undefined;
  // Denied and audited edges drawn last, so red and amber are never hidden under traffic.
  const order = { forwarded: 0, audit: 1, dropped: 2 };
  edges.sort((a, b) => order[edgeClass(a)] - order[edgeClass(b)]);

  return (
    <div className="map-wrap">
      <svg ref={svgRef} className="map" viewBox={vb} onWheel={onWheel} onPointerDown={onDown} onPointerMove={onMove} onPointerUp={onUp} onPointerLeave={onUp} data-testid="map" data-layouts={layouts.current}>
        <defs>
          {(['forwarded', 'audit', 'dropped'] as const).map((c) => (
            <marker key={c} id={`arrow-${c}`} viewBox="0 0 10 10" refX="19" refY="5" markerWidth="3.2" markerHeight="3.2" orient="auto-start-reverse" markerUnits="strokeWidth">
              <path d="M 0 0 L 10 5 L 0 10 z" className={`arrow ${c}`} />
            </marker>
          ))}
          {SHARE_STATES.map((c) => (
            <marker key={c} id={`svc-arrow-${c}`} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto" markerUnits="userSpaceOnUse">
              <path d="M 0 0 L 10 5 L 0 10 z" className={`svc-arrow ${c}`} />
            </marker>
          ))}
        </defs>
        {layout.clusters.map((c) => (
          <g key={c.namespace} className="cluster">
            <ellipse cx={c.x} cy={c.y} rx={c.rx} ry={c.r} />
            <text x={c.x} y={c.y - c.r - 8} textAnchor="middle">
              {c.namespace}
            </text>
          </g>
        ))}
        <g className="edges">
          {edges.map((e) => {
            const a = layout.positions.get(e.src);
            const b = layout.positions.get(e.dst);
            if (!a || !b) return null;
            return (
              <EdgeView
                key={e.key}
                edgeKey={e.key}
                src={e.src}
                dst={e.dst}
                x1={a.x}
                y1={a.y}
                x2={b.x}
                y2={b.y}
                width={edgeWidth(weight(e), maxW)}
                cls={edgeClass(e)}
                selected={e.key === props.selected}
                onSelect={onSelect}
              />
            );
          })}
        </g>
        {model && (
          <g className="svc-links">
            {model.links.map((l) => {
              const a = layout.positions.get(l.svc);
              const b = layout.positions.get(l.group);
              const n = model.nodes.find((x) => x.id === l.svc);
              if (!a || !b || !n) return null;
              return <ServiceLinkView key={l.key} link={l} a={a} b={b} avoid={[...serviceBoxes({ id: n.id, label: n.label, sub: n.address }, a), ...groupBoxes(l.group, b)]} viewId={n.viewId} onSelect={selectService} />;
            })}
          </g>
        )}
        <g className="nodes">
          {[...layout.positions.entries()].map(([g, p]) =>
            serviceIds.has(g) ? null : <NodeView key={g} group={g} x={p.x} y={p.y} active={!!sel && (sel.src === g || sel.dst === g)} />,
          )}
          {model?.nodes.map((n) => {
            const p = layout.positions.get(n.id);
            return p ? <ServiceNodeView key={n.id} node={n} x={p.x} y={p.y} active={isSelected(n, svc?.selected)} onSelect={selectService} /> : null;
          })}
        </g>
      </svg>
      {live.groups.size === 0 && !model?.nodes.length && <div className="empty">Waiting for flows…</div>}
      {svc && ((svc.views?.length ?? 0) > 0 || (model?.total ?? 0) > 0) && (
        <div className="svc-bar" data-testid="service-bar">
          <span className="eyebrow">Services</span>
          <div className="seg" role="group" aria-label="how flows through Services are drawn">
            <button className={svc.mode === 'through' ? 'on' : ''} onClick={() => svc.onMode('through')} data-testid="service-mode-through" title="Clients → Service → endpoint groups: each Service is a node, its edges carry the weight share">
              through Service
            </button>
            <button className={svc.mode === 'direct' ? 'on' : ''} onClick={() => svc.onMode('direct')} data-testid="service-mode-direct" title="Clients → endpoint groups, as the packets go after DNAT; Services hidden">
              direct
            </button>
          </div>
          {svc.mode === 'through' && (
            <input value={svc.filter} onChange={(e) => svc.onFilter(e.target.value)} placeholder="filter: name or IP" data-testid="service-filter" aria-label="filter Services" />
          )}
          {model && (
            <span className="muted small" data-testid="service-count">
              {model.shown === model.total ? `${model.total}` : `${model.shown} of ${model.total}`}
              {model.shown < model.total && !svc.filter ? ' (busiest, failing)' : ''}
            </span>
          )}
        </div>
      )}
      <div className="legend">
        <span className="sw forwarded" /> forwarded <span className="sw audit" /> audit <span className="sw dropped" /> dropped
        {model && model.nodes.length > 0 && (
          <>
            <span className="hex" /> Service <span className="sw share-ok" /> weight share <span className="sw share-degraded" /> partly failing/drained <span className="sw share-down" /> none healthy
          </>
        )}
        <span className="muted"> · {live.groups.size} groups{model ? ` · ${model.shown} Services` : ''} · {live.edges.size} edges · scroll zooms, drag pans</span>
      </div>
    </div>
  );
}
