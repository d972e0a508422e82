// One nfnetlink round trip from Node: a NETLINK_NETFILTER socket opened inside a network
// namespace, one batch sent, the kernel's acks read back. Node has no AF_NETLINK socket, so
// the few libc calls go through koffi (an FFI whose npm package carries its prebuilt binary).
//
// The socket is opened inside the namespace by setns(2) on the calling thread, which returns
// to its own namespace at once: no process to start, restart or leak. The kernel handles a
// batch within sendto(2) (netlink input runs in the sender's context), so every ack is queued
// when sendto returns and is read without blocking.
//
// One socket serves a burst of changes and is closed when idle, on a libuv worker thread:
// releasing a NETLINK_NETFILTER socket makes nf_tables flush its deferred destroy work under
// the commit mutex (nft_rcv_nl_event, NETLINK_URELEASE), which waits for an RCU grace period
// after a commit that deleted elements — measured ~15 ms per pod removal here (every `nft`
// process pays it at exit), and the next batch would wait for it too.

import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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
  closeAsync(fd: number, done: (error: unknown, result: number) => void): void;
  setns(fd: number, nstype: number): number;
  ifNameToIndex(name: string): number;
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
    const close = lib.func('int close(int fd)');
    libc = {
      socket: fn('int socket(int domain, int type, int protocol)'),
      setsockopt: fn('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)'),
      sendto: fn('intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)'),
      recv: fn('intptr_t recv(int fd, _Out_ void *buf, size_t len, int flags)'),
      close: (fd) => close(fd) as number,
      closeAsync: (fd, done) => close.async(fd, done),
      setns: fn('int setns(int fd, int nstype)'),
      ifNameToIndex: fn('unsigned int if_nametoindex(const char *ifname)'),
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

/**
 * Runs `fn` with the calling thread in `netns` (the caller's own when undefined) and brings
 * the thread back at once. Sockets keep the namespace they were made in; staying in the
 * node's namespace would move every later socket of the process there.
 */
function inNamespace<T>(c: Libc, netns: string | undefined, fn: () => T): T {
  if (netns === undefined) return fn();
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
    try {
      return fn();
    } finally {
      if (c.setns(own, CLONE_NEWNET) !== 0) {
        process.stderr.write(`weir: cannot return to the process's network namespace after setns into ${netns} (errno ${c.errno()}); exiting\n`);
        process.abort();
      }
    }
  } finally {
    closeSync(target);
    closeSync(own);
  }
}

/** A NETLINK_NETFILTER socket in `netns` (the caller's own when undefined). */
function openSocket(c: Libc, netns: string | undefined): number {
  let err = 0;
  const fd = inNamespace(c, netns, () => {
    const made = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (made < 0) err = c.errno();
    return made;
  });
  if (fd < 0) throw new NetlinkError('socket', err);
  return fd;
}

/** Interface names the kernel accepts (IFNAMSIZ − 1 bytes, no `/`, no whitespace, not `.`/`..`). */
const IFNAME = /^(?!\.{1,2}$)[^/\s:]{1,15}$/;
/** The distinct names of `names` the kernel accepts as interface names (others are left out). */
const validNames = (names: Iterable<string>): string[] => [...new Set(names)].filter((n) => IFNAME.test(n) && Buffer.byteLength(n) <= 15);

/** libc through koffi, or undefined where it cannot be loaded (the callers fall back to processes). */
function libcIfLoadable(): Libc | undefined {
  try {
    return load();
  } catch {
    return undefined;
  }
}

/**
 * The interface index of each name in `netns` (the caller's own when undefined), as
 * if_nametoindex(3) answers it there; a name with no interface (or not a valid name) is absent
 * from the result. Without libc through koffi it asks iproute2 (interfaceIndexesByIp). Throws
 * only when the namespace cannot be entered, or neither way works.
 */
export function interfaceIndexes(netns: string | undefined, names: Iterable<string>): Map<string, number> {
  const wanted = validNames(names);
  const out = new Map<string, number>();
  if (wanted.length === 0) return out;
  let c: Libc;
  try {
    c = load();
  } catch (error) {
    // Without libc through koffi, iproute2 answers the same question: a process per call, so
    // slower, but anti-spoofing must not go without its indexes.
    try {
      return interfaceIndexesByIp(netns, wanted);
    } catch (fallback) {
      throw new Error(`${error instanceof Error ? error.message : String(error)}; and ${fallback instanceof Error ? fallback.message : String(fallback)}`, { cause: fallback });
    }
  }
  inNamespace(c, netns, () => {
    for (const name of wanted) {
      const index = c.ifNameToIndex(name);
      if (index > 0) out.set(name, index);
    }
  });
  return out;
}

