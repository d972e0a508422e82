import { useEffect, useState } from 'react';
import { ago, formatBytes, formatCount, getJson, type PolicyCounter } from './api';

export function PoliciesView() {
  const [policies, setPolicies] = useState<PolicyCounter[]>([]);
  const [error, setError] = useState<string | undefined>(undefined);
  useEffect(() => {
    let stop = false;
    const load = (): void => {
      getJson<{ policies: PolicyCounter[] }>('api/policies')
        .then((r) => !stop && (setPolicies(r.policies), setError(undefined)))
        .catch((e: unknown) => !stop && setError((e as Error).message));
    };
    load();
    const t = setInterval(load, 2000);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, []);
  const max = Math.max(1, ...policies.map((p) => p.hits));
  return (
    <div className="page">
      {error && <div className="error">{error}</div>}
      <table className="flows" data-testid="policy-table">
        <thead>
          <tr><th>policy</th><th>tier</th><th>hits</th><th></th><th>forwarded</th><th>dropped</th><th>audit</th><th>bytes</th><th>last hit</th><th>rules</th></tr>
        </thead>
        <tbody>
          {policies.map((p) => (
            <tr key={p.policy} className={p.hits === 0 ? 'unused' : ''}>
              <td className="pol">{p.policy}</td>
              <td><span className={`tier t-${p.tier}`}>{p.tier}</span></td>
              <td>{formatCount(p.hits)}</td>
              <td className="barcell">
                <div className="bar">
                  <i className="ok" style={{ width: `${(100 * p.forwarded) / max}%` }} />
                  <i className="warn" style={{ width: `${(100 * p.audit) / max}%` }} />
                  <i className="bad" style={{ width: `${(100 * p.dropped) / max}%` }} />
                </div>
              </td>
              <td>{formatCount(p.forwarded)}</td>
              <td>{formatCount(p.dropped)}</td>
              <td>{formatCount(p.audit)}</td>
              <td>{formatBytes(p.bytes)}</td>
              <td>{ago(p.lastSeen)}</td>
              <td className="muted small">
                {Object.entries(p.rules)
                  .map(([r, n]) => `${r}: ${n}`)
                  .join(' · ')}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
