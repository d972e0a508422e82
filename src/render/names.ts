// Deterministic nftables names, after kube-proxy's nftables proxier: every chain, set and
// counter name is derived from the object it stands for, so two agents (or one agent before
// and after a restart) rendering the same desired state produce byte-identical rulesets, and
// a partial sync can diff by name.
//
// nft identifiers must match [a-zA-Z_][a-zA-Z0-9_./-]*; the kernel allows 255 bytes, but
// `nft list` output stays readable with short names, so names are capped at MAX_NAME and
// always end in a hash of the full source text (sanitizing `x/a-b` and `x/a_b` to the same
// characters must not make them collide).

import { createHash } from 'node:crypto';

export const TABLE = 'weir';
export const FAMILY = 'inet';
/**
 * The source chains' table (src/render/filter.ts, sourceChain): apart from `TABLE` because the
 * kernel validates a table's whole chain graph at the commit of any rule with a verdict, and a
 * pod add brings one such rule — in `TABLE`, that walk of thousands of chains cost ~9 ms per pod
 * add at 10k pods; here it walks the source chains alone. Same family; part of the Ruleset
 * model all the same (rules are `NftChain`s with isSourceChain), written by the same scripts
 * and batches.
 */
export const SOURCE_TABLE = 'weir_src';
/**
 * In SOURCE_TABLE: what the source chains drop is counted and recorded there as `DENIED_SET` and
 * `HITS_SET` record the rest (same types, same reason ids), through SPOOFED_CHAIN; the flow
 * source reads both tables.
 */
export const SOURCE_DENIED_SET = 'src_denied';
export const SOURCE_HITS_SET = 'src_hits';
export const SPOOFED_CHAIN = 'spoofed';

// The sets another process reads from the kernel (src/flows/node-source.ts: `nft -j list set
// inet weir denied|hits`): one definition, imported by the renderer that declares them and the
// flow source that reads them.
/** Flows the ruleset denied (or audited), recorded from the packet path. */
export const DENIED_SET = 'denied';
/** Per-reason hit counters, keyed by the reason id. */
export const HITS_SET = 'hits';
export const MAX_NAME = 64;

/**
 * Hashes of short names, remembered: an agent renders the same group and chain names batch
 * after batch, and one sha256 per group a changed pod is in was a third of a churn batch's cost.
 * Bounded: cleared when full; long texts (shared chains' rules) are not kept.
 */
const hashes = new Map<string, string>();
const HASHES_KEPT = 100_000;

export function shortHash(text: string, length = 8): string {
  if (length !== 8 || text.length > 256) return createHash('sha256').update(text).digest('hex').slice(0, length);
  let h = hashes.get(text);
  if (h === undefined) {
    if (hashes.size >= HASHES_KEPT) hashes.clear();
    h = createHash('sha256').update(text).digest('hex').slice(0, 8);
    hashes.set(text, h);
  }
  return h;
}

/** `<prefix>_<readable>_<hash>`, at most MAX_NAME characters. */
export function nftName(prefix: string, readable: string, hashInput: string = readable): string {
  const clean = readable
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '');
  const hash = shortHash(hashInput);
  const room = MAX_NAME - prefix.length - hash.length - 2;
  const body = clean.length > room ? clean.slice(0, room) : clean;
  return body ? `${prefix}_${body}_${hash}` : `${prefix}_${hash}`;
}

/**
 * kube-proxy's masquerade mark (`--masquerade-bit 14`): the service NAT section sets it on a
 * connection's first packet when the connection is to be masqueraded (NodePort with
 * externalTrafficPolicy Cluster, hairpin), its postrouting chain clears it and translates the
 * source; the policy filter reads it to judge such a connection's ingress after translation.
 */
export const MASQUERADE_MARK = 0x4000;
