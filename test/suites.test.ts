// `npm run test:unit` runs every test file without the `// suite: lab` marker, without root;
// `npm run test:lab` runs the marked ones, as root. A file that needs root (network namespaces,
// nftables) but lacks the marker would slow test:unit down or be skipped there unnoticed.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const TEST_DIR = dirname(fileURLToPath(import.meta.url));
const MARKER = /^\/\/ suite: lab\b/m;
/** Integration files run without root; one may check for root to drop privileges. */
const INTEGRATION_MARKER = /^\/\/ suite: integration\b/m;
/** What a test needing root uses: the netns helpers, or a uid check. */
const NEEDS_ROOT = /netnsSkipReason|getuid\?\.\(\) === 0|labEnforcer\(|ip', 'netns'/;

export function unmarkedRootTests(files: ReadonlyMap<string, string>): string[] {
  return [...files]
    .filter(([, text]) => {
      const head = text.split('\n').slice(0, 3).join('\n');
      return NEEDS_ROOT.test(text) && !MARKER.test(head) && !INTEGRATION_MARKER.test(head);
    })
    .map(([name]) => name);
}

test('every test file that needs root is marked `// suite: lab` in its first lines', () => {
  const files = new Map(readdirSync(TEST_DIR).filter((f) => f.endsWith('.test.ts') && f !== 'suites.test.ts').map((f) => [f, readFileSync(join(TEST_DIR, f), 'utf8')]));
  assert.ok(files.size > 20);
  assert.deepEqual(unmarkedRootTests(files), []);
  // The check can fail: a root test without the marker is found.
  assert.deepEqual(unmarkedRootTests(new Map([['x.test.ts', "import { netnsSkipReason } from './helpers/netns.js';\n"]])), ['x.test.ts']);
});
