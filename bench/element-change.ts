// The cost of one set-element change by each way of talking to nf_tables, at several table
// sizes: `npx tsx bench/element-change.ts [--pods 10000,100000] [--adds 15]` (root).
//
// For each size, weir's table for a synthetic cluster (bench/generate.ts: N pods, N/2
// NetworkPolicies, this node holding every other pod) is loaded into a namespace this script
// creates (and removes, also on failure or Ctrl-C). Then one element is added to the largest
// group set, `--adds` times per way, each a transaction of its own:
//   nft -f      a new `nft -f -` per change (what the applier did)
//   nft -i      one long-lived `nft -i`, a line per change (one line is one transaction)
//   libnftables one nft_ctx kept for all changes, nft_run_cmd_from_buffer per change (the
//               library an addon or FFI would call; run in a child inside the namespace)
//   netlink     one NEWSETELEM batch per change (src/nft/element-writer.ts)
// Every element is read back from the kernel afterwards (`nft get element`).

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile, rm, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PolicyEngine } from '../src/policy/index.js';
import { fullScript, renderRuleset, type NftSet } from '../src/render/index.js';
import { netlinkElementWriter } from '../src/nft/element-writer.js';
import { run } from '../src/exec/run.js';
import { generateCluster } from './generate.js';

const { values } = parseArgs({ options: { pods: { type: 'string', default: '10000,100000' }, adds: { type: 'string', default: '15' } } });
const SIZES = values.pods.split(',').map(Number);
const ADDS = Number(values.adds);
const tag = randomBytes(2).toString('hex');
const created: string[] = [];
let tmp: string | undefined;

async function cleanup(): Promise<void> {
  for (const ns of created.splice(0)) await run(['ip', 'netns', 'del', ns], { allowFailure: true });
  if (tmp) await rm(tmp, { recursive: true, force: true });
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** A mark no identity has (identity marks are 2^31 + id): the key of a fresh identity-map element. */
const markOf = (ip: string): string => `0x7f${ip.split('.').slice(2).map((x) => Number(x).toString(16).padStart(2, '0')).join('')}00`;

/** A fresh address per change: 10.240.x.y is outside the generator's 10.0–10.1 range. */
let counter = 0;
const freshIp = (): string => {
  counter++;
  return `10.240.${(counter >> 8) & 255}.${counter & 255}`;
};

async function viaNftF(ns: string, set: string, ips: string[]): Promise<number[]> {
  const out: number[] = [];
  for (const ip of ips) {
    const t = performance.now();
    await run(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], { input: `add element inet weir ${set} { ${ip} }\n`, timeoutMs: 300_000 });
    out.push(performance.now() - t);
  }
  return out;
}

/** `nft -i`: a syntax error after each change is the marker that nft has finished it (stderr is ordered). */
async function viaNftI(ns: string, set: string, ips: string[]): Promise<number[]> {
  const child = spawn('ip', ['netns', 'exec', ns, 'nft', '-i'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let err = '';
  let waiting: { marker: string; resolve: (text: string) => void } | undefined;
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    err += d;
    if (waiting && err.includes(waiting.marker)) {
      const w = waiting;
      waiting = undefined;
      const text = err;
      err = '';
      w.resolve(text);
    }
  });
  const out: number[] = [];
  try {
    for (const [i, ip] of ips.entries()) {
      const marker = `weirdone${i}x`;
      const t = performance.now();
      const text = await new Promise<string>((resolve) => {
        waiting = { marker, resolve };
        child.stdin.write(`add element inet weir ${set} { ${ip} }\n${marker}\n`);
      });
      out.push(performance.now() - t);
      // The marker's own syntax error (its caret line may trail into the next read) is the only one allowed.
      if (text.split('\n').some((l) => l.startsWith('Error:') && !l.startsWith('Error: syntax error'))) throw new Error(`nft -i: ${text}`);
    }
  } finally {
    child.stdin.end();
    await new Promise((r) => child.once('exit', r));
  }
  return out;
}

const LIBNFT_CHILD = `
const koffi = require(process.argv[1]);
const lib = koffi.load('libnftables.so.1');
const ctxNew = lib.func('void *nft_ctx_new(uint32_t flags)');
const bufferError = lib.func('int nft_ctx_buffer_error(void *ctx)');
const runCmd = lib.func('int nft_run_cmd_from_buffer(void *ctx, const char *buf)');
const getError = lib.func('const char *nft_ctx_get_error_buffer(void *ctx)');
const ctx = ctxNew(0);
bufferError(ctx);
const out = [];
for (const line of process.argv.slice(2)) {
  const t = performance.now();
  const rc = runCmd(ctx, line);
  out.push(performance.now() - t);
  if (rc !== 0) { console.error(getError(ctx)); process.exit(1); }
}
console.log(JSON.stringify(out));
`;

async function viaLibnftables(ns: string, set: string, ips: string[]): Promise<number[]> {
  const koffiPath = join(process.cwd(), 'node_modules', 'koffi');
  const r = await run(['ip', 'netns', 'exec', ns, process.execPath, '-e', LIBNFT_CHILD, koffiPath, ...ips.map((ip) => `add element inet weir ${set} { ${ip} }`)], { timeoutMs: 600_000 });
  return JSON.parse(r.stdout) as number[];
}