/**
 * Turns on the kernel's strict reverse-path filter (`rp_filter` 1) on each named interface of
 * `netns` (the caller's own when undefined): a packet arriving on it whose source address is
 * not routed back through it is dropped by the kernel, on every packet, at the cost of one
 * route lookup. Answers, per name, whether the check is in force: the write succeeded and
 * `all.rp_filter` is not 2 (the kernel uses the larger of `all` and the interface's value, and
 * 2, loose, accepts any routable source). Without libc through koffi, through `sysctl` in
 * `ip netns exec`. A name that cannot be set is false; throws only when the namespace cannot
 * be entered.
 */
export function strictSourceCheck(netns: string | undefined, names: Iterable<string>): Map<string, boolean> {
  const wanted = validNames(names);
  const out = new Map<string, boolean>();
  if (wanted.length === 0) return out;
  const c = libcIfLoadable();
  if (c === undefined) return strictSourceCheckBySysctl(netns, wanted);
  inNamespace(c, netns, () => {
    // /proc/sys/net is the namespace of the thread that opens it: this one, while in `netns`.
    let all: string;
    try {
      all = readFileSync(rpFilterPath('all'), 'utf8').trim();
    } catch {
      all = '';
    }
    for (const name of wanted) {
      try {
        writeFileSync(rpFilterPath(name), '1');
        out.set(name, strictAllowedBy(all));
      } catch {
        out.set(name, false);
      }
    }
  });
  return out;
}

/**
 * Is the strict reverse-path filter still in force on each named interface of `netns`
 * (`rp_filter` reads 1 and `all.rp_filter` is not 2)? Reads only: the agent asks this on its
 * interface timer, so that a filter someone turned off is turned on again (or, where it cannot
 * be, anti-spoofing goes back to every packet). A missing interface is false.
 */
export function sourceCheckInForce(netns: string | undefined, names: Iterable<string>): Map<string, boolean> {
  const wanted = validNames(names);
  if (wanted.length === 0) return new Map();
  const c = libcIfLoadable();
  if (c === undefined) return sourceCheckInForceByGrep(netns, wanted);
  const values = inNamespace(c, netns, () => {
    const read = new Map<string, string>();
    for (const p of [rpFilterPath('all'), ...wanted.map(rpFilterPath)]) {
      try {
        read.set(p, readFileSync(p, 'utf8').trim());
      } catch {
        /* no such interface: absent */
      }
    }
    return read;
  });
  return inForce(wanted, values);
}

const rpFilterPath = (name: string): string => `/proc/sys/net/ipv4/conf/${name}/rp_filter`;
/**
 * Does `all.rp_filter` (as read; undefined or empty: unreadable) leave an interface's strict
 * setting in force? The kernel uses the larger of the two, so 2 (loose) overrides it.
 */
const strictAllowedBy = (all: string | undefined): boolean => all === '0' || all === '1';

/** Per name: its `rp_filter` read 1 and `all`'s is 0 or 1, from values by path. */
function inForce(names: readonly string[], values: ReadonlyMap<string, string>): Map<string, boolean> {
  const all = values.get(rpFilterPath('all'));
  return new Map(names.map((name) => [name, values.get(rpFilterPath(name)) === '1' && strictAllowedBy(all)]));
}

/**
 * sourceCheckInForce through one `grep -H .` process (`path:value` for each file it can read),
 * in `ip netns exec`: for when libc cannot be loaded through koffi.
 */
export function sourceCheckInForceByGrep(netns: string | undefined, names: Iterable<string>): Map<string, boolean> {
  const wanted = validNames(names);
  const grep = ['grep', '-H', '.', rpFilterPath('all'), ...wanted.map(rpFilterPath)];
  const [cmd, args] = netns !== undefined ? ['ip', ['netns', 'exec', netns, ...grep]] : ['grep', grep.slice(1)];
  let text: string;
  try {
    text = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 });
  } catch (error) {
    // grep exits 2 when a file is missing, and still prints the others.
    text = String((error as { stdout?: unknown }).stdout ?? '');
  }
  const values = new Map(
    text.split('\n').flatMap((line) => {
      const at = line.lastIndexOf(':');
      return at > 0 ? [[line.slice(0, at), line.slice(at + 1).trim()] as [string, string]] : [];
    }),
  );
  return inForce(wanted, values);
}

/** strictSourceCheck through `sysctl` (procps), one process per name: for when libc cannot be loaded through koffi. */
export function strictSourceCheckBySysctl(netns: string | undefined, names: Iterable<string>): Map<string, boolean> {
  const argv = (rest: string[]): [string, string[]] => (netns !== undefined ? ['ip', ['netns', 'exec', netns, 'sysctl', ...rest]] : ['sysctl', rest]);
  const sysctl = (rest: string[]): string | undefined => {
    const [cmd, args] = argv(rest);
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 }).trim();
    } catch {
      return undefined;
    }
  };
  const wanted = validNames(names);
  if (wanted.length === 0) return new Map();
  const all = sysctl(['-n', 'net.ipv4.conf.all.rp_filter']);
  // Slashes, not dots, separate the parts: an interface name may hold a dot (`eth0.100`).
  return new Map(wanted.map((name) => [name, sysctl(['-q', '-w', `net/ipv4/conf/${name}/rp_filter=1`]) !== undefined && strictAllowedBy(all)]));
}

