// suite: lab (needs root: real network namespaces and nftables; `npm run test:lab`)
// The element fast path: set-element changes as one nfnetlink batch (src/nft/netlink.ts,
// netlink-socket.ts, element-writer.ts). Encoding is checked against the bytes nft itself
// sends (pure); then in a namespace this file creates: elements of every type read back by
// nft, a bad change refused as a whole and reported, drift and refusals resynced by a full
// replace, an agent killed in the middle of changes leaving whole transactions only, and no
// process or descriptor left behind.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Applier, netlinkElementWriter, netlinkIdle, nftRunner, elementCommands, sourceCheckInForce, sourceCheckInForceByGrep, strictSourceCheck, strictSourceCheckBySysctl } from '../src/nft/index.js';
import { encodeBatch, encodeElement, encodeSourceChain, parseAcks } from '../src/nft/netlink.js';
import { renderRuleset, sourceChainName, type NftSet, type Ruleset } from '../src/render/index.js';
import { NodeAgent } from '../src/agent/index.js';
import { run } from '../src/exec/run.js';
import { churnCluster, churnLocal, extraPod } from './helpers/netlink-churn.js';
import { interleave, slotRuns } from '../src/lb/index.js';

const isRoot = process.getuid?.() === 0;
const PREFIX = `wnl${randomBytes(2).toString('hex')}`;
const created: string[] = [];

const set = (name: string, type: string, kind: 'set' | 'map' = 'set', flags: string[] = []): NftSet => ({ name, kind, type, flags, extra: [], dynamic: false, elements: [] });
const hex = (b: Buffer | undefined) => b?.toString('hex');
/** The type and flags of each netlink message of a batch, in order. */
function headers(bytes: Buffer): { types: number[]; flags: number[] } {
  const types: number[] = [];
  const flags: number[] = [];
  for (let off = 0; off < bytes.length; off += bytes.readUInt32LE(off)) {
    types.push(bytes.readUInt16LE(off + 4));
    flags.push(bytes.readUInt16LE(off + 6));
  }
  return { types, flags };
}