async function viaNetlink(ns: string, set: NftSet, elements: string[]): Promise<number[]> {
  const writer = netlinkElementWriter(ns);
  const out: number[] = [];
  try {
    for (const element of elements) {
      const t = performance.now();
      const r = await writer.write([{ verb: 'add', set, elements: [element] }]);
      out.push(performance.now() - t);
      if (r.outcome !== 'applied') throw new Error(`netlink: ${r.outcome}: ${r.error ?? ''}`);
    }
  } finally {
    writer.close();
  }
  return out;
}

async function main(): Promise<void> {
  process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
  tmp = await mkdtemp(join(tmpdir(), 'weir-elbench-'));
  const lines: string[] = [];
  for (const pods of SIZES) {
    const t0 = performance.now();
    const c = generateCluster({ pods, policiesPerPod: 0.5 });
    const all = c.pods.map((p, i) => ({ ...p, node: i % 2 === 1 ? 'n1' : 'n2' }));
    const engine = new PolicyEngine({ ...c, pods: all });
    const rs = renderRuleset({ engine, localPods: all.filter((p) => p.node === 'n2').map((p) => ({ key: `${p.namespace}/${p.name}`, ip: p.ip })) });
    const file = join(tmp, `weir-${pods}.nft`);
    await writeFile(file, fullScript(rs));
    const renderMs = performance.now() - t0;
    const ns = `welbench${tag}-${pods}`;
    await run(['ip', 'netns', 'add', ns]);
    created.push(ns);
    const t1 = performance.now();
    await run(['ip', 'netns', 'exec', ns, 'nft', '-f', file], { timeoutMs: 1_800_000 });
    const loadMs = performance.now() - t1;
    const set = [...rs.sets.values()].filter((s) => s.kind === 'set' && s.type === 'ipv4_addr' && s.flags.length === 0).sort((a, b) => b.elements.length - a.elements.length)[0];
    const vmapSet = rs.sets.get('in_id') as NftSet;
    const vmapChain = (vmapSet.elements[0] ?? '').split(' : goto ')[1];
    let rules = 0;
    for (const ch of rs.chains.values()) rules += ch.rules.length;
    lines.push(`${pods} pods: ${rs.chains.size} chains, ${rs.sets.size} sets, ${rules} rules; engine+render ${(renderMs / 1000).toFixed(1)} s, nft -f load ${(loadMs / 1000).toFixed(1)} s; adding to ${set.name} (${set.elements.length} elements)`);
    const results: [string, number[], string[]][] = [];
    for (const [name, f] of [
      ['nft -f', (ips: string[]) => viaNftF(ns, set.name, ips)],
      ['nft -i', (ips: string[]) => viaNftI(ns, set.name, ips)],
      ['libnftables', (ips: string[]) => viaLibnftables(ns, set.name, ips)],
      ['netlink', (ips: string[]) => viaNetlink(ns, set, ips)],
      // The same batch into the ingress identity map, whose elements are `goto` verdicts (what a
      // pod add cost when each pod had its own verdict element): the commit re-validates jumps.
      ['netlink vmap', (ips: string[]) => viaNetlink(ns, vmapSet, ips.map((ip) => `${markOf(ip)} : goto ${vmapChain}`))],
    ] as const) {
      // One more change first, not counted: process start, library load, first-call costs.
      const ips = Array.from({ length: ADDS + 1 }, freshIp);
      results.push([name, (await f(ips)).slice(1), ips]);
    }
    for (const [name, ms] of results) lines.push(`  ${name.padEnd(12)} median ${median(ms).toFixed(2).padStart(8)} ms  (min ${Math.min(...ms).toFixed(2)}, max ${Math.max(...ms).toFixed(2)}; ${ms.length} adds after one not counted)`);
    console.log(lines.join('\n'));
    lines.length = 0;
    // Read back one element at a time: a `get` of many elements in a set of 100k failed here
    // with exit 1 and nothing on stderr.
    const missing: string[] = [];
    for (const [name, , ips] of results) {
      for (const ip of ips) {
        const r = await run(['ip', 'netns', 'exec', ns, 'nft', 'get', 'element', 'inet', 'weir', name === 'netlink vmap' ? 'in_id' : set.name, `{ ${name === 'netlink vmap' ? markOf(ip) : ip} }`], { timeoutMs: 300_000, allowFailure: true });
        if (!r.stdout.includes(name === 'netlink vmap' ? markOf(ip) : ip)) missing.push(`${name}: ${ip} (exit ${r.code}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n')[0]}` : ''})`);
      }
    }
    lines.push(missing.length === 0 ? `  every element read back from the kernel (nft get element)` : `  NOT IN THE KERNEL: ${missing.join('; ')}`);
    await run(['ip', 'netns', 'del', ns]);
    created.splice(created.indexOf(ns), 1);
    console.log(lines.join('\n'));
    lines.length = 0;
    if (missing.length > 0) process.exitCode = 1;
  }
}

try {
  await main();
} finally {
  await cleanup();
}
