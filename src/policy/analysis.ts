// Full connectivity analysis between every pair of endpoint *classes*.
//
// A class is an identity refined by what ipBlocks can tell apart (the pod's IP atom), or an
// external address atom. The result is a class × class matrix of interned connection sets.
// Each direction's program is evaluated once per distinct pattern of peer groups a peer falls
// into (a bit mask), never once per pod pair, so the cost is dominated by filling the matrix.

import type { Pod } from '../model/cluster.js';
import type { Group, Identity } from './cache.js';
import { portsKey } from './cache.js';
import { ConnTable } from './connections.js';
import { inGroup, podEndpoint, externalEndpoint, type Endpoint } from './endpoint.js';
import type { PolicyEngine, ProgramMode } from './engine.js';
import { atomize, familyOf, parseIp, type Family, type IpInterval } from './ip.js';
import { evaluateDirection, evaluateVerdicts } from './pipeline.js';
import { intersect as intersectConns, subtract as subtractConns, union as unionConns } from './connections.js';
import type { Direction, DirectionProgram } from './rules.js';

export interface AnalysisClass {
  readonly index: number;
  readonly kind: 'pod' | 'external';
  /** A representative endpoint (pods of a class behave identically). */
  readonly endpoint: Endpoint;
  readonly identity?: Identity;
  readonly pods: Pod[];
  /** For external classes: the address range. */
  readonly range?: IpInterval;
}

export interface ConnectivityResult {
  readonly classes: readonly AnalysisClass[];
  readonly conns: ConnTable;
  /** `matrix[src * n + dst]` is the id (in `conns`) of the allowed connections. */
  readonly matrix: Uint16Array | Uint32Array;
  readonly version: number;
  readonly mode: ProgramMode;
  connId(src: number, dst: number): number;
  /**
   * The id (in `conns`) of the connections that are UNKNOWN because a policy in doubt applies
   * (`conns.none` when nothing is); `matrix` holds what is certainly allowed.
   */
  unknownId(src: number, dst: number): number;
  /** True when some pair has unknown connections. */
  readonly hasUnknown: boolean;
}

function findAtom(atoms: readonly IpInterval[], ip: bigint): number {
  let lo = 0;
  let hi = atoms.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (ip < atoms[mid].start) hi = mid - 1;
    else if (ip > atoms[mid].end) lo = mid + 1;
    else return mid;
  }
  return -1;
}

/** Builds the classes: pods grouped by identity and IP atom, plus external atoms. */
export function buildClasses(engine: PolicyEngine): AnalysisClass[] {
  const cidrGroups: Group[] = [];
  const families = new Set<Family>([4]);
  for (const g of engine.cache.groups.values()) {
    if (g.spec.kind !== 'cidr') continue;
    cidrGroups.push(g);
    for (const iv of g.spec.intervals) families.add(familyOf(iv.start));
  }
  const pieces = cidrGroups.flatMap((g) => (g.spec.kind === 'cidr' ? g.spec.intervals : []));
  // Node addresses are atoms of their own: a `nodes` peer matches exactly those addresses.
  for (const node of engine.cache.nodes.values()) {
    const ip = node.ip !== undefined ? parseIp(node.ip) : undefined;
    if (ip === undefined) continue;
    pieces.push({ start: ip, end: ip });
    families.add(familyOf(ip));
  }
  const atoms = atomize([...families].sort(), pieces);
  const classes: AnalysisClass[] = [];
  const byKey = new Map<string, AnalysisClass>();
  const pods = [...engine.pods.values()].sort((a, b) =>
    a.namespace === b.namespace ? (a.name < b.name ? -1 : 1) : a.namespace < b.namespace ? -1 : 1,
  );
  for (const pod of pods) {
    const ep = podEndpoint(engine, pod);
    if (!ep.identity) continue;
    const atom = ep.ip !== undefined ? findAtom(atoms, ep.ip) : -1;
    const key = `${ep.identity.id}|${atom}|${pod.hostNetwork ? (pod.node ?? '') : ''}`;
    let c = byKey.get(key);
    if (!c) {
      c = { index: classes.length, kind: 'pod', endpoint: ep, identity: ep.identity, pods: [] };
      classes.push(c);
      byKey.set(key, c);
    }
    c.pods.push(pod);
  }
  for (const atom of atoms) {
    classes.push({ index: classes.length, kind: 'external', endpoint: externalEndpoint(atom.start), pods: [], range: atom });
  }
  return classes;
}

