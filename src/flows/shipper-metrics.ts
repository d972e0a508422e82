// The shipper's state as Prometheus metrics, for an agent's own /metrics: read at scrape time
// from the shipper's counters, so nothing is counted twice or goes stale.
import { Gauge, type Registry } from 'prom-client';
import type { ShipperStats } from './shipper.js';

export function registerShipperMetrics(registry: Registry, stats: () => ShipperStats): void {
  const registers = [registry];
  const gauge = (name: string, help: string, pick: (s: ShipperStats) => number): void => {
    if (registry.getSingleMetric(name)) return;
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(pick(stats()));
      },
    });
  };
  gauge('weir_ship_observed_flows', 'Flows this agent observed and handed to the shipper.', (s) => s.observedFlows);
  gauge('weir_ship_sent_batches', 'Batches the server committed.', (s) => s.sentBatches);
  gauge('weir_ship_failed_attempts', 'Requests to the server that failed (retried with backoff).', (s) => s.failedAttempts);
  gauge('weir_ship_buffered_batches', 'Sealed batches waiting in the on-disk buffer.', (s) => s.bufferedBatches);
  gauge('weir_ship_buffered_bytes', 'Bytes of the on-disk buffer.', (s) => s.bufferedBytes);
  gauge('weir_ship_lost_flows', 'Flows dropped because the on-disk buffer was full (since the buffer was created).', (s) => s.lostFlows);
  gauge('weir_ship_last_success_timestamp_seconds', 'When the server last committed a batch (0: never).', (s) => (s.lastShipAt ?? 0) / 1000);
}
