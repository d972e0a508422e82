// A small Kubernetes API server for tests and for the lab: the real list/watch protocol over
// plain HTTP, from the API reference and "API concepts":
//
//   - discovery: /version, /api, /apis, /api/v1, /apis/<group>[/<version>] (APIResourceList);
//   - list with `limit`/`continue` (pages of one consistent snapshot), `resourceVersion` and
//     `resourceVersionMatch`; list items carry no kind/apiVersion except for custom resources;
//   - watch: a chunked stream of `{"type":…,"object":…}` lines; without resourceVersion (or
//     "0") it starts with synthetic ADDED events for the current state; from an older version
//     it replays the history, or answers with an ERROR event carrying a 410 "Expired" Status
//     when that version is compacted; BOOKMARK events when `allowWatchBookmarks=true`;
//     `timeoutSeconds`; `sendInitialEvents=true` ends the initial events with a bookmark
//     annotated `k8s.io/initial-events-end`;
//   - create (POST), get, update (PUT, with optimistic concurrency on resourceVersion), merge
//     patch (PATCH), delete (DELETE); meta.k8s.io Table output for kubectl's default printing;
//   - optional bearer-token authentication (401 otherwise).
//
// Faults for tests: drop every watch connection mid-stream, force 410 Gone (compaction), make
// the open watches silent (connection up, nothing sent), slow watches (a delay per event).
//
// It can run in-process (`new TestApiServer(...).start()`) or as a child process with a state
// file (`main.ts`), so that the lab can serve its desired state through it and `kubectl` can
// reach it with the kubeconfig `writeKubeconfig` writes.

import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { API_RESOURCES, apiVersionOf, groupVersions, resourceByKind, resourceByPath, type ApiResource } from './resources.js';
import { ApiError, ObjectStore, type KubeObject, type StoreEvent, type StoreState } from './store.js';

/** The line main.ts prints once it accepts connections (followed by the URL). */
export const APISERVER_LISTENING = 'weir-apiserver listening on ';

export interface TestApiServerOptions {
  /**
   * Require `Authorization: Bearer <token>`; none: no authentication. kubectl sends a bearer
   * token only over TLS, so a token goes with `tls`.
   */
  readonly token?: string;
  /** Serve HTTPS with this PEM key and certificate (as a real API server does). */
  readonly tls?: { readonly key: string; readonly cert: string };
  /** Changes kept for watches from an older resourceVersion (default 10,000). */
  readonly historyLimit?: number;
  /** How often open watches that asked for bookmarks get one (default 60 s, as kube-apiserver). */
  readonly bookmarkIntervalMs?: number;
  /** Load the state from this file if it exists, and write it back after every change. */
  readonly stateFile?: string;
  /** Kinds not served at all (e.g. the ANP/BANP CRDs of a cluster that lacks them). */
  readonly omitKinds?: readonly string[];
}

export interface RequestRecord {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly status: number;
}

interface ActiveWatch {
  readonly resource: ApiResource;
  readonly namespace: string | undefined;
  readonly res: ServerResponse;
  readonly socket: Socket;
  readonly table: boolean;
  silent: boolean;
  queue: string[];
  writing: boolean;
  closed: boolean;
  /** End the stream cleanly once the queue is written. */
  endAfterDrain: boolean;
  timers: NodeJS.Timeout[];
  unsubscribe: () => void;
}

const STATUS_FAILURE = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure' };

function statusBody(e: ApiError): Record<string, unknown> {
  return { ...STATUS_FAILURE, message: e.message, reason: e.reason, ...(e.details ? { details: e.details } : {}), code: e.code };
}

