// nftables set-element changes as nfnetlink messages: pure encoding and decoding, no I/O.
//
// Why: `nft` 1.0.6 fills its cache before every `add element` — every table, chain, set and
// stateful object of the namespace (src/cache.c: CMD_OBJ_ELEMENTS asks for TABLE | CHAIN | SET |
// OBJECT | SETELEM_MAYBE), and a long-lived `nft -i` or libnftables context refills it after
// each of its own commits because the generation id moved. At 10k pods that is ~7.6k chains and
// ~2.4k sets parsed for one element: ~21 ms, growing with the cluster. A batch of
// NEWSETELEM/DELSETELEM messages names the table, the set and the element bytes, and nothing
// else: its cost does not depend on the table's size. The kernel commits or aborts a batch as
// a whole (nfnetlink_rcv_batch), so one batch is one transaction, as one `nft -f` is.
//
// Only what the renderer's element patches hold is encoded (see encodeElement), and the one
// chain shape they add and remove, a pod veth's source chain (encodeSourceChain); anything else
// returns undefined and goes through `nft -f`, which knows every type.

import { endianness } from 'node:os';

const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_CREATE = 0x400;
const NLA_F_NESTED = 0x8000;

const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 0x10;
const NFNL_MSG_BATCH_END = 0x11;
const NFT_MSG_NEWTABLE = 0;
const NFT_MSG_DELTABLE = 2;
const NFT_MSG_NEWCHAIN = 3;
const NFT_MSG_DELCHAIN = 5;
const NFT_MSG_NEWRULE = 6;
const NFT_MSG_NEWSETELEM = 12;
const NFT_MSG_DELSETELEM = 14;
const NLM_F_APPEND = 0x800;
/** nfproto of `inet` tables. */
export const NFPROTO_INET = 1;

const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_DATA = 2;
const NFTA_SET_ELEM_FLAGS = 3;
/** include/uapi/linux/netfilter/nf_tables.h: the element that closes an interval. */
const NFT_SET_ELEM_INTERVAL_END = 0x1;
/** The weight maps (src/render/services.ts): `typeof numgen random|inc mod <n> : verdict` or `: ip daddr . tcp dport` (DNAT data). */
const NUMGEN_MAP = /^typeof numgen (?:random|inc) mod (\d+) : (verdict|ip daddr \. (?:tcp|udp|sctp) dport)$/;
const NFTA_DATA_VALUE = 1;
const NFTA_DATA_VERDICT = 2;
const NFTA_VERDICT_CODE = 1;
const NFTA_VERDICT_CHAIN = 2;

/** include/uapi/linux/netfilter/nf_tables.h, enum nft_verdicts (and NF_DROP/NF_ACCEPT). */
const VERDICTS: Readonly<Record<string, number>> = { drop: 0, accept: 1, continue: -1, return: -5 };
const CHAIN_VERDICTS: Readonly<Record<string, number>> = { jump: -3, goto: -4 };
const NFT_NAME_MAXLEN = 256;
const IFNAMSIZ = 16;

const LE = endianness() === 'LE';

function u16(value: number): Buffer {
  const b = Buffer.alloc(2);
  if (LE) b.writeUInt16LE(value);
  else b.writeUInt16BE(value);
  return b;
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  if (LE) b.writeUInt32LE(value >>> 0);
  else b.writeUInt32BE(value >>> 0);
  return b;
}

const pad4 = (n: number): number => (n + 3) & ~3;

/** One netlink attribute (host-endian header, payload padded to 4 bytes). */
function attr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  return Buffer.concat([u16(len), u16(type), payload, Buffer.alloc(pad4(len) - len)]);
}

const nested = (type: number, parts: readonly Buffer[]): Buffer => attr(type | NLA_F_NESTED, Buffer.concat(parts));
const cstring = (s: string): Buffer => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.alloc(1)]);

// ------------------------------------------------------------------ element text → bytes

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const PROTOCOLS: Readonly<Record<string, number>> = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58, sctp: 132 };
const CHAIN_NAME = /^[A-Za-z_][A-Za-z0-9_.\-/]*$/;

