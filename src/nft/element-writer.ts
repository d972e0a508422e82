// The element fast path of the applier: a pod add or remove is a handful of set elements (and
// its veth's source chain, see src/render/filter.ts), and this writes them to the kernel in one
// nfnetlink batch (src/nft/netlink.ts) instead of one
// `nft -f`, whose cost grows with the table (it lists every chain and set first). The batch is
// one transaction: all of it is committed, or the kernel aborts it and nothing changes.

import { FAMILY, SOURCE_TABLE, TABLE } from '../render/names.js';
import { encodeBatch, encodeElement, encodeSourceChain, NFPROTO_INET, probeBatch, type Ack, type Batch, type BatchCommand, type EncodedElement } from './netlink.js';
import { errnoName, NfnetlinkSocket } from './netlink-socket.js';
import { elementKey, type NftChain, type NftSet } from '../render/ruleset.js';

/** Elements to add to or delete from one set (as the renderer writes them). */
export interface ElementChange {
  readonly verb: 'add' | 'delete';
  readonly set: NftSet;
  readonly elements: readonly string[];
}

export interface ElementWriteResult {
  /**
   * - `applied`: committed.
   * - `refused`: the kernel aborted the transaction; nothing changed.
   * - `unsupported`: not sent, this path cannot encode an element (the caller uses `nft -f`).
   * - `failed`: not sent, the socket or namespace failed; nothing changed.
   * - `unknown`: sent, but the acks did not all come back: what the kernel holds is unknown.
   */
  readonly outcome: 'applied' | 'refused' | 'unsupported' | 'failed' | 'unknown';
  /** For all but `applied`: which command and why, in one line. */
  readonly error?: string;
}

/** Source chains (a pod veth's ingress check, see ElementPatch) added and removed with the elements. */
export interface ChainChanges {
  readonly removed: readonly string[];
  readonly added: readonly NftChain[];
}

/** Writes element changes, each call one transaction. */
export interface ElementWriter {
  /** Chains removed go first, then the elements, then chains added. */
  write(changes: readonly ElementChange[], chains?: ChainChanges): Promise<ElementWriteResult>;
  /** Releases what the writer holds (a socket); a later write opens it again. */
  close(): void;
}

/** Elements per message, and the batch size beyond which `nft -f` is as good (a full sync). */
const ELEMENTS_PER_MESSAGE = 256;
const MAX_BATCH_BYTES = 128 * 1024;

let nextSeq = 1;

function commandText(verb: 'add' | 'delete', set: string, elements: readonly string[]): string {
  const shown = elements.length > 3 ? `${elements.slice(0, 3).join(', ')}, … (${elements.length})` : elements.join(', ');
  return `${verb} element ${FAMILY} ${TABLE} ${set} { ${shown} }`;
}

/** The commands of `changes` (and `chains`), or the first element or chain that cannot be encoded. */
export function elementCommands(changes: readonly ElementChange[], chains?: ChainChanges): { commands: BatchCommand[] } | { unsupported: string } {
  if (FAMILY !== 'inet') return { unsupported: `table family ${FAMILY}` };
  const commands: BatchCommand[] = [];
  // Source chains live in their own table (names.ts, SOURCE_TABLE), made if missing.
  for (const name of chains?.removed ?? []) commands.push({ verb: 'delete chain', family: NFPROTO_INET, table: SOURCE_TABLE, chain: { name }, text: `delete chain ${FAMILY} ${SOURCE_TABLE} ${name}` });
  for (const change of changes) {
    for (let i = 0; i < change.elements.length; i += ELEMENTS_PER_MESSAGE) {
      const texts = change.elements.slice(i, i + ELEMENTS_PER_MESSAGE);
      const encoded: EncodedElement[] = [];
      for (const text of texts) {
        // A delete names the key only; an add of a map element carries its verdict.
        const e = encodeElement(change.set, text, change.verb === 'add');
        if (!e) return { unsupported: `${change.set.name} (${change.set.type}${change.set.flags.length ? `, flags ${change.set.flags.join(',')}` : ''}): ${text}` };
        encoded.push(e);
      }
      // Named as nft would write it: a delete of a map element names its key.
      const shown = change.verb === 'delete' ? texts.map((t) => elementKey(change.set, t)) : texts;
      commands.push({ verb: change.verb, family: NFPROTO_INET, table: TABLE, set: change.set.name, elements: encoded, text: commandText(change.verb, change.set.name, shown) });
    }
  }
  if (chains?.added.length) commands.push({ verb: 'add table', family: NFPROTO_INET, table: SOURCE_TABLE, text: `add table ${FAMILY} ${SOURCE_TABLE}` });
  for (const c of chains?.added ?? []) {
    const chain = encodeSourceChain(c);
    if (!chain) return { unsupported: `chain ${c.name} (${c.hook ?? 'regular'})` };
    commands.push({ verb: 'add chain', family: NFPROTO_INET, table: SOURCE_TABLE, chain, text: `add chain ${FAMILY} ${SOURCE_TABLE} ${c.name} { ${c.hook ?? ''} ${c.rules.join('; ')} }` });
  }
  return { commands };
}

