/**
 * Runbook 12 in the sample backend: the login endpoint whose attempts `audit_logs` records, the IP blocklist the
 * runbook's `blockIps` fills (403 before any route runs), and strict rate limiting of logins
 * (`RATE_LIMIT_STRICT=true`, `RATE_LIMIT_GLOBAL` attempts per minute per client).
 */
import { randomBytes } from 'node:crypto';
import { blocklistHook, ipBlocklist, normalizeAddress } from '@aiwebtest/runbooks/security';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { z } from 'zod';

/**
 * The client address: the first `X-Forwarded-For` entry (the lab's clients, like production's load balancer,
 * set it; the attack scenario comes from several addresses that way), else the socket's.
 */
export function clientAddress(request: FastifyRequest): string {
  const forwarded = request.headers['x-forwarded-for'];
  const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
  return normalizeAddress(first || request.ip);
}

/** A lab account's password (the lab has no secrets: the attack scenario "guesses" one of these). */
export function labPasswordOf(username: string): string {
  return `lab-password-${username}`;
}

const LoginBody = z.strictObject({
  username: z.string().trim().min(1, 'expected a username').max(256),
  password: z.string().min(1, 'expected a password').max(1_024),
});

/** What the guard reads live: the backend's env and pool change under it (reconfigure, pool reset). */
export interface BackendGuardOptions {
  redis: Redis;
  env: () => { RATE_LIMIT_STRICT: boolean; RATE_LIMIT_GLOBAL: number };
  pool: () => pg.Pool;
}

/** Adds the blocklist hook and `POST /api/v1/auth/login` to the backend. */
export function guardBackend(app: FastifyInstance, o: BackendGuardOptions): void {
  // Half a second of caching: a block reaches the backend within a blink, at one ZRANGE per 500 ms.
  app.addHook(
    'onRequest',
    blocklistHook(ipBlocklist(o.redis, { cacheTtl: '500ms' }), { ipOf: clientAddress }),
  );

  // Fixed one-minute windows per client; only while strict mode is on.
  const windows = new Map<string, { start: number; count: number }>();
  const allowed = (ip: string, limit: number): boolean => {
    const now = Date.now();
    const w = windows.get(ip);
    if (!w || now - w.start >= 60_000) {
      if (windows.size > 10_000) windows.clear();
      windows.set(ip, { start: now, count: 1 });
      return true;
    }
    w.count++;
    return w.count <= limit;
  };

  app.post('/api/v1/auth/login', async (request, reply) => {
    const body = LoginBody.safeParse(request.body);
    if (!body.success) {
      const message = body.error.issues
        .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
        .join('; ');
      return reply.code(400).send({ error: { code: 'INVALID_INPUT', message } });
    }
    const ip = clientAddress(request);
    const env = o.env();
    if (env.RATE_LIMIT_STRICT && !allowed(ip, env.RATE_LIMIT_GLOBAL)) {
      return reply
        .code(429)
        .header('Retry-After', '60')
        .send({
          error: { code: 'RATE_LIMITED', message: 'Too many login attempts; strict rate limiting is on.' },
        });
    }
    const { username, password } = body.data;
    const pool = o.pool();
    const found = await pool.query<{ user_id: string; status: string }>(
      'SELECT user_id, status FROM users WHERE username = $1',
      [username],
    );
    const user = found.rows[0];
    const ok = user !== undefined && user.status === 'active' && password === labPasswordOf(username);
    await pool.query(
      `INSERT INTO audit_logs (user_id, username, action, resource, ip_address, success, details)
       VALUES ($1, $2, $3, 'auth', $4, $5, $6)`,
      [
        user?.user_id ?? null,
        username,
        ok ? 'login' : 'login_failed',
        ip,
        ok,
        {
          user_agent: request.headers['user-agent'] ?? null,
          ...(user && user.status !== 'active' ? { status: user.status } : {}),
        },
      ],
    );
    if (!ok) {
      const locked = user !== undefined && user.status !== 'active';
      return reply.code(locked ? 403 : 401).send({
        error: locked
          ? { code: 'ACCOUNT_LOCKED', message: `The account ${username} is ${user.status}.` }
          : { code: 'INVALID_CREDENTIALS', message: 'Wrong username or password.' },
      });
    }
    return { username, session: randomBytes(16).toString('hex') };
  });
}
