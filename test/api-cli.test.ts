// suite: integration (no root; real processes, sockets or a browser: `npm run test:integration`)
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startVisibility, type Visibility } from '../src/api/visibility.js';
import { runFlowsCommand, type CliIo } from '../src/flows/cli.js';
import { podRecord, syntheticCluster } from '../src/flows/synthetic.js';

const dir = mkdtempSync(join(tmpdir(), 'weir-cli-'));
const c = syntheticCluster(3, 3, 2);
const pod = (ns: string, wl: string) => c.pods.find((p) => p.namespace === ns && p.name === `${wl}-0`)!;
let vis: Visibility;

function io(): CliIo & { outText: () => string; errText: () => string } {
  let out = '';
  let err = '';
  return { out: (s) => (out += s), err: (s) => (err += s), outText: () => out, errText: () => err };
}

before(async () => {
  // An empty lab dir (no state yet) still serves; kernel sources off.
  vis = await startVisibility({ labDir: dir, port: 0, sources: false, uiDir: join(dir, 'none') });
  vis.pipeline.ingest([podRecord(pod('x', 'a'), pod('y', 'b')), podRecord(pod('x', 'a'), pod('z', 'c'), { verdict: 'DROPPED', dstPort: 81 })]);
  vis.pipeline.flush();
});

after(async () => {
  await vis.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('weir flows: table and json output with filters', async () => {
  const t = io();
  assert.equal(await runFlowsCommand({ server: vis.url, fromNamespace: 'x' }, t), 0);
  const lines = t.outText().trim().split('\n');
  assert.match(lines[0] ?? '', /^TIME\s+NODE\s+SOURCE\s+DESTINATION\s+PROTO\s+VERDICT\s+POLICY\s+RULE\s+BYTES$/);
  assert.equal(lines.length, 3);
  const j = io();
  assert.equal(await runFlowsCommand({ server: vis.url, verdict: 'DROPPED', port: 81, output: 'json' }, j), 0);
  const flows = j.outText().trim().split('\n').map((l) => JSON.parse(l) as { verdict: string; dst: { namespace: string } });
  assert.deepEqual(flows.map((f) => [f.verdict, f.dst.namespace]), [['DROPPED', 'z']]);
});

test('weir flows: bad flags name the flag; unreachable server is a clear error', async () => {
  const b = io();
  assert.equal(await runFlowsCommand({ server: vis.url, port: 'http' }, b), 2);
  assert.match(b.errText(), /^error: --port: must be an integer/);
  const v = io();
  assert.equal(await runFlowsCommand({ server: vis.url, verdict: 'maybe' }, v), 2);
  assert.match(v.errText(), /--verdict/);
  const o = io();
  assert.equal(await runFlowsCommand({ output: 'yaml' }, o), 2);
  const d = io();
  assert.equal(await runFlowsCommand({ server: 'http://127.0.0.1:9' }, d), 1);
  assert.match(d.errText(), /cannot reach weir server at http:\/\/127.0.0.1:9/);
});

test('weir flows --follow streams live flows until aborted', async () => {
  const f = io();
  const ac = new AbortController();
  const run = runFlowsCommand({ server: vis.url, follow: true, toNamespace: 'z', output: 'json' }, f, ac.signal);
  await new Promise((r) => setTimeout(r, 300));
  vis.pipeline.ingest([podRecord(pod('y', 'a'), pod('z', 'b')), podRecord(pod('y', 'a'), pod('x', 'b'))]);
  const end = Date.now() + 3000;
  while (!f.outText() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  ac.abort();
  assert.equal(await run, 0);
  const got = f.outText().trim().split('\n').map((l) => JSON.parse(l) as { dst: { namespace: string } });
  assert.deepEqual(got.map((g) => g.dst.namespace), ['z']);
});