/** The bytes of one field of a key, or undefined when this encoder does not know the type or value. */
function encodeField(type: string, text: string): Buffer | undefined {
  switch (type) {
    case 'ipv4_addr': {
      const m = IPV4.exec(text);
      if (!m) return undefined;
      const bytes = m.slice(1).map(Number);
      return bytes.every((x) => x <= 255) ? Buffer.from(bytes) : undefined;
    }
    case 'ifname': {
      // `"veth1"`: a quoted interface name, zero-padded to IFNAMSIZ (as nft lays it out).
      const m = /^"([^"\\*]{1,15})"$/.exec(text);
      if (!m) return undefined;
      const name = Buffer.from(m[1], 'utf8');
      return name.length < IFNAMSIZ ? Buffer.concat([name, Buffer.alloc(IFNAMSIZ - name.length)]) : undefined;
    }
    case 'iface_index': {
      // An interface index, a 32-bit integer in host byte order (nft's iface_index type), written
      // in decimal: names are resolved by the agent (nft would resolve them, and fail for an
      // interface that is gone, which a delete must not depend on).
      if (!/^\d{1,10}$/.test(text) || Number(text) === 0 || Number(text) > 0xffffffff) return undefined;
      return u32(Number(text));
    }
    case 'inet_proto': {
      const n = /^\d{1,3}$/.test(text) ? Number(text) : PROTOCOLS[text];
      return n !== undefined && n <= 255 ? Buffer.from([n]) : undefined;
    }
    case 'mark': {
      // A 32-bit integer in host byte order (nft's mark type), written `0x40000005` or decimal.
      if (!/^(0x[0-9a-fA-F]{1,8}|\d{1,10})$/.test(text) || Number(text) > 0xffffffff) return undefined;
      return u32(Number(text));
    }
    case 'inet_service': {
      if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) return undefined;
      const b = Buffer.alloc(2);
      b.writeUInt16BE(Number(text));
      return b;
    }
    default:
      return undefined;
  }
}

/** Splits `"a" . 10.0.0.1 . tcp` on ` . ` outside quotes. */
function splitConcat(text: string): string[] | undefined {
  const out: string[] = [];
  let i = 0;
  while (i <= text.length) {
    let end: number;
    if (text[i] === '"') {
      const close = text.indexOf('"', i + 1);
      if (close < 0) return undefined;
      end = close + 1;
    } else {
      end = text.indexOf(' . ', i);
      if (end < 0) end = text.length;
    }
    out.push(text.slice(i, end));
    if (end === text.length) return out;
    if (text.slice(end, end + 3) !== ' . ') return undefined;
    i = end + 3;
  }
  return out;
}

export interface EncodedElement {
  readonly key: Buffer;
  /** Verdict-map elements: the verdict. */
  readonly verdict?: { readonly code: number; readonly chain?: string };
  /** Data-map elements: the value's bytes. */
  readonly data?: Buffer;
  /**
   * Interval maps: the key one past the range, sent as a second element flagged
   * INTERVAL_END, as nft does (`0-499` is 0 with its verdict, then 500 closing it).
   */
  readonly intervalEnd?: Buffer;
}

/**
 * A weight-map element (`0-899 : 10.244.1.5 . 8080` or `0-899 : goto ep_x`): its range as
 * big-endian u32s (nft converts numgen's register with `byteorder hton`); DNAT data as nft
 * lays out `ip daddr . tcp dport`: the address, then the port in a 32-bit register.
 */
function encodeNumgenElement(modulus: number, verdict: boolean, text: string, withData: boolean): EncodedElement | undefined {
  const sep = text.indexOf(' : ');
  const m = /^(\d{1,10})(?:-(\d{1,10}))?$/.exec(sep >= 0 ? text.slice(0, sep) : text);
  if (!m) return undefined;
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  if (from > to || to >= modulus) return undefined;
  const be = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  if (!withData) return { key: be(from), intervalEnd: be(to + 1) };
  if (sep < 0) return undefined;
  if (!verdict) {
    const d = /^(\S+) \. (\d{1,5})$/.exec(text.slice(sep + 3).trim());
    const ip = d ? encodeField('ipv4_addr', d[1]) : undefined;
    const port = d ? encodeField('inet_service', d[2]) : undefined;
    return ip && port ? { key: be(from), data: Buffer.concat([ip, port, Buffer.alloc(2)]), intervalEnd: be(to + 1) } : undefined;
  }
  const words = text.slice(sep + 3).trim().split(/\s+/);
  const code = CHAIN_VERDICTS[words[0]];
  if (words.length !== 2 || code === undefined || !CHAIN_NAME.test(words[1]) || words[1].length >= NFT_NAME_MAXLEN) return undefined;
  return { key: be(from), verdict: { code, chain: words[1] }, intervalEnd: be(to + 1) };
}

