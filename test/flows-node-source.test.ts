// suite: lab (needs root: real network namespaces and nftables; `npm run test:lab`)
// Real kernel: two network namespaces joined by a veth, the agent-shaped `inet weir` table in the
// server side, real TCP connections. Skipped without root or without conntrack/nft.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Enricher } from '../src/flows/enrich.js';
import { NodeFlowSource } from '../src/flows/node-source.js';
import type { FlowRecord } from '../src/flows/record.js';
import { SAMPLE_REASONS } from '../src/flows/synthetic.js';

const tag = `${process.pid % 100000}`;
const A = `wflA${tag}`;
const B = `wflB${tag}`;
const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const skip = process.getuid?.() !== 0 || !have('conntrack') || !have('nft') ? 'needs root, conntrack and nft' : false;
const dir = mkdtempSync(join(tmpdir(), 'weir-src-'));
const sh = (args: string[], input?: string) => execFileSync(args[0] as string, args.slice(1), { input, stdio: ['pipe', 'pipe', 'pipe'], timeout: 10_000 });

before(() => {
  if (skip) return;
  sh(['ip', 'netns', 'add', A]);
  sh(['ip', 'netns', 'add', B]);
  sh(['ip', 'link', 'add', `va${tag}`, 'netns', A, 'type', 'veth', 'peer', 'name', `vb${tag}`, 'netns', B]);
  sh(['ip', '-n', A, 'addr', 'add', '10.213.0.1/24', 'dev', `va${tag}`]);
  sh(['ip', '-n', B, 'addr', 'add', '10.213.0.2/24', 'dev', `vb${tag}`]);
  for (const [ns, dev] of [[A, `va${tag}`], [B, `vb${tag}`]] as const) {
    sh(['ip', '-n', ns, 'link', 'set', dev, 'up']);
    sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  }
  sh(['ip', 'netns', 'exec', B, 'sysctl', '-qw', 'net.netfilter.nf_conntrack_acct=1']);
  // The shape the nft agent programs: allow rules stamp the ct mark with their reason id,
  // deny rules log into the dynamic `denied` set (key ends with the reason id as mark).
  sh(['ip', 'netns', 'exec', B, 'nft', '-f', '-'], `table inet weir {
  set hits { type mark; flags dynamic; counter; size 1048576; }
  set denied { type ipv4_addr . ipv4_addr . inet_proto . inet_service . mark; flags dynamic,timeout; timeout 5m; counter; }
  chain input { type filter hook input priority 0; policy accept;
    ct state established,related accept
    tcp dport 80 ct mark set 1 update @hits { 1 counter } accept
    tcp dport 81 meta mark set 3 update @denied { ip saddr . ip daddr . meta l4proto . th dport . meta mark counter } update @hits { meta mark counter } drop
  }
}`);
  writeFileSync(join(dir, 'reasons.json'), JSON.stringify(SAMPLE_REASONS));
});

after(() => {
  if (!skip) for (const ns of [A, B]) spawnSync('ip', ['netns', 'del', ns]);
  rmSync(dir, { recursive: true, force: true });
});

