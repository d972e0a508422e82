// The balancing loop's exchange through a weir server (cluster mode: nodes share no
// directory). Each tick the agent pushes its status (POST /api/lb/status, the contract in
// lb-protocol.ts) over the channel it ships flows on — the same server URL, bearer token and
// optional client certificate — and the answer carries the drains and the other nodes' probes,
// which the next tick uses. Before the first answer it asks once without pushing (GET).
//
// Failure semantics: the server is not on the data path. When it cannot be reached the agent
// keeps the last drains and peers' probes it got, goes on with its own probes, and says so in
// its status; the peers' probes age, and past the loop's freshness limit (5 s) the health of
// another node's endpoint is left as it was — traffic is never dropped because the server is
// gone. An agent that never reached the server knows no drain.

import { request as httpRequest, Agent as HttpAgent, type IncomingMessage } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import type { LbExchange, PeerProbes } from './lb-exchange.js';
import { readDrains, writeLbStatus } from './lb-files.js';
import { LB_STATUS_PATH, lbExchangeReplySchema, type LbExchangeReply } from './lb-protocol.js';
import type { LbNodeStatus } from './lb-status.js';

export interface LbRemoteOptions {
  /** The server's base URL (as the flow shipper's `--server`). */
  readonly server: string;
  readonly token: string;
  readonly node: string;
  readonly tls?: { readonly ca?: string | Buffer; readonly cert?: string | Buffer; readonly key?: string | Buffer };
  /**
   * The lab directory: `lb-<node>.json` is also written there (`weir lb status --lab-dir` keeps
   * working) and its `lb-drain.json` counts beside the server's drains.
   */
  readonly fileDir?: string;
  readonly timeoutMs?: number;
}

export class LbRemoteConfigError extends Error {
  override readonly name = 'LbRemoteConfigError';
}

export class LbRemote implements LbExchange {
  private readonly url: URL;
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly timeoutMs: number;
  private last: LbExchangeReply | undefined;
  /** When `last` arrived (this node's clock). */
  private lastAt = 0;
  private lastError: string | undefined;
  private failingSince: number | undefined;

  constructor(private readonly opts: LbRemoteOptions) {
    if (!URL.canParse(opts.server)) throw new LbRemoteConfigError(`--server: not a URL: "${opts.server}"`);
    this.url = new URL(LB_STATUS_PATH, opts.server.replace(/\/*$/, '/'));
    if (this.url.protocol !== 'http:' && this.url.protocol !== 'https:') throw new LbRemoteConfigError(`--server: must be http:// or https://, got "${opts.server}"`);
    if (this.url.protocol === 'http:' && opts.tls?.cert) throw new LbRemoteConfigError('--client-cert needs an https:// --server');
    this.timeoutMs = opts.timeoutMs ?? 2_000;
    const tls = opts.tls ?? {};
    this.agent =
      this.url.protocol === 'https:'
        ? new HttpsAgent({ keepAlive: true, maxSockets: 2, ...(tls.ca ? { ca: tls.ca } : {}), ...(tls.cert ? { cert: tls.cert } : {}), ...(tls.key ? { key: tls.key } : {}) })
        : new HttpAgent({ keepAlive: true, maxSockets: 2 });
  }

  async drains(): Promise<Set<string>> {
    if (!this.last) await this.exchange(undefined);
    // In the lab the drain file counts too (`weir lb drain --lab-dir`): a location is drained
    // when either says so.
    const local = this.opts.fileDir !== undefined ? await readDrains(this.opts.fileDir) : new Set<string>();
    if (!this.last) {
      if (this.opts.fileDir !== undefined) return local;
      throw new Error(`the weir server ${this.opts.server} was not reached yet (${this.lastError ?? 'no answer'}): no drain known`);
    }
    return new Set([...this.last.drained, ...local]);
  }

  async peers(): Promise<readonly PeerProbes[]> {
    const last = this.last;
    if (!last) return [];
    return last.peers.filter((p) => p.node !== this.opts.node).map((p) => ({ node: p.node, measuredAt: this.lastAt - p.ageMs, probes: p.probes }));
  }

  async publish(status: LbNodeStatus): Promise<void> {
    if (this.opts.fileDir !== undefined) await writeLbStatus(this.opts.fileDir, status);
    await this.exchange(status);
  }

  problems(): readonly string[] {
    if (this.lastError === undefined) return [];
    const since = this.failingSince !== undefined ? ` for ${Math.round((Date.now() - this.failingSince) / 1000)} s` : '';
    const kept = this.last ? `drains and other nodes' probes as last received ${Math.round((Date.now() - this.lastAt) / 1000)} s ago` : 'no drain known';
    return [`weir server ${this.opts.server} unreachable${since} (${this.lastError}): ${kept}; own probes go on`];
  }

  close(): void {
    this.agent.destroy();
  }

  /** Pushes `status` (or only asks, when undefined); never throws: a failure is kept for problems(). */
  private async exchange(status: LbNodeStatus | undefined): Promise<void> {
    try {
      const res = await this.request(status === undefined ? 'GET' : 'POST', status === undefined ? undefined : JSON.stringify(status));
      if (res.status !== 200) {
        let message = `HTTP ${res.status}`;
        try {
          message = `HTTP ${res.status}: ${(JSON.parse(res.body) as { message?: string }).message ?? ''}`;
        } catch {
          // Not JSON: the status alone.
        }
        throw new Error(message);
      }
      const parsed = lbExchangeReplySchema.safeParse(JSON.parse(res.body));
      if (!parsed.success) throw new Error(`the answer does not fit: ${parsed.error.issues[0].path.join('.')}: ${parsed.error.issues[0].message}`);
      this.last = parsed.data;
      this.lastAt = Date.now();
      this.lastError = undefined;
      this.failingSince = undefined;
    } catch (e) {
      this.lastError = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      this.failingSince ??= Date.now();
    }
  }

  private request(method: 'GET' | 'POST', body: string | undefined): Promise<{ status: number; body: string }> {
    const send = this.url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send(
        this.url,
        {
          method,
          agent: this.agent,
          timeout: this.timeoutMs,
          headers: {
            authorization: `Bearer ${this.opts.token}`,
            ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
          },
        },
        (res: IncomingMessage) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(body);
    });
  }
}
