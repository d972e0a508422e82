// suite: lab (needs root: real network namespaces and nftables; `npm run test:lab`)
// The lab with real namespaces, servers and packets (root only; skipped otherwise).
// Every test uses its own prefix (`weir-t<hex>-`) and directory, and removes everything it
// created in t.after — also when an assertion fails halfway.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { before, describe, it, type TestContext } from 'node:test';
import type { Cluster } from '../src/model/cluster.js';
import { ValidationError } from '../src/model/diagnostics.js';
import {
  type LabState,
  addPod,
  formatReachability,
  labApply,
  labDown,
  labExec,
  labStatus,
  labUp,
  probe,
  readState,
  removePod,
  runInNetns,
  statePath,
  updatePodLabels,
  upstreamE2eCluster,
} from '../src/lab/index.js';
import { cleanupPrefix, netnsSkipReason, netnsWithPrefix, pidAlive, removeDir, rootLinks, tempLabDir, testPrefix } from './helpers/netns.js';

let skip: string | undefined;
before(async () => {
  skip = await netnsSkipReason();
});

interface Lab {
  readonly prefix: string;
  readonly dir: string;
}

/** A prefix and directory for one test, torn down in t.after whatever happens. */
async function scratch(t: TestContext): Promise<Lab> {
  const lab = { prefix: testPrefix(), dir: await tempLabDir() };
  t.after(async () => {
    const state = await readState(lab.dir).catch(() => undefined);
    const pids = state ? [...state.pods.map((p) => p.serverPid), state.external.serverPid].filter((p): p is number => p !== undefined) : [];
    await labDown({ dir: lab.dir, prefix: lab.prefix, force: true }).catch(() => undefined);
    await cleanupPrefix(lab.prefix, pids);
    await removeDir(lab.dir);
  });
  return lab;
}

function serverPids(state: LabState): number[] {
  return [...state.pods.map((p) => p.serverPid), state.external.serverPid].filter((p): p is number => p !== undefined);
}

