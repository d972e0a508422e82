// Deterministic map layout: namespaces are cells of a grid (sorted by name), each namespace's
// groups sit on a ring (or concentric rings) inside its cell, widened until no label touches
// another; cells are as large as the largest namespace. Computed only when the set of
// groups changes, never per event, so nodes stay put while traffic flows.

export interface Point {
  x: number;
  y: number;
}

export interface Cluster {
  namespace: string;
  x: number;
  y: number;
  r: number;
  /** Horizontal radius: wider than `r` when long labels stretched the ring into an ellipse. */
  rx: number;
}

export interface Layout {
  positions: Map<string, Point>;
  clusters: Cluster[];
  width: number;
  height: number;
}

/** Namespace a group belongs to, for every grouping: `ns/name[Kind]`, `ns:labels`, `ns`, `external:*`. */
export function namespaceOfGroup(group: string): string {
  if (group.startsWith('external:')) return 'external';
  const slash = group.indexOf('/');
  const colon = group.indexOf(':');
  const cut = [slash, colon].filter((i) => i > 0);
  return cut.length ? group.slice(0, Math.min(...cut)) : group;
}

/** Short label for a group inside its namespace cluster. */
export function shortLabel(group: string): string {
  if (group.startsWith('external:')) return group.slice('external:'.length);
  const ns = namespaceOfGroup(group);
  let rest = group.slice(ns.length).replace(/^[/:]/, '');
  if (!rest) return ns;
  rest = rest.replace(/\[[A-Za-z]+\]$/, '');
  return rest.length > 22 ? `${rest.slice(0, 21)}…` : rest;
}

// Label geometry, in map units, matching NodeView (11 px text, baseline 27 below the node).
// The character width is an upper bound for the UI font, so estimated boxes contain the real ones.
const NODE_R = 13;
const LABEL_CHAR = 6.6;
const LABEL_DY = 27;
const LABEL_ASCENT = 11;
const LABEL_DESCENT = 4;
const LABEL_GAP = 4;
const TITLE_H = 14;
/** Radius of a namespace's ring when its labels fit (they always do for short names). */
const RING = 105;
const CELL_GAP = 16;
/** Width/height the map usually has on screen: the grid of namespaces is shaped to fill it. */
const TARGET_ASPECT = 1.75;

export interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** A Service drawn among its namespace's groups (serviceMap.ts): a name and, below it, an address. */
export interface ServiceMember {
  id: string;
  namespace: string;
  label: string;
  sub: string;
  /** Groups of its endpoints: a crowded namespace puts the Service next to them. */
  groups?: readonly string[];
}

/** Second label line of a Service (10 px monospace, 12 below the first). */
const SUB_CHAR = 6.3;
export const SUB_DY = 12;

/** Label text of a Service on the map: long names are cut, as group labels are. */
export const serviceLabel = (label: string): string => (label.length > 30 ? `${label.slice(0, 29)}…` : label);

interface Member {
  id: string;
  width: number;
  /** Label lines below the node. */
  lines: 1 | 2;
}

const labelWidth = (group: string): number => shortLabel(group).length * LABEL_CHAR;
const groupMember = (g: string): Member => ({ id: g, width: labelWidth(g), lines: 1 });
const serviceMember = (s: ServiceMember): Member => ({ id: s.id, width: Math.max(serviceLabel(s.label).length * LABEL_CHAR, s.sub.length * SUB_CHAR), lines: 2 });
const descent = (m: Member): number => LABEL_DESCENT + (m.lines - 1) * SUB_DY;

function boxesOf(members: readonly Member[], pts: readonly Point[]): Box[] {
  const out: Box[] = [];
  members.forEach((m, i) => {
    const p = pts[i] as Point;
    const w = m.width / 2 + LABEL_GAP / 2;
    out.push({ x0: p.x - w, x1: p.x + w, y0: p.y + LABEL_DY - LABEL_ASCENT, y1: p.y + LABEL_DY + descent(m) });
    out.push({ x0: p.x - NODE_R, x1: p.x + NODE_R, y0: p.y - NODE_R, y1: p.y + NODE_R });
  });
  return out;
}

export const overlaps = (a: Box, b: Box): boolean => a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;

/** The node and label boxes of a group at `p` (map units), e.g. to keep a link's label off them. */
export const groupBoxes = (group: string, p: Point): Box[] => boxesOf([groupMember(group)], [p]);
/** The node and label boxes of a Service at `p`. */
export const serviceBoxes = (s: Pick<ServiceMember, 'id' | 'label' | 'sub'>, p: Point): Box[] => boxesOf([serviceMember({ ...s, namespace: '' })], [p]);

