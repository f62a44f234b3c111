import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { grafanaContext, identityFixture, TOKENS } from './identity-fixture';

// biome-ignore lint/suspicious/noExplicitAny: bodies are read loosely; their shape is asserted
type Any = any;

const REQUEST_TIMEOUT_MS = 600;

/** One HTTP request, answering status, headers and the parsed body. */
async function request(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: unknown,
) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  const json = response.headers.get('content-type')?.startsWith('application/json');
  return {
    status: response.status,
    headers: response.headers,
    body: json && text ? (JSON.parse(text) as Any) : text,
  };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/**
 * Opens a raw connection, sends `head` and then nothing more, and reports what the server answered and
 * when it closed the connection.
 */
function stall(base: string, head: string): Promise<{ answer: string; closedAfterMs: number }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect({ host: hostname, port: Number(port) });
    let answer = '';
    const guard = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept a stalled request open for 10 s; it answered: ${answer}`));
    }, 10_000);
    socket.on('connect', () => socket.write(head));
    socket.on('data', (d) => (answer += d.toString('latin1')));
    socket.on('error', () => {}); // a reset is also a cut-off; `close` follows
    socket.on('close', () => {
      clearTimeout(guard);
      resolve({ answer, closedAfterMs: Date.now() - started });
    });
  });
}

describe('hardening over HTTP (PostgreSQL)', () => {
  const f = identityFixture({
    rateLimit: { max: 3, timeWindowMs: 60_000 },
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
  });
  const runCount = async () => (await f.store.listRuns({ limit: 1000 })).length;

  it('rate limits per identity: the 4th request of one identity → 429 RATE_LIMITED, others unaffected', async () => {
    for (let i = 1; i <= 3; i++) {
      const ok = await request(f.base, 'GET', '/api/v1/runbooks', bearer(TOKENS.vera));
      expect(ok.status).toBe(200);
      expect(ok.headers.get('x-ratelimit-limit')).toBe('3');
      expect(ok.headers.get('x-ratelimit-remaining')).toBe(String(3 - i));
    }
    const limited = await request(f.base, 'GET', '/api/v1/runbooks', bearer(TOKENS.vera));
    expect(limited.status).toBe(429);
    expect(Object.keys(limited.body)).toEqual(['error']);
    expect(limited.body.error).toMatchObject({ code: 'RATE_LIMITED', details: { max: 3 } });
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(limited.body.error.message).toContain(`Retry in ${retryAfter} s`);
    expect(limited.headers.get('x-ratelimit-remaining')).toBe('0');

    // A limited editor's run is not started either.
    const before = await runCount();
    for (let i = 0; i < 3; i++) await request(f.base, 'GET', '/api/v1/runs', bearer(TOKENS.erin));
    const start = await request(f.base, 'POST', '/api/v1/runs', bearer(TOKENS.erin), {
      runbookId: 'fix-low',
      input: { key: 'limited', value: '1' },
      mode: 'execute',
    });
    expect(start.status).toBe(429);
    expect(await runCount()).toBe(before);

    // Other identities have their own budget, Grafana users too (per login, not per app token).
    expect((await request(f.base, 'GET', '/api/v1/runbooks', bearer(TOKENS.ada))).status).toBe(200);
    const gina = { ...bearer(TOKENS.grafana), 'x-grafana-context': grafanaContext('gina', 'Viewer') };
    const gus = { ...bearer(TOKENS.grafana), 'x-grafana-context': grafanaContext('gus', 'Viewer') };
    for (let i = 0; i < 3; i++) expect((await request(f.base, 'GET', '/api/v1/runs', gina)).status).toBe(200);
    expect((await request(f.base, 'GET', '/api/v1/runs', gina)).status).toBe(429);
    expect((await request(f.base, 'GET', '/api/v1/runs', gus)).status).toBe(200);

    // Unauthenticated requests are refused by authentication, never counted; probes are not limited.
    for (let i = 0; i < 5; i++) {
      expect((await request(f.base, 'GET', '/api/v1/runbooks', bearer('nope'))).status).toBe(401);
    }
    for (let i = 0; i < 5; i++) {
      expect((await request(f.base, 'GET', '/healthz')).status).toBe(200);
      expect((await request(f.base, 'GET', '/metrics')).status).toBe(200);
    }

    // The 429s are audited as refusals.
    let limitedEntries: Any[] = [];
    for (let attempt = 0; attempt < 100 && limitedEntries.length < 3; attempt++) {
      const rows = await f.store.readAudit(0, 100_000);
      limitedEntries = rows.map((r) => JSON.parse(r.entry)).filter((e) => e.data?.code === 'RATE_LIMITED');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(limitedEntries.map((e) => [e.actor, e.data.status]).sort()).toEqual([
      ['erin', 429],
      ['gina', 429],
      ['vera', 429],
    ]);
  });

  it('sends security headers on a success, an error and a probe; API responses are not cached', async () => {
    const cases = [
      await request(f.base, 'GET', '/api/v1/runs/run_nope', bearer(TOKENS.abe)), // 404 from a route
      await request(f.base, 'GET', '/api/v1/runbooks', bearer(TOKENS.abe)), // 200
      await request(f.base, 'GET', '/api/v1/runbooks'), // 401
      await request(f.base, 'GET', '/api/v1/no-such-route', bearer(TOKENS.abe)), // 404 of the router
      await request(f.base, 'GET', '/healthz'),
    ];
    expect(cases.map((c) => c.status)).toEqual([404, 200, 401, 404, 200]);
    for (const { headers, status } of cases) {
      expect(headers.get('content-security-policy'), String(status)).toBe(
        "default-src 'none';frame-ancestors 'none'",
      );
      expect(headers.get('x-content-type-options')).toBe('nosniff');
      expect(headers.get('referrer-policy')).toBe('no-referrer');
      expect(headers.get('x-frame-options')).toBe('DENY');
      expect(headers.get('x-powered-by')).toBeNull();
    }
    for (const { headers } of cases.slice(0, 3)) expect(headers.get('cache-control')).toBe('no-store');
  });

  it('grants no CORS: no Access-Control-* header for a cross-origin request, and no preflight', async () => {
    const origin = { origin: 'https://evil.example' };
    const replies = [
      await request(f.base, 'GET', '/api/v1/runbooks', { ...origin, ...bearer(TOKENS.abe) }),
      await request(f.base, 'GET', '/api/v1/runbooks', origin),
      await request(f.base, 'GET', '/healthz', origin),
      await request(f.base, 'OPTIONS', '/api/v1/runs', {
        ...origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      }),
    ];
    expect(replies.map((r) => r.status)).toEqual([200, 401, 200, 404]);
    for (const reply of replies) {
      const cors = [...reply.headers.keys()].filter((k) => k.startsWith('access-control-'));
      expect(cors).toEqual([]);
      expect(reply.headers.get('vary') ?? '').not.toMatch(/origin/i);
    }
  });

  it('cuts off a request whose body never completes (408) within requestTimeoutMs, creating nothing', async () => {
    const before = await runCount();
    const partial = '{"runbookId":"fix-low","mode":"execute","input":{"key":"slow","value":"1"';
    const { answer, closedAfterMs } = await stall(
      f.base,
      [
        'POST /api/v1/runs HTTP/1.1',
        'Host: 127.0.0.1',
        `Authorization: Bearer ${TOKENS.ada}`,
        'Content-Type: application/json',
        `Content-Length: ${partial.length + 10}`,
        '',
        partial,
      ].join('\r\n'),
    );
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(closedAfterMs).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 50);
    expect(closedAfterMs).toBeLessThan(REQUEST_TIMEOUT_MS + 1_500);

    // Headers trickled in and never finished: the same.
    const slowHeaders = await stall(
      f.base,
      `GET /api/v1/runbooks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKENS.abe}\r\n`,
    );
    expect(slowHeaders.answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(slowHeaders.closedAfterMs).toBeLessThan(REQUEST_TIMEOUT_MS + 1_500);

    // Refused at once (401, before the body), then the body never comes: the connection is still cut.
    const refusedEarly = await stall(
      f.base,
      `POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"runbookId"`,
    );
    expect(refusedEarly.answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(refusedEarly.closedAfterMs).toBeLessThan(REQUEST_TIMEOUT_MS + 1_500);

    expect(await runCount()).toBe(before);
    expect(f.world.get('slow')).toBeNull();
    // The service still answers.
    expect((await request(f.base, 'GET', '/healthz')).status).toBe(200);
  });
});
