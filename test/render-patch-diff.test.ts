// A render that reuses patched sets (RenderReuse) is diffed from the patches, not by comparing
// element lists: also when a patch merged a large set into a plain copy (more than COMPACT
// changes). The diff must name exactly the elements that changed. No root.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diffScript, patchElements, type ElementChange, type NftSet, type Ruleset } from '../src/render/index.js';
import { patchedDifference } from '../src/render/elements.js';

const ip = (n: number): string => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;

function ruleset(elements: readonly string[]): Ruleset {
  const set: NftSet = { name: 'g_big', kind: 'set', type: 'ipv4_addr', flags: [], extra: [], dynamic: false, elements: [...elements].sort() };
  return { sets: new Map([[set.name, set]]), chains: new Map(), counted: [], reasons: {} };
}

/** The elements a partial script adds and deletes in `set`. */
function commands(script: string, verb: 'add' | 'delete'): string[] {
  return script
    .split('\n')
    .filter((l) => l.startsWith(`${verb} element inet weir g_big `))
    .flatMap((l) => l.replace(/^.*\{ (.*) \}$/, '$1').split(', '))
    .sort();
}

describe('diff of a patched set', () => {
  for (const changes of [10, 2000]) {
    it(`${changes} changes of a 50,000-element set: exactly those in the script`, () => {
      const base = ruleset(Array.from({ length: 50_000 }, (_, i) => ip(i)));
      // A patch of a patch, as the agent's rulesets are (the second crosses COMPACT when large).
      const first = patchElements(base, [{ set: 'g_big', element: { key: [ip(60_000)] }, add: true }]);
      const removedIps = Array.from({ length: changes / 2 }, (_, i) => ip(i * 7));
      const addedIps = Array.from({ length: changes / 2 }, (_, i) => ip(70_000 + i));
      const edits: ElementChange[] = [...removedIps.map((x) => ({ set: 'g_big', element: { key: [x] }, add: false })), ...addedIps.map((x) => ({ set: 'g_big', element: { key: [x] }, add: true }))];
      const applied = { sets: first.sets, chains: first.chains, counted: first.counted, reasons: first.reasons };
      const next = patchElements(applied, edits);
      // As a render that reused the set would hand it to the applier: no patch attached.
      const rendered = { sets: next.sets, chains: next.chains, counted: next.counted, reasons: next.reasons };
      // Known from the patch (no list comparison), also when the patch merged the set.
      assert.ok(patchedDifference(applied.sets.get('g_big') as NftSet, rendered.sets.get('g_big') as NftSet), 'the difference is read from the patch');
      const diff = diffScript(applied, rendered);
      assert.ok(diff);
      assert.deepEqual(commands(diff.script, 'add'), [...addedIps].sort());
      assert.deepEqual(commands(diff.script, 'delete'), [...removedIps].sort());
      assert.equal(diff.summary.elementsAdded, addedIps.length);
      assert.equal(diff.summary.elementsRemoved, removedIps.length);
      // And the set holds what it should.
      const want = new Set([...base.sets.get('g_big')!.elements, ip(60_000), ...addedIps]);
      for (const x of removedIps) want.delete(x);
      assert.deepEqual(rendered.sets.get('g_big')?.elements, [...want].sort());
    });
  }
});
