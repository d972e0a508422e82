// suite: lab (one test needs root: a namespace with its own resolv.conf; `npm run test:lab`)
// The lab's DNS: records from resolved Services, real queries with Node's resolver against
// the server on loopback, and (root) a pod-like namespace whose resolv.conf points at the
// per-node DNS process, resolving through the system resolver path.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { allocate, resolveServices } from '../src/lb/index.js';
import dnsPacket from 'dns-packet';
import { answer, DnsServer, podResolvConf, removePodResolvConf, serviceRecords, startNodeDns, writePodResolvConf, writeRecords } from '../src/lab/dns.js';
import { loadManifestText } from '../src/load/index.js';
import type { Pod } from '../src/model/cluster.js';
import { cleanupPrefix, netnsSkipReason, removeDir, tempLabDir, testPrefix } from './helpers/netns.js';

const MANIFESTS = `apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { clusterIP: 10.96.0.80, selector: { app: web }, ports: [{ port: 80 }] }
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: shop }
spec: { clusterIP: None, selector: { app: db }, ports: [{ port: 5432 }] }
---
apiVersion: v1
kind: Service
metadata: { name: auto, namespace: data }
spec: { selector: { app: auto }, ports: [{ port: 1 }] }
`;

function records(): Map<string, string[]> {
  const { cluster } = loadManifestText(MANIFESTS, 'dns.yaml');
  const pod = (name: string, app: string, ip: string): Pod => ({
    namespace: 'shop', name, labels: { app }, ports: [], hostNetwork: false, ip, workload: `shop/${name}[Pod]`,
  });
  const withPods = { ...cluster, pods: [pod('db-0', 'db', '10.244.0.7'), pod('db-1', 'db', '10.244.1.7')] };
  return serviceRecords(resolveServices(withPods, [], allocate(withPods.services)).services);
}

describe('lab DNS', () => {
  test('records: ClusterIPs, headless endpoints, allocated addresses', () => {
    const r = records();
    assert.deepEqual(r.get('web.shop.svc.cluster.local'), ['10.96.0.80']);
    assert.deepEqual(r.get('db.shop.svc.cluster.local'), ['10.244.0.7', '10.244.1.7']);
    assert.match(r.get('auto.data.svc.cluster.local')?.[0] ?? '', /^10\.(9[6-9]|10[0-9]|11[01])\./);
  });

  test('real queries: A records, NXDOMAIN otherwise, NODATA for AAAA, live record changes', async (t) => {
    const server = new DnsServer(records());
    t.after(() => server.close());
    const port = await server.listen('127.0.0.1', 0);
    const resolver = new Resolver({ timeout: 1000, tries: 1 });
    resolver.setServers([`127.0.0.1:${port}`]);
    assert.deepEqual(await resolver.resolve4('web.shop.svc.cluster.local'), ['10.96.0.80']);
    assert.deepEqual((await resolver.resolve4('DB.shop.svc.cluster.local.')).sort(), ['10.244.0.7', '10.244.1.7']);
    await assert.rejects(resolver.resolve4('nope.shop.svc.cluster.local'), { code: 'ENOTFOUND' });
    await assert.rejects(resolver.resolve4('example.com'), { code: 'ENOTFOUND' });
    await assert.rejects(resolver.resolve6('web.shop.svc.cluster.local'), { code: 'ENODATA' });
    server.setRecords(new Map([['web.shop.svc.cluster.local', ['10.96.0.81']]]));
    assert.deepEqual(await resolver.resolve4('web.shop.svc.cluster.local'), ['10.96.0.81']);
  });

  test('a headless Service with many endpoints: truncated over UDP, whole over TCP', async (t) => {
    const many = Array.from({ length: 100 }, (_, i) => `10.244.${i >> 8}.${i & 255}`);
    const records = new Map([['big.shop.svc.cluster.local', many]]);
    const query = dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'big.shop.svc.cluster.local', class: 'IN' }] });
    const udp = answer(query, records);
    assert.ok(udp && udp.length <= 512);
    const truncated = dnsPacket.decode(udp);
    assert.ok(((truncated.flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE) !== 0, 'TC set');
    assert.ok((truncated.answers ?? []).length < 100);
    const server = new DnsServer(records);
    t.after(() => server.close());
    const port = await server.listen('127.0.0.1', 0);
    // c-ares asks again over TCP on TC: the whole list arrives.
    const resolver = new Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([`127.0.0.1:${port}`]);
    assert.deepEqual((await resolver.resolve4('big.shop.svc.cluster.local')).sort(), [...many].sort());
  });

  test('resolv.conf as the kubelet writes it for ClusterFirst', () => {
    assert.equal(podResolvConf('shop'), 'nameserver 169.254.20.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n');
  });
});

const skip = await netnsSkipReason();

describe('lab DNS in a namespace', { skip }, () => {
  test('a pod namespace resolves Service names through its resolv.conf and the node DNS process', async (t) => {
    const prefix = testPrefix();
    const dir = await tempLabDir();
    const netns = `${prefix}dns`;
    const pids: number[] = [];
    t.after(async () => {
      await cleanupPrefix(prefix, pids);
      await removePodResolvConf(netns);
      await removeDir(dir);
    });
    const ip = (args: string[]): Promise<void> => new Promise((res, rej) => execFile('ip', args, (e) => (e ? rej(e) : res())));
    await ip(['netns', 'add', netns]);
    await ip(['-n', netns, 'link', 'set', 'lo', 'up']);
    const file = join(dir, 'dns.json');
    await writeRecords(file, records());
    pids.push(await startNodeDns(netns, file, join(dir, 'dns.log')));
    await writePodResolvConf(netns, 'shop');

    // Node's resolver reads /etc/resolv.conf, which `ip netns exec` replaced with the pod's.
    const lookup = (name: string): Promise<string> =>
      new Promise((resolve) => {
        const js = `require('node:dns').promises.resolve4(process.argv[1]).then((a) => console.log(a.sort().join(',')), (e) => console.log(e.code))`;
        execFile('ip', ['netns', 'exec', netns, process.execPath, '-e', js, name], { timeout: 10_000 }, (_e, out) => resolve(out.trim()));
      });
    assert.equal(await lookup('web.shop.svc.cluster.local'), '10.96.0.80');
    assert.equal(await lookup('db.shop.svc.cluster.local'), '10.244.0.7,10.244.1.7');
    assert.equal(await lookup('missing.shop.svc.cluster.local'), 'ENOTFOUND');

    // Records change live: the process re-reads its file.
    await writeRecords(file, new Map([['web.shop.svc.cluster.local', ['10.96.0.99']]]));
    await sleep(500);
    assert.equal(await lookup('web.shop.svc.cluster.local'), '10.96.0.99');

    // The short name through the search path (ndots:5), with the system resolver (getaddrinfo).
    await writeFile(file, '{"web.shop.svc.cluster.local":["10.96.0.80"]}\n');
    await sleep(500);
    const short = await new Promise<string>((resolve) => {
      const js = `require('node:dns').lookup('web', { family: 4 }, (e, a) => console.log(e ? e.code : a))`;
      execFile('ip', ['netns', 'exec', netns, process.execPath, '-e', js], { timeout: 10_000 }, (_e, out) => resolve(out.trim()));
    });
    assert.equal(short, '10.96.0.80');
  });
});