describe('netlink element encoding (pure)', () => {
  // The bytes below are what `nft --debug=netlink add element …` 1.0.6 sends for each type.
  it('lays out keys as nft does: addresses, concatenations padded to 32 bits, interface names, verdicts', () => {
    assert.equal(hex(encodeElement(set('g', 'ipv4_addr'), '10.1.2.3', true)?.key), '0a010203');
    assert.equal(hex(encodeElement(set('np', 'ipv4_addr . inet_proto . inet_service'), '10.1.2.3 . tcp . 8080', true)?.key), '0a010203' + '06000000' + '1f900000');
    assert.equal(hex(encodeElement(set('ifs', 'ifname'), '"wpod"', true)?.key), '77706f64' + '00'.repeat(12));
    assert.equal(hex(encodeElement(set('src', 'ifname . ipv4_addr'), '"wpod" . 10.1.2.3', true)?.key), '77706f64' + '00'.repeat(12) + '0a010203');
    const m = encodeElement(set('m', 'ipv4_addr : verdict', 'map'), '10.1.2.3 : goto in_x_a_1234', true);
    assert.deepEqual(m?.verdict, { code: -4, chain: 'in_x_a_1234' });
    assert.equal(hex(m?.key), '0a010203');
    // A delete names the key only.
    assert.equal(encodeElement(set('m', 'ipv4_addr : verdict', 'map'), '10.1.2.3 : goto in_x', false)?.verdict, undefined);
    assert.deepEqual(encodeElement(set('m', 'ipv4_addr : verdict', 'map'), '10.1.2.3 : drop', true)?.verdict, { code: 0 });
    // Data maps (pod → identity mark): the mark is a host-endian u32, as `meta mark` is.
    const le = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b.toString('hex'); };
    const d = encodeElement(set('p', 'ipv4_addr : mark', 'map'), '10.1.2.3 : 0x40000005', true);
    assert.equal(hex(d?.key), '0a010203');
    assert.equal(hex(d?.data), le(0x40000005));
    assert.equal(encodeElement(set('p', 'ipv4_addr : mark', 'map'), '10.1.2.3 : 0x40000005', false)?.data, undefined);
    assert.equal(hex(encodeElement(set('v', 'mark : verdict', 'map'), '0x40000005 : goto eg_x', true)?.key), le(0x40000005));
  });

  it('leaves to nft -f what it cannot encode: intervals, timeouts, names, IPv6, wildcards, bad values', () => {
    for (const [s, text] of [
      [set('c', 'ipv4_addr', 'set', ['interval']), '10.0.0.0/8'],
      [set('d', 'ipv4_addr', 'set', ['timeout']), '10.0.0.1'],
      [set('g', 'ipv4_addr'), '10.0.0.256'],
      [set('g', 'ipv4_addr'), '10.0.0'],
      [set('g6', 'ipv6_addr'), '::1'],
      [set('np', 'ipv4_addr . inet_proto . inet_service'), '10.0.0.1 . tcp . http'],
      [set('np', 'ipv4_addr . inet_proto . inet_service'), '10.0.0.1 . tcp'],
      [set('ifs', 'ifname'), '"wv*"'],
      [set('ifs', 'ifname'), '"a-name-that-is-too-long"'],
      [set('m', 'ipv4_addr : verdict', 'map'), '10.0.0.1 : goto bad name'],
      [set('m', 'ipv4_addr : verdict', 'map'), '10.0.0.1'],
      [set('p', 'ipv4_addr : mark', 'map'), '10.0.0.1 : 0x100000000'],
      [set('p', 'ipv4_addr : mark', 'map'), '10.0.0.1 : goto c1'],
    ] as const) {
      assert.equal(encodeElement(s, text, true), undefined, `${s.name} ${text}`);
    }
    const planned = elementCommands([{ verb: 'add', set: set('c', 'ipv4_addr', 'set', ['interval']), elements: ['10.0.0.0/8'] }]);
    assert.ok('unsupported' in planned && planned.unsupported.includes('c (ipv4_addr, flags interval)'));
  });

  it('one batch: BATCH_BEGIN, one message per command asking for an ack, BATCH_END; acks are read by seq', () => {
    const e = encodeElement(set('g', 'ipv4_addr'), '10.1.2.3', true);
    assert.ok(e);
    const b = encodeBatch(
      [
        { verb: 'delete', family: 1, table: 'weir', set: 'g', elements: [e], text: 'delete' },
        { verb: 'add', family: 1, table: 'weir', set: 'g', elements: [e], text: 'add' },
      ],
      100,
    );
    const { types, flags } = headers(b.bytes);
    assert.deepEqual(types, [0x10, (10 << 8) | 14, (10 << 8) | 12, 0x11]);
    assert.deepEqual(flags, [1, 1 | 4, 1 | 4 | 0x400, 1]);
    assert.deepEqual([...b.commands.keys()], [101, 102]);
    // NLMSG_ERROR with error -2 for seq 102, then a zero ack for 101.
    const ack = (seq: number, error: number) => {
      const m = Buffer.alloc(36);
      m.writeUInt32LE(36, 0);
      m.writeUInt16LE(2, 4);
      m.writeUInt32LE(seq, 8);
      m.writeInt32LE(error, 16);
      return m;
    };
    assert.deepEqual(parseAcks(Buffer.concat([ack(102, -2), ack(101, 0)])), [
      { seq: 102, error: -2 },
      { seq: 101, error: 0 },
    ]);
  });
  it('a source chain is encoded only in the shape the renderer writes: a chain and its rule, two messages of one command', () => {
    const hook = 'type filter hook ingress device "wpod1" priority -500; policy accept;';
    const chain = { name: 'src_wpod1_1234abcd', hook, rules: ['ip saddr != 10.1.2.3 goto spoofed'] };
    assert.deepEqual(encodeSourceChain(chain), { name: chain.name, device: 'wpod1', priority: -500, check: { address: Buffer.from([10, 1, 2, 3]), target: 'spoofed' } });
    for (const other of [
      { ...chain, hook: undefined },
      { ...chain, hook: hook.replace('ingress', 'egress') },
      { ...chain, hook: hook.replace('policy accept', 'policy drop') },
      { ...chain, hook: hook.replace('wpod1', 'a-name-of-16-byt') },
      { ...chain, hook: hook.replace('wpod1', 'w\\"x') },
      { ...chain, rules: ['ip saddr != 10.1.2.3 drop'] },
      { ...chain, rules: ['ip saddr != 10.1.2.3 counter goto spoofed'] },
      { ...chain, rules: ['ip saddr != 10.1.2.300 goto spoofed'] },
      { ...chain, rules: ['ip saddr != 10.1.2.3 goto a;b'] },
      { ...chain, rules: ['ip saddr != 10.1.2.3 goto spoofed', 'accept'] },
      { ...chain, name: 'a name' },
    ]) assert.equal(encodeSourceChain(other), undefined, JSON.stringify(other));
    const c = encodeSourceChain(chain);
    assert.ok(c);
    const b = encodeBatch(
      [
        { verb: 'delete chain', family: 1, table: 'weir_src', chain: { name: 'src_old' }, text: 'delete' },
        { verb: 'add table', family: 1, table: 'weir_src', text: 'table' },
        { verb: 'add chain', family: 1, table: 'weir_src', chain: c, text: 'add' },
      ],
      200,
    );
    const { types, flags } = headers(b.bytes);
    // DELCHAIN, NEWTABLE, NEWCHAIN, NEWRULE (create, append), each asking for an ack.
    assert.deepEqual(types, [0x10, (10 << 8) | 5, (10 << 8) | 0, (10 << 8) | 3, (10 << 8) | 6, 0x11]);
    assert.deepEqual(flags, [1, 1 | 4, 1 | 4 | 0x400, 1 | 4 | 0x400, 1 | 4 | 0x400 | 0x800, 1]);
    assert.deepEqual([...b.commands.values()].map((x) => x.text), ['delete', 'table', 'add', 'add']);
  });
});

/** Descriptors of this process, by what they point at. */
function openDescriptors(): string[] {
  return readdirSync('/proc/self/fd').map((fd) => {
    try {
      return readlinkSync(join('/proc/self/fd', fd));
    } catch {
      return 'gone';
    }
  });
}