export interface SetShape {
  readonly kind: 'set' | 'map';
  /** `ipv4_addr`, `ifname . ipv4_addr`, `ipv4_addr : verdict`. */
  readonly type: string;
  readonly flags: readonly string[];
}

/**
 * The key (and verdict) of one element in nft's text form, laid out as nft lays it out, or
 * undefined when this encoder cannot say (interval sets, timeouts, unknown types or values):
 * the caller then lets `nft -f` do it.
 */
export function encodeElement(set: SetShape, text: string, withData: boolean): EncodedElement | undefined {
  const numgen = set.kind === 'map' ? NUMGEN_MAP.exec(set.type) : null;
  if (numgen && set.flags.length === 1 && set.flags[0] === 'interval' && Number(numgen[1]) <= 0xffffffff) {
    return encodeNumgenElement(Number(numgen[1]), numgen[2] === 'verdict', text, withData);
  }
  if (set.flags.length > 0) return undefined; // interval, timeout, dynamic: not ours to encode
  const [keyType, dataType, ...more] = set.type.split(' : ');
  if (more.length > 0 || (set.kind === 'map') !== (dataType !== undefined)) return undefined;
  if (dataType !== undefined && dataType !== 'verdict' && dataType !== 'mark') return undefined;
  const sep = text.indexOf(' : ');
  const keyText = set.kind === 'map' && sep >= 0 ? text.slice(0, sep) : text;
  const types = keyType.split(' . ');
  const fields = splitConcat(keyText);
  if (!fields || fields.length !== types.length) return undefined;
  const parts: Buffer[] = [];
  for (let i = 0; i < types.length; i++) {
    const b = encodeField(types[i], fields[i]);
    if (!b) return undefined;
    // Concatenated keys are laid out in 32-bit registers: each field is padded to 4 bytes.
    parts.push(types.length > 1 ? Buffer.concat([b, Buffer.alloc(pad4(b.length) - b.length)]) : b);
  }
  const key = Buffer.concat(parts);
  if (set.kind === 'set' || !withData) return { key };
  if (sep < 0) return undefined;
  if (dataType !== 'verdict') {
    const data = encodeField(dataType, text.slice(sep + 3).trim());
    return data ? { key, data } : undefined;
  }
  const words = text.slice(sep + 3).trim().split(/\s+/);
  if (words.length === 1 && VERDICTS[words[0]] !== undefined) return { key, verdict: { code: VERDICTS[words[0]] } };
  const code = CHAIN_VERDICTS[words[0]];
  if (words.length !== 2 || code === undefined || !CHAIN_NAME.test(words[1]) || words[1].length >= NFT_NAME_MAXLEN) return undefined;
  return { key, verdict: { code, chain: words[1] } };
}

function elementAttrs(e: EncodedElement): Buffer[] {
  if (!e.intervalEnd) return [elementAttr(e)];
  const flags = Buffer.alloc(4);
  flags.writeUInt32BE(NFT_SET_ELEM_INTERVAL_END);
  return [elementAttr(e), nested(NFTA_LIST_ELEM, [nested(NFTA_SET_ELEM_KEY, [attr(NFTA_DATA_VALUE, e.intervalEnd)]), attr(NFTA_SET_ELEM_FLAGS, flags)])];
}

function elementAttr(e: EncodedElement): Buffer {
  const parts = [nested(NFTA_SET_ELEM_KEY, [attr(NFTA_DATA_VALUE, e.key)])];
  if (e.verdict) {
    const code = Buffer.alloc(4);
    code.writeInt32BE(e.verdict.code); // NLA_BE32 in the kernel's policy
    const verdict = [attr(NFTA_VERDICT_CODE, code)];
    if (e.verdict.chain !== undefined) verdict.push(attr(NFTA_VERDICT_CHAIN, cstring(e.verdict.chain)));
    parts.push(nested(NFTA_SET_ELEM_DATA, [nested(NFTA_DATA_VERDICT, verdict)]));
  } else if (e.data) {
    parts.push(nested(NFTA_SET_ELEM_DATA, [attr(NFTA_DATA_VALUE, e.data)]));
  }
  return nested(NFTA_LIST_ELEM, parts);
}