test('NodeFlowSource: real conntrack events and denied-set counters become attributed records', { skip, timeout: 30_000 }, async () => {
  const pods = new Map([
    ['10.213.0.1', { ip: '10.213.0.1', namespace: 'x', name: 'a-0', workload: 'x/a[Deployment]', labels: { pod: 'a' } }],
    ['10.213.0.2', { ip: '10.213.0.2', namespace: 'y', name: 'b-0', workload: 'y/b[Deployment]', labels: { pod: 'b' } }],
  ]);
  const src = new NodeFlowSource({ node: 'node-b', netns: B, reasonsFile: join(dir, 'reasons.json'), pollMs: 200, enricher: new Enricher({ lookup: (ip) => pods.get(ip) }) });
  const warnings: Error[] = [];
  src.on('warning', (e) => warnings.push(e));
  const got: FlowRecord[] = [];
  src.on('records', (r) => got.push(...r));
  const counters: number[] = [];
  src.on('counters', (d) => counters.push(...d.map((x) => x.reasonId)));
  await src.start();
  const pid = src.pid;
  assert.ok(pid);
  await new Promise((r) => setTimeout(r, 300));
  // Server in B on :80; client in A: one accepted connection, one denied attempt on :81.
  const server = `require('net').createServer((s)=>{s.on('data',()=>s.end('pong'));}).listen(80,'10.213.0.2',()=>console.log('up'))`;
  const srv = (await import('node:child_process')).spawn('ip', ['netns', 'exec', B, process.execPath, '-e', server], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((r) => srv.stdout.once('data', r));
  const client = `const net=require('net');const c=net.connect(80,'10.213.0.2',()=>c.write('ping'));c.on('data',()=>c.end());c.on('close',()=>{const d=net.connect(81,'10.213.0.2');d.on('error',()=>{});setTimeout(()=>process.exit(0),600)})`;
  sh(['ip', 'netns', 'exec', A, process.execPath, '-e', client]);
  // The accepted connection ends when conntrack destroys it; flush makes that immediate.
  await new Promise((r) => setTimeout(r, 300));
  sh(['ip', 'netns', 'exec', B, 'conntrack', '-D', '-s', '10.213.0.1']);
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && !(got.some((r) => r.verdict === 'DROPPED') && got.some((r) => r.event === 'end'))) await new Promise((r) => setTimeout(r, 100));
  srv.kill();
  await src.stop();
  assert.throws(() => process.kill(pid, 0), 'conntrack process is gone');

  const start = got.find((r) => r.event === 'start' && r.dstPort === 80);
  const end = got.find((r) => r.event === 'end' && r.dstPort === 80);
  assert.ok(start && end, JSON.stringify(got));
  assert.equal(end.verdict, 'FORWARDED');
  assert.equal(end.policy, 'NetworkPolicy y/allow-x', 'attributed through the ct mark');
  assert.equal(end.src.workload, 'x/a[Deployment]');
  assert.equal(end.dst.pod, 'b-0');
  assert.ok(end.bytes > 0 && end.packets >= 4);
  const drop = got.find((r) => r.verdict === 'DROPPED');
  assert.ok(drop, JSON.stringify(got));
  assert.equal(drop.dstPort, 81);
  assert.equal(drop.policy, 'NetworkPolicy y/default-deny');
  assert.equal(drop.src.namespace, 'x');
  assert.ok(drop.packets >= 1);
  assert.ok(counters.includes(3), 'the deny is counted');
  assert.ok(counters.includes(1), 'the allow is counted');
  assert.deepEqual(warnings.map(String), []);
});

test('NodeFlowSource: what the source chains drop (inet weir_src) becomes records and counts too', { skip, timeout: 30_000 }, async () => {
  // The shape the agent renders with source chains: the node-side veth's ingress check, going to
  // `spoofed`, which counts and records under a reason id (3 here) and drops.
  sh(['ip', 'netns', 'exec', B, 'nft', '-f', '-'], `table inet weir_src {
  set src_hits { type mark; flags dynamic; counter; size 1048576; }
  set src_denied { type ipv4_addr . ipv4_addr . inet_proto . inet_service . mark; flags dynamic,timeout; timeout 60s; counter; size 65536; }
  chain spoofed {
    update @src_hits { 3 counter }
    meta l4proto { tcp, udp, sctp } update @src_denied { ip saddr . ip daddr . meta l4proto . th dport . 3 } drop
    update @src_denied { ip saddr . ip daddr . meta l4proto . 0 . 3 } drop
  }
  chain src_vb { type filter hook ingress device "vb${tag}" priority -500; policy accept; ip saddr != 10.213.0.1 goto spoofed; }
}`);
  sh(['ip', '-n', A, 'addr', 'add', '10.213.0.9/32', 'dev', `va${tag}`]);
  const src = new NodeFlowSource({ node: 'node-b', netns: B, reasonsFile: join(dir, 'reasons.json'), pollMs: 200 });
  const warnings: Error[] = [];
  src.on('warning', (e) => warnings.push(e));
  const got: FlowRecord[] = [];
  src.on('records', (r) => got.push(...r));
  const counted = new Map<number, number>();
  src.on('counters', (d) => d.forEach((x) => counted.set(x.reasonId, (counted.get(x.reasonId) ?? 0) + x.packets)));
  try {
    await src.start();
    await new Promise((r) => setTimeout(r, 400));
    // A forged source: dropped on the veth's ingress, before any other hook.
    sh(['ip', 'netns', 'exec', A, process.execPath, '-e', `const s=require('net').connect({host:'10.213.0.2',port:80,localAddress:'10.213.0.9',timeout:500});s.on('error',()=>{});s.on('timeout',()=>s.destroy())`]);
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && !got.some((r) => r.src.ip === '10.213.0.9')) await new Promise((r) => setTimeout(r, 100));
  } finally {
    await src.stop();
    spawnSync('ip', ['-n', A, 'addr', 'del', '10.213.0.9/32', 'dev', `va${tag}`]);
    spawnSync('ip', ['netns', 'exec', B, 'nft', 'delete', 'table', 'inet', 'weir_src']);
  }
  const drop = got.find((r) => r.src.ip === '10.213.0.9');
  assert.ok(drop, JSON.stringify(got));
  assert.equal(drop.verdict, 'DROPPED');
  assert.equal(drop.dstPort, 80);
  assert.equal(drop.policy, 'NetworkPolicy y/default-deny', 'attributed by its reason id');
  assert.ok((counted.get(3) ?? 0) >= 1, 'counted under its reason');
  assert.deepEqual(warnings.map(String), []);
});