describe('netlink element writer in a real namespace', { skip: !isRoot && 'needs root' }, () => {
  const ns = `${PREFIX}-w`;
  const TABLE = [
    'table inet weir {',
    '  set g { type ipv4_addr; }',
    '  set np { type ipv4_addr . inet_proto . inet_service; }',
    '  set ifs { type ifname; }',
    '  set src { type ifname . ipv4_addr; }',
    '  map m { type ipv4_addr : verdict; }',
    '  map p { type ipv4_addr : mark; }',
    '  map v { type mark : verdict; }',
    '  map lb { typeof numgen random mod 1000 : verdict; flags interval; }',
    '  chain c1 { }',
    '  chain c2 { }',
    '  chain s { numgen random mod 1000 vmap @lb; }',
    '  map lbd { typeof numgen random mod 1000 : ip daddr . tcp dport; flags interval; }',
    '  chain n { type nat hook prerouting priority dstnat; policy accept; meta l4proto tcp dnat ip to numgen random mod 1000 map @lbd; }',
    '  map lbi { typeof numgen inc mod 100 : ip daddr . tcp dport; flags interval; }',
    '  chain i { type nat hook output priority -100; policy accept; meta l4proto tcp dnat ip to numgen inc mod 100 map @lbi; }',
    '}',
    '',
  ].join('\n');
  const nft = async (...args: string[]) => (await run(['ip', 'netns', 'exec', ns, 'nft', ...args])).stdout;
  const load = async () => {
    await run(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], { input: `add table inet weir\ndelete table inet weir\n${TABLE}` });
  };
  before(async () => {
    await run(['ip', 'netns', 'add', ns]);
    created.push(ns);
    await load();
  });
  after(async () => {
    await netlinkIdle();
    for (const n of created.splice(0)) await run(['ip', 'netns', 'del', n], { allowFailure: true });
  });

  it('adds and removes elements of every type the pod path patches; nft reads them back as written', async () => {
    const w = netlinkElementWriter(ns);
    try {
      const added = await w.write([
        { verb: 'add', set: set('g', 'ipv4_addr'), elements: ['10.9.9.9', '10.9.9.10'] },
        { verb: 'add', set: set('np', 'ipv4_addr . inet_proto . inet_service'), elements: ['10.9.9.9 . tcp . 8080', '10.9.9.9 . udp . 53'] },
        { verb: 'add', set: set('ifs', 'ifname'), elements: ['"wv123"'] },
        { verb: 'add', set: set('src', 'ifname . ipv4_addr'), elements: ['"wv123" . 10.9.9.9'] },
        { verb: 'add', set: set('m', 'ipv4_addr : verdict', 'map'), elements: ['10.9.9.9 : goto c1', '10.9.9.8 : accept'] },
        { verb: 'add', set: set('p', 'ipv4_addr : mark', 'map'), elements: ['10.9.9.9 : 0x40000005'] },
        { verb: 'add', set: set('v', 'mark : verdict', 'map'), elements: ['0x40000005 : goto c1'] },
      ]);
      assert.deepEqual(added, { outcome: 'applied' });
      const listed = await nft('list', 'table', 'inet', 'weir');
      for (const text of ['10.9.9.9', '10.9.9.10', '10.9.9.9 . tcp . 8080', '10.9.9.9 . udp . 53', '"wv123"', '"wv123" . 10.9.9.9', '10.9.9.9 : goto c1', '10.9.9.8 : accept', '10.9.9.9 : 0x40000005', '0x40000005 : goto c1']) {
        assert.ok(listed.includes(text), `${text} in\n${listed}`);
      }
      const removed = await w.write([
        { verb: 'delete', set: set('g', 'ipv4_addr'), elements: ['10.9.9.10'] },
        { verb: 'delete', set: set('m', 'ipv4_addr : verdict', 'map'), elements: ['10.9.9.9 : goto c1'] },
        { verb: 'delete', set: set('src', 'ifname . ipv4_addr'), elements: ['"wv123" . 10.9.9.9'] },
      ]);
      assert.deepEqual(removed, { outcome: 'applied' });
      const after = await nft('list', 'table', 'inet', 'weir');
      assert.ok(!after.includes('10.9.9.10') && !after.includes('10.9.9.9 : goto c1') && !after.includes('"wv123" . 10.9.9.9'), after);
      assert.ok(after.includes('10.9.9.8 : accept') && after.includes('10.9.9.9 . tcp . 8080'));
    } finally {
      w.close();
    }
  });

  it('weight maps (numgen intervals): ranges are added, moved and removed as nft does, and nft lists them back', async () => {
    const w = netlinkElementWriter(ns);
    const lb = set('lb', 'typeof numgen random mod 1000 : verdict', 'map', ['interval']);
    const listed = async () => /elements = \{([^}]*)\}/.exec((await nft('list', 'map', 'inet', 'weir', 'lb')).replace(/\s+/g, ' '))?.[1].trim() ?? '';
    try {
      assert.deepEqual(await w.write([{ verb: 'add', set: lb, elements: ['0-499 : goto c1', '500-998 : goto c2', '999 : goto c1'] }]), { outcome: 'applied' });
      assert.equal(await listed(), '0-499 : goto c1, 500-998 : goto c2, 999 : goto c1');
      // A weight change: the old ranges go, the new ones come, in one batch (deletes first).
      const moved = await w.write([
        { verb: 'delete', set: lb, elements: ['0-499 : goto c1', '500-998 : goto c2', '999 : goto c1'] },
        { verb: 'add', set: lb, elements: ['0-899 : goto c1', '900-999 : goto c2'] },
      ]);
      assert.deepEqual(moved, { outcome: 'applied' });
      assert.equal(await listed(), '0-899 : goto c1, 900-999 : goto c2');
      assert.deepEqual(await w.write([{ verb: 'delete', set: lb, elements: ['0-899 : goto c1', '900-999 : goto c2'] }]), { outcome: 'applied' });
      assert.equal(await listed(), '');
      // DNAT data maps (Services without affinity): address . port per range.
      const lbd = set('lbd', 'typeof numgen random mod 1000 : ip daddr . tcp dport', 'map', ['interval']);
      const listedD = async () => /elements = \{([^}]*)\}/.exec((await nft('list', 'map', 'inet', 'weir', 'lbd')).replace(/\s+/g, ' '))?.[1].trim() ?? '';
      assert.deepEqual(await w.write([{ verb: 'add', set: lbd, elements: ['0-899 : 10.244.0.2 . 8080', '900-999 : 10.244.0.3 . 80'] }]), { outcome: 'applied' });
      assert.equal(await listedD(), '0-899 : 10.244.0.2 . 8080, 900-999 : 10.244.0.3 . 80');
      const movedD = await w.write([
        { verb: 'delete', set: lbd, elements: ['0-899 : 10.244.0.2 . 8080', '900-999 : 10.244.0.3 . 80'] },
        { verb: 'add', set: lbd, elements: ['0-999 : 10.244.0.3 . 80'] },
      ]);
      assert.deepEqual(movedD, { outcome: 'applied' });
      assert.equal(await listedD(), '0-999 : 10.244.0.3 . 80');
      // Interleaved maps (weighted and adaptive Services): `numgen inc mod 100`, many short
      // runs, replaced by another interleaving in one batch, as an adaptive step does.
      const lbi = set('lbi', 'typeof numgen inc mod 100 : ip daddr . tcp dport', 'map', ['interval']);
      const runs = (weights: [string, number][]): string[] =>
        slotRuns(interleave(new Map(weights)) ?? assert.fail('no slots')).map(({ from, to, key }) => `${to === from ? from : `${from}-${to}`} : ${key} . 8080`);
      const listedI = async () => /elements = \{([^}]*)\}/.exec((await nft('list', 'map', 'inet', 'weir', 'lbi')).replace(/\s+/g, ' '))?.[1].trim() ?? '';
      const first = runs([['10.244.0.2', 500], ['10.244.0.3', 300], ['10.244.0.4', 200]]);
      assert.ok(first.length > 50, `${first.length} runs`);
      assert.deepEqual(await w.write([{ verb: 'add', set: lbi, elements: first }]), { outcome: 'applied' });
      assert.equal(await listedI(), first.join(', '));
      const second = runs([['10.244.0.2', 100], ['10.244.0.3', 600], ['10.244.0.4', 300]]);
      assert.deepEqual(await w.write([{ verb: 'delete', set: lbi, elements: first }, { verb: 'add', set: lbi, elements: second }]), { outcome: 'applied' });
      assert.equal(await listedI(), second.join(', '));
    } finally {
      w.close();
    }
  });

  it('a bad change is refused as a whole: nothing of the batch is applied, and the refusal names the command and the errno', async () => {
    const w = netlinkElementWriter(ns);
    try {
      const before = await nft('list', 'table', 'inet', 'weir');
      const r = await w.write([
        { verb: 'add', set: set('g', 'ipv4_addr'), elements: ['10.7.7.7'] },
        { verb: 'add', set: set('m', 'ipv4_addr : verdict', 'map'), elements: ['10.7.7.7 : goto no_such_chain'] },
        { verb: 'add', set: set('ifs', 'ifname'), elements: ['"wv777"'] },
      ]);
      assert.equal(r.outcome, 'refused');
      assert.match(r.error ?? '', /add element inet weir m \{ 10\.7\.7\.7 : goto no_such_chain \}: ENOENT/);
      assert.equal(await nft('list', 'table', 'inet', 'weir'), before, 'the kernel holds exactly what it held');
      // Deleting what is not there is refused the same way.
      const d = await w.write([{ verb: 'delete', set: set('g', 'ipv4_addr'), elements: ['10.6.6.6'] }]);
      assert.equal(d.outcome, 'refused');
      assert.match(d.error ?? '', /delete element inet weir g \{ 10\.6\.6\.6 \}: ENOENT/);
      // And the socket still serves the next change.
      assert.deepEqual(await w.write([{ verb: 'add', set: set('g', 'ipv4_addr'), elements: ['10.7.7.8'] }]), { outcome: 'applied' });
    } finally {
      w.close();
    }
  });

  it('a namespace that is gone is reported, not thrown; one replaced under the same name gets a new socket', async () => {
    const missing = await netlinkElementWriter(`${PREFIX}-none`).write([{ verb: 'add', set: set('g', 'ipv4_addr'), elements: ['10.1.1.1'] }]);
    assert.equal(missing.outcome, 'failed');
    assert.match(missing.error ?? '', /netns .*-none/);
    const w = netlinkElementWriter(ns);
    try {
      assert.deepEqual(await w.write([{ verb: 'add', set: set('g', 'ipv4_addr'), elements: ['10.5.5.1'] }]), { outcome: 'applied' });
      await run(['ip', 'netns', 'del', ns]);
      await run(['ip', 'netns', 'add', ns]);
      await load();
      assert.deepEqual(await w.write([{ verb: 'add', set: set('g', 'ipv4_addr'), elements: ['10.5.5.2'] }]), { outcome: 'applied' });
      const listed = await nft('list', 'set', 'inet', 'weir', 'g');
      assert.ok(listed.includes('10.5.5.2') && !listed.includes('10.5.5.1'), `written to the new namespace:\n${listed}`);
    } finally {
      w.close();
    }
  });

  it('leaves no process and no descriptor: nothing runs in the namespace, descriptors return to where they were', async () => {
    await netlinkIdle();
    const fdsBefore = openDescriptors().filter((d) => d.startsWith('socket:')).length;
    const w = netlinkElementWriter(ns);
    for (let i = 0; i < 50; i++) {
      const r = await w.write([{ verb: i % 2 ? 'delete' : 'add', set: set('g', 'ipv4_addr'), elements: ['10.4.4.4'] }]);
      assert.equal(r.outcome, 'applied', r.error ?? '');
    }
    assert.equal((await run(['ip', 'netns', 'pids', ns])).stdout.trim(), '', 'no process in the namespace');
    w.close();
    await netlinkIdle();
    assert.equal(openDescriptors().filter((d) => d.startsWith('socket:')).length, fdsBefore, 'no socket left open');
  });
});

