import { useEffect, useState } from 'react';
import { ago, getJson, type AlertRecord } from './api';
import type { LiveStore } from './live';

interface Rule {
  name: string;
  kind: string;
  state: string;
}

export function AlertsView({ live }: { live: LiveStore }) {
  const [alerts, setAlerts] = useState<AlertRecord[]>([]);
  const [rules, setRules] = useState<Rule[]>([]);
  const liveCount = live.alerts.length;
  useEffect(() => {
    getJson<{ alerts: AlertRecord[]; rules: Rule[] }>('api/alerts?limit=200')
      .then((r) => {
        setAlerts(r.alerts);
        setRules(r.rules);
      })
      .catch(() => undefined);
  }, [liveCount]);
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
