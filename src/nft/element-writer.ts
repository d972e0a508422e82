// The element fast path of the applier: a pod add or remove is a handful of set elements, and
// this writes them to the kernel in one nfnetlink batch (src/nft/netlink.ts) instead of one
// `nft -f`, whose cost grows with the table (it lists every chain and set first). The batch is
// one transaction: all of it is committed, or the kernel aborts it and nothing changes.

import { FAMILY, TABLE } from '../render/names.js';
import { encodeBatch, encodeElement, NFPROTO_INET, type ElementCommand, type EncodedElement } from './netlink.js';
import { errnoName, NfnetlinkSocket } from './netlink-socket.js';
import { elementKey, type NftSet } from '../render/ruleset.js';

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

/** Writes element changes, each call one transaction. */
export interface ElementWriter {
  write(changes: readonly ElementChange[]): Promise<ElementWriteResult>;
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

/** The commands of `changes`, or the first element that cannot be encoded. */
export function elementCommands(changes: readonly ElementChange[]): { commands: ElementCommand[] } | { unsupported: string } {
  if (FAMILY !== 'inet') return { unsupported: `table family ${FAMILY}` };
  const commands: ElementCommand[] = [];
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
  return { commands };
}

/** The writer for nf_tables in `netns` (the process's own namespace when undefined). */
export function netlinkElementWriter(netns?: string): ElementWriter {
  const socket = new NfnetlinkSocket(netns);
  const write = async (changes: readonly ElementChange[]): Promise<ElementWriteResult> => {
    const planned = elementCommands(changes);
    if ('unsupported' in planned) return { outcome: 'unsupported', error: `cannot encode ${planned.unsupported}` };
    if (planned.commands.length === 0) return { outcome: 'applied' };
    const firstSeq = nextSeq;
    const batch = encodeBatch(planned.commands, firstSeq);
    nextSeq = (nextSeq + planned.commands.length + 2) % 0x7fff_ffff || 1;
    if (batch.bytes.length > MAX_BATCH_BYTES) return { outcome: 'unsupported', error: `batch of ${batch.bytes.length} bytes` };
    let acks;
    try {
      acks = socket.transact(batch.bytes);
    } catch (error) {
      return { outcome: 'failed', error: error instanceof Error ? error.message : String(error) };
    }
    const refusals: string[] = [];
    let lost = false;
    const acked = new Set<number>();
    const lastSeq = firstSeq + planned.commands.length + 1;
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
  };
  return { write, close: () => socket.close() };
}
