// Service discovery in the lab: a small DNS server answering `name.ns.svc.cluster.local`
// with the Service's ClusterIP (A), or for a headless Service the addresses of its ready
// endpoints, and NXDOMAIN for every other name. No upstream: the lab has no Internet.
//
// Placement follows NodeLocal DNSCache: every node answers on 169.254.20.10 (on its
// loopback), so a pod's query goes to its own node — pods already route everything through
// it — and never crosses the overlay. A pod's resolver points there through
// /etc/netns/<pod netns>/resolv.conf, which `ip netns exec` bind-mounts over /etc/resolv.conf.
//
// The answering is pure (`answer`); `DnsServer` is the thin shell (Node's dgram and net, and
// the `dns-packet` codec). It answers over UDP and over TCP on the same port: a UDP answer over
// 512 bytes (a headless Service with many endpoints) is sent truncated with TC set, and the
// resolver asks again over TCP (RFC 1035 4.2.2, RFC 7766), where the whole answer fits.

import { execFile, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import dnsPacket from 'dns-packet';
import type { ResolvedService } from '../lb/endpoints.js';

export const CLUSTER_DOMAIN = 'cluster.local';
/** NodeLocal DNSCache's link-local address. */
export const NODE_DNS_IP = '169.254.20.10';
/** TTL of every answer: short, so a changed Service is seen soon (CoreDNS uses 5 s too). */
export const TTL_SECONDS = 5;
/** A UDP answer stays within the classic 512 bytes; more addresses set TC (truncated). */
export const MAX_UDP = 512;
/** A TCP message carries a 16-bit length. */
export const MAX_TCP = 65535;

export type DnsRecords = ReadonlyMap<string, readonly string[]>;

/** `name.ns.svc.cluster.local` → addresses, from resolved Services. */
export function serviceRecords(services: readonly ResolvedService[], domain = CLUSTER_DOMAIN): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const s of services) {
    const name = `${s.name}.${s.namespace}.svc.${domain}`.toLowerCase();
    if (s.address.kind === 'virtual') {
      out.set(name, [s.address.ip]);
    } else if (s.address.kind === 'headless') {
      const ips = [...new Set(s.ports.flatMap((p) => p.endpoints.map((e) => e.ip)))].filter((ip) => !ip.includes(':')).sort();
      // A headless Service with no ready endpoint still exists: NOERROR with no address.
      out.set(name, ips);
    }
  }
  return out;
}

/** The reply to one query packet, or undefined when it is not a query worth answering. */
export function answer(query: Buffer, records: DnsRecords, maxSize = MAX_UDP): Buffer | undefined {
  let q: dnsPacket.Packet;
  try {
    q = dnsPacket.decode(query);
  } catch {
    return undefined;
  }
  if (q.type !== 'query') return undefined;
  const question = q.questions?.[0];
  const base = { type: 'response' as const, id: q.id ?? 0, questions: q.questions ?? [] };
  // RD (recursion desired) is echoed; RA is not set (no recursion); AA: we are the authority.
  const rd = (q.flags ?? 0) & dnsPacket.RECURSION_DESIRED;
  if (!question || (q.questions?.length ?? 0) !== 1) {
    return dnsPacket.encode({ ...base, flags: rd | dnsPacket.AUTHORITATIVE_ANSWER | rcode('FORMERR') });
  }
  const name = question.name.toLowerCase().replace(/\.$/, '');
  const ips = records.get(name);
  if (ips === undefined) {
    return dnsPacket.encode({ ...base, flags: rd | dnsPacket.AUTHORITATIVE_ANSWER | rcode('NXDOMAIN') });
  }
  // A known name asked for another type (AAAA, …): NOERROR with no answer (NODATA).
  const answers: dnsPacket.Answer[] =
    question.type === 'A'
      ? ips.map((ip) => ({ type: 'A', name: question.name, ttl: TTL_SECONDS, class: 'IN', data: ip }))
      : [];
  let reply = dnsPacket.encode({ ...base, flags: rd | dnsPacket.AUTHORITATIVE_ANSWER, answers });
  if (reply.length > maxSize) {
    const fit = Math.max(0, Math.floor((maxSize - (reply.length - answers.length * 16)) / 16));
    reply = dnsPacket.encode({ ...base, flags: rd | dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.TRUNCATED_RESPONSE, answers: answers.slice(0, fit) });
  }
  return reply;
}

function rcode(name: 'FORMERR' | 'NXDOMAIN'): number {
  return name === 'FORMERR' ? 1 : 3;
}

/** A DNS server (UDP and TCP) over a record table that can be replaced at any time. */
export class DnsServer {
  private socket: dgram.Socket | undefined;
  private tcp: net.Server | undefined;
  private records: DnsRecords;

  constructor(records: DnsRecords = new Map()) {
    this.records = records;
  }

  setRecords(records: DnsRecords): void {
    this.records = records;
  }

  /** Binds and resolves with the bound port (0 picks a free one). */
  async listen(address: string, port = 53): Promise<number> {
    const socket = dgram.createSocket('udp4');
    this.socket = socket;
    socket.on('message', (msg, rinfo) => {
      const reply = answer(msg, this.records);
      if (reply) socket.send(reply, rinfo.port, rinfo.address, () => undefined);
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, address, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.on('error', () => undefined);
    const bound = socket.address().port;
    // TCP on the same port: where a truncated UDP answer sends the resolver.
    const tcp = net.createServer((conn) => this.serveTcp(conn));
    this.tcp = tcp;
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(bound, address, () => {
        tcp.off('error', reject);
        resolve();
      });
    });
    tcp.on('error', () => undefined);
    return bound;
  }