/** Ring positions around (0, 0): up to 12 on the outer ring, the rest on inner rings. */
function rings(n: number, outer: number): Point[] {
  const ringCap = [12, 8, 5, 1];
  const pts: Point[] = [];
  let ring = 0;
  let radius = n === 1 ? 0 : outer;
  // Labels are wide and short, so a ring that must grow grows sideways: an ellipse keeps the
  // height (and the map's rows) of the default ring.
  const squash = Math.min(1, RING / Math.max(outer, 1));
  while (pts.length < n) {
    const cap = ring < ringCap.length ? (ringCap[ring] as number) : 12;
    const k = Math.min(cap, n - pts.length);
    for (let j = 0; j < k; j++) {
      const a = (2 * Math.PI * j) / k - Math.PI / 2 + ring * 0.3;
      pts.push({ x: radius * Math.cos(a), y: radius * squash * Math.sin(a) });
    }
    ring++;
    radius = Math.max(0, radius - 35);
  }
  return pts;
}

interface Placed {
  members: string[];
  pts: Point[];
  r: number;
  /** Horizontal radius of the namespace outline (the ellipse's). */
  rx: number;
  halfW: number;
  /** Extent above the centre (title included) and below it (labels included). */
  top: number;
  bottom: number;
}

/** `k` points evenly on one ring of `radius` (squashed like the group rings), from the top. */
function ringOf(k: number, radius: number, squash: number, phase: number): Point[] {
  if (k === 1 && radius === 0) return [{ x: 0, y: 0 }];
  return Array.from({ length: k }, (_, j) => {
    const a = (2 * Math.PI * j) / k - Math.PI / 2 + phase;
    return { x: radius * Math.cos(a), y: radius * squash * Math.sin(a) };
  });
}

/**
 * Positions of a namespace's groups and Services around (0, 0) for an outer ring radius:
 * groups on the rings as before; Services inside them, where their endpoint groups surround
 * them (one Service in the centre), or around a lone group (the namespace grouping) that then
 * holds the centre.
 */
function positions(groups: number, services: number, outer: number): Point[] {
  if (services === 0) return rings(groups, outer);
  const squash = Math.min(1, RING / Math.max(outer, 1));
  if (groups === 0) return services === 1 ? [{ x: 0, y: 0 }] : rings(services, outer);
  // On the diagonals of the lone group: level with it, the clients' edges would run along the
  // Service links; straight above or below, a link would cross a label.
  if (groups === 1) return [{ x: 0, y: 0 }, ...ringOf(services, outer, squash, services === 1 ? (3 * Math.PI) / 4 : Math.PI / 4)];
  const inner = services === 1 ? 0 : outer * (groups > 12 ? 0.3 : 0.5);
  return [...rings(groups, outer), ...ringOf(services, inner, squash, Math.PI / Math.max(1, services))];
}

/** Members of one namespace beyond which they sit in a grid, not on rings (rings of many long labels never stop touching). */
const GRID_OVER = 14;

/**
 * A crowded namespace: a grid of equal cells as wide as the widest label, so no label can
 * touch another. Each Service sits left of the first of its endpoint groups (their link is one
 * short level edge); the other groups fill the remaining cells two by two.
 */
function gridNamespace(members: readonly Member[], services: readonly ServiceMember[]): Placed {
  const byId = new Map(members.map((m) => [m.id, m]));
  const free = new Set(members.filter((m) => m.lines === 1).map((m) => m.id));
  const slots: [string | undefined, string | undefined][] = [];
  for (const sv of services) {
    const g = sv.groups?.find((x) => free.has(x));
    if (g !== undefined) free.delete(g);
    slots.push([sv.id, g]);
  }
  const rest = [...free];
  for (let i = 0; i < rest.length; i += 2) slots.push([rest[i], rest[i + 1]]);
  const cellW = Math.max(...members.map((m) => m.width)) + 2 * LABEL_GAP + 6;
  const cellH = LABEL_DY + LABEL_DESCENT + SUB_DY + NODE_R + 14;
  // A slot is two cells side by side: the link between them runs level, clear of both labels.
  const slotCols = Math.max(1, Math.ceil(Math.sqrt((slots.length * cellH * 1.6) / (2 * cellW))));
  const cols = 2 * slotCols;
  const rows = Math.ceil(slots.length / slotCols);
  const ids: string[] = [];
  const pts: Point[] = [];
  slots.forEach((slot, i) => {
    slot.forEach((id, k) => {
      if (id === undefined || !byId.has(id)) return;
      ids.push(id);
      pts.push({ x: (2 * (i % slotCols) + k - (cols - 1) / 2) * cellW, y: (Math.floor(i / slotCols) - (rows - 1) / 2) * cellH - LABEL_DY / 2 });
    });
  });
  const halfW = (cols * cellW) / 2;
  const halfH = (rows * cellH) / 2;
  // The outline is an ellipse around the grid's corners.
  const rx = halfW * Math.SQRT2;
  const r = halfH * Math.SQRT2;
  return { members: ids, pts, r, rx, halfW: rx, top: r + 8 + TITLE_H, bottom: r };
}

