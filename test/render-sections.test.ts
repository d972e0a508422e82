// The renderer's building blocks (pure, no root): typed rules and elements render to nft syntax,
// sections feed one table (and cannot claim one name twice), and the element-only fast path
// works for any section's sets and maps — shown with a toy second section beside the policy filter.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PolicyEngine } from '../src/policy/index.js';
import { collectReasons, diffScript, fullScript, hasElement, nft, patchElements, policyFilterSection, renderTable, renderRuleset, type Section } from '../src/render/index.js';
import { Applier, type NftRunner } from '../src/nft/index.js';
import { e2eModel } from './helpers/model.js';

test('typed rules and elements render to nft syntax', () => {
  const { rule, end, inSet, is, flags, update, setMark, goto, accept, drop, ret, vmap, quoted, ruleText, elementText, records } = nft;
  assert.equal(ruleText(rule([inSet('ip saddr', 'g_1'), is('tcp dport', '80', '81')], end(accept, update('hits', [7], true)))), 'ip saddr @g_1 tcp dport { 80, 81 } update @hits { 7 counter } accept');
  assert.equal(ruleText(end(goto('deny'), setMark(9))), 'meta mark set 9 goto deny');
  assert.equal(ruleText(rule([inSet(['iifname', 'ip saddr'], 'pod_src', true)], end(drop))), 'iifname . ip saddr != @pod_src drop');
  assert.equal(ruleText(rule([flags('ct state', 'established', 'related')], end(accept))), 'ct state established,related accept');
  assert.equal(ruleText(end(vmap(['ip daddr'], 'in_ep'))), 'ip daddr vmap @in_ep');
  assert.equal(ruleText(rule([is('iifname', quoted('wp*'))], end(ret))), 'iifname "wp*" return');
  assert.equal(ruleText(end(ret, update('denied', ['ip saddr', 'ip daddr', 'meta l4proto', 0, 5]))), 'update @denied { ip saddr . ip daddr . meta l4proto . 0 . 5 } return');
  assert.equal(elementText({ key: ['10.0.0.1'], value: goto('eg_x') }), '10.0.0.1 : goto eg_x');
  assert.equal(elementText({ key: [quoted('wp1'), '10.0.0.1'] }), '"wp1" . 10.0.0.1');
  assert.equal(records(end(ret, update('hits', [1], true))), true);
  assert.equal(records(end(ret)), false);
  assert.throws(() => quoted('a"b'), /double quote/);
});

/** A toy section shaped like service NAT: a map from a virtual address to a chain, and one chain per service. */
function toySection(services: ReadonlyMap<string, string>): Section {
  return {
    name: 'toy nat',
    render(table) {
      const elements: string[] = [];
      for (const [vip, name] of services) {
        const chain = table.chain(`svc_${name}`, [nft.end(nft.accept)]);
        elements.push(nft.elementText({ key: [vip], value: nft.goto(chain) }));
      }
      table.set({ name: 'svc_ips', kind: 'map', type: 'ipv4_addr : verdict', flags: [], extra: [], dynamic: false, elements: elements.sort() });
      table.chain('svc', [nft.end(nft.vmap(['ip daddr'], 'svc_ips'))], 'type filter hook prerouting priority dstnat; policy accept;');
    },
  };
}

test('sections feed one table; a second section is a contained addition; names cannot be claimed twice', () => {
  const engine = new PolicyEngine(e2eModel());
  const localPods = [{ key: 'x/a' }, { key: 'y/b' }];
  const reasons = collectReasons(engine);
  const filterOnly = renderRuleset({ engine, localPods, reasons });
  const both = renderTable([policyFilterSection({ engine, localPods, reasons }), toySection(new Map([['10.96.0.10', 'dns']]))], reasons.table);
  // The filter's objects are unchanged by the other section; the toy section's objects are there too.
  for (const [name, set] of filterOnly.sets) assert.deepEqual(both.sets.get(name), set);
  for (const [name, chain] of filterOnly.chains) assert.deepEqual(both.chains.get(name), chain);
  assert.deepEqual(both.sets.get('svc_ips')?.elements, ['10.96.0.10 : goto svc_dns']);
  assert.equal(both.chains.get('svc')?.hook, 'type filter hook prerouting priority dstnat; policy accept;');
  assert.match(fullScript(both), /chain svc \{\n\s+type filter hook prerouting/);
  // One table, one transaction: a change in one section diffs to that section's objects only.
  const moved = renderTable([policyFilterSection({ engine, localPods, reasons }), toySection(new Map([['10.96.0.11', 'dns']]))], reasons.table);
  assert.deepEqual(diffScript(both, moved)?.script.trim().split('\n'), ['delete element inet weir svc_ips { 10.96.0.10 }', 'add element inet weir svc_ips { 10.96.0.11 : goto svc_dns }']);

  const clash: Section = { name: 'clash', render: (t) => void t.set({ name: 'hits', kind: 'set', type: 'mark', flags: [], extra: [], dynamic: false, elements: [] }) };
  assert.throws(() => renderTable([policyFilterSection({ engine, localPods, reasons }), clash], reasons.table), /set hits: declared by section "policy filter" and by section "clash"/);
});

test('element fast path: any section\'s map elements are patched without re-rendering, and applied as element commands only', async () => {
  const engine = new PolicyEngine(e2eModel());
  const reasons = collectReasons(engine);
  const sections = (services: ReadonlyMap<string, string>) => [policyFilterSection({ engine, localPods: [{ key: 'x/a' }], reasons }), toySection(services)];
  const before = renderTable(sections(new Map([['10.96.0.10', 'dns'], ['10.96.0.20', 'web']])), reasons.table);
  const after = renderTable(sections(new Map([['10.96.0.10', 'web'], ['10.96.0.20', 'web']])), reasons.table);
  const el = (vip: string, chain: string) => ({ key: [vip], value: nft.goto(chain) });
  assert.ok(hasElement(before, 'svc_ips', el('10.96.0.10', 'svc_dns')));
  const patched = patchElements(before, [
    { set: 'svc_ips', element: el('10.96.0.10', 'svc_dns'), add: false },
    { set: 'svc_ips', element: el('10.96.0.10', 'svc_web'), add: true },
    { set: 'no_such_set', element: el('1.2.3.4', 'x'), add: true },
  ]);
  assert.deepEqual(patched.sets.get('svc_ips')?.elements, after.sets.get('svc_ips')?.elements);
  assert.equal(patched.chains, before.chains, 'chains untouched: no re-render');
  const scripts: string[] = [];
  const runner: NftRunner = async (script) => {
    scripts.push(script);
    return { ok: true, stderr: '' };
  };
  const applier = new Applier(runner);
  await applier.apply(before);
  const r = await applier.apply(patched);
  assert.equal(r.mode, 'partial');
  // Map keys are deleted before new ones are added (a changed verdict is delete + add).
  assert.deepEqual(scripts[1].trim().split('\n'), ['delete element inet weir svc_ips { 10.96.0.10 }', 'add element inet weir svc_ips { 10.96.0.10 : goto svc_web }']);
});
