// HTTP to the Kubernetes API: the configuration and authentication come from
// @kubernetes/client-node's KubeConfig (kubeconfig files, exec plugins, client certificates,
// the in-cluster service account with its rotating token file); the list and watch requests
// themselves are plain node:http(s) requests, so that weir owns the stream. The client's own
// Watch/ListWatch are not used: their users report watches that stall silently for minutes
// (no idle detection on the stream: kubernetes-client/javascript#596, #958), ListWatch that
// stops reconnecting after ECONNRESET or "Premature close" (#2385, #1496) and reconnect storms
// after a restart (#1933). Here a watch is one request whose every line, its end and its
// errors are seen, and the reflector decides what happens next.

import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';

/** A failed API request: the HTTP status and, where the server sent one, its metav1.Status. */
export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

/** One line of a watch stream. */
export interface WatchLine {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  readonly object: Record<string, unknown>;
}

export interface WatchCallbacks {
  onLine(line: WatchLine): void;
  /** The stream ended: cleanly (no error) or not. Called exactly once. */
  onEnd(error?: Error): void;
}

export interface WatchHandle {
  /** Ends the request; `onEnd` is not called after an abort. */
  abort(): void;
}

export type Query = Readonly<Record<string, string | undefined>>;

/** Where the Kubernetes source finds the API server and its credentials. */
export type KubeAuth =
  | { readonly kind: 'kubeconfig'; readonly path?: string; readonly context?: string }
  /**
   * The pod's service account: $KUBERNETES_SERVICE_HOST/PORT, the CA and the token file under
   * /var/run/secrets/kubernetes.io/serviceaccount (re-read as the kubelet rotates it). `root`
   * prefixes that path (tests).
   */
  | { readonly kind: 'in-cluster'; readonly root?: string }
  | { readonly kind: 'config'; readonly config: KubeConfig };

/** Loads a KubeConfig: a file (or $KUBECONFIG / ~/.kube/config), or the in-cluster service account. */
export function loadKubeConfig(auth: KubeAuth): KubeConfig {
  if (auth.kind === 'config') return auth.config;
  const kc = new KubeConfig();
  if (auth.kind === 'in-cluster') {
    kc.loadFromCluster(auth.root);
  } else {
    if (auth.path !== undefined) kc.loadFromFile(auth.path);
    else kc.loadFromDefault();
    if (auth.context !== undefined) kc.setCurrentContext(auth.context);
  }
  if (!kc.getCurrentCluster()) throw new Error('the kubeconfig names no current cluster');
  return kc;
}

function statusMessage(status: number, body: string): { reason: string; message: string } {
  try {
    const s = JSON.parse(body) as { reason?: string; message?: string };
    return { reason: s.reason ?? String(status), message: s.message ?? body.slice(0, 200) };
  } catch {
    return { reason: String(status), message: body.slice(0, 200) || `HTTP ${status}` };
  }
}

export class KubeTransport {
  /** Lists share keep-alive connections; each watch has a connection of its own. */
  private listAgent: HttpAgent | undefined;

  constructor(private readonly kc: KubeConfig) {}

  /** Ends the shared list connections (after every reflector has stopped). */
  close(): void {
    this.listAgent?.destroy();
    this.listAgent = undefined;
  }

  get server(): string {
    const c = this.kc.getCurrentCluster();
    if (!c) throw new Error('the kubeconfig names no current cluster');
    return c.server;
  }

  private async open(path: string, query: Query): Promise<{ url: URL; options: RequestOptions }> {
    const url = new URL(this.server.replace(/\/+$/, '') + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);
    const options: RequestOptions = { method: 'GET', headers: { Accept: 'application/json' } };
    await this.kc.applyToHTTPSOptions(options);
    return { url, options };
  }

