import { useEffect, useState } from 'react';
import { ago, getJson, type AlertRecord, type WebhookStatus } from './api';
import type { LiveStore } from './live';

interface Rule {
  name: string;
  kind: string;
  state: string;
}

export function AlertsView({ live }: { live: LiveStore }) {
  const [alerts, setAlerts] = useState<AlertRecord[]>([]);
  const [rules, setRules] = useState<Rule[]>([]);
  const [webhook, setWebhook] = useState<WebhookStatus | null>(null);
  const [tick, setTick] = useState(0);
  const liveCount = live.alerts.length;
  // Delivery status changes without new alerts (retries): refresh it every 5 s too.
  useEffect(() => {
    const t = setInterval(() => setTick((n) => n + 1), 5000);
    return () => clearInterval(t);
  }, []);
  useEffect(() => {
    getJson<{ alerts: AlertRecord[]; rules: Rule[]; webhook: WebhookStatus | null }>('api/alerts?limit=200')
      .then((r) => {
        setAlerts(r.alerts);
        setRules(r.rules);
        setWebhook(r.webhook);
      })
      .catch(() => undefined);
  }, [liveCount, tick]);
  return (
    <div className="page alerts">
      <section>
        <h3>Rules</h3>
        {rules.length === 0 && <div className="muted">No alert rules configured.</div>}
        <ul className="rules">
          {rules.map((r) => (
            <li key={r.name} className={r.state}>
              <span className={`dot ${r.state}`} /> <b>{r.name}</b> <span className="muted">{r.kind}</span> <span className="state">{r.state}</span>
            </li>
          ))}
        </ul>
      </section>
      {webhook && (
        <section data-testid="webhook-status" className={webhook.failures > 0 ? 'webhook failing' : 'webhook'}>
          <h3>Webhook</h3>
          <div>
            <b>{webhook.url}</b> <span className="muted">timeout {webhook.timeoutMs / 1000} s</span>
          </div>
          <div>
            {webhook.delivered} delivered · {webhook.queued} queued · <span className={webhook.failures > 0 ? 'bad' : ''}>{webhook.failures} failed attempts</span> · {webhook.dead} given up
          </div>
          {webhook.lastError !== undefined && (
            <div className="bad" data-testid="webhook-error">
              last failure {webhook.lastErrorAt !== undefined ? ago(webhook.lastErrorAt) : ''}: {webhook.lastError}
            </div>
          )}
        </section>
      )}
      <section>
        <h3>Fired</h3>
        <table className="flows" data-testid="alert-table">
          <thead>
            <tr><th>fired</th><th>rule</th><th>kind</th><th>state</th><th>message</th></tr>
          </thead>
          <tbody>
            {alerts.map((a) => (
              <tr key={a.id}>
                <td>{ago(a.firedAt)}</td>
                <td>{a.rule}</td>
                <td className="muted">{a.kind}</td>
                <td><span className={`badge ${a.state === 'firing' ? 'dropped' : a.state === 'event' ? 'audit' : 'forwarded'}`}>{a.state}</span></td>
                <td>{a.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </div>
  );
}
