// A port as users write it on a command line: `80`, `80/TCP`, `53/udp`, or (where a named port
// means something) `http`, `dns/UDP`. One syntax and one parser for every command (`weir
// explain --port`, `weir lab probe --port`); each caller says what it accepts beyond it
// (named ports, SCTP) and wraps the error in its own type. Policies' ports are not text:
// they are the model's (src/model) and compile to src/policy/rules.ts PortSpec.

import { PROTOCOLS, type Protocol } from '../model/cluster.js';

export interface PortText {
  /** A number in 1–65535, or a container port name. */
  readonly port: number | string;
  /** Absent when the text names none (callers default it, usually to TCP). */
  readonly protocol?: Protocol;
}

export class PortTextError extends Error {
  constructor(
    readonly text: string,
    readonly reason: 'syntax' | 'protocol' | 'range' | 'named',
    message: string,
    /** The protocol as written, when it is the problem. */
    readonly protocol?: string,
  ) {
    super(message);
    this.name = 'PortTextError';
  }
}

/** Parses `PORT[/PROTOCOL]`; a name instead of a number only with `named`. */
export function parsePortText(text: string, opts: { readonly named?: boolean } = {}): PortText {
  const m = /^([A-Za-z0-9-]+)(?:\/([A-Za-z]+))?$/.exec(text.trim());
  if (!m) throw new PortTextError(text, 'syntax', `invalid port "${text}": expected PORT[/PROTOCOL], e.g. 80/TCP, 53/UDP${opts.named ? ' or http' : ''}`);
  const protoText = m[2]?.toUpperCase();
  if (protoText !== undefined && !(PROTOCOLS as readonly string[]).includes(protoText)) {
    throw new PortTextError(text, 'protocol', `invalid protocol "${m[2]}" in port "${text}": expected TCP, UDP or SCTP`, m[2]);
  }
  const protocol = protoText as Protocol | undefined;
  if (/^\d+$/.test(m[1])) {
    const port = Number(m[1]);
    if (port < 1 || port > 65535) throw new PortTextError(text, 'range', `invalid port "${text}": port must be 1-65535`);
    return { port, ...(protocol ? { protocol } : {}) };
  }
  if (!opts.named) throw new PortTextError(text, 'named', `invalid port "${text}": expected a port number`);
  return { port: m[1], ...(protocol ? { protocol } : {}) };
}