// ------------------------------------------------------------------ source chains

// A pod veth's source check (src/render/filter.ts, sourceChain): a base chain on the veth's
// ingress hook whose one rule sends IPv4 packets not from the pod's address to `spoofed` (which
// counts, records and drops them). Only that shape is encoded; anything else returns undefined
// and goes through `nft -f`.

const NFTA_TABLE_NAME = 1;
const NFTA_CHAIN_TABLE = 1;
const NFTA_CHAIN_NAME = 3;
const NFTA_CHAIN_HOOK = 4;
const NFTA_CHAIN_POLICY = 5;
const NFTA_CHAIN_TYPE = 7;
const NFTA_HOOK_HOOKNUM = 1;
const NFTA_HOOK_PRIORITY = 2;
const NFTA_HOOK_DEV = 3;
const NFTA_RULE_TABLE = 1;
const NFTA_RULE_CHAIN = 2;
const NFTA_RULE_EXPRESSIONS = 4;
const NFTA_EXPR_NAME = 1;
const NFTA_EXPR_DATA = 2;
/** enum nf_inet_hooks: NF_INET_INGRESS. */
const NF_INET_INGRESS = 5;
const NF_ACCEPT = 1;
const NFT_REG_VERDICT = 0;
const NFT_REG_1 = 1;
const NFT_META_NFPROTO = 15;
const NFPROTO_IPV4 = 2;
const NFT_PAYLOAD_NETWORK_HEADER = 1;
const NFT_CMP_EQ = 0;
const NFT_CMP_NEQ = 1;

const be32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

/** A source chain, as the kernel is told it: where it hooks, which address may pass, and where the rest goes. */
export interface SourceChain {
  readonly name: string;
  readonly device: string;
  readonly priority: number;
  /** The rule (none: the probe's empty chain): the pod's address (4 bytes), and the chain others `goto`. */
  readonly check?: { readonly address: Buffer; readonly target: string };
}

const SOURCE_HOOK = /^type filter hook ingress device "([^"\\]{1,15})" priority (-?\d{1,10}); policy accept;$/;
const SOURCE_RULE = /^ip saddr != (\S+) goto (\S+)$/;

/** The source chain `chain` is (its name, hook and rule as the renderer writes them), or undefined. */
export function encodeSourceChain(chain: { readonly name: string; readonly hook?: string; readonly rules: readonly string[] }): SourceChain | undefined {
  const hook = chain.hook !== undefined ? SOURCE_HOOK.exec(chain.hook) : null;
  const rule = chain.rules.length === 1 ? SOURCE_RULE.exec(chain.rules[0]) : null;
  if (!hook || !rule || !CHAIN_NAME.test(chain.name) || chain.name.length >= NFT_NAME_MAXLEN || Buffer.byteLength(hook[1]) >= IFNAMSIZ) return undefined;
  if (!CHAIN_NAME.test(rule[2]) || rule[2].length >= NFT_NAME_MAXLEN) return undefined;
  const priority = Number(hook[2]);
  const address = encodeField('ipv4_addr', rule[1]);
  if (!address || priority < -0x8000_0000 || priority > 0x7fff_ffff) return undefined;
  return { name: chain.name, device: hook[1], priority, check: { address, target: rule[2] } };
}

const expression = (name: string, data: readonly Buffer[]): Buffer => nested(NFTA_LIST_ELEM, [attr(NFTA_EXPR_NAME, cstring(name)), nested(NFTA_EXPR_DATA, data)]);
const cmp = (op: number, value: Buffer): Buffer => expression('cmp', [attr(1, be32(NFT_REG_1)), attr(2, be32(op)), nested(3, [attr(NFTA_DATA_VALUE, value)])]);

/** NEWCHAIN: the base chain on the device's ingress hook, policy accept. */
function sourceChainAttrs(table: string, c: SourceChain): Buffer[] {
  const hook = nested(NFTA_CHAIN_HOOK, [attr(NFTA_HOOK_HOOKNUM, be32(NF_INET_INGRESS)), attr(NFTA_HOOK_PRIORITY, be32(c.priority)), attr(NFTA_HOOK_DEV, cstring(c.device))]);
  return [attr(NFTA_CHAIN_TABLE, cstring(table)), attr(NFTA_CHAIN_NAME, cstring(c.name)), hook, attr(NFTA_CHAIN_POLICY, be32(NF_ACCEPT)), attr(NFTA_CHAIN_TYPE, cstring('filter'))];
}

