// The lab's DNS, run by `weir lab up`: one DNS process per node (dns-main.ts, on 169.254.20.10
// in the node's namespace, as NodeLocal DNSCache), every pod's resolver pointed there, the
// records rewritten on every `lab apply` / `lab delete`, everything stopped by `lab down`.
//
//   <dir>/dns.json               the records every node's process serves (re-read on change)
//   <dir>/dns-<node>.pid         each process's pid, written once it answers
//   <dir>/logs/dns-<node>.log    its stderr
//   /etc/netns/<pod netns>/      the pod's resolv.conf (`ip netns exec` mounts it)
//
// The records come from the same join the agents read (labCluster: desired manifests + lab
// state) and the same Service model (src/lb), so a name resolves to the ClusterIP the kernel
// translates.

import { mkdir, readdir, readFile, rm, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { allocate } from '../lb/allocate.js';
import { resolveServices } from '../lb/endpoints.js';
import type { Cluster } from '../model/cluster.js';
import { removePodResolvConf, serviceRecords, startNodeDns, writePodResolvConf, writeRecords } from './dns.js';
import { isInstanceNetns } from './names.js';
import { isAlive, stopPid } from './processes.js';
import type { LabState } from './state.js';
import { forEachLimit } from './topology.js';

export const dnsRecordsFile = (dir: string): string => join(dir, 'dns.json');
export const dnsPidFile = (dir: string, node: string): string => join(dir, `dns-${node}.pid`);
export const dnsLogFile = (dir: string, node: string): string => join(dir, 'logs', `dns-${node}.log`);

/** Where `ip netns exec` looks for a namespace's own /etc files. */
const NETNS_ETC = '/etc/netns';

/** The records of the cluster the lab runs (`labCluster(desired, state)`). */
export function labDnsRecords(cluster: Cluster): Map<string, string[]> {
  return serviceRecords(resolveServices(cluster, cluster.endpointSlices ?? [], allocate(cluster.services)).services);
}

/**
 * Writes the records and every pod's resolv.conf, and removes the resolv.conf of this
 * instance's pods that no longer exist. Cheap and idempotent: run after every change.
 */
export async function syncLabDns(state: LabState, cluster: Cluster): Promise<void> {
  await writeRecords(dnsRecordsFile(state.dir), labDnsRecords(cluster));
  const pods = new Set(state.pods.map((p) => p.netns));
  await forEachLimit(state.pods, 16, async (p) => {
    await writePodResolvConf(p.netns, p.namespace, NETNS_ETC);
  });
  for (const name of await readdir(NETNS_ETC).catch(() => [] as string[])) {
    if (isInstanceNetns(state.prefix, name) && /p-[0-9a-f]{8}$/.test(name) && !pods.has(name)) await removePodResolvConf(name, NETNS_ETC);
  }
}

/** True when `pid` is the lab DNS process serving this lab's records file. */
async function isDnsOf(pid: number, dir: string): Promise<boolean> {
  const argv = await readFile(`/proc/${pid}/cmdline`, 'utf8')
    .then((t) => t.split('\0'))
    .catch(() => undefined);
  return argv !== undefined && argv.some((a) => /dns-main\.[jt]s$/.test(a)) && argv.includes(dnsRecordsFile(dir));
}

async function readPid(file: string): Promise<number | undefined> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  const pid = Number(text?.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Starts every node's DNS process (after `syncLabDns`); resolves once each answers. */
export async function startLabDns(state: LabState, cluster: Cluster): Promise<number[]> {
  await mkdir(join(state.dir, 'logs'), { recursive: true });
  await syncLabDns(state, cluster);
  const pids: number[] = [];
  await Promise.all(
    state.nodes.map(async (n) => {
      const pid = await startNodeDns(n.netns, dnsRecordsFile(state.dir), dnsLogFile(state.dir, n.name));
      pids.push(pid);
      await writeFile(`${dnsPidFile(state.dir, n.name)}.tmp`, `${pid}\n`);
      await rename(`${dnsPidFile(state.dir, n.name)}.tmp`, dnsPidFile(state.dir, n.name));
    }),
  );
  return pids;
}

/** Node DNS processes recorded in `dir` and running. */
export async function labDnsInfo(dir: string): Promise<{ node: string; pid: number; running: boolean }[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: { node: string; pid: number; running: boolean }[] = [];
  for (const n of names) {
    const m = /^dns-(.+)\.pid$/.exec(n);
    if (!m?.[1]) continue;
    const pid = await readPid(join(dir, n));
    if (pid === undefined) continue;
    out.push({ node: m[1], pid, running: (await isAlive(pid)) && (await isDnsOf(pid, dir)) });
  }
  return out.sort((a, b) => (a.node < b.node ? -1 : 1));
}

/**
 * Stops the recorded DNS processes (by pid, only when the pid still is this lab's DNS) and,
 * with `prefix`, removes the resolv.conf of every pod of that instance. Returns the pids stopped.
 */
export async function stopLabDns(dir: string, prefix?: string): Promise<number[]> {
  const stopped: number[] = [];
  for (const d of await labDnsInfo(dir)) {
    if (d.running) {
      await stopPid(d.pid, 2000);
      stopped.push(d.pid);
    }
    await rm(dnsPidFile(dir, d.node), { force: true });
  }
  if (prefix !== undefined) {
    for (const name of await readdir(NETNS_ETC).catch(() => [] as string[])) {
      if (isInstanceNetns(prefix, name) && /p-[0-9a-f]{8}$/.test(name)) await removePodResolvConf(name, NETNS_ETC);
    }
  }
  return stopped;
}