/** A batch encoded from the next free sequence numbers (its messages' and BATCH_BEGIN/END's). */
function nextBatch(encode: (firstSeq: number) => Batch): { batch: Batch; firstSeq: number } {
  const firstSeq = nextSeq;
  const batch = encode(firstSeq);
  nextSeq = (nextSeq + batch.commands.size + 2) % 0x7fff_ffff || 1;
  return { batch, firstSeq };
}

/** What the acks of a batch say (see ElementWriteResult). */
function outcomeOf(acks: readonly Ack[], batch: Batch, firstSeq: number): ElementWriteResult {
  const refusals: string[] = [];
  let lost = false;
  const acked = new Set<number>();
  const lastSeq = firstSeq + batch.commands.size + 1;
  for (const ack of acks) {
    if (ack.seq === -1) lost = true;
    else if (ack.seq < firstSeq || ack.seq > lastSeq) continue; // not this batch's
    else if (ack.error === 0) acked.add(ack.seq);
    else {
      const command = batch.commands.get(ack.seq);
      // A refusal of the batch itself (seq of BATCH_BEGIN) is a failed commit.
      refusals.push(`${command?.text ?? 'commit'}: ${errnoName(ack.error)}`);
    }
  }
  // nf_tables aborts the whole batch when any message fails, and reports every failure.
  if (refusals.length > 0) return { outcome: 'refused', error: refusals.slice(0, 3).join('; ') };
  if (lost || [...batch.commands.keys()].some((seq) => !acked.has(seq))) return { outcome: 'unknown', error: `${acked.size} of ${batch.commands.size} acks received` };
  return { outcome: 'applied' };
}

/**
 * Does the kernel of `netns` keep a netdev hook by interface name (Linux 6.16 and later: a
 * chain may hook a name no interface has, and follows an interface deleted and made anew under
 * it)? Source chains rely on it. One batch that leaves nothing behind (netlink.ts, probeBatch);
 * false when the kernel refuses it or the socket cannot be opened.
 */
export function namedHooksSupported(netns?: string): boolean {
  const socket = new NfnetlinkSocket(netns);
  try {
    const { batch, firstSeq } = nextBatch((seq) => probeBatch(seq, 'weir-nx-probe'));
    return outcomeOf(socket.transact(batch.bytes), batch, firstSeq).outcome === 'applied';
  } catch {
    return false;
  } finally {
    socket.close();
  }
}

/** The writer for nf_tables in `netns` (the process's own namespace when undefined). */
export function netlinkElementWriter(netns?: string): ElementWriter {
  const socket = new NfnetlinkSocket(netns);
  const write = async (changes: readonly ElementChange[], chains?: ChainChanges): Promise<ElementWriteResult> => {
    const planned = elementCommands(changes, chains);
    if ('unsupported' in planned) return { outcome: 'unsupported', error: `cannot encode ${planned.unsupported}` };
    if (planned.commands.length === 0) return { outcome: 'applied' };
    const { batch, firstSeq } = nextBatch((seq) => encodeBatch(planned.commands, seq));
    if (batch.bytes.length > MAX_BATCH_BYTES) return { outcome: 'unsupported', error: `batch of ${batch.bytes.length} bytes` };
    let acks;
    try {
      acks = socket.transact(batch.bytes);
    } catch (error) {
      return { outcome: 'failed', error: error instanceof Error ? error.message : String(error) };
    }
    return outcomeOf(acks, batch, firstSeq);
  };
  return { write, close: () => socket.close() };
}