describe('lab (network namespaces, root)', () => {
  it('builds the upstream e2e model on two nodes and every pod reaches every pod and the external host', async (t) => {
    if (skip) return t.skip(skip);
    const lab = await scratch(t);
    const linksBefore = await rootLinks();

    let started = Date.now();
    const state = await labUp(upstreamE2eCluster(), { dir: lab.dir, prefix: lab.prefix, nodes: 2 });
    const upMs = Date.now() - started;
    t.diagnostic(`lab up (2 nodes, 9 pods, external host): ${upMs} ms`);
    assert.ok(upMs < 10_000, `lab up took ${upMs} ms`);
    assert.equal(state.status, 'up');
    assert.equal(state.pods.length, 9);
    assert.equal(new Set(state.pods.map((p) => p.node)).size, 2, 'pods on both nodes');
    for (const pid of serverPids(state)) assert.ok(await pidAlive(pid), `server ${pid} runs`);
    assert.deepEqual((await labStatus(lab.dir)).problems, []);

    started = Date.now();
    const result = await probe(state);
    const probeMs = Date.now() - started;
    t.diagnostic(`probe (10 sources x 10 targets, ${result.cells.length} cells): ${probeMs} ms`);
    assert.ok(probeMs < 10_000, `probe took ${probeMs} ms`);

    const failed = result.cells.filter((c) => !c.ok);
    assert.deepEqual(failed, [], formatReachability(result));
    // 9x9 pod cells on each of 80/81 x TCP/UDP, plus external <-> pods.
    const podCells = result.cells.filter((c) => c.from !== 'external' && c.to !== 'external');
    assert.equal(podCells.length, 81 * 4);
    for (const c of result.cells) assert.equal(c.reply, c.to, `${c.from} -> ${c.to} ${c.port}/${c.protocol} answered by the target`);

    const nodeOf = new Map(state.pods.map((p) => [p.key, p.node]));
    const crossNode = podCells.filter((c) => nodeOf.get(c.from) !== nodeOf.get(c.to));
    assert.ok(crossNode.length >= 4 * 2 * 20, `cross-node cells probed: ${crossNode.length}`);
    assert.ok(crossNode.every((c) => c.ok));

    for (const p of state.pods) {
      for (const port of [80, 443]) {
        for (const protocol of ['TCP', 'UDP'] as const) {
          assert.ok(result.cells.some((c) => c.from === p.key && c.to === 'external' && c.port === port && c.protocol === protocol && c.ok), `${p.key} -> external ${port}/${protocol}`);
        }
      }
      assert.ok(result.cells.some((c) => c.from === 'external' && c.to === p.key && c.ok), `external -> ${p.key}`);
    }

    // Pods really are routed through their node: the first hop is the link-local gateway,
    // and the source address the server sees is the pod's own IP (no NAT anywhere).
    const [xa] = state.pods;
    assert.ok(xa);
    const route = await labExec(lab.dir, xa.key, ['ip', 'route', 'get', state.external.ip]);
    assert.match(route.stdout, /via 169\.254\.1\.1 dev eth0/);
    const peer = state.pods.find((p) => p.node !== xa.node);
    assert.ok(peer);
    const viaOverlay = await labExec(lab.dir, xa.node, ['ip', 'route', 'get', peer.ip]);
    const peerNode = state.nodes.find((n) => n.name === peer.node);
    assert.match(viaOverlay.stdout, new RegExp(`via ${peerNode?.vtepIp.replace(/\./g, '\\.')} dev vxlan0`));

    // The node side: veth names and node namespaces are what the agent will use.
    const links = await labExec(lab.dir, xa.node, ['ip', '-o', 'link', 'show', xa.hostVeth]);
    assert.equal(links.code, 0, links.stderr);
    assert.match(links.stdout, /ee:ee:ee:ee:ee:ee/);

    const down = await labDown({ dir: lab.dir });
    assert.equal(down.removedNetns.length, 13);
    assert.deepEqual(await netnsWithPrefix(lab.prefix), []);
    assert.deepEqual(await rootLinks(), linksBefore, 'the root namespace gained or lost no link');
    assert.ok((await rootLinks()).every((l) => !l.includes(lab.prefix)));
    for (const pid of serverPids(state)) assert.equal(await pidAlive(pid), false, `server ${pid} stopped`);
  });

  it('keeps addresses across down and up, and supports live add, relabel and remove', async (t) => {
    if (skip) return t.skip(skip);
    const lab = await scratch(t);
    const cluster = upstreamE2eCluster({ namespaces: ['x'], pods: ['a', 'b'], ports: [80] });
    const first = await labUp(cluster, { dir: lab.dir, prefix: lab.prefix });
    await assert.rejects(labUp(cluster, { dir: lab.dir, prefix: lab.prefix }), (e: unknown) => e instanceof ValidationError && /already up/.test(e.message));
    await labDown({ dir: lab.dir });
    const saved = await readState(lab.dir);
    assert.equal(saved?.status, 'down');
    assert.ok(saved?.pods.every((p) => p.serverPid === undefined));

    // A different pod order and a new pod must not renumber existing pods.
    const grown: Cluster = { ...cluster, pods: [{ ...(cluster.pods[0] as Cluster['pods'][number]), name: 'n', labels: { pod: 'n' } }, ...[...cluster.pods].reverse()] };
    const second = await labUp(grown, { dir: lab.dir });
    for (const p of first.pods) assert.equal(second.pods.find((q) => q.key === p.key)?.ip, p.ip, `${p.key} kept its address`);
    assert.equal(second.prefix, lab.prefix, 'the prefix comes from the state file');

    const changes: string[] = [];
    const onChange = async (c: { kind: string; pod: { key: string } }): Promise<void> => {
      changes.push(`${c.kind} ${c.pod.key}`);
    };
    const added = await addPod(
      lab.dir,
      { namespace: 'y', name: 'late', labels: { pod: 'late' }, ports: [{ port: 8080, protocol: 'UDP' }], hostNetwork: false, workload: 'y/late[Pod]' },
      { onChange },
    );
    assert.ok(added.serverPid !== undefined && (await pidAlive(added.serverPid)));
    let state = (await readState(lab.dir)) as LabState;
    const reach = await probe(state, { to: ['y/late'], ports: [{ port: 8080, protocol: 'UDP' }] });
    assert.ok(reach.cells.length === 5 && reach.cells.every((c) => c.ok), formatReachability(reach));

    const relabelled = await updatePodLabels(lab.dir, 'y/late', { pod: 'late', tier: 'db' }, { onChange });
    assert.equal(relabelled.labels.tier, 'db');
    await removePod(lab.dir, 'y/late', { onChange });
    assert.equal(await pidAlive(added.serverPid), false);
    assert.ok(!(await netnsWithPrefix(lab.prefix)).includes(added.netns));
    state = (await readState(lab.dir)) as LabState;
    assert.ok(!state.pods.some((p) => p.key === 'y/late'));
    assert.deepEqual(changes, ['pod-added y/late', 'pod-labels y/late', 'pod-removed y/late']);

    // Refused, not timed out: nothing listens on that port and no policy drops anything.
    const refused = await probe(state, { from: ['x/a'], to: ['x/b'], ports: [{ port: 9, protocol: 'TCP' }] });
    assert.equal(refused.cells[0]?.error, 'refused');

    await labDown({ dir: lab.dir, purge: true });
    assert.equal(existsSync(statePath(lab.dir)), false);
    assert.deepEqual(await netnsWithPrefix(lab.prefix), []);
  });

  it('lab apply adds, removes and relabels pods of a running lab', async (t) => {
    if (skip) return t.skip(skip);
    const lab = await scratch(t);
    const cluster = upstreamE2eCluster({ namespaces: ['x'], pods: ['a', 'b'], ports: [80] });
    const before = await labUp(cluster, { dir: lab.dir, prefix: lab.prefix });
    const [a, b] = cluster.pods;
    assert.ok(a && b);
    const target: Cluster = { ...cluster, pods: [{ ...a, labels: { pod: 'a', v: '2' } }, { ...a, name: 'c', labels: { pod: 'c' } }] };
    const result = await labApply(lab.dir, target);
    assert.deepEqual(result, { added: ['x/c'], removed: ['x/b'], relabelled: ['x/a'] });
    const after = (await readState(lab.dir)) as LabState;
    assert.deepEqual(after.pods.map((p) => p.key).sort(), ['x/a', 'x/c']);
    assert.equal(after.pods.find((p) => p.key === 'x/a')?.ip, before.pods.find((p) => p.key === 'x/a')?.ip);
    const reach = await probe(after, { external: false });
    assert.ok(reach.cells.length === 8 && reach.cells.every((c) => c.ok), formatReachability(reach));
    assert.equal((await netnsWithPrefix(lab.prefix)).length, 6);
    await labDown({ dir: lab.dir });
  });

  it('calls onNodeReady for every node before pods exist', async (t) => {
    if (skip) return t.skip(skip);
    const lab = await scratch(t);
    const seen: string[] = [];
    await labUp(upstreamE2eCluster({ namespaces: ['x'], pods: ['a'], ports: [80] }), {
      dir: lab.dir,
      prefix: lab.prefix,
      nodes: 3,
      onNodeReady: async (node, state) => {
        const present = await netnsWithPrefix(lab.prefix);
        assert.ok(present.includes(node.netns));
        // Planned state is complete (pods have IPs and veth names) but no veth exists yet.
        assert.equal(state.pods.length, 1);
        seen.push(node.name);
      },
    });
    assert.deepEqual(seen, ['node-0', 'node-1', 'node-2']);
    await labDown({ dir: lab.dir });
  });

  it('lets an agent enforce with nft in the node namespaces from onNodeReady, and the probe sees it', async (t) => {
    if (skip) return t.skip(skip);
    const lab = await scratch(t);
    // What the nft agent will do: per node, one `nft -f -` in the node's namespace, keyed on
    // the host-side veth names from the (already complete) planned state.
    const onNodeReady = async (node: LabState['nodes'][number], state: LabState): Promise<void> => {
      const target = state.pods.find((p) => p.key === 'x/b');
      assert.ok(target);
      const ruleset = [
        'table inet weir_lab_test {',
        '  chain forward {',
        '    type filter hook forward priority 0; policy accept;',
        `    oifname "${target.hostVeth}" tcp dport 80 drop`,
        `    oifname "${target.hostVeth}" udp dport 80 drop`,
        '  }',
        '}',
      ].join('\n');
      await runInNetns(node.netns, ['nft', '-f', '-'], ruleset);
    };
    const state = await labUp(upstreamE2eCluster({ namespaces: ['x', 'y'] }), { dir: lab.dir, prefix: lab.prefix, onNodeReady });
    const started = Date.now();
    const result = await probe(state, { external: false, ports: [{ port: 80, protocol: 'TCP' }, { port: 80, protocol: 'UDP' }, { port: 81, protocol: 'TCP' }] });
    t.diagnostic(`probe with drops (6x6x3): ${Date.now() - started} ms`);
    for (const c of result.cells) {
      // A pod talking to itself never leaves its namespace, so no node rule applies (upstream: AllowLoopback).
      const blocked = c.to === 'x/b' && c.from !== 'x/b' && c.port === 80;
      assert.equal(c.ok, !blocked, `${c.from} -> ${c.to} ${c.port}/${c.protocol}: ${c.error ?? 'ok'}`);
      if (blocked) assert.equal(c.error, 'timeout');
    }
    await labDown({ dir: lab.dir });
  });

  it('removes everything it created when up fails halfway', async (t) => {
    if (skip) return t.skip(skip);
    const lab = await scratch(t);
    const linksBefore = await rootLinks();
    await assert.rejects(
      labUp(upstreamE2eCluster({ namespaces: ['x'], pods: ['a', 'b'] }), {
        dir: lab.dir,
        prefix: lab.prefix,
        onNodeReady: async () => {
          throw new Error('agent refused the ruleset');
        },
      }),
      /lab up failed: agent refused the ruleset \(everything the lab had created was removed\)/,
    );
    assert.deepEqual(await netnsWithPrefix(lab.prefix), []);
    assert.deepEqual(await rootLinks(), linksBefore);
    assert.equal((await readState(lab.dir))?.status, 'down');
  });

  it('rejects a bad manifest before creating anything', async (t) => {
    if (skip) return t.skip(skip);
    const lab = await scratch(t);
    const cluster = upstreamE2eCluster({ namespaces: ['x'], pods: ['a', 'b'] });
    const bad: Cluster = { ...cluster, pods: [...cluster.pods, { ...(cluster.pods[0] as Cluster['pods'][number]), ip: '192.0.2.1' }, { ...(cluster.pods[1] as Cluster['pods'][number]) }] };
    await assert.rejects(labUp(bad, { dir: lab.dir, prefix: lab.prefix }), (e: unknown) => {
      assert.ok(e instanceof ValidationError);
      assert.deepEqual(
        e.diagnostics.map((d) => d.code),
        ['lab-duplicate-pod', 'lab-duplicate-pod'],
      );
      assert.match(e.message, /error: Pod x\/a: metadata\.name: pod x\/a is declared more than once \[lab-duplicate-pod\]/);
      return true;
    });
    await assert.rejects(
      labUp({ ...cluster, pods: [{ ...(cluster.pods[0] as Cluster['pods'][number]), ip: '192.0.2.1' }] }, { dir: lab.dir, prefix: lab.prefix }),
      /outside the lab's pools/,
    );
    assert.deepEqual(await netnsWithPrefix(lab.prefix), []);
    assert.equal(existsSync(statePath(lab.dir)), false);
  });

  it('down --force removes leftovers with the prefix only', async (t) => {
    if (skip) return t.skip(skip);
    const lab = await scratch(t);
    const other = await scratch(t);
    const state = await labUp(upstreamE2eCluster({ namespaces: ['x'], pods: ['a'], ports: [80] }), { dir: lab.dir, prefix: lab.prefix });
    const otherState = await labUp(upstreamE2eCluster({ namespaces: ['x'], pods: ['a'], ports: [80] }), { dir: other.dir, prefix: other.prefix });
    // Lose the state file, as after a crash: only the prefix is left to find things by.
    const raw = await readFile(statePath(lab.dir), 'utf8');
    await removeDir(lab.dir);
    const result = await labDown({ dir: lab.dir, prefix: lab.prefix, force: true });
    assert.equal(result.removedNetns.length, 5);
    assert.deepEqual(await netnsWithPrefix(lab.prefix), []);
    for (const pid of serverPids(JSON.parse(raw) as LabState)) assert.equal(await pidAlive(pid), false);
    // The other lab is untouched.
    assert.equal((await netnsWithPrefix(other.prefix)).length, 5);
    for (const pid of serverPids(otherState)) assert.ok(await pidAlive(pid));
    assert.ok(state.pods.length === 1);
  });
});