/**
 * One namespace around its own centre: the smallest ring (from 105, in steps of 5) on which no
 * label touches another label or node. Names of real workloads are long; a fixed ring would put
 * neighbours' labels on top of each other.
 */
function placeNamespace(ns: string, groups: string[], services: readonly ServiceMember[]): Placed {
  const members = [...groups.map(groupMember), ...services.map(serviceMember)];
  const ids = members.map((m) => m.id);
  if (services.length === 0 && groups.length === 1 && groups[0] === ns) {
    return { members: ids, pts: [{ x: 0, y: 0 }], r: 60, rx: 60, halfW: Math.max(60, labelWidth(ns) / 2), top: 60 + 8 + TITLE_H, bottom: 60 };
  }
  // Several Services among many groups crowd the rings too: a grid keeps each beside its group.
  if (members.length > GRID_OVER || (services.length >= 4 && members.length > 10)) return gridNamespace(members, services);
  let outer = RING;
  let pts = positions(groups.length, services.length, outer);
  for (; outer < 600; outer += 5) {
    pts = positions(groups.length, services.length, outer);
    const boxes = boxesOf(members, pts);
    let clash = false;
    for (let i = 0; i < boxes.length && !clash; i++) {
      for (let j = i + 1; j < boxes.length && !clash; j++) {
        // A node's own label sits below it and never counts as a clash with it.
        if (Math.floor(i / 2) !== Math.floor(j / 2) && overlaps(boxes[i] as Box, boxes[j] as Box)) clash = true;
      }
    }
    if (!clash) break;
  }
  const r = members.length === 1 ? 60 : Math.min(outer, RING) + 25;
  let halfW = r;
  let bottom = r;
  members.forEach((m, i) => {
    const p = pts[i] as Point;
    halfW = Math.max(halfW, Math.abs(p.x) + m.width / 2);
    bottom = Math.max(bottom, p.y + LABEL_DY + descent(m));
  });
  // The namespace title sits above the circle.
  return { members: ids, pts, r, rx: members.length === 1 ? r : outer + 25, halfW, top: r + 8 + TITLE_H, bottom };
}

export function computeLayout(groups: readonly string[], services: readonly ServiceMember[] = []): Layout {
  const byNs = new Map<string, string[]>();
  for (const g of [...groups].sort()) {
    const ns = namespaceOfGroup(g);
    let l = byNs.get(ns);
    if (!l) byNs.set(ns, (l = []));
    l.push(g);
  }
  const svcByNs = new Map<string, ServiceMember[]>();
  for (const s of services) {
    svcByNs.set(s.namespace, [...(svcByNs.get(s.namespace) ?? []), s]);
    if (!byNs.has(s.namespace)) byNs.set(s.namespace, []);
  }
  // External last, so the cluster grid reads as "the cluster, then the world".
  const namespaces = [...byNs.keys()].sort((a, b) => (a === 'external' ? 1 : b === 'external' ? -1 : a.localeCompare(b)));
  const placed = namespaces.map((ns) => placeNamespace(ns, byNs.get(ns) ?? [], svcByNs.get(ns) ?? []));
  // Every cell is as large as the largest namespace, labels included: nothing of one namespace
  // reaches into the next one's cell.
  const cellW = 2 * Math.max(150, ...placed.map((p) => p.halfW)) + CELL_GAP;
  const top = Math.max(...placed.map((p) => p.top));
  const cellH = Math.max(300, top + Math.max(...placed.map((p) => p.bottom)) + CELL_GAP);
  const n = namespaces.length;
  // The column count that lets the grid be drawn largest in a TARGET_ASPECT viewport.
  let cols = 1;
  const fit = (c: number): number => Math.min(TARGET_ASPECT / (c * cellW), 1 / (Math.ceil(n / c) * cellH));
  for (let c = 2; c <= n; c++) if (fit(c) > fit(cols)) cols = c;
  const rows = Math.max(1, Math.ceil(n / cols));
  const positions = new Map<string, Point>();
  const clusters: Cluster[] = [];
  placed.forEach((p, i) => {
    const cx = (i % cols) * cellW + cellW / 2;
    const cy = Math.floor(i / cols) * cellH + CELL_GAP / 2 + top;
    p.members.forEach((g, j) => {
      const q = p.pts[j] as Point;
      positions.set(g, { x: cx + q.x, y: cy + q.y });
    });
    clusters.push({ namespace: namespaces[i] as string, x: cx, y: cy, r: p.r, rx: p.rx });
  });
  return { positions, clusters, width: cols * cellW, height: rows * cellH };
}