  /** RFC 7766: each message is preceded by its 16-bit length; several may share a connection. */
  private serveTcp(conn: net.Socket): void {
    let buffered = Buffer.alloc(0);
    conn.setTimeout(10_000, () => conn.destroy());
    conn.on('error', () => undefined);
    conn.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      // A query is a few hundred bytes at most: anything longer is not a resolver talking.
      if (buffered.length > 4096 + 2) {
        conn.destroy();
        return;
      }
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) break;
        const query = buffered.subarray(2, 2 + length);
        buffered = buffered.subarray(2 + length);
        const reply = answer(query, this.records, MAX_TCP);
        if (!reply) {
          conn.destroy();
          return;
        }
        const head = Buffer.alloc(2);
        head.writeUInt16BE(reply.length, 0);
        conn.write(Buffer.concat([head, reply]));
      }
    });
  }

  async close(): Promise<void> {
    const s = this.socket;
    const t = this.tcp;
    this.socket = undefined;
    this.tcp = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    if (t) await new Promise<void>((resolve) => t.close(() => resolve()));
  }
}

/** The resolv.conf a pod gets: the node-local server and the Kubernetes search path. */
export function podResolvConf(namespace: string, server = NODE_DNS_IP, domain = CLUSTER_DOMAIN): string {
  // As the kubelet writes it for dnsPolicy ClusterFirst: ndots 5 and three search domains.
  return `nameserver ${server}\nsearch ${namespace}.svc.${domain} svc.${domain} ${domain}\noptions ndots:5\n`;
}

/** /etc/netns/<netns>/resolv.conf, which `ip netns exec` mounts over /etc/resolv.conf. */
export async function writePodResolvConf(netns: string, namespace: string, etc = '/etc/netns'): Promise<string> {
  const dir = join(etc, netns);
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'resolv.conf');
  await writeFile(file, podResolvConf(namespace));
  return file;
}

export async function removePodResolvConf(netns: string, etc = '/etc/netns'): Promise<void> {
  await rm(join(etc, netns), { recursive: true, force: true });
}

/** Records as the file the per-node DNS processes read: `{ "name": ["ip", …] }`. */
export function recordsToJson(records: DnsRecords): string {
  return `${JSON.stringify(Object.fromEntries([...records].sort(([a], [b]) => a.localeCompare(b))))}\n`;
}

export function recordsFromJson(text: string): Map<string, string[]> {
  const raw: unknown = JSON.parse(text);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('DNS records must be a JSON object');
  const out = new Map<string, string[]>();
  for (const [name, ips] of Object.entries(raw)) {
    if (!Array.isArray(ips) || !ips.every((ip): ip is string => typeof ip === 'string')) throw new Error(`DNS records: "${name}" must map to a list of addresses`);
    out.set(name.toLowerCase(), ips);
  }
  return out;
}

/** Writes the records file atomically (the DNS processes re-read it when it changes). */
export async function writeRecords(file: string, records: DnsRecords): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, recordsToJson(records));
  await rename(tmp, file);
}

/**
 * Starts the DNS process of one node inside its namespace, with NODE_DNS_IP on the node's
 * loopback, and resolves with its pid once it answers. Stop it by pid (it is a child of
 * `ip netns exec`, which execs, so the pid is the server's own).
 */
export async function startNodeDns(netns: string, recordsFile: string, logFile: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    // `ip addr replace` is idempotent: a restarted server finds the address there already.
    execFile('ip', ['-n', netns, 'addr', 'replace', `${NODE_DNS_IP}/32`, 'dev', 'lo'], (e) => (e ? reject(e) : resolve()));
  });
  const ts = fileURLToPath(new URL('./dns-main.ts', import.meta.url));
  const js = fileURLToPath(new URL('./dns-main.js', import.meta.url));
  const argv = existsSync(js) ? [js] : ['--import', 'tsx', ts];
  const log = openSync(logFile, 'a');
  try {
    const child = spawn('ip', ['netns', 'exec', netns, process.execPath, ...argv, recordsFile, NODE_DNS_IP, '53'], {
      detached: true,
      stdio: ['ignore', 'pipe', log],
    });
    const pid = child.pid;
    const stdout = child.stdout;
    if (pid === undefined || stdout === null) throw new Error(`cannot start the DNS server in ${netns}`);
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`DNS server in ${netns} did not become ready within 10 s`));
      }, 10_000);
      stdout.setEncoding('utf8');
      stdout.on('data', (chunk: string) => {
        out += chunk;
        if (!out.includes('\n')) return;
        clearTimeout(timer);
        if (out.startsWith('ready')) resolve();
        else reject(new Error(`DNS server in ${netns} failed: ${out.replace(/^error /, '').trim()}`));
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`DNS server in ${netns} exited with code ${code ?? 'signal'} before it was ready (see ${logFile})`));
      });
    });
    stdout.destroy();
    child.removeAllListeners('exit');
    child.unref();
    return pid;
  } finally {
    closeSync(log);
  }
}