function ageOf(created: unknown): string {
  if (typeof created !== 'string') return '<unknown>';
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(created)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function isKubeObject(v: unknown): v is KubeObject {
  if (typeof v !== 'object' || v === null) return false;
  const meta = (v as { metadata?: unknown }).metadata;
  return typeof meta === 'object' && meta !== null && !Array.isArray(meta);
}

export class TestApiServer {
  readonly store: ObjectStore;
  /** Every request served, oldest first (bounded), so tests can see lists, watches and retries. */
  readonly requests: RequestRecord[] = [];
  private server: Server | undefined;
  private readonly watches = new Set<ActiveWatch>();
  private readonly sockets = new Set<Socket>();
  private readonly snapshots = new Map<string, KubeObject[]>();
  private slowMs = 0;
  private bookmarkIntervalMs: number;
  private saveTimer: NodeJS.Timeout | undefined;
  private port = 0;
  private host = '127.0.0.1';
  private omitKinds: readonly string[];
  private goneAlways = false;

  constructor(private readonly opts: TestApiServerOptions = {}) {
    let state: StoreState | undefined;
    if (opts.stateFile && existsSync(opts.stateFile)) state = JSON.parse(readFileSync(opts.stateFile, 'utf8')) as StoreState;
    this.store = new ObjectStore(opts.historyLimit ?? 10_000, state);
    this.bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 60_000;
    this.omitKinds = opts.omitKinds ?? [];
    if (opts.stateFile) this.store.subscribe(() => this.scheduleSave());
  }

  /** The base URL, e.g. http://127.0.0.1:34567. */
  get url(): string {
    return `${this.opts.tls ? 'https' : 'http'}://${this.host}:${this.port}`;
  }

  /** Starts listening (port 0: any free port). Can be called again after `stop` (a restart). */
  async start(port = this.port, host = this.host): Promise<string> {
    if (this.server) throw new Error('the test API server is already running');
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    const server: Server = this.opts.tls ? createTlsServer({ key: this.opts.tls.key, cert: this.opts.tls.cert }, handler) : createServer(handler);
    // The raw TCP socket (also under TLS), so that `stop` can cut every connection at once.
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen(port, host, () => ok());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    this.host = host;
    return this.url;
  }

  /** Stops listening and cuts every connection, as a killed API server would. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const w of this.watches) this.closeWatch(w);
    const closed = new Promise<void>((ok) => server.close(() => ok()));
    // Keep-alive connections would hold `close` open until they time out.
    server.closeAllConnections();
    for (const s of this.sockets) s.destroy();
    await closed;
    this.flushState();
  }

  // ------------------------------------------------------------------ faults

  /** Cuts every open watch connection mid-stream (the client sees ECONNRESET or a premature end). */
  dropWatches(): number {
    const n = this.watches.size;
    for (const w of this.watches) {
      w.socket.destroy();
      this.closeWatch(w);
    }
    return n;
  }

  /**
   * Compacts the history: open watches get an ERROR event with a 410 Status and are closed, and
   * any watch or paged list from an earlier resourceVersion gets 410 Gone, so clients must re-list.
   */
  forceGone(): void {
    this.store.compact();
    this.snapshots.clear();
    for (const w of this.watches) {
      this.enqueue(w, this.goneEvent(0));
      this.endWatch(w);
    }
  }

  /** Every new watch is answered with 410 at once (a broken cache in front of the server). */
  setGoneAlways(on: boolean): void {
    this.goneAlways = on;
  }

  /** The watches open now stay open but never send anything again (a stalled stream). */
  silenceWatches(): number {
    for (const w of this.watches) w.silent = true;
    return this.watches.size;
  }

  /** Delays every watch event by `ms` (0: no delay). */
  setSlowWatches(ms: number): void {
    this.slowMs = ms;
  }

  setBookmarkInterval(ms: number): void {
    this.bookmarkIntervalMs = ms;
  }

  /** Open watch streams (excluding ended ones). */
  get openWatches(): number {
    return this.watches.size;
  }

  // ------------------------------------------------------------------ objects (in-process API)

  private resourceOf(o: KubeObject): ApiResource {
    const r = resourceByKind(o.apiVersion, o.kind);
    if (!r) throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${o.kind} ${o.apiVersion})`);
    return r;
  }

  create(o: KubeObject): KubeObject {
    return this.store.create(this.resourceOf(o), structuredClone(o));
  }

  update(o: KubeObject): KubeObject {
    return this.store.update(this.resourceOf(o), structuredClone(o));
  }

  /** Create or replace (ignoring resourceVersion): what `lab apply` needs. */
  apply(o: KubeObject): KubeObject {
    const r = this.resourceOf(o);
    const copy = structuredClone(o);
    try {
      this.store.get(r, copy.metadata.namespace, copy.metadata.name);
    } catch (e) {
      if (e instanceof ApiError && e.code === 404) return this.store.create(r, copy);
      throw e;
    }
    delete copy.metadata.resourceVersion;
    return this.store.update(r, copy);
  }

  delete(apiVersion: string, kind: string, namespace: string | undefined, name: string): KubeObject {
    const r = resourceByKind(apiVersion, kind);
    if (!r) throw new ApiError(404, 'NotFound', `unknown kind ${kind} ${apiVersion}`);
    return this.store.delete(r, namespace, name);
  }

  list(apiVersion: string, kind: string, namespace?: string): KubeObject[] {
    const r = resourceByKind(apiVersion, kind);
    if (!r) throw new ApiError(404, 'NotFound', `unknown kind ${kind} ${apiVersion}`);
    return this.store.list(r, namespace);
  }

  // ------------------------------------------------------------------ state file

  private scheduleSave(): void {
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => this.flushState(), 20);
  }

  private flushState(): void {
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    const file = this.opts.stateFile;
    if (!file) return;
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.store.state()));
    renameSync(tmp, file);
  }

  // ------------------------------------------------------------------ HTTP

  private log(req: IncomingMessage, url: URL, status: number): void {
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, query: Object.fromEntries(url.searchParams), status });
    if (this.requests.length > 5000) this.requests.splice(0, 1000);
  }

  private send(req: IncomingMessage, res: ServerResponse, url: URL, status: number, body: unknown): void {
    this.log(req, url, status);
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (this.opts.token !== undefined && req.headers.authorization !== `Bearer ${this.opts.token}`) {
      this.send(req, res, url, 401, { ...STATUS_FAILURE, message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        this.route(req, res, url, Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        const err = e instanceof ApiError ? e : new ApiError(500, 'InternalError', `internal error: ${(e as Error).message}`);
        if (!res.headersSent) this.send(req, res, url, err.code, statusBody(err));
      }
    });
  }

  private route(req: IncomingMessage, res: ServerResponse, url: URL, body: string): void {
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const seg = path.split('/').filter(Boolean);
    const method = req.method ?? 'GET';
    if (method === 'GET') {
      const disc = this.discovery(seg);
      if (disc !== undefined) return this.send(req, res, url, 200, disc);
    }
    let group: string;
    let version: string;
    let rest: string[];
    if (seg[0] === 'api' && seg.length >= 3) {
      group = '';
      version = seg[1];
      rest = seg.slice(2);
    } else if (seg[0] === 'apis' && seg.length >= 4) {
      group = seg[1];
      version = seg[2];
      rest = seg.slice(3);
    } else {
      throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    }
    // [namespaces, ns, plural, name?] for a namespaced resource; [plural, name?] otherwise.
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const r = resourceByPath(group, version, rest[0]);
    if (!r || this.omitted(r) || rest.length > 2 || (namespace !== undefined && !r.namespaced)) {
      throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    }
    const name = rest[1];
    const table = /\bas=Table\b/.test(req.headers.accept ?? '');
    switch (method) {
      case 'GET':
        if (name !== undefined) return this.send(req, res, url, 200, this.present(this.store.get(r, namespace, name), table));
        if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1') return this.watch(req, res, url, r, namespace, table);
        return this.send(req, res, url, 200, this.listResponse(r, namespace, url.searchParams, table));
      case 'POST': {
        if (name !== undefined) throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
        const o = this.parseBody(body);
        if (r.namespaced) {
          if (o.metadata.namespace !== undefined && o.metadata.namespace !== namespace) {
            throw new ApiError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
          }
          o.metadata.namespace = namespace;
        }
        this.checkKind(r, o);
        const dryRun = url.searchParams.get('dryRun') === 'All';
        if (dryRun) return this.send(req, res, url, 201, o);
        return this.send(req, res, url, 201, this.store.create(r, o));
      }
      case 'PUT': {
        if (name === undefined) throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
        const o = this.parseBody(body);
        if (o.metadata.name !== name) throw new ApiError(400, 'BadRequest', `the name of the object (${o.metadata.name}) does not match the name on the URL (${name})`);
        if (r.namespaced) o.metadata.namespace = namespace;
        this.checkKind(r, o);
        return this.send(req, res, url, 200, this.store.update(r, o));
      }
      case 'PATCH': {
        if (name === undefined) throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
        const type = req.headers['content-type'] ?? '';
        if (!/merge-patch\+json|strategic-merge-patch\+json/.test(type)) {
          throw new ApiError(415, 'UnsupportedMediaType', `the test API server supports merge patches only, not "${type}"`);
        }
        const current = this.store.get(r, namespace, name);
        const patched = mergePatch(current, JSON.parse(body) as unknown);
        if (!isKubeObject(patched)) throw new ApiError(422, 'Invalid', 'the patch removed the object metadata');
        delete patched.metadata.resourceVersion;
        return this.send(req, res, url, 200, this.store.update(r, patched));
      }
      case 'DELETE':
        if (name === undefined) throw new ApiError(405, 'MethodNotAllowed', 'deleting a collection is not supported by the test API server');
        return this.send(req, res, url, 200, this.store.delete(r, namespace, name));
      default:
        throw new ApiError(405, 'MethodNotAllowed', `method ${method} is not allowed`);
    }
  }

  private parseBody(body: string): KubeObject {
    let o: unknown;
    try {
      o = JSON.parse(body);
    } catch (e) {
      throw new ApiError(400, 'BadRequest', `the request body is not JSON: ${(e as Error).message}`);
    }
    if (!isKubeObject(o)) throw new ApiError(400, 'BadRequest', 'the request body is not an object with metadata');
    return o;
  }

  private checkKind(r: ApiResource, o: KubeObject): void {
    if (o.kind !== r.kind || o.apiVersion !== apiVersionOf(r)) {
      throw new ApiError(400, 'BadRequest', `the API version in the data (${o.apiVersion}) and kind (${o.kind}) do not match ${apiVersionOf(r)} ${r.kind}`);
    }
  }

  private omitted(r: ApiResource): boolean {
    return this.omitKinds.includes(r.kind);
  }

  /** Changes the kinds not served (a CRD installed or removed while clients watch). */
  setOmitKinds(kinds: readonly string[]): void {
    this.omitKinds = kinds;
  }

  private discovery(seg: string[]): unknown {
    const p = seg.join('/');
    if (p === 'version') {
      return { major: '1', minor: '32', gitVersion: 'v1.32.0-weir-test', gitCommit: 'weir', gitTreeState: 'clean', buildDate: '2026-11-30T00:00:00Z', goVersion: 'none', compiler: 'none', platform: 'linux/amd64' };
    }
    if (p === 'api') {
      return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `${this.host}:${this.port}` }] };
    }
    const served = API_RESOURCES.filter((r) => !this.omitted(r));
    const groups = groupVersions().filter((g) => g.group !== '' && served.some((r) => r.group === g.group && r.version === g.version));
    const groupOf = (name: string) => {
      const versions = groups.filter((g) => g.group === name).map((g) => ({ groupVersion: `${g.group}/${g.version}`, version: g.version }));
      return versions.length === 0 ? undefined : { name, versions, preferredVersion: versions[0] };
    };
    if (p === 'apis') {
      const names = [...new Set(groups.map((g) => g.group))];
      return { kind: 'APIGroupList', apiVersion: 'v1', groups: names.map((n) => groupOf(n)) };
    }
    if (seg[0] === 'apis' && seg.length === 2) {
      const g = groupOf(seg[1]);
      if (!g) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
      return { kind: 'APIGroup', apiVersion: 'v1', ...g };
    }
    const gv = seg[0] === 'api' && seg.length === 2 ? { group: '', version: seg[1] } : seg[0] === 'apis' && seg.length === 3 ? { group: seg[1], version: seg[2] } : undefined;
    if (!gv) return undefined;
    const resources = served.filter((r) => r.group === gv.group && r.version === gv.version);
    if (resources.length === 0) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: gv.group === '' ? gv.version : `${gv.group}/${gv.version}`,
      resources: resources.map((r) => ({
        name: r.plural,
        singularName: r.singular,
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
        ...(r.shortNames.length > 0 ? { shortNames: r.shortNames } : {}),
      })),
    };
  }

  // ------------------------------------------------------------------ list

  /** A single object as returned by GET, or a one-row Table. */
  private present(o: KubeObject, table: boolean): unknown {
    return table ? this.table(this.resourceOf(o), [o], String(this.store.resourceVersion)) : o;
  }

  private table(r: ApiResource, items: readonly KubeObject[], rv: string): Record<string, unknown> {
    const columns: { name: string; type: string; format: string; description: string; priority: number }[] = [
      { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.', priority: 0 },
    ];
    const extra: ((o: KubeObject) => string)[] = [];
    if (r.kind === 'Pod') {
      columns.push({ name: 'Status', type: 'string', format: '', description: 'The phase of the pod.', priority: 0 });
      extra.push((o) => String((o.status as { phase?: string } | undefined)?.phase ?? 'Pending'));
      columns.push({ name: 'IP', type: 'string', format: '', description: 'The pod IP.', priority: 1 });
      extra.push((o) => String((o.status as { podIP?: string } | undefined)?.podIP ?? '<none>'));
    }
    if (r.kind === 'NetworkPolicy') {
      columns.push({ name: 'Pod-Selector', type: 'string', format: '', description: 'The pods the policy selects.', priority: 0 });
      extra.push((o) => {
        const sel = (o.spec as { podSelector?: { matchLabels?: Record<string, string> } } | undefined)?.podSelector?.matchLabels ?? {};
        const s = Object.entries(sel).map(([k, v]) => `${k}=${v}`).join(',');
        return s === '' ? '<none>' : s;
      });
    }
    columns.push({ name: 'Age', type: 'string', format: '', description: 'Time since creation.', priority: 0 });
    return {
      kind: 'Table',
      apiVersion: 'meta.k8s.io/v1',
      metadata: { resourceVersion: rv },
      columnDefinitions: columns,
      rows: items.map((o) => ({
        cells: [o.metadata.name, ...extra.map((f) => f(o)), ageOf(o.metadata.creationTimestamp)],
        object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata },
      })),
    };
  }

  private listItem(r: ApiResource, o: KubeObject): Record<string, unknown> {
    // kube-apiserver omits kind/apiVersion in the items of built-in lists (kubectl adds them
    // back); custom resources keep them.
    if (r.custom) return o;
    const { kind: _k, apiVersion: _a, ...rest } = o;
    return rest;
  }

  private listResponse(r: ApiResource, namespace: string | undefined, q: URLSearchParams, table: boolean): unknown {
    if (q.get('labelSelector') || q.get('fieldSelector')) {
      throw new ApiError(400, 'BadRequest', 'label and field selectors are not supported by the test API server');
    }
    const limit = Number(q.get('limit') ?? '0');
    const cont = q.get('continue');
    let items: KubeObject[];
    let rv: number;
    let offset = 0;
    if (cont) {
      let token: { rv: number; offset: number; id: string };
      try {
        token = JSON.parse(Buffer.from(cont, 'base64url').toString('utf8')) as typeof token;
      } catch {
        throw new ApiError(400, 'BadRequest', 'invalid continue token');
      }
      const snap = this.snapshots.get(token.id);
      if (!snap) {
        throw new ApiError(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
      }
      items = snap;
      rv = token.rv;
      offset = token.offset;
    } else {
      const asked = q.get('resourceVersion');
      const match = q.get('resourceVersionMatch');
      if (asked !== null && asked !== '' && asked !== '0') {
        const n = Number(asked);
        if (!Number.isInteger(n) || n < 0) throw new ApiError(400, 'BadRequest', `invalid resource version "${asked}"`);
        if (n > this.store.resourceVersion) throw new ApiError(504, 'Timeout', `Too large resource version: ${n}, current: ${this.store.resourceVersion}`);
        if (match === 'Exact' && n !== this.store.resourceVersion) {
          throw new ApiError(410, 'Expired', `too old resource version: ${n} (${this.store.resourceVersion})`);
        }
      }
      items = this.store.list(r, namespace);
      rv = this.store.resourceVersion;
    }
    let page = items.slice(offset);
    const metadata: Record<string, unknown> = { resourceVersion: String(rv) };
    if (limit > 0 && page.length > limit) {
      page = page.slice(0, limit);
      let id = cont ? (JSON.parse(Buffer.from(cont, 'base64url').toString('utf8')) as { id: string }).id : '';
      if (!id) {
        id = randomBytes(6).toString('hex');
        this.snapshots.set(id, items);
        // A few consistent snapshots are kept for paging, as etcd keeps revisions until compaction.
        if (this.snapshots.size > 32) this.snapshots.delete(this.snapshots.keys().next().value as string);
      }
      metadata.continue = Buffer.from(JSON.stringify({ rv, offset: offset + limit, id })).toString('base64url');
      metadata.remainingItemCount = items.length - offset - limit;
    }
    if (table) return { ...this.table(r, page, String(rv)), metadata };
    return { kind: `${r.kind}List`, apiVersion: apiVersionOf(r), metadata, items: page.map((o) => this.listItem(r, o)) };
  }

  // ------------------------------------------------------------------ watch

  private goneEvent(asked: number): string {
    const status = {
      ...STATUS_FAILURE,
      message: `too old resource version: ${asked} (${this.store.compactedResourceVersion})`,
      reason: 'Expired',
      code: 410,
    };
    return `${JSON.stringify({ type: 'ERROR', object: status })}\n`;
  }

  private eventLine(w: ActiveWatch, type: string, o: KubeObject): string {
    const object = w.table ? this.table(w.resource, [o], o.metadata.resourceVersion ?? '') : o;
    return `${JSON.stringify({ type, object })}\n`;
  }

  private bookmarkLine(w: ActiveWatch, annotations?: Record<string, string>): string {
    const object = {
      kind: w.resource.kind,
      apiVersion: apiVersionOf(w.resource),
      metadata: { resourceVersion: String(this.store.resourceVersion), ...(annotations ? { annotations } : {}) },
    };
    return `${JSON.stringify({ type: 'BOOKMARK', object })}\n`;
  }

  private watch(req: IncomingMessage, res: ServerResponse, url: URL, r: ApiResource, namespace: string | undefined, table: boolean): void {
    const q = url.searchParams;
    if (q.get('labelSelector') || q.get('fieldSelector')) {
      throw new ApiError(400, 'BadRequest', 'label and field selectors are not supported by the test API server');
    }
    const asked = q.get('resourceVersion');
    let from: number | undefined;
    if (asked !== null && asked !== '' && asked !== '0') {
      from = Number(asked);
      if (!Number.isInteger(from) || from < 0) throw new ApiError(400, 'BadRequest', `invalid resource version "${asked}"`);
    }
    const sendInitial = q.get('sendInitialEvents') === 'true';
    const bookmarks = q.get('allowWatchBookmarks') === 'true';
    this.log(req, url, 200);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    const w: ActiveWatch = {
      resource: r,
      namespace,
      res,
      socket: req.socket,
      table,
      silent: false,
      queue: [],
      writing: false,
      closed: false,
      endAfterDrain: false,
      timers: [],
      unsubscribe: () => undefined,
    };
    this.watches.add(w);
    // Not req 'close': an IncomingMessage closes once its (empty) body has been read.
    res.on('close', () => this.closeWatch(w));

    const matches = (e: StoreEvent) => e.resource === r && (namespace === undefined || e.object.metadata.namespace === namespace);
    if (from !== undefined && !sendInitial) {
      const past = this.store.since(r, from);
      if (!past || this.goneAlways) {
        this.enqueue(w, this.goneEvent(from));
        this.endWatch(w);
        return;
      }
      for (const e of past.filter(matches)) this.enqueue(w, this.eventLine(w, e.type, e.object));
    } else if (from === undefined || sendInitial) {
      // "Get State and Start at Most Recent": synthetic ADDED events for what exists now.
      for (const o of this.store.list(r, namespace)) this.enqueue(w, this.eventLine(w, 'ADDED', o));
      if (sendInitial) this.enqueue(w, this.bookmarkLine(w, { 'k8s.io/initial-events-end': 'true' }));
    }
    w.unsubscribe = this.store.subscribe((e) => {
      if (matches(e)) this.enqueue(w, this.eventLine(w, e.type, e.object));
    });
    if (bookmarks) w.timers.push(setInterval(() => this.enqueue(w, this.bookmarkLine(w)), this.bookmarkIntervalMs));
    const timeout = Number(q.get('timeoutSeconds') ?? '0');
    if (timeout > 0) w.timers.push(setTimeout(() => this.endWatch(w), timeout * 1000));
  }

  private enqueue(w: ActiveWatch, line: string): void {
    if (w.closed || w.silent) return;
    w.queue.push(line);
    void this.pump(w);
  }

  private async pump(w: ActiveWatch): Promise<void> {
    if (w.writing) return;
    w.writing = true;
    while (w.queue.length > 0 && !w.closed && !w.silent) {
      if (this.slowMs > 0) await new Promise((ok) => setTimeout(ok, this.slowMs));
      const line = w.queue.shift();
      if (line === undefined || w.closed || w.silent) break;
      w.res.write(line);
    }
    w.writing = false;
    if (w.queue.length === 0 && w.endAfterDrain && !w.closed) {
      w.res.end();
      this.closeWatch(w);
    }
  }

  /** Ends the stream cleanly once what is queued has been written. */
  private endWatch(w: ActiveWatch): void {
    // A silent (stalled) stream delivers nothing, not even its end.
    if (w.silent) return;
    w.endAfterDrain = true;
    if (!w.writing) void this.pump(w);
  }

  private closeWatch(w: ActiveWatch): void {
    if (w.closed) return;
    w.closed = true;
    for (const t of w.timers) clearTimeout(t);
    w.unsubscribe();
    this.watches.delete(w);
    if (!w.res.writableEnded) w.res.end();
  }
}
