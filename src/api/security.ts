// Who may talk to the visibility server, and what every response tells the browser.
//
// - Exposure: a server bound to anything but loopback must have a token (checkExposure), or it
//   does not start. The flows it serves name every workload and who talks to whom.
// - Token: `Authorization: Bearer <token>` on every route but /api/health and the login page;
//   a browser signs in once at /login and gets an HttpOnly, SameSite=Strict session cookie (an
//   HMAC of the token, so the cookie is not the token and dies when the token changes). The
//   dashboard's fetch and EventSource calls are same-origin, so the cookie rides along.
// - Host check: on loopback, a request whose Host is not a loopback name is refused (403). A
//   DNS-rebinding page (evil.example → 127.0.0.1) otherwise reads the API from the user's browser.
// - Headers: a CSP the built dashboard works under (scripts and styles from 'self' only), no
//   framing, no sniffing, no referrer; HSTS under TLS.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';

export const SESSION_COOKIE = 'weir_session';
/** A token shorter than this is refused: it would be guessable. */
export const MIN_TOKEN_LENGTH = 16;

export interface AccessOptions {
  /** Bearer token; without one no authentication is asked (allowed on loopback only). */
  token?: string;
  /** Requests must carry a loopback Host header (the server listens on loopback). */
  loopbackOnly?: boolean;
  /** Served over TLS: cookies are Secure and HSTS is sent. */
  tls?: boolean;
}

export class ExposureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExposureError';
  }
}

/** A listen address that only this machine can reach: 127.0.0.0/8, ::1 or `localhost`. */
export function isLoopbackAddress(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^::ffff:127\./.test(h) || h === '0:0:0:0:0:0:0:1';
  return false;
}

/** The host part of a Host header (`name`, `name:port`, `[v6]`, `[v6]:port`). */
export function hostOfHeader(header: string): string {
  const v6 = /^\[([^\]]*)\](?::\d+)?$/.exec(header);
  if (v6) return v6[1] ?? '';
  return header.replace(/:\d+$/, '');
}

/** Refuses a non-loopback bind without a token, in one sentence. */
export function checkExposure(host: string, token: string | undefined): void {
  if (token === undefined && !isLoopbackAddress(host)) {
    throw new ExposureError(
      `refusing to listen on ${host} without a token: anyone who can reach that address could read every flow; pass --token-file FILE (bearer authentication) or listen on 127.0.0.1`,
    );
  }
}

/** Checks a token read from a file: non-empty, long enough, one line. */
export function validateToken(token: string, file: string): string {
  const t = token.trim();
  if (t.length < MIN_TOKEN_LENGTH) throw new ExposureError(`${file}: the token must be at least ${MIN_TOKEN_LENGTH} characters (make one with: openssl rand -hex 32 > ${file})`);
  if (/\s/.test(t)) throw new ExposureError(`${file}: the token must be one line without spaces`);
  return t;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
const sameSecret = (a: string, b: string): boolean => timingSafeEqual(digest(a), digest(b));

function sessionValue(token: string): string {
  return createHmac('sha256', token).update('weir dashboard session v1').digest('base64url');
}

function cookieOf(req: FastifyRequest, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

const CSP_DASHBOARD = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');
// Swagger UI sets inline styles and loads its own assets.
const CSP_DOCS = CSP_DASHBOARD.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'");

function securityHeaders(req: FastifyRequest, reply: FastifyReply, tls: boolean): void {
  const path = req.url.split('?')[0] ?? '';
  reply.header('content-security-policy', path === '/docs' || path.startsWith('/docs/') ? CSP_DOCS : CSP_DASHBOARD);
  reply.header('x-content-type-options', 'nosniff');
  reply.header('x-frame-options', 'DENY');
  reply.header('referrer-policy', 'no-referrer');
  reply.header('cross-origin-opener-policy', 'same-origin');
  reply.header('cross-origin-resource-policy', 'same-origin');
  if (tls) reply.header('strict-transport-security', 'max-age=31536000');
}

const OPEN_PATHS = new Set(['/api/health', '/login']);

function loginPage(message = ''): string {
  const note = message ? `<p role="alert"><strong>${message}</strong></p>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>weir · sign in</title></head>
<body>
<h1>weir</h1>
<p>This server asks for its token (the contents of the file given to <code>weir serve --token-file</code>).</p>
${note}
<form method="post" action="/login">
<label>Token <input type="password" name="token" autocomplete="current-password" autofocus required></label>
<button type="submit">Sign in</button>
</form>
</body></html>
`;
}

export interface AccessHooks {
  /** Counts a refused request (metrics). */
  onRefused?: (reason: 'token' | 'host') => void;
}

/** Security headers, the Host check, token authentication and the login page. */
export function installAccessControl(app: FastifyInstance, opts: AccessOptions, hooks: AccessHooks = {}): void {
  const token = opts.token;
  const tls = opts.tls ?? false;
  const session = token === undefined ? undefined : sessionValue(token);

  app.addHook('onRequest', async (req, reply) => {
    securityHeaders(req, reply, tls);
    if (opts.loopbackOnly) {
      const host = req.headers.host ?? '';
      if (!isLoopbackAddress(hostOfHeader(host))) {
        hooks.onRefused?.('host');
        return reply.status(403).send({
          statusCode: 403,
          error: 'Forbidden',
          message: `Host "${host}" is not a loopback name: this server listens on loopback and answers only requests addressed to it (127.0.0.1, localhost, [::1])`,
        });
      }
    }
    if (token === undefined || session === undefined) return;
    const path = req.url.split('?')[0] ?? '';
    if (OPEN_PATHS.has(path)) return;
    const auth = req.headers.authorization;
    if (auth !== undefined && /^bearer /i.test(auth) && sameSecret(auth.slice(7).trim(), token)) return;
    const cookie = cookieOf(req, SESSION_COOKIE);
    if (cookie !== undefined && sameSecret(cookie, session)) return;
    hooks.onRefused?.('token');
    // A browser asking for a page is sent to sign in; everything else gets a 401.
    const wantsPage = req.method === 'GET' && !path.startsWith('/api/') && path !== '/metrics' && (req.headers.accept ?? '').includes('text/html');
    if (wantsPage) return reply.status(303).header('location', '/login').send();
    return reply
      .status(401)
      .header('www-authenticate', 'Bearer realm="weir"')
      .send({ statusCode: 401, error: 'Unauthorized', message: auth === undefined && cookie === undefined ? 'this server needs a token: send Authorization: Bearer <token>' : 'wrong token' });
  });

  if (token === undefined || session === undefined) return;
  const cookie = (value: string, maxAge: number): string => `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${tls ? '; Secure' : ''}`;
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(String(body))));
  });
  app.get('/login', { schema: { hide: true } }, async (_req, reply) => reply.type('text/html; charset=utf-8').send(loginPage()));
  app.post('/login', { schema: { hide: true } }, async (req, reply) => {
    const given = (req.body as { token?: unknown } | undefined)?.token;
    if (typeof given !== 'string' || !sameSecret(given.trim(), token)) {
      hooks.onRefused?.('token');
      return reply.status(401).type('text/html; charset=utf-8').send(loginPage('Wrong token.'));
    }
    return reply.status(303).header('set-cookie', cookie(session, 7 * 86_400)).header('location', '/').send();
  });
  app.post('/logout', { schema: { hide: true } }, async (_req, reply) => reply.status(303).header('set-cookie', cookie('', 0)).header('location', '/login').send());
}
