// Deterministic map layout: namespaces are cells of a grid (sorted by name), each namespace's
// groups sit on a ring (or concentric rings) inside its cell. Computed only when the set of
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

const CELL = 300;

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
  const cols = Math.max(1, Math.ceil(Math.sqrt(namespaces.length * 1.6)));
  const rows = Math.max(1, Math.ceil(namespaces.length / cols));
  const positions = new Map<string, Point>();
  const clusters: Cluster[] = [];
  namespaces.forEach((ns, i) => {
    const cx = (i % cols) * CELL + CELL / 2;
    const cy = Math.floor(i / cols) * CELL + CELL / 2;
    const members = byNs.get(ns) ?? [];
    const n = members.length;
    if (n === 1 && members[0] === ns) {
      positions.set(ns, { x: cx, y: cy });
      clusters.push({ namespace: ns, x: cx, y: cy, r: 60 });
      return;
    }
    // Up to 12 on the outer ring, the rest on inner rings.
    const ringCap = [12, 8, 5, 1];
    let placed = 0;
    let ring = 0;
    let radius = n === 1 ? 0 : 105;
    while (placed < n) {
      const cap = ring < ringCap.length ? (ringCap[ring] as number) : 12;
      const k = Math.min(cap, n - placed);
      for (let j = 0; j < k; j++) {
        const a = (2 * Math.PI * j) / k - Math.PI / 2 + ring * 0.3;
        positions.set(members[placed + j] as string, { x: cx + radius * Math.cos(a), y: cy + radius * Math.sin(a) });
      }
      placed += k;
      ring++;
      radius = Math.max(0, radius - 35);
    }
    clusters.push({ namespace: ns, x: cx, y: cy, r: 130 });
  });
  return { positions, clusters, width: cols * CELL, height: rows * CELL };
}
