// A visibility server in its own process (so its memory can be measured alone) fed a steady
// synthetic flow load: `node --import tsx test/helpers/flow-load-server.ts DIR FLOWS_PER_SECOND`.
// Prints one JSON line `{"url": …}` once listening; stops on SIGTERM.
import { join } from 'node:path';
import { createServer } from '../../src/api/server.js';
import { FlowMetrics } from '../../src/flows/metrics.js';
import { FlowPipeline } from '../../src/flows/pipeline.js';
import { SqliteFlowStore } from '../../src/flows/sqlite-store.js';
import { podRecord, syntheticCluster } from '../../src/flows/synthetic.js';

const [dir = '.', rateText = '5000'] = process.argv.slice(2);
const rate = Number(rateText);
const store = new SqliteFlowStore(join(dir, 'flows.db'));
const metrics = new FlowMetrics({ defaultMetrics: true });
const pipeline = new FlowPipeline({ store, metrics }).start();
const app = createServer({ store, pipeline, metrics, uiDir: join(dir, 'no-ui'), access: { loopbackOnly: true } });
await app.listen({ host: '127.0.0.1', port: 0 });
const addr = app.server.address();
if (!addr || typeof addr !== 'object') throw new Error('no TCP address');

const c = syntheticCluster(10, 5, 4);
const TICK_MS = 20;
const perTick = Math.max(1, Math.round((rate * TICK_MS) / 1000));
let n = 0;
const load = setInterval(() => {
  const now = Date.now();
  const records = [];
  for (let i = 0; i < perTick; i++, n++) {
    const src = c.pods[n % c.pods.length]!;
    const dst = c.pods[(n * 7 + 3) % c.pods.length]!;
    records.push(podRecord(src, dst, { time: now, verdict: n % 5 === 0 ? 'DROPPED' : 'FORWARDED', dstPort: 80 + (n % 3) }));
  }
  pipeline.ingest(records);
}, TICK_MS);

process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${addr.port}` })}\n`);
process.on('SIGTERM', () => {
  clearInterval(load);
  void app.close().then(() => {
    pipeline.stop();
    store.close();
    process.exit(0);
  });
});
