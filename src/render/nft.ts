// Typed nftables objects, after kube-proxy's knftables: sections build rules and elements as
// data (matches, statements, a verdict; element keys and values) and this module alone turns
// them into nft syntax. Nothing downstream parses rule text back: decisions about a rule (does
// it count? does it end in `return`?) are made on these objects.
//
// The rendered text is canonical — equal objects give byte-identical text — because the
// ruleset model (ruleset.ts) stores rules and elements as that text: the applier diffs rulesets
// as sets of strings, and the kernel is given exactly what tests inspect.

/** Packet fields the rulesets match on or record. */
export type Field =
  | 'ip saddr'
  | 'ip daddr'
  | 'meta l4proto'
  | 'meta nfproto'
  | 'meta mark'
  | 'th dport'
  | 'iifname'
  | 'oifname'
  /** The input/output interface by index (4 bytes; nft resolves names when it loads a rule). */
  | 'iif'
  | 'oif'
  | 'ct state'
  | 'ct mark'
  /** `ct status dnat`, `ct status snat`: the connection is translated. */
  | 'ct status'
  /**
   * `fib daddr . iif oif`: the interface the route to the destination leaves by, found only when
   * it is the interface the packet came in on (then `exists`): a packet going back out where it
   * came from — a pod reaching itself through its Service (hairpin).
   */
  | 'fib daddr . iif oif'
  /** `fib saddr type local`: the packet's source is one of this host's addresses. */
  | 'fib saddr type'
  | `${'tcp' | 'udp' | 'sctp'} dport`
  /** A random number in [0, n): the key of a weighted endpoint map (service NAT). */
  | `numgen ${'random' | 'inc'} mod ${number}`;

/** A literal: a number, an address or range, a keyword (`tcp`), or a quoted string (see `quoted`). */
export type Literal = string | number;

export type Match =
  /** `<fields joined by " . "> [!=] @set` */
  | { readonly kind: 'set'; readonly fields: readonly Field[]; readonly set: string; readonly negate?: boolean }
  /** `<field> <value>`, or `<field> { a, b }` for several values (an anonymous set). */
  | { readonly kind: 'value'; readonly field: Field; readonly values: readonly Literal[] }
  /** `ct state established,related` */
  | { readonly kind: 'flags'; readonly field: Field; readonly flags: readonly string[] }
  /** `<field> & <mask> == <value>`: some bits of a mark. */
  | { readonly kind: 'bits'; readonly field: Field; readonly mask: number; readonly value: number };

export type Statement =
  /** `meta mark set <value>` */
  | { readonly kind: 'mark'; readonly value: number }
  /** `meta mark set meta mark or|xor <bits>`: sets or clears bits, keeping the others (another component's). */
  | { readonly kind: 'markBits'; readonly op: 'or' | 'xor'; readonly bits: number }
  /** `snat ip to <ip> fully-random`, or `masquerade fully-random` without an address. */
  | { readonly kind: 'snat'; readonly ip?: string }
  /** `update @set { <key joined by " . "> [counter] }`: adds to (or refreshes in) a dynamic set from the packet path. */
  | { readonly kind: 'update'; readonly set: string; readonly key: readonly (Field | Literal)[]; readonly counter?: boolean }
  /** `dnat ip to <ip>:<port>` (after a `meta l4proto` match, which nft requires for the port). */
  | { readonly kind: 'dnat'; readonly ip: string; readonly port: number }
  /** `dnat ip to <key> map @<map>`: the address and port from a data map (`ip daddr . tcp dport` data). */
  | { readonly kind: 'dnatMap'; readonly key: Field; readonly map: string }
  /** `ct mark set <field> map @<map>`: a data-map lookup; a miss ends the rule (nothing after it runs). */
  | { readonly kind: 'ctMarkFromMap'; readonly field: Field; readonly map: string };

export type Verdict =
  | { readonly kind: 'accept' | 'drop' | 'return' }
  | { readonly kind: 'jump' | 'goto'; readonly chain: string }
  /** `reject with tcp reset` / `reject` (ICMP port unreachable): refuses at once, never hangs. */
  | { readonly kind: 'reject'; readonly tcpReset: boolean }
  /** `<fields> vmap @map` */
  | { readonly kind: 'vmap'; readonly fields: readonly Field[]; readonly map: string };

export interface Rule {
  readonly matches: readonly Match[];
  readonly statements: readonly Statement[];
  readonly verdict?: Verdict;
}

/** The end of a rule (what happens once its peers and ports matched), appended to a match prefix. */
export type RuleEnd = Rule;

/** A set or map element: key parts (a concatenation when several), and a map's verdict or data. */
export interface Element {
  readonly key: readonly Literal[];
  readonly value?: Verdict | Literal;
}

/** A 32-bit mark as nft lists it (`0x40000005`), so rendered elements equal the kernel's listing. */
export function markLiteral(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`mark out of range: ${n}`);
  return `0x${n.toString(16).padStart(8, '0')}`;
}

// ------------------------------------------------------------------ builders

