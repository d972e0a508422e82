// Prometheus metrics of the HTTP side itself (live-stream clients, authentication), on the
// registry the flow metrics use, so one /metrics shows both.
import { Counter, Gauge, type Registry } from 'prom-client';

export type StreamDisconnectReason = 'slow' | 'closed';

export class ServerMetrics {
  readonly streamClients: Gauge;
  readonly streamRefused: Counter;
  readonly streamDroppedBatches: Counter;
  readonly streamDisconnects: Counter<'reason'>;
  readonly authFailures: Counter<'reason'>;

  constructor(registry: Registry) {
    const registers = [registry];
    // A registry shared by two servers in one process (tests) must not register twice.
    const existing = <T>(name: string): T | undefined => registry.getSingleMetric(name) as T | undefined;
    this.streamClients = existing<Gauge>('weir_stream_clients') ?? new Gauge({ name: 'weir_stream_clients', help: 'Open live-stream (SSE) connections.', registers });
    this.streamRefused =
      existing<Counter>('weir_stream_refused_total') ?? new Counter({ name: 'weir_stream_refused_total', help: 'Live-stream connections refused because the cap was reached.', registers });
    this.streamDroppedBatches =
      existing<Counter>('weir_stream_dropped_batches_total') ??
      new Counter({ name: 'weir_stream_dropped_batches_total', help: 'Batches not sent to a live-stream client whose queue was full (the client gets a gap event).', registers });
    this.streamDisconnects =
      existing<Counter<'reason'>>('weir_stream_disconnects_total') ??
      new Counter({ name: 'weir_stream_disconnects_total', help: 'Live-stream connections ended by the server (slow: stayed behind too long).', labelNames: ['reason'], registers });
    this.authFailures =
      existing<Counter<'reason'>>('weir_http_auth_failures_total') ??
      new Counter({ name: 'weir_http_auth_failures_total', help: 'Requests refused: missing or wrong token (401) or a foreign Host header (403).', labelNames: ['reason'], registers });
  }
}