describe('the kernel\'s reverse-path filter on pod interfaces, through setns and through processes', { skip: !isRoot && 'needs root' }, () => {
  const ns = `${PREFIX}-rp`;
  const sysctl = async (name: string) => (await run(['ip', 'netns', 'exec', ns, 'cat', `/proc/sys/net/ipv4/conf/${name}/rp_filter`])).stdout.trim();
  const setAll = (v: number) => run(['ip', 'netns', 'exec', ns, 'sh', '-c', `echo ${v} > /proc/sys/net/ipv4/conf/all/rp_filter`]);
  before(async () => {
    await run(['ip', 'netns', 'add', ns]);
    created.push(ns);
    // Stand-ins for pod veths (no dummy links on this kernel); one name with a dot, which sysctl's dotted form would misread.
    await run(['ip', '-n', ns, '-batch', '-'], { input: 'link add wr0 type bridge\nlink add wr1 type bridge\nlink add wr.5 type bridge\n' });
    await setAll(0);
  });
  after(async () => {
    for (const n of created.splice(0)) await run(['ip', 'netns', 'del', n], { allowFailure: true });
  });

  it('turns the strict filter on in the namespace (not in the caller\'s), and both ways read the same', async () => {
    const hostLo = (await run(['cat', '/proc/sys/net/ipv4/conf/lo/rp_filter'])).stdout.trim();
    assert.deepEqual([...strictSourceCheck(ns, ['wr0', 'lo', 'wr-none', 'bad/name'])], [['wr0', true], ['lo', true], ['wr-none', false]]);
    assert.deepEqual([...strictSourceCheckBySysctl(ns, ['wr.5', 'wr-none', 'bad/name'])], [['wr.5', true], ['wr-none', false]]);
    assert.equal(await sysctl('wr0'), '1');
    assert.equal(await sysctl('wr.5'), '1');
    assert.equal(await sysctl('wr1'), '0', 'only the interfaces named');
    assert.equal((await run(['cat', '/proc/sys/net/ipv4/conf/lo/rp_filter'])).stdout.trim(), hostLo, 'the caller\'s namespace is untouched');
    const names = ['wr0', 'wr1', 'wr.5', 'wr-none'];
    const want = [['wr0', true], ['wr1', false], ['wr.5', true], ['wr-none', false]];
    assert.deepEqual([...sourceCheckInForce(ns, names)], want);
    assert.deepEqual([...sourceCheckInForceByGrep(ns, names)], want);
  });

  it('with all.rp_filter 2 (loose wins) the filter is not in force, whichever way it was asked', async () => {
    await setAll(2);
    try {
      assert.deepEqual([...strictSourceCheck(ns, ['wr1'])], [['wr1', false]]);
      assert.equal(await sysctl('wr1'), '1', 'written, but loose wins');
      assert.deepEqual([...strictSourceCheckBySysctl(ns, ['wr1'])], [['wr1', false]]);
      assert.deepEqual([...sourceCheckInForce(ns, ['wr0', 'wr1'])], [['wr0', false], ['wr1', false]]);
      assert.deepEqual([...sourceCheckInForceByGrep(ns, ['wr0', 'wr1'])], [['wr0', false], ['wr1', false]]);
    } finally {
      await setAll(0);
    }
    assert.deepEqual([...sourceCheckInForce(ns, ['wr0'])], [['wr0', true]]);
    // A namespace that is not there is an error, not a silent "checked".
    assert.throws(() => strictSourceCheck(`${PREFIX}-none`, ['wr0']), /netns/);
  });
});