/**
 * NEWRULE: `ip saddr != <address> goto <target>`, as nft lays it out in an inet chain: the
 * protocol test nft adds for `ip`, the source address at offset 12 of the network header, and
 * the verdict.
 */
function sourceRuleAttrs(table: string, name: string, check: NonNullable<SourceChain['check']>): Buffer[] {
  const exprs = [
    expression('meta', [attr(1, be32(NFT_REG_1)), attr(2, be32(NFT_META_NFPROTO))]),
    cmp(NFT_CMP_EQ, Buffer.from([NFPROTO_IPV4])),
    expression('payload', [attr(1, be32(NFT_REG_1)), attr(2, be32(NFT_PAYLOAD_NETWORK_HEADER)), attr(3, be32(12)), attr(4, be32(4))]),
    cmp(NFT_CMP_NEQ, check.address),
    expression('immediate', [attr(1, be32(NFT_REG_VERDICT)), nested(2, [nested(NFTA_DATA_VERDICT, [attr(NFTA_VERDICT_CODE, be32(CHAIN_VERDICTS.goto)), attr(NFTA_VERDICT_CHAIN, cstring(check.target))])])]),
  ];
  return [attr(NFTA_RULE_TABLE, cstring(table)), attr(NFTA_RULE_CHAIN, cstring(name)), nested(NFTA_RULE_EXPRESSIONS, exprs)];
}

// ------------------------------------------------------------------ messages

function message(type: number, flags: number, seq: number, family: number, resId: number, attrs: readonly Buffer[]): Buffer {
  const nfgen = Buffer.alloc(4);
  nfgen.writeUInt8(family, 0);
  nfgen.writeUInt8(0, 1); // NFNETLINK_V0
  nfgen.writeUInt16BE(resId, 2);
  const body = Buffer.concat([nfgen, ...attrs]);
  const len = 16 + body.length;
  return Buffer.concat([u32(len), u16(type), u16(flags), u32(seq), u32(0), body]);
}

/** One element command of a batch: what it does, for the error report, and its elements. */
export interface ElementCommand {
  readonly verb: 'add' | 'delete';
  readonly family: number;
  readonly table: string;
  readonly set: string;
  readonly elements: readonly EncodedElement[];
  /** nft's text of the command, to name it when the kernel refuses it. */
  readonly text: string;
}

/**
 * A source chain added (NEWCHAIN, then NEWRULE for its rule, if any) or deleted (DELCHAIN, which takes
 * its rules with it). A removed chain and an added one of the same name in one batch: the
 * deletion goes first (encodeBatch sends commands in order).
 */
export interface ChainCommand {
  readonly verb: 'add chain' | 'delete chain';
  readonly family: number;
  readonly table: string;
  /** Deletions need the name only. */
  readonly chain: SourceChain | { readonly name: string };
  readonly text: string;
}

/** A table made (if missing: no NLM_F_EXCL) or deleted. */
export interface TableCommand {
  readonly verb: 'add table' | 'delete table';
  readonly family: number;
  readonly table: string;
  readonly text: string;
}

export type BatchCommand = ElementCommand | ChainCommand | TableCommand;

export interface Batch {
  readonly bytes: Buffer;
  /** seq → command, for the replies (every message asks for an ack; an added chain is two). */
  readonly commands: ReadonlyMap<number, BatchCommand>;
}