interface ProgramSlot {
  readonly program: DirectionProgram;
  readonly bitOf: Map<number, number>;
  /** Per class: bit mask of the program's groups the class is in (ingress: as source). */
  masks?: Int32Array;
}

/** Per class: the certainly allowed connections, and (programs in doubt) the unknown ones. */
interface SlotResult {
  readonly certain: Uint32Array;
  readonly unknown?: Uint32Array;
}

/**
 * Computes, for one program, the connections it allows towards (egress) or from (ingress)
 * every class. Peers are folded into a bit mask of the program's groups they belong to, and
 * the tiers run once per distinct (mask, destination ports) pair.
 */
function programResults(
  engine: PolicyEngine,
  slot: ProgramSlot,
  classes: readonly AnalysisClass[],
  members: (g: number) => readonly number[],
  conns: ConnTable,
  direction: Direction,
  fixedDst: AnalysisClass | undefined,
  portSig: Int32Array,
  sigSpan: number,
): SlotResult {
  const n = classes.length;
  const out = new Uint32Array(n);
  const program = slot.program;
  if (program.key === '') return { certain: out.fill(conns.all) };
  const unknownOut = program.doubtful ? new Uint32Array(n) : undefined;
  const wide = program.groups.length > 30;
  let masks = slot.masks;
  if (!masks && !wide) {
    masks = new Int32Array(n);
    for (const [g, bit] of slot.bitOf) for (const c of members(g)) masks[c] |= 1 << bit;
    slot.masks = masks;
  }
  const memo = new Map<number, number>();
  const unknownMemo = new Map<number, number>();
  for (let c = 0; c < n; c++) {
    const peer = classes[c];
    const dst = direction === 'egress' ? peer : (fixedDst as AnalysisClass);
    const sig = program.hasNamedPorts && direction === 'egress' ? portSig[dst.index] : 0;
    // The memo key packs (mask, signature) into one number; the signature's span is the number
    // of distinct signatures, so two different pairs can never share a key (masks < 2^30).
    const key = wide ? -1 : (masks as Int32Array)[c] * sigSpan + sig;
    let id = key >= 0 ? memo.get(key) : undefined;
    if (id === undefined) {
      const input = {
        program,
        inGroup: wide
          ? (g: number) => inGroup(engine.group(g) as Group, peer.endpoint, engine.cache.nodes.values())
          : (g: number) => (((masks as Int32Array)[c] >> (slot.bitOf.get(g) as number)) & 1) === 1,
        dstPorts: dst.identity?.ports,
      };
      if (unknownOut) {
        const v = evaluateVerdicts(input);
        id = conns.intern(v.allowed);
        const uid = conns.intern(v.unknown);
        unknownOut[c] = uid;
        if (key >= 0) unknownMemo.set(key, uid);
      } else {
        id = conns.intern(evaluateDirection(input));
      }
      if (key >= 0) memo.set(key, id);
    } else if (unknownOut) {
      unknownOut[c] = unknownMemo.get(key) as number;
    }
    out[c] = id;
  }
  return { certain: out, ...(unknownOut ? { unknown: unknownOut } : {}) };
}

