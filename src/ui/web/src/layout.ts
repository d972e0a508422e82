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

interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

const labelWidth = (group: string): number => shortLabel(group).length * LABEL_CHAR;

function boxesOf(members: readonly string[], pts: readonly Point[]): Box[] {
  const out: Box[] = [];
  members.forEach((g, i) => {
    const p = pts[i] as Point;
    const w = labelWidth(g) / 2 + LABEL_GAP / 2;
    out.push({ x0: p.x - w, x1: p.x + w, y0: p.y + LABEL_DY - LABEL_ASCENT, y1: p.y + LABEL_DY + LABEL_DESCENT });
    out.push({ x0: p.x - NODE_R, x1: p.x + NODE_R, y0: p.y - NODE_R, y1: p.y + NODE_R });
  });
  return out;
}

const overlaps = (a: Box, b: Box): boolean => a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;

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

/**
 * One namespace around its own centre: the smallest ring (from 105, in steps of 5) on which no
 * label touches another label or node. Names of real workloads are long; a fixed ring would put
 * neighbours' labels on top of each other.
 */
function placeNamespace(ns: string, members: string[]): Placed {
  if (members.length === 1 && members[0] === ns) {
    return { members, pts: [{ x: 0, y: 0 }], r: 60, rx: 60, halfW: Math.max(60, labelWidth(ns) / 2), top: 60 + 8 + TITLE_H, bottom: 60 };
  }
  let outer = RING;
  let pts = rings(members.length, outer);
  for (; outer < 600; outer += 5) {
    pts = rings(members.length, outer);
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
  members.forEach((g, i) => {
    const p = pts[i] as Point;
    halfW = Math.max(halfW, Math.abs(p.x) + labelWidth(g) / 2);
    bottom = Math.max(bottom, p.y + LABEL_DY + LABEL_DESCENT);
  });
  // The namespace title sits above the circle.
  return { members, pts, r, rx: members.length === 1 ? r : outer + 25, halfW, top: r + 8 + TITLE_H, bottom };
}

export function computeLayout(groups: readonly string[]): Layout {
  const byNs = new Map<string, string[]>();
  for (const g of [...groups].sort()) {
    const ns = namespaceOfGroup(g);
    let l = byNs.get(ns);
    if (!l) byNs.set(ns, (l = []));
    l.push(g);
  }
  // External last, so the cluster grid reads as "the cluster, then the world".
  const namespaces = [...byNs.keys()].sort((a, b) => (a === 'external' ? 1 : b === 'external' ? -1 : a.localeCompare(b)));
  const placed = namespaces.map((ns) => placeNamespace(ns, byNs.get(ns) ?? []));
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