/** The messages (type, flags, attributes) of one command. */
function commandMessages(c: BatchCommand): { type: number; flags: number; attrs: Buffer[] }[] {
  const req = NLM_F_REQUEST | NLM_F_ACK;
  switch (c.verb) {
    case 'add':
    case 'delete':
      return [{ type: c.verb === 'add' ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM, flags: req | (c.verb === 'add' ? NLM_F_CREATE : 0), attrs: [attr(NFTA_SET_ELEM_LIST_TABLE, cstring(c.table)), attr(NFTA_SET_ELEM_LIST_SET, cstring(c.set)), nested(NFTA_SET_ELEM_LIST_ELEMENTS, c.elements.flatMap(elementAttrs))] }];
    case 'add chain': {
      if (!('device' in c.chain)) throw new Error(`add chain ${c.chain.name}: no hook`);
      const chain = { type: NFT_MSG_NEWCHAIN, flags: req | NLM_F_CREATE, attrs: sourceChainAttrs(c.table, c.chain) };
      if (!c.chain.check) return [chain];
      return [chain, { type: NFT_MSG_NEWRULE, flags: req | NLM_F_CREATE | NLM_F_APPEND, attrs: sourceRuleAttrs(c.table, c.chain.name, c.chain.check) }];
    }
    case 'delete chain':
      return [{ type: NFT_MSG_DELCHAIN, flags: req, attrs: [attr(NFTA_CHAIN_TABLE, cstring(c.table)), attr(NFTA_CHAIN_NAME, cstring(c.chain.name))] }];
    case 'add table':
    case 'delete table':
      return [{ type: c.verb === 'add table' ? NFT_MSG_NEWTABLE : NFT_MSG_DELTABLE, flags: req | (c.verb === 'add table' ? NLM_F_CREATE : 0), attrs: [attr(NFTA_TABLE_NAME, cstring(c.table))] }];
  }
}

/**
 * One transaction: BATCH_BEGIN, the commands' messages (one NEWSETELEM/DELSETELEM per element
 * command), BATCH_END. Every message asks for an ack, so success is one zero ack per message and
 * a refusal names its command.
 */
export function encodeBatch(commands: readonly BatchCommand[], firstSeq: number): Batch {
  const parts: Buffer[] = [];
  const bySeq = new Map<number, BatchCommand>();
  let seq = firstSeq;
  parts.push(message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq++, 0, NFNL_SUBSYS_NFTABLES, []));
  for (const c of commands) {
    for (const m of commandMessages(c)) {
      bySeq.set(seq, c);
      parts.push(message((NFNL_SUBSYS_NFTABLES << 8) | m.type, m.flags, seq++, c.family, 0, m.attrs));
    }
  }
  parts.push(message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES, []));
  return { bytes: Buffer.concat(parts), commands: bySeq };
}

export interface Ack {
  readonly seq: number;
  /** 0, or a negative errno. */
  readonly error: number;
}

/** The NLMSG_ERROR messages (acks and refusals) in one datagram; other messages are skipped. */
export function parseAcks(datagram: Buffer): Ack[] {
  const out: Ack[] = [];
  let off = 0;
  const r32 = (o: number) => (LE ? datagram.readUInt32LE(o) : datagram.readUInt32BE(o));
  const r16 = (o: number) => (LE ? datagram.readUInt16LE(o) : datagram.readUInt16BE(o));
  const ri32 = (o: number) => (LE ? datagram.readInt32LE(o) : datagram.readInt32BE(o));
  while (off + 16 <= datagram.length) {
    const len = r32(off);
    if (len < 16 || off + len > datagram.length) break;
    if (r16(off + 4) === NLMSG_ERROR && len >= 20) out.push({ seq: r32(off + 8), error: ri32(off + 16) });
    off += pad4(len);
  }
  return out;
}

/** The probe's table: made and deleted in the same batch, so it never exists outside it. */
export const PROBE_TABLE = 'weir_probe';

/**
 * Can this kernel hook a chain on a device that does not exist (Linux 6.16 and later keep a
 * netdev hook by name, bound whenever an interface of that name exists)? A batch that adds a
 * table, a source chain on a device name no interface has, and deletes the table again: the
 * kernel accepts it or refuses with ENOENT, and holds nothing afterwards either way.
 */
export function probeBatch(firstSeq: number, device: string): Batch {
  const chain: SourceChain = { name: 'probe', device, priority: -500 };
  return encodeBatch(
    [
      { verb: 'add table', family: NFPROTO_INET, table: PROBE_TABLE, text: `add table inet ${PROBE_TABLE}` },
      { verb: 'add chain', family: NFPROTO_INET, table: PROBE_TABLE, chain, text: `add chain inet ${PROBE_TABLE} probe (device ${device})` },
      { verb: 'delete table', family: NFPROTO_INET, table: PROBE_TABLE, text: `delete table inet ${PROBE_TABLE}` },
    ],
    firstSeq,
  );
}
