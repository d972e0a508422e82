// A manifest must not rewrite the terminal: control characters in names and kinds are escaped
// in every text output.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { escapeControl, escapeJson, escapeText } from '../src/analyze/escape.js';
import { renderTxt, type ConnLine } from '../src/analyze/index.js';
import { ALL_CONNS } from '../src/policy/index.js';
import { weir } from './helpers/cli.js';

describe('escaping control characters', () => {
  it('escapeControl, escapeText, escapeJson', () => {
    assert.equal(escapeControl('a\u001b[2Jb\nc\u009bd\u202ee'), 'a\\x1b[2Jb\\x0ac\\x9bd\\u202ee');
    assert.equal(escapeText('x\u0007y\n\tz'), 'x\\x07y\n\tz');
    assert.equal(escapeJson(JSON.stringify('a\u009b\u001b')), '"a\\u009b\\u001b"');
    assert.equal(JSON.parse(escapeJson(JSON.stringify('a\u009b'))), 'a\u009b');
  });

  it('the connectivity list escapes names', () => {
    const node = (name: string) => ({ name, kind: 'workload' as const, namespace: 'x', classes: [0] });
    const line: ConnLine = { src: node('x/a\u001b]0;pwned\u0007[Pod]'), dst: node('x/b\nx/fake => y : All[Pod]'), conns: ALL_CONNS, conn: 'All Connections' };
    const out = renderTxt([line]);
    assert.equal(out, 'x/a\\x1b]0;pwned\\x07[Pod] => x/b\\x0ax/fake => y : All[Pod] : All Connections\n');
  });

  it('the CLI escapes a kind with an escape sequence in its notice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weir-escape-'));
    try {
      writeFileSync(join(dir, 'x.yaml'), 'apiVersion: v1\nkind: "Evil\\e[2J\\e]0;title\\a"\nmetadata: { name: x }\n');
      const r = await weir(['analyze', dir]);
      assert.ok(!r.stderr.includes('\u001b') && !r.stderr.includes('\u0007'), JSON.stringify(r.stderr));
      assert.match(r.stderr, /kind Evil\\x1b\[2J\\x1b\]0;title\\x07 \(v1\) is not used by weir/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