export function analyze(engine: PolicyEngine, mode: ProgramMode = 'enforce'): ConnectivityResult {
  const classes = buildClasses(engine);
  const n = classes.length;
  const conns = new ConnTable();

  // Group members as class indexes, computed once per group on demand (the selector cache
  // already holds identities; only CIDR and node groups look at addresses here).
  const byIdentity = new Map<number, number[]>();
  for (const c of classes) {
    if (!c.identity) continue;
    let list = byIdentity.get(c.identity.id);
    if (!list) byIdentity.set(c.identity.id, (list = []));
    list.push(c.index);
  }
  const memberCache = new Map<number, number[]>();
  const members = (gid: number): readonly number[] => {
    let list = memberCache.get(gid);
    if (list) return list;
    const g = engine.group(gid) as Group;
    list = [];
    if (g.spec.kind === 'pods') {
      for (const iid of g.identities) for (const c of byIdentity.get(iid) ?? []) if (inGroup(g, classes[c].endpoint, engine.cache.nodes.values())) list.push(c);
    } else {
      for (const c of classes) if (inGroup(g, c.endpoint, engine.cache.nodes.values())) list.push(c.index);
    }
    memberCache.set(gid, list);
    return list;
  };

  // Destination port signatures, for named ports resolved per destination.
  const sigIds = new Map<string, number>();
  const portSig = new Int32Array(n);
  for (const c of classes) {
    const k = c.identity ? portsKey(c.identity.ports) : '';
    let id = sigIds.get(k);
    if (id === undefined) sigIds.set(k, (id = sigIds.size));
    portSig[c.index] = id;
  }

  const slots = new Map<string, ProgramSlot>();
  const slotFor = (program: DirectionProgram, extra: string): ProgramSlot => {
    const key = `${program.key}#${extra}`;
    let s = slots.get(key);
    if (!s) {
      const bitOf = new Map<number, number>();
      program.groups.forEach((g, i) => bitOf.set(g, i));
      s = { program, bitOf };
      slots.set(key, s);
    }
    return s;
  };
  const programOf = (c: AnalysisClass, dir: Direction): DirectionProgram | undefined =>
    c.kind === 'pod' && c.identity ? engine.program(c.identity.id, dir, mode) : undefined;

  // Ingress: one result column per distinct (program, destination ports).
  const inResults = new Map<ProgramSlot, SlotResult>();
  const inOf: (SlotResult | undefined)[] = new Array(n);
  for (const d of classes) {
    const program = programOf(d, 'ingress');
    if (!program || program.key === '') continue;
    const slot = slotFor(program, program.hasNamedPorts ? `in:${portSig[d.index]}` : 'in');
    let res = inResults.get(slot);
    if (!res) {
      res = programResults(engine, slot, classes, members, conns, 'ingress', d, portSig, sigIds.size);
      inResults.set(slot, res);
    }
    inOf[d.index] = res;
  }

  // Egress, source by source, grouped by program so each program's row is computed once.
  const order = classes.map((c) => ({ c, p: programOf(c, 'egress') }));
  order.sort((a, b) => ((a.p?.key ?? '') < (b.p?.key ?? '') ? -1 : (a.p?.key ?? '') > (b.p?.key ?? '') ? 1 : 0));
  let matrix: Uint16Array | Uint32Array = new Uint16Array(n * n);
  // Only when a policy in doubt applies somewhere: the UNKNOWN connections of each pair.
  let unknown: Uint32Array | undefined;
  const unknownMemo = new Map<string, number>();
  const unknownOfPair = (eC: number, eU: number, iC: number, iU: number): number => {
    const key = `${eC},${eU},${iC},${iU}`;
    let id = unknownMemo.get(key);
    if (id === undefined) {
      // Might be allowed on both sides, and not certainly allowed on both.
      const possible = intersectConns(unionConns(conns.get(eC), conns.get(eU)), unionConns(conns.get(iC), conns.get(iU)));
      id = conns.intern(subtractConns(possible, intersectConns(conns.get(eC), conns.get(iC))));
      unknownMemo.set(key, id);
    }
    return id;
  };
  let lastKey: string | undefined;
  let egRow: SlotResult | undefined;
  const allRow: SlotResult = { certain: new Uint32Array(n).fill(conns.all) };
  for (const { c: s, p } of order) {
    if (!p || p.key === '') {
      egRow = allRow;
      lastKey = undefined;
    } else if (p.key !== lastKey || !egRow) {
      egRow = programResults(engine, slotFor(p, 'eg'), classes, members, conns, 'egress', undefined, portSig, sigIds.size);
      lastKey = p.key;
    }
    const base = s.index * n;
    const srcExternal = s.kind === 'external';
    const eg = egRow.certain;
    const egU = egRow.unknown;
    for (let d = 0; d < n; d++) {
      let id: number;
      if (srcExternal && classes[d].kind === 'external') id = conns.none;
      else {
        const inCol = inOf[d];
        const inId = inCol ? inCol.certain[s.index] : conns.all;
        id = conns.intersect(inId, eg[d]);
        const eU = egU ? egU[d] : conns.none;
        const iU = inCol?.unknown ? inCol.unknown[s.index] : conns.none;
        if (eU !== conns.none || iU !== conns.none) {
          const u = unknownOfPair(eg[d], eU, inId, iU);
          if (u !== conns.none) {
            unknown ??= new Uint32Array(n * n);
            unknown[base + d] = u;
          }
        }
      }
      if (id > 0xffff && matrix instanceof Uint16Array) matrix = Uint32Array.from(matrix);
      matrix[base + d] = id;
    }
  }
  const finalMatrix = matrix;
  const finalUnknown = unknown;
  return {
    classes,
    conns,
    matrix: finalMatrix,
    version: engine.version,
    mode,
    connId: (src, dst) => finalMatrix[src * n + dst],
    // conns.none is id 0, the array's initial value.
    unknownId: finalUnknown ? (src, dst) => finalUnknown[src * n + dst] : () => conns.none,
    hasUnknown: finalUnknown !== undefined,
  };
}