describe('applier and agent on the netlink path', { skip: !isRoot && 'needs root' }, () => {
  const ns = `${PREFIX}-a`;
  const nft = async (...args: string[]) => (await run(['ip', 'netns', 'exec', ns, 'nft', ...args])).stdout;
  /** `ip : goto chain` pairs of a verdict map, as the kernel lists them. */
  const mapPairs = async (map: string) => [...(await nft('list', 'map', 'inet', 'weir', map)).matchAll(/(\d+\.\d+\.\d+\.\d+|0x[0-9a-f]{8}) : (goto [\w.-]+|0x[0-9a-f]{8})/g)].map((m) => `${m[1]} : ${m[2]}`).sort();
  before(async () => {
    await run(['ip', 'netns', 'add', ns]);
    created.push(ns);
    // The pods' veths (anti-spoofing matches them by interface index: they must exist; this
    // kernel has no dummy links, a bridge is the cheapest stand-in).
    const links = ['wx0', 'wx1', ...Array.from({ length: 50 }, (_, i) => `wc${i}`)];
    await run(['ip', '-n', ns, '-batch', '-'], { input: links.map((l) => `link add ${l} type bridge\n`).join('') });
  });
  after(async () => {
    await netlinkIdle();
    for (const n of created.splice(0)) await run(['ip', 'netns', 'del', n], { allowFailure: true });
  });

  it('a pod whose veth appears after the agent learnt of it gets its anti-spoofing elements when the agent looks again', async () => {
    const agent = new NodeAgent({ node: 'n0', netns: ns, podInterfaces: 'wl*' });
    try {
      assert.ok((await agent.sync(churnCluster(), churnLocal())).lastApplyOk);
      const pod = extraPod(7);
      const ip = (pod.ip as string).replaceAll('.', '\\.');
      const added = await agent.podAdded(pod, { key: `x/${pod.name}`, ip: pod.ip, hostVeth: 'wlate' });
      assert.ok(added.lastApplyOk, added.error ?? '');
      assert.ok(agent.pendingInterfaces().includes('wlate'), agent.pendingInterfaces().join(', '));
      assert.doesNotMatch(await nft('list', 'set', 'inet', 'weir', 'pod_src'), new RegExp(ip), 'no element for an interface that is not there');
      assert.equal(await agent.refreshInterfaces(), undefined, 'still not there: nothing to do');
      await run(['ip', '-n', ns, 'link', 'add', 'wlate', 'type', 'bridge']);
      const st = await agent.refreshInterfaces();
      assert.ok(st?.lastApplyOk, st?.error ?? 'no apply');
      assert.ok(!agent.pendingInterfaces().includes('wlate'), agent.pendingInterfaces().join(', '));
      assert.match(await nft('list', 'set', 'inet', 'weir', 'pod_src'), new RegExp(`"wlate" \\. ${ip}`));
      assert.match(await nft('list', 'set', 'inet', 'weir', 'pod_ifs'), /"wlate"/);
      // Made anew under the same name: another index, which the agent notices and follows.
      const indexOf = async () => Number(/^(\d+):/.exec((await run(['ip', '-n', ns, '-o', 'link', 'show', 'wlate'])).stdout)?.[1]);
      const first = await indexOf();
      assert.equal(agent.interfacesChanged(), false);
      await run(['ip', '-n', ns, 'link', 'del', 'wlate']);
      await run(['ip', '-n', ns, 'link', 'add', 'wlate', 'type', 'bridge']);
      const second = await indexOf();
      assert.notEqual(second, first);
      assert.equal(agent.interfacesChanged(), true);
      assert.ok((await agent.refreshInterfaces())?.lastApplyOk);
      assert.deepEqual(agent.lastRuleset?.sets.get('pod_src')?.elements.filter((e) => e.endsWith(` . ${pod.ip as string}`)), [`${second} . ${pod.ip as string}`]);
      assert.match(await nft('list', 'set', 'inet', 'weir', 'pod_src'), new RegExp(`"wlate" \\. ${ip}`));
      assert.doesNotMatch(await nft('list', 'set', 'inet', 'weir', 'pod_src'), new RegExp(`\\b${first} \\. ${ip}`), 'the old index is gone');
      // Removed after its veth is gone: the element names the index, so the delete still works.
      await run(['ip', '-n', ns, 'link', 'del', 'wlate']);
      const gone = await agent.podRemoved('x', pod.name);
      assert.ok(gone.lastApplyOk, gone.error ?? '');
      assert.doesNotMatch(await nft('list', 'set', 'inet', 'weir', 'pod_src'), new RegExp(ip));
    } finally {
      agent.close();
      await run(['ip', '-n', ns, 'link', 'del', 'wlate'], { allowFailure: true });
    }
  });

  it('pod add and remove go as one netlink batch each and reach the kernel', async () => {
    const agent = new NodeAgent({ node: 'n0', netns: ns });
    try {
      const first = await agent.sync(churnCluster(), churnLocal());
      assert.ok(first.lastApplyOk && first.mode === 'full' && first.via === 'nft', first.error ?? '');
      const pod = extraPod(0);
      const added = await agent.podAdded(pod, { key: `x/${pod.name}`, ip: pod.ip, hostVeth: 'wx0' });
      assert.ok(added.lastApplyOk, added.error ?? '');
      assert.equal(added.via, 'netlink');
      assert.equal(added.fallback, undefined);
      const mark = new RegExp(`${pod.ip} : (0x[0-9a-f]{8})`).exec(await nft('get', 'element', 'inet', 'weir', 'in_pod', `{ ${pod.ip} }`))?.[1];
      assert.ok(mark, 'pod → identity element in the kernel');
      assert.match(await nft('list', 'map', 'inet', 'weir', 'in_id'), new RegExp(`${mark} : jump in_x_a_`));
      // Its anti-spoofing: the veth's source chain, in the same batch (and no element in `pod_src`:
      // the forward chain does not check a chained veth again).
      assert.match(await nft('list', 'chain', 'inet', 'weir_src', sourceChainName('wx0')), /ip saddr != 10\.1\.1\.10 goto spoofed/);
      assert.doesNotMatch(await nft('list', 'set', 'inet', 'weir', 'pod_src'), /10\.1\.1\.10/);
      assert.deepEqual(await mapPairs('in_pod'), [...(agent.lastRuleset?.sets.get('in_pod')?.elements ?? [])].sort());
      const removed = await agent.podRemoved('x', pod.name);
      assert.ok(removed.lastApplyOk && removed.via === 'netlink', removed.error ?? removed.fallback ?? '');
      assert.doesNotMatch(await nft('list', 'table', 'inet', 'weir'), /10\.1\.1\.10\b/);
    } finally {
      agent.close();
    }
  });

  it('source chains: a pod add brings its veth\'s check in the same batch, a remove takes it; the chain checks real packets and follows a veth made anew under its name', async () => {
    const pod = extraPod(5);
    const ip = pod.ip as string;
    const podNs = `${PREFIX}-p`;
    await run(['ip', 'netns', 'add', podNs]);
    created.push(podNs);
    // The pod: eth0 in its namespace, wsv0 on the node, 10.1.1.0/24 between them.
    const wire = async () => {
      await run(['ip', '-n', ns, 'link', 'add', 'wsv0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', podNs]);
      await run(['ip', '-n', ns, 'addr', 'add', '10.1.1.1/24', 'dev', 'wsv0']);
      await run(['ip', '-n', ns, 'link', 'set', 'wsv0', 'up']);
      await run(['ip', '-n', podNs, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      await run(['ip', '-n', podNs, 'addr', 'add', '10.1.1.99/32', 'dev', 'eth0']);
      await run(['ip', '-n', podNs, 'link', 'set', 'eth0', 'up']);
    };
    await run(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']);
    await wire();
    // A TCP connect to the node's closed port 9 from `from`: refused (it arrived) or timeout (dropped).
    const knock = async (from: string) =>
      (await run(['ip', 'netns', 'exec', podNs, process.execPath, '-e', `const s=require('net').connect({host:'10.1.1.1',port:9,localAddress:'${from}',timeout:600});s.on('connect',()=>{console.log('open');s.destroy()});s.on('timeout',()=>{console.log('timeout');s.destroy()});s.on('error',(e)=>console.log(e.code==='ECONNREFUSED'?'refused':e.code))`], { allowFailure: true })).stdout.trim();
    assert.equal(await knock('10.1.1.99'), 'refused', 'before weir, a forged source gets through');
    const agent = new NodeAgent({ node: 'n0', netns: ns });
    try {
      assert.equal(agent.sourceChains, true, 'this kernel keeps netdev hooks by name');
      assert.ok((await agent.sync(churnCluster(), churnLocal())).lastApplyOk);
      const added = await agent.podAdded(pod, { key: `x/${pod.name}`, ip, hostVeth: 'wsv0' });
      assert.ok(added.lastApplyOk && added.via === 'netlink' && added.mode === 'partial', added.error ?? added.fallback ?? added.mode);
      const name = sourceChainName('wsv0');
      assert.match(await nft('list', 'chain', 'inet', 'weir_src', name), new RegExp(`type filter hook ingress device "wsv0" priority -500; policy accept;\\s+ip saddr != ${ip.replaceAll('.', '\\.')} goto spoofed`));
      // The patched model is what a render of the same state gives.
      const fresh = renderRuleset({ engine: agent.engine, localPods: [...churnLocal(), { key: `x/${pod.name}`, ip, hostVeth: 'wsv0' }], sourceChains: true });
      assert.ok(agent.lastRuleset);
      assert.deepEqual(agent.lastRuleset.chains.get(name), fresh.chains.get(name));
      assert.deepEqual([...agent.lastRuleset.chains.keys()].sort(), [...fresh.chains.keys()].sort());
      assert.equal(await knock(ip), 'refused', 'the pod\'s own address passes');
      assert.equal(await knock('10.1.1.99'), 'timeout', 'a forged source is dropped');
      // Counted and recorded as weir's deny chain would (under the spoofing reason), in weir_src.
      assert.match(await nft('list', 'set', 'inet', 'weir_src', 'src_denied'), /10\.1\.1\.99 \. 10\.1\.1\.1 \. tcp \. 9 \. 0x[0-9a-f]{8}/);
      assert.match(await nft('list', 'set', 'inet', 'weir_src', 'src_hits'), /0x[0-9a-f]{8} counter packets [1-9]/);
      // The veth deleted and made anew under its name (a CNI re-plumbing the pod): the kernel
      // binds the same chain to it; nothing for the agent to do.
      await run(['ip', '-n', ns, 'link', 'del', 'wsv0']);
      await wire();
      assert.equal(await knock('10.1.1.99'), 'timeout', 'still dropped on the new veth');
      assert.equal(await knock(ip), 'refused');
      const removed = await agent.podRemoved('x', pod.name);
      assert.ok(removed.lastApplyOk && removed.via === 'netlink', removed.error ?? removed.fallback ?? '');
      assert.doesNotMatch(await nft('list', 'table', 'inet', 'weir_src'), new RegExp(name));
      assert.equal(agent.lastRuleset?.chains.has(name), false);
      assert.equal(await knock('10.1.1.99'), 'refused', 'the check went with its pod');
    } finally {
      agent.close();
      await run(['ip', '-n', ns, 'link', 'del', 'wsv0'], { allowFailure: true });
    }
  });

  it('drift: a batch the kernel refuses is reported and resynced by a full replace; the kernel ends equal to the model', async () => {
    const agent = new NodeAgent({ node: 'n0', netns: ns, log: () => undefined });
    try {
      assert.ok((await agent.sync(churnCluster(), churnLocal())).lastApplyOk);
      const pod = extraPod(1);
      assert.equal((await agent.podAdded(pod, { key: `x/${pod.name}`, ip: pod.ip, hostVeth: 'wx1' })).via, 'netlink');
      // Someone removes the pod's map entry behind the agent's back.
      await nft('delete', 'element', 'inet', 'weir', 'in_pod', `{ ${pod.ip} }`);
      const st = await agent.podRemoved('x', pod.name);
      assert.ok(st.lastApplyOk, st.error ?? '');
      assert.equal(st.mode, 'full');
      assert.match(st.fallback ?? '', /netlink refused: delete element inet weir in_pod \{ 10\.1\.1\.11 \}: ENOENT/);
      assert.deepEqual(await mapPairs('in_pod'), [...(agent.lastRuleset?.sets.get('in_pod')?.elements ?? [])].sort());
      assert.doesNotMatch(await nft('list', 'table', 'inet', 'weir'), /10\.1\.1\.11\b/);
    } finally {
      agent.close();
    }
  });

  it('a bad element change is rejected atomically and reported: the applier keeps the old state and says why', async () => {
    const applier = new Applier(nftRunner(ns), netlinkElementWriter(ns));
    try {
      const agent = new NodeAgent({ node: 'n0', runner: async () => ({ ok: true, stderr: '' }) });
      await agent.sync(churnCluster(), churnLocal());
      const rs = agent.lastRuleset as Ruleset;
      assert.ok((await applier.apply(rs)).ok);
      const base = applier.applied as Ruleset;
      const before = await nft('list', 'table', 'inet', 'weir');
      const inEp = base.sets.get('in_id') as NftSet;
      const group = [...base.sets.values()].find((s) => s.name.startsWith('g_') && s.flags.length === 0) as NftSet;
      const bad = '0x4fffffff : goto no_such_chain';
      const sets = new Map(base.sets);
      sets.set('in_id', { ...inEp, elements: [...inEp.elements, bad].sort() });
      sets.set(group.name, { ...group, elements: [...group.elements, '10.1.1.99'].sort() });
      const next: Ruleset = { ...base, sets, patch: { base, added: new Map([[group.name, ['10.1.1.99']], ['in_id', [bad]]]), removed: new Map() } };
      const r = await applier.apply(next);
      assert.equal(r.ok, false);
      assert.match(r.fallback ?? '', /netlink refused: add element inet weir in_id \{ 0x4fffffff : goto no_such_chain \}: ENOENT/);
      assert.match(r.error ?? '', /no_such_chain|No such file/);
      assert.equal(applier.applied, base, 'the applier still holds the old model');
      assert.equal(await nft('list', 'table', 'inet', 'weir'), before, 'the kernel still holds the old table');
    } finally {
      applier.close();
    }
  });

  it('an agent killed in the middle of changes leaves whole transactions only; a new agent converges; no process is left', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'fixtures', 'netlink-churn.ts'), ns], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`churn child not ready: ${err}`)), 60_000);
        child.stdout.setEncoding('utf8').on('data', (d: string) => d.includes('ready') && (clearTimeout(timer), resolve()));
        child.once('exit', (code) => (clearTimeout(timer), reject(new Error(`churn child exited ${code}: ${err}`))));
      });
      await sleep(300 + Math.floor(Math.random() * 700));
      assert.equal(child.exitCode, null, `still churning: ${err}`);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    // Each change is one batch: an extra replica has its map entry and its anti-spoofing (its
    // veth's source chain) together, or neither.
    const table = await nft('list', 'table', 'inet', 'weir');
    const sources = await nft('list', 'ruleset');
    for (let i = 0; i < 50; i++) {
      const ip = extraPod(i).ip as string;
      const inMap = new RegExp(`${ip.replaceAll('.', '\\.')} : 0x`).test(table);
      const inSrc = new RegExp(`chain ${sourceChainName(`wc${i}`)} \\{[^}]*ip saddr != ${ip.replaceAll('.', '\\.')} goto spoofed`).test(sources);
      assert.equal(inMap, inSrc, `replica ${i}: map ${inMap}, source chain ${inSrc}`);
    }
    assert.equal((await run(['ip', 'netns', 'pids', ns])).stdout.trim(), '', 'no process left in the namespace');
    const agent = new NodeAgent({ node: 'n0', netns: ns });
    try {
      const st = await agent.sync(churnCluster(), churnLocal());
      assert.ok(st.lastApplyOk && st.mode === 'full', st.error ?? '');
      assert.deepEqual(await mapPairs('in_pod'), [...(agent.lastRuleset?.sets.get('in_pod')?.elements ?? [])].sort());
      assert.doesNotMatch(await nft('list', 'table', 'inet', 'weir'), /10\.1\.1\.\d+ : 0x/, 'no extra replica left');
    } finally {
      agent.close();
    }
  });
});
