// The webhook's delivery status, shared by the server (/api/alerts) and the dashboard; no imports,
// so the browser bundle can use the type.
/** What /api/alerts and the dashboard show about delivery. */
export interface WebhookStatus {
  url: string;
  timeoutMs: number;
  delivered: number;
  failures: number;
  /** Jobs that ran out of attempts since the server started. */
  dead: number;
  /** Alerts waiting for delivery (including retries). */
  queued: number;
  lastError?: string;
  lastErrorAt?: number;
  lastDeliveredAt?: number;
}