export const accept: Verdict = { kind: 'accept' };
export const drop: Verdict = { kind: 'drop' };
export const ret: Verdict = { kind: 'return' };
export const jump = (chain: string): Verdict => ({ kind: 'jump', chain });
export const goto = (chain: string): Verdict => ({ kind: 'goto', chain });
export const reject = (tcpReset: boolean): Verdict => ({ kind: 'reject', tcpReset });
export const vmap = (fields: readonly Field[], map: string): Verdict => ({ kind: 'vmap', fields, map });

export const inSet = (fields: Field | readonly Field[], set: string, negate = false): Match => ({ kind: 'set', fields: typeof fields === 'string' ? [fields] : fields, set, ...(negate ? { negate } : {}) });
export const is = (field: Field, ...values: readonly Literal[]): Match => ({ kind: 'value', field, values });
export const flags = (field: Field, ...f: readonly string[]): Match => ({ kind: 'flags', field, flags: f });

export const setMark = (value: number): Statement => ({ kind: 'mark', value });
export const markBits = (op: 'or' | 'xor', bits: number): Statement => ({ kind: 'markBits', op, bits });
export const snat = (ip: string | undefined): Statement => (ip === undefined ? { kind: 'snat' } : { kind: 'snat', ip });
export const bits = (field: Field, mask: number, value: number): Match => ({ kind: 'bits', field, mask, value });
export const dnat = (ip: string, port: number): Statement => ({ kind: 'dnat', ip, port });
export const dnatMap = (key: Field, map: string): Statement => ({ kind: 'dnatMap', key, map });
export const ctMarkFromMap = (field: Field, map: string): Statement => ({ kind: 'ctMarkFromMap', field, map });
export const update = (set: string, key: readonly (Field | Literal)[], counter = false): Statement => ({ kind: 'update', set, key, ...(counter ? { counter } : {}) });

/** A rule from its parts; `then` is appended (a rule end shared by several match prefixes). */
export function rule(matches: readonly Match[], then: RuleEnd): Rule {
  return matches.length === 0 ? then : { matches: [...matches, ...then.matches], statements: then.statements, verdict: then.verdict };
}
export const end = (verdict: Verdict | undefined, ...statements: readonly Statement[]): RuleEnd => ({ matches: [], statements, verdict });

/** A string literal (`"wp*"`, an interface name): quoted, as nft needs for wildcards and odd names. */
export function quoted(text: string): string {
  if (text.includes('"')) throw new Error(`nft string literal with a double quote: ${text}`);
  return `"${text}"`;
}

// ------------------------------------------------------------------ rendering

function matchText(m: Match): string {
  switch (m.kind) {
    case 'set':
      return `${m.fields.join(' . ')} ${m.negate ? '!= ' : ''}@${m.set}`;
    case 'value':
      return m.values.length === 1 ? `${m.field} ${m.values[0]}` : `${m.field} { ${m.values.join(', ')} }`;
    case 'flags':
      return `${m.field} ${m.flags.join(',')}`;
    case 'bits':
      return `${m.field} & ${markLiteral(m.mask)} == ${markLiteral(m.value)}`;
  }
}

function statementText(s: Statement): string {
  switch (s.kind) {
    case 'mark':
      return `meta mark set ${s.value}`;
    case 'markBits':
      return `meta mark set meta mark ${s.op} ${markLiteral(s.bits)}`;
    case 'snat':
      return s.ip === undefined ? 'masquerade fully-random' : `snat ip to ${s.ip} fully-random`;
    case 'update':
      return `update @${s.set} { ${s.key.join(' . ')}${s.counter ? ' counter' : ''} }`;
    case 'dnat':
      return `dnat ip to ${s.ip}:${s.port}`;
    case 'dnatMap':
      return `dnat ip to ${s.key} map @${s.map}`;
    case 'ctMarkFromMap':
      return `ct mark set ${s.field} map @${s.map}`;
  }
}

export function verdictText(v: Verdict): string {
  switch (v.kind) {
    case 'jump':
    case 'goto':
      return `${v.kind} ${v.chain}`;
    case 'vmap':
      return `${v.fields.join(' . ')} vmap @${v.map}`;
    case 'reject':
      return v.tcpReset ? 'reject with tcp reset' : 'reject';
    default:
      return v.kind;
  }
}

/** A rule in nft syntax: matches, then statements, then the verdict. */
export function ruleText(r: Rule): string {
  const parts = r.matches.map(matchText);
  for (const s of r.statements) parts.push(statementText(s));
  if (r.verdict) parts.push(verdictText(r.verdict));
  return parts.join(' ');
}

/** The key of an element in nft syntax (what `delete element` names). */
export function elementKeyText(e: Element): string {
  return e.key.join(' . ');
}

/** An element in nft syntax: `key`, or `key : verdict` / `key : data` in a map. */
export function elementText(e: Element): string {
  if (e.value === undefined) return elementKeyText(e);
  return `${elementKeyText(e)} : ${typeof e.value === 'object' ? verdictText(e.value) : e.value}`;
}

/** The rule does something observable besides its verdict (counts or records). */
export function records(r: Rule): boolean {
  return r.statements.some((s) => s.kind === 'update');
}
