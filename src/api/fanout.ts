// `/api/flows` in cluster mode: the raw records live on the agents, so the server asks every
// agent that serves them, in parallel with a deadline, and merges newest first. An agent that
// does not answer is named in `sources` with `ok: false` and the reply says `partial: true`:
// a partial answer is never passed off as a whole one.
import type { FanOutSource } from '../flows/ship-protocol.js';
import { AGENT_FLOWS_PATH } from '../flows/ship-protocol.js';
import type { StoredFlow } from '../flows/store.js';

export interface FanOutResult {
  flows: StoredFlow[];
  sources: FanOutSource[];
}

export async function fanOutFlows(
  targets: readonly { node: string; url: string }[],
  query: Readonly<Record<string, string>>,
  opts: { token?: string; timeoutMs?: number } = {},
): Promise<FanOutResult> {
  const qs = new URLSearchParams(query).toString();
  const headers: Record<string, string> = opts.token !== undefined ? { authorization: `Bearer ${opts.token}` } : {};
  const parts = await Promise.all(
    targets.map(async (t): Promise<{ source: FanOutSource; flows: StoredFlow[] }> => {
      try {
        const res = await fetch(`${t.url.replace(/\/+$/, '')}${AGENT_FLOWS_PATH}?${qs}`, { headers, signal: AbortSignal.timeout(opts.timeoutMs ?? 3_000) });
        if (!res.ok) return { source: { node: t.node, url: t.url, ok: false, flows: 0, error: `HTTP ${res.status}` }, flows: [] };
        const body = (await res.json()) as { flows?: StoredFlow[] };
        const flows = Array.isArray(body.flows) ? body.flows : [];
        return { source: { node: t.node, url: t.url, ok: true, flows: flows.length }, flows };
      } catch (e) {
        const err = e as Error & { cause?: { code?: string } };
        const error = err.name === 'TimeoutError' ? 'timed out' : (err.cause?.code ?? err.message);
        return { source: { node: t.node, url: t.url, ok: false, flows: 0, error }, flows: [] };
      }
    }),
  );
  return { flows: parts.flatMap((p) => p.flows), sources: parts.map((p) => p.source) };
}
