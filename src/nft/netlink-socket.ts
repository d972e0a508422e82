// One nfnetlink round trip from Node: a NETLINK_NETFILTER socket opened inside a network
// namespace, one batch sent, the kernel's acks read back. Node has no AF_NETLINK socket, so
// the few libc calls go through koffi (an FFI whose npm package carries its prebuilt binary).
//
// A socket per batch, opened inside the namespace by setns(2) on the calling thread and
// closed before returning: nothing outlives the call — no process to restart or leak, no
// descriptor that would keep a deleted namespace alive. Opening costs tens of microseconds.
// The kernel handles a batch within sendto(2) (netlink input runs in the sender's context),
// so every ack is queued when sendto returns and is read without blocking.

import { closeSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { parseAcks, type Ack } from './netlink.js';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_NETFILTER = 12;
const SOL_NETLINK = 270;
/** Refusals quote only the header of the refused message, not its elements. */
const NETLINK_CAP_ACK = 10;
const CLONE_NEWNET = 0x40000000;
const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;
const EINTR = 4;
/** The netns folder of `ip netns` (iproute2's NETNS_RUN_DIR). */
const NETNS_DIR = '/run/netns';

interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  setsockopt(fd: number, level: number, name: number, value: Buffer, len: number): number;
  sendto(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: number): number;
  recv(fd: number, buf: Buffer, len: number, flags: number): number;
  close(fd: number): number;
  setns(fd: number, nstype: number): number;
  errno(): number;
}

let libc: Libc | Error | undefined;

/** libc through koffi, loaded on first use (the analyzer never needs it). */
function load(): Libc {
  if (libc instanceof Error) throw libc;
  if (libc) return libc;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    const lib = koffi.load('libc.so.6');
    const fn = <T>(decl: string): T => lib.func(decl) as T;
    libc = {
      socket: fn('int socket(int domain, int type, int protocol)'),
      setsockopt: fn('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)'),
      sendto: fn('intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)'),
      recv: fn('intptr_t recv(int fd, _Out_ void *buf, size_t len, int flags)'),
      close: fn('int close(int fd)'),
      setns: fn('int setns(int fd, int nstype)'),
      errno: () => koffi.errno(),
    };
    return libc;
  } catch (error) {
    libc = new Error(`netlink unavailable: cannot load libc through koffi (${error instanceof Error ? error.message : String(error)})`);
    throw libc;
  }
}

/** An errno from a libc call, with the call it came from. */
export class NetlinkError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call}: ${errnoName(errno)}`);
    this.name = 'NetlinkError';
  }
}

/** `ENOENT (No such file or directory)` for -2 or 2. */
export function errnoName(errno: number): string {
  const n = Math.abs(errno);
  const name = Object.entries(constants.errno).find(([, v]) => v === n)?.[0] ?? `errno ${n}`;
  return `${name}${ERRNO_TEXT[name] ? ` (${ERRNO_TEXT[name]})` : ''}`;
}

/** What nf_tables means by the errors it returns for element commands. */
const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ENOENT: 'no such table, set, element or chain',
  EEXIST: 'element exists with other data',
  EBUSY: 'element exists with other data, or object in use',
  EINVAL: 'invalid element for this set',
  ENOSPC: 'set is full',
  ERANGE: 'value out of range',
  EPERM: 'not permitted',
  EOPNOTSUPP: 'not supported',
  ENOBUFS: 'acks lost: receive buffer full',
};

/** A NETLINK_NETFILTER socket in `netns` (the caller's own when undefined). */
function openSocket(c: Libc, netns: string | undefined): number {
  if (netns === undefined) {
    const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (fd < 0) throw new NetlinkError('socket', c.errno());
    return fd;
  }
  if (netns === '' || netns.includes('/') || netns.startsWith('.')) throw new Error(`netlink: invalid netns name ${JSON.stringify(netns)}`);
  // Both descriptors are opened before leaving: once in the target namespace, the way back
  // must not depend on anything that could fail there.
  const own = openSync('/proc/thread-self/ns/net', 'r');
  let target: number;
  try {
    target = openSync(`${NETNS_DIR}/${netns}`, 'r');
  } catch (error) {
    closeSync(own);
    throw new Error(`netlink: netns ${netns}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  try {
    if (c.setns(target, CLONE_NEWNET) !== 0) throw new NetlinkError(`setns ${netns}`, c.errno());
    let fd = -1;
    let err = 0;
    try {
      fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
      if (fd < 0) err = c.errno();
    } finally {
      // Sockets keep the namespace they were made in; this thread goes home at once. Staying
      // in the node's namespace would move every later socket of the process there.
      if (c.setns(own, CLONE_NEWNET) !== 0) {
        process.stderr.write(`weir: cannot return to the process's network namespace after setns into ${netns} (errno ${c.errno()}); exiting\n`);
        process.abort();
      }
    }
    if (fd < 0) throw new NetlinkError('socket', err);
    return fd;
  } finally {
    closeSync(target);
    closeSync(own);
  }
}

/**
 * Sends one batch to nf_tables in `netns` and returns the acks it got. Throws NetlinkError when
 * the batch could not be sent (then the kernel saw nothing).
 */
export function nfnetlinkTransact(netns: string | undefined, batch: Buffer): Ack[] {
  const c = load();
  const fd = openSocket(c, netns);
  try {
    const one = Buffer.alloc(4);
    one.writeUInt32LE(1);
    c.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, one, 4); // best effort: without it acks are longer
    const addr = Buffer.alloc(12); // sockaddr_nl: the kernel (pid 0), no groups
    addr.writeUInt16LE(AF_NETLINK, 0);
    let sent: number;
    do sent = c.sendto(fd, batch, batch.length, 0, addr, addr.length);
    while (sent < 0 && c.errno() === EINTR);
    if (sent < 0) throw new NetlinkError('sendto', c.errno());
    if (sent !== batch.length) throw new NetlinkError('sendto (short)', 0);
    const acks: Ack[] = [];
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = c.recv(fd, buf, buf.length, MSG_DONTWAIT);
      if (n < 0) {
        const e = c.errno();
        if (e === EINTR) continue;
        if (e === EAGAIN) break;
        // ENOBUFS: acks were dropped; what the kernel did is unknown to us.
        acks.push({ seq: -1, error: -e });
        break;
      }
      if (n === 0) break;
      acks.push(...parseAcks(buf.subarray(0, n)));
    }
    return acks;
  } finally {
    c.close(fd);
  }
}
