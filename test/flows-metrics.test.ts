// suite: unit (no root, no processes)
// Flow metrics are summed per label set as batches pass and handed to the Prometheus counters
// when scraped: every scrape shows every flow and byte observed before it, exactly once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FlowMetrics } from '../src/flows/metrics.js';
import { podRecord, syntheticCluster } from '../src/flows/synthetic.js';

const pods = syntheticCluster(2, 1, 1).pods;
const [a, b] = [pods[0]!, pods[1]!];
const value = (text: string, line: RegExp): number => Number(line.exec(text)?.[1] ?? NaN);

test('flow counters show everything observed before each scrape, once', async () => {
  const m = new FlowMetrics();
  const fwd = podRecord(a, b, { verdict: 'FORWARDED', bytes: 100 });
  const drop = podRecord(a, b, { verdict: 'DROPPED', bytes: 60 });
  m.observe([fwd, { ...fwd, count: 4 }, drop, { ...fwd, event: 'end', bytes: 7 }]);
  m.observe([drop]);
  const ns = `src_namespace="${a.namespace}",dst_namespace="${b.namespace}"`;
  const flowsFwd = new RegExp(`^weir_flows_total\\{verdict="FORWARDED",${ns},policy="default"\\} (\\d+)$`, 'm');
  const drops = new RegExp(`^weir_drops_total\\{${ns},policy="NetworkPolicy ${b.namespace}/default-deny"\\} (\\d+)$`, 'm');
  const bytesFwd = new RegExp(`^weir_flow_bytes_total\\{verdict="FORWARDED",${ns}\\} (\\d+)$`, 'm');
  let text = await m.text();
  assert.equal(value(text, flowsFwd), 5);
  assert.equal(value(text, drops), 2);
  assert.equal(value(text, bytesFwd), 207);
  // A second scrape with nothing new adds nothing; new batches add to the totals.
  text = await m.text();
  assert.equal(value(text, flowsFwd), 5);
  m.observe([fwd]);
  text = await m.text();
  assert.equal(value(text, flowsFwd), 6);
  assert.equal(value(text, drops), 2);
  assert.equal(value(text, bytesFwd), 307);
});
