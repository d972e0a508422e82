// suite: lab (needs root: real network namespaces, nftables and packets; `npm run test:lab`)
// Services in a lab brought up by the real CLI: the lab DNS that `weir lab up` starts (names
// resolve in pods through the system resolver, follow `lab apply`/`lab delete`, and are gone
// after `lab down`), NodePorts reached from the external host, a deny on the backend that
// holds through its Service (policy after DNAT), and `lab probe --compare` over Service cells —
// including that the comparison can fail.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { servicePorts } from '../src/analyze/services.js';
import { compareServiceProbe } from '../src/lab/compare-services.js';
import { labDnsInfo } from '../src/lab/dns-lab.js';
import { labServices, serviceTargets } from '../src/lab/probe-services.js';
import { readState } from '../src/lab/index.js';
import { loadManifestText } from '../src/load/index.js';
import { PolicyEngine } from '../src/policy/index.js';
import { LabSource } from '../src/source/lab.js';
import { scratchLab } from './helpers/lab.js';
import { netnsSkipReason, pidAlive } from './helpers/netns.js';

const WEIR = fileURLToPath(new URL('../bin/weir.js', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/lab-services/services.yaml', import.meta.url));

interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function weir(args: readonly string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [WEIR, ...args], { encoding: 'utf8', timeout: 180_000, env: { ...process.env, WEIR_DEBUG: '' }, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

async function ok(args: readonly string[], code = 0): Promise<Result> {
  const r = await weir(args);
  assert.equal(r.code, code, `weir ${args.join(' ')} exited ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  return r;
}

/** `n` sequential connections to ip:port; one line per answer (the endpoint's identity). */
const NODEPORT_CLIENT = `
const net = require('node:net');
const [ip, port, n] = process.argv.slice(1);
async function one() {
  return new Promise((resolve) => {
    let d = ''; const s = net.connect({ host: ip, port: Number(port) });
    s.setTimeout(2000, () => { s.destroy(); resolve('timeout'); });
    s.on('data', (x) => (d += x)); s.on('error', (e) => resolve(e.code)); s.on('end', () => resolve(d.trim()));
  });
}
(async () => { for (let i = 0; i < Number(n); i++) console.log(await one()); })();
`;

interface ProbeJson {
  services: { cells: { from: string; to: string; port: number; ok: boolean; reply?: string }[]; comparison: { compared: number; disagreements: unknown[] } };
}

const skip = await netnsSkipReason();

describe('Services in a CLI lab (root)', { skip }, () => {
  test('lab DNS, NodePort from the external host, policy after DNAT, probe --compare', async (t) => {
    const { prefix, dir } = await scratchLab(t);
    const at = ['--dir', dir, '--prefix', prefix];
    const up = await ok(['lab', 'up', FIXTURE, ...at, '--nodes', '2', '--no-serve']);
    assert.match(up.stdout, /^dns: name\.ns\.svc\.cluster\.local answered on 169\.254\.20\.10/m);
    const state = await readState(dir);
    assert.ok(state);
    const dns = await labDnsInfo(dir);
    assert.equal(dns.length, 2);
    assert.ok(dns.every((d) => d.running));

    // DNS names resolve in pods, through the pod's resolv.conf and glibc (getent): the full
    // name, the short name through the search path, a headless Service's endpoints.
    const { cluster } = loadManifestText(readFileSync(FIXTURE, 'utf8'), 'services.yaml');
    const ipOf = (svc: string) => (servicePorts(cluster).find((v) => v.service === svc)?.address as { ip: string }).ip;
    const getent = (name: string) => weir(['lab', 'exec', ...at, 'shop/client', '--', 'getent', 'hosts', name]);
    assert.match((await getent('web.shop.svc.cluster.local')).stdout, new RegExp(`^${ipOf('shop/web').replace(/\./g, '\\.')}\\s+web\\.shop\\.svc\\.cluster\\.local$`, 'm'));
    assert.match((await getent('web')).stdout, new RegExp(`^${ipOf('shop/web').replace(/\./g, '\\.')}\\s`, 'm'));
    const web = state.pods.filter((p) => p.labels.app === 'web').map((p) => p.ip).sort();
    const headless = (await getent('pods.shop')).stdout.trim().split('\n').map((l) => l.split(/\s+/)[0]).sort();
    assert.deepEqual(headless, web);
    assert.equal((await getent('nope.shop')).code, 2, 'an unknown name is NXDOMAIN');

    // Records follow `lab apply` and `lab delete`.
    const extra = join(dir, 'extra.yaml');
    await writeFile(extra, 'apiVersion: v1\nkind: Service\nmetadata: { name: extra, namespace: shop }\nspec: { clusterIP: 10.96.7.7, selector: { app: web }, ports: [{ port: 81, targetPort: 8080 }] }\n');
    await ok(['lab', 'apply', extra, ...at]);
    assert.match((await getent('extra.shop')).stdout, /^10\.96\.7\.7\s/m);
    await ok(['lab', 'delete', extra, ...at]);
    assert.equal((await getent('extra.shop')).code, 2);

    // Real packets to every Service: NodePort from the external host, policy after DNAT, and
    // the analyzer agrees with every cell it can compare.
    const probe = await ok(['lab', 'probe', ...at, '--compare', '-o', 'json']);
    const j = JSON.parse(probe.stdout) as ProbeJson;
    const nodePort = j.services.cells.find((c) => c.from === 'external' && c.to === `svc/shop/web@${state.external.node}` && c.port === 30080);
    assert.ok(nodePort?.ok, `NodePort 30080 on ${state.external.node} from the external host: ${JSON.stringify(nodePort)}`);
    assert.ok(['shop/web-0', 'shop/web-1'].includes(nodePort.reply ?? ''), `answered by an endpoint: ${nodePort.reply}`);
    // Both endpoints, one on each node, answer through it: the kernel spreads new connections.
    const spread = await weir(['lab', 'exec', ...at, 'external', '--', process.execPath, '-e', NODEPORT_CLIENT, state.nodes.find((n) => n.name === state.external.node)?.underlayIp ?? '', '30080', '40']);
    const answers = new Set(spread.stdout.trim().split('\n'));
    assert.deepEqual([...answers].sort(), ['shop/web-0', 'shop/web-1'], spread.stdout);
    const client = (to: string) => j.services.cells.find((c) => c.from === 'shop/client' && c.to === to && c.port === 80);
    assert.ok(client('svc/shop/web')?.ok, 'the client reaches web through its ClusterIP');
    // guard-0 admits nobody: through its Service too (the filter judges the real pod and port).
    assert.equal(client('svc/shop/guarded')?.ok, false, 'a deny on the backend holds through its Service');
    assert.deepEqual(j.services.comparison.disagreements, []);
    assert.ok(j.services.comparison.compared >= 5, JSON.stringify(j.services.comparison.compared));

    // The Service comparison can fail: an answer from the denied backend is a disagreement.
    const lab = new LabSource({ dir });
    const read = await lab.refresh();
    const now = read.state ?? state;
    const labCl = lab.snapshot().cluster;
    const services = labServices(labCl);
    const targets = serviceTargets(now, services);
    const forged = compareServiceProbe(new PolicyEngine(labCl), now, services, targets, {
      from: ['shop/client'],
      to: ['svc/shop/guarded'],
      ports: [{ port: 80, protocol: 'TCP' }],
      cells: [{ from: 'shop/client', to: 'svc/shop/guarded', port: 80, protocol: 'TCP', ok: true, reply: 'shop/guard-0', ms: 1 }],
      durationMs: 1,
    });
    assert.equal(forged.disagreements.length, 1);
    assert.match(forged.disagreements[0]?.why ?? '', /no endpoint allows, yet answered by shop\/guard-0/);

    // Down: the DNS processes stop and the pods' resolv.conf go.
    const podNetns = now.pods.map((p) => p.netns);
    const lbFiles = (): string[] => readdirSync(dir).filter((n) => /^lb-.+\.json$/.test(n) && n !== 'lb-drain.json');
    assert.ok(lbFiles().length > 0, 'the agents wrote their balancing status');
    await ok(['lab', 'down', ...at]);
    assert.deepEqual(lbFiles(), [], "lab down removes the agents' balancing status (it describes running agents)");
    for (const d of dns) assert.equal(await pidAlive(d.pid), false, `DNS pid ${d.pid} stopped`);
    for (const n of podNetns) assert.equal(existsSync(join('/etc/netns', n)), false, `/etc/netns/${n} removed`);
  });
});