/**
 * interfaceIndexes through `ip -j link show` (iproute2), for when libc cannot be loaded through
 * koffi: the same answer, from one process per call.
 */
export function interfaceIndexesByIp(netns: string | undefined, names: Iterable<string>): Map<string, number> {
  const wanted = new Set(names);
  const argv = [...(netns !== undefined ? ['-n', netns] : []), '-j', 'link', 'show'];
  let links: unknown;
  try {
    links = JSON.parse(execFileSync('ip', argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000, maxBuffer: 256 * 1024 * 1024 }));
  } catch (error) {
    const stderr = (error as { stderr?: unknown }).stderr;
    throw new Error(`\`ip ${argv.join(' ')}\` failed: ${typeof stderr === 'string' && stderr.trim() !== '' ? stderr.trim() : error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  if (!Array.isArray(links)) throw new Error(`\`ip ${argv.join(' ')}\` printed no list of links`);
  const out = new Map<string, number>();
  for (const link of links as unknown[]) {
    if (typeof link !== 'object' || link === null) continue;
    const { ifname, ifindex } = link as { ifname?: unknown; ifindex?: unknown };
    if (typeof ifname === 'string' && wanted.has(ifname) && typeof ifindex === 'number' && Number.isInteger(ifindex) && ifindex > 0) out.set(ifname, ifindex);
  }
  return out;
}

let closing = 0;
const idle: (() => void)[] = [];

/** Closes `fd` on a worker thread (see the top of this file). */
function closeInBackground(c: Libc, fd: number): void {
  closing++;
  c.closeAsync(fd, () => {
    if (--closing === 0) for (const resolve of idle.splice(0)) resolve();
  });
}

/** Resolves when every socket closed so far is released (tests, shutdown). */
export function netlinkIdle(): Promise<void> {
  return closing === 0 ? Promise.resolve() : new Promise((resolve) => idle.push(resolve));
}

/** The inode of the namespace `ip netns` names (0 for the process's own). */
function netnsInode(netns: string | undefined): number {
  if (netns === undefined) return 0;
  try {
    return statSync(`${NETNS_DIR}/${netns}`).ino;
  } catch (error) {
    throw new Error(`netlink: netns ${netns}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/**
 * A NETLINK_NETFILTER socket into one namespace, kept open while changes come and closed
 * after `idleMs` without any (a held socket keeps a deleted namespace alive, so it is not
 * held forever). Before each batch the namespace is checked to still be the one the socket
 * was made in: `ip netns del` + `add` of the same name gets a new socket.
 */
export class NfnetlinkSocket {
  private fd = -1;
  private inode = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly netns: string | undefined,
    private readonly idleMs = 5000,
  ) {}

  /**
   * Sends one batch and returns every ack that came back. Throws when the batch could not be
   * sent (then the kernel saw nothing).
   */
  transact(batch: Buffer): Ack[] {
    const c = load();
    const inode = netnsInode(this.netns);
    if (this.fd >= 0 && inode !== this.inode) this.close();
    if (this.fd < 0) {
      this.fd = openSocket(c, this.netns);
      this.inode = inode;
      const one = Buffer.alloc(4);
      one.writeUInt32LE(1);
      c.setsockopt(this.fd, SOL_NETLINK, NETLINK_CAP_ACK, one, 4); // best effort: without it acks are longer
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.close(), this.idleMs).unref();
    const fd = this.fd;
    const addr = Buffer.alloc(12); // sockaddr_nl: the kernel (pid 0), no groups
    addr.writeUInt16LE(AF_NETLINK, 0);
    let sent: number;
    do sent = c.sendto(fd, batch, batch.length, 0, addr, addr.length);
    while (sent < 0 && c.errno() === EINTR);
    if (sent !== batch.length) {
      const e = sent < 0 ? c.errno() : 0;
      this.close();
      throw new NetlinkError(sent < 0 ? 'sendto' : 'sendto (short)', e);
    }
    const acks: Ack[] = [];
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const n = c.recv(fd, buf, buf.length, MSG_DONTWAIT);
      if (n < 0) {
        const e = c.errno();
        if (e === EINTR) continue;
        if (e === EAGAIN) break;
        // ENOBUFS: acks were dropped; what the kernel did is unknown to us. A fresh socket
        // for the next batch, so nothing late is read as its answer.
        acks.push({ seq: -1, error: -e });
        this.close();
        break;
      }
      if (n === 0) break;
      acks.push(...parseAcks(buf.subarray(0, n)));
    }
    return acks;
  }

  /** Releases the socket (on a worker thread); the next batch opens a new one. */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.fd < 0) return;
    const c = load();
    closeInBackground(c, this.fd);
    this.fd = -1;
  }
}