  private send(url: URL, options: RequestOptions, onResponse: (res: IncomingMessage) => void, onError: (e: Error) => void) {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options, onResponse);
    req.on('error', onError);
    req.end();
    return req;
  }

  /** GET returning parsed JSON; non-2xx statuses throw a KubeApiError. */
  async getJSON(path: string, query: Query = {}, timeoutMs = 60_000): Promise<unknown> {
    const { url, options } = await this.open(path, query);
    // KubeConfig makes a new agent (TLS settings) per request: a new TLS handshake for every
    // page of every list. Plain agents are replaced by one keep-alive agent with the same TLS
    // options; proxy agents are kept as they are. Headers (the token) are still per request.
    const made = options.agent;
    if (made instanceof HttpsAgent && made.constructor === HttpsAgent) {
      this.listAgent ??= new HttpsAgent({ ...made.options, keepAlive: true, maxSockets: 4 });
      options.agent = this.listAgent;
    } else if (made instanceof HttpAgent && made.constructor === HttpAgent) {
      this.listAgent ??= new HttpAgent({ keepAlive: true, maxSockets: 4 });
      options.agent = this.listAgent;
    }
    return new Promise((resolve, reject) => {
      const req = this.send(
        url,
        options,
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const body = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status < 200 || status >= 300) {
              const s = statusMessage(status, body);
              reject(new KubeApiError(status, s.reason, `GET ${url.pathname}: ${status} ${s.message}`));
              return;
            }
            try {
              resolve(JSON.parse(body));
            } catch (e) {
              reject(new Error(`GET ${url.pathname}: invalid JSON: ${(e as Error).message}`));
            }
          });
        },
        reject,
      );
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url.pathname}: no answer within ${timeoutMs} ms`)));
    });
  }

  /** POST of a JSON body (creating an object: an Event); non-2xx statuses throw a KubeApiError. */
  async postJSON(path: string, body: unknown, timeoutMs = 30_000): Promise<unknown> {
    const { url, options } = await this.open(path, {});
    options.method = 'POST';
    const text = JSON.stringify(body);
    options.headers = { ...options.headers, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(text)) };
    return new Promise((resolve, reject) => {
      const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const answer = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status < 200 || status >= 300) {
            const s = statusMessage(status, answer);
            reject(new KubeApiError(status, s.reason, `POST ${url.pathname}: ${status} ${s.message}`));
            return;
          }
          try {
            resolve(JSON.parse(answer));
          } catch {
            resolve(undefined);
          }
        });
      });
      req.on('error', reject);
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`POST ${url.pathname}: no answer within ${timeoutMs} ms`)));
      req.end(text);
    });
  }

  /**
   * Opens a watch (`watch=true` is added). Lines are parsed as they arrive; a non-200 answer
   * ends it with a KubeApiError (410 included), a reset connection with its socket error.
   */
  async watch(path: string, query: Query, cb: WatchCallbacks): Promise<WatchHandle> {
    const { url, options } = await this.open(path, { ...query, watch: 'true' });
    let ended = false;
    let aborted = false;
    const end = (e?: Error) => {
      if (ended || aborted) return;
      ended = true;
      cb.onEnd(e);
    };
    const req = this.send(
      url,
      options,
      (res) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const s = statusMessage(status, Buffer.concat(chunks).toString('utf8'));
            end(new KubeApiError(status, s.reason, `watch ${url.pathname}: ${status} ${s.message}`));
          });
          res.on('error', (e) => end(e));
          return;
        }
        res.socket?.setKeepAlive(true, 30_000);
        let buffered = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffered += chunk;
          let nl: number;
          while ((nl = buffered.indexOf('\n')) >= 0) {
            const text = buffered.slice(0, nl).trim();
            buffered = buffered.slice(nl + 1);
            if (text === '' || ended || aborted) continue;
            let line: WatchLine;
            try {
              line = JSON.parse(text) as WatchLine;
            } catch {
              // A line that is not JSON means the stream is broken: end it, the reflector re-lists.
              req.destroy();
              end(new Error(`watch ${url.pathname}: a line of the stream is not JSON`));
              return;
            }
            cb.onLine(line);
          }
        });
        // 'aborted' (Node ≤ 20) or 'error' (newer): the connection died mid-stream.
        res.on('aborted', () => end(new Error(`watch ${url.pathname}: connection reset mid-stream`)));
        res.on('error', (e) => end(e));
        res.on('end', () => (res.complete ? end() : end(new Error(`watch ${url.pathname}: stream ended prematurely`))));
        res.on('close', () => end(res.complete ? undefined : new Error(`watch ${url.pathname}: stream closed prematurely`)));
      },
      (e) => end(e),
    );
    return {
      abort: () => {
        aborted = true;
        req.destroy();
      },
    };
  }
}
