// A Kubernetes-like node in network namespaces, wired the way a CNI would (not the lab's way):
// a "node" namespace routing for pod namespaces attached by veth pairs named as Calico names
// them (`cali` + hash, never the lab's `wp*`), each pod a /32 behind a link-local gateway
// with proxy ARP. The agent under test must find the pods by address alone.
// Pod servers and the prober are the lab's own scripts (src/lab/server.mjs, prober.mjs).

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const LAB = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'lab');

export function sh(argv: readonly string[], input?: string): Promise<{ stdout: string; stderr: string; code: number }> {
  const [file, ...args] = argv;
  return new Promise((resolve) => {
    const child = execFile(file ?? 'false', args, { encoding: 'utf8', timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ stdout, stderr, code: error ? (typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : 1) : 0 });
    });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

async function must(argv: readonly string[], input?: string): Promise<void> {
  const r = await sh(argv, input);
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr.trim()}`);
}

export interface CniPod {
  readonly name: string;
  readonly netns: string;
  readonly ip: string;
  readonly veth: string;
}

export class CniNode {
  readonly netns: string;
  readonly pods = new Map<string, CniPod>();
  private readonly servers: ChildProcess[] = [];

  constructor(
    readonly prefix: string,
    /** The node's own address (on its loopback). */
    readonly ip: string,
  ) {
    this.netns = `${prefix}node`;
  }

  async create(): Promise<void> {
    await must(['ip', 'netns', 'add', this.netns]);
    await must(['ip', '-n', this.netns, '-batch', '-'], `link set lo up\naddr add ${this.ip}/32 dev lo\n`);
    await must(['ip', 'netns', 'exec', this.netns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  }

  async addPod(name: string, ip: string): Promise<CniPod> {
    const netns = `${this.prefix}${name}`;
    const veth = `cali${createHash('sha1').update(`${this.prefix}${name}`).digest('hex').slice(0, 10)}`;
    await must(['ip', 'netns', 'add', netns]);
    await must(['ip', '-n', this.netns, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    await must(['ip', '-n', netns, '-batch', '-'], `link set lo up\nlink set eth0 up\naddr add ${ip}/32 dev eth0\nroute add 169.254.1.1 dev eth0 scope link\nroute add default via 169.254.1.1 dev eth0\n`);
    await must(['ip', '-n', this.netns, '-batch', '-'], `addr add 169.254.1.1/32 dev ${veth}\nlink set ${veth} up\nroute add ${ip}/32 dev ${veth} scope link\n`);
    await must(['ip', 'netns', 'exec', this.netns, 'sysctl', '-qw', `net.ipv4.conf.${veth}.proxy_arp=1`]);
    const pod = { name, netns, ip, veth };
    this.pods.set(name, pod);
    return pod;
  }

  /** The lab's pod server (TCP port 80, answers its name) in `netns`. */
  async serve(netns: string, name: string, port = 80): Promise<void> {
    const child = spawn('ip', ['netns', 'exec', netns, process.execPath, join(LAB, 'server.mjs'), JSON.stringify({ name, ports: [{ port, protocol: 'TCP' }] })], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.servers.push(child);
    await new Promise<void>((ok, fail) => {
      let out = '';
      child.stdout?.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('ready')) ok();
      });
      child.once('exit', (code) => fail(new Error(`pod server in ${netns} exited (${code})`)));
    });
  }

  /** TCP connects from `fromNetns` to each target; true where the server answered. */
  async probe(fromNetns: string, targets: readonly { ip: string; port?: number }[], timeoutMs = 700): Promise<boolean[]> {
    const input = JSON.stringify({ targets: targets.map((t, i) => ({ id: String(i), ip: t.ip, port: t.port ?? 80, protocol: 'TCP' })), timeoutMs });
    const r = await sh(['ip', 'netns', 'exec', fromNetns, process.execPath, join(LAB, 'prober.mjs')], input);
    if (r.code !== 0) throw new Error(`prober in ${fromNetns}: ${r.stderr}`);
    return (JSON.parse(r.stdout) as { ok: boolean }[]).map((x) => x.ok);
  }

  async nft(...args: string[]): Promise<string> {
    const r = await sh(['ip', 'netns', 'exec', this.netns, 'nft', ...args]);
    return r.code === 0 ? r.stdout : '';
  }

  serverPids(): number[] {
    return this.servers.map((s) => s.pid).filter((p): p is number => p !== undefined);
  }
}
