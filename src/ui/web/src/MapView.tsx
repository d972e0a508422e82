import { memo, useCallback, useMemo, useRef, useState, type PointerEvent, type WheelEvent } from 'react';
import type { GroupBy } from './api';
import { computeLayout, namespaceOfGroup, shortLabel, type Layout } from './layout';
import type { LiveEdge, LiveStore } from './live';

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

export function MapView(props: { live: LiveStore; group: GroupBy; selected: string | undefined; onSelect: (key: string | undefined) => void }) {
  const { live } = props;
  // Layout depends only on the set of groups: recomputed when a group appears, never per event.
  // `layouts` counts recomputations and is exposed as `data-layouts`, so tests can check that
  // traffic never triggers a re-layout.
  const groupsVersion = live.groupsVersion;
  const layouts = useRef(0);
  const layout: Layout = useMemo(() => {
    layouts.current++;
    return computeLayout([...live.groups]);
  }, [groupsVersion]);
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

  const edges = [...live.edges.values()];
  const weight = (e: LiveEdge): number => Math.log1p(e.bytes + e.flows * 100);
  const maxW = edges.reduce((m, e) => Math.max(m, weight(e)), 1);
  const sel = props.selected ? live.edges.get(props.selected) : undefined;
  const onSelect = props.onSelect as (key: string) => void;
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
        <g className="nodes">
          {[...layout.positions.entries()].map(([g, p]) => (
            <NodeView key={g} group={g} x={p.x} y={p.y} active={!!sel && (sel.src === g || sel.dst === g)} />
          ))}
        </g>
      </svg>
      {live.groups.size === 0 && <div className="empty">Waiting for flows…</div>}
      <div className="legend">
        <span className="sw forwarded" /> forwarded <span className="sw audit" /> audit <span className="sw dropped" /> dropped
        <span className="muted"> · {live.groups.size} groups · {live.edges.size} edges · scroll to zoom, drag to pan</span>
      </div>
    </div>
  );
}
