import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startTraffic } from './traffic';

let server: Server | undefined;

/** A real HTTP server that records what it gets and answers `status` after `delayMs`. */
async function target(status = 200, delayMs = 0) {
  const seen: { method: string; url: string; body: string }[] = [];
  const s = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', body });
      setTimeout(() => res.writeHead(status).end('{}'), delayMs);
    });
  });
  server = s;
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, seen };
}

afterEach(async () => {
  const s = server;
  server = undefined;
  if (!s) return;
  s.closeAllConnections();
  await new Promise((r) => s.close(r));
});

describe('startTraffic', () => {
  it('sends the paths in turn at the given rate, and nothing after stop()', async () => {
    const t = await target();
    const traffic = startTraffic({
      backendUrl: t.url,
      ratePerSecond: 40,
      paths: ['/api/v1/health', { method: 'POST', path: '/api/v1/generate', body: { prompt: 'hi' } }],
    });
    await new Promise((r) => setTimeout(r, 500));
    await traffic.stop();
    const stats = traffic.stats();
    expect(stats.sent).toBeGreaterThanOrEqual(10);
    expect(stats.sent).toBeLessThanOrEqual(25);
    expect(stats.ok + stats.aborted).toBe(stats.sent);
    expect(stats.ok).toBeGreaterThanOrEqual(stats.sent - 1);
    // Sent in turn: as many of each (±1); arrival order between two open connections is not guaranteed.
    const gets = t.seen.filter((r) => r.method === 'GET');
    const posts = t.seen.filter((r) => r.method === 'POST');
    expect(Math.abs(gets.length - posts.length)).toBeLessThanOrEqual(1);
    expect(gets.every((r) => r.url === '/api/v1/health' && r.body === '')).toBe(true);
    expect(posts.every((r) => r.url === '/api/v1/generate' && r.body === '{"prompt":"hi"}')).toBe(true);
    // A request aborted by stop() may still be in transit: let it land, then expect silence.
    await new Promise((r) => setTimeout(r, 100));
    const count = t.seen.length;
    expect(count).toBeLessThanOrEqual(stats.sent);
    await new Promise((r) => setTimeout(r, 200));
    expect(t.seen.length).toBe(count);
  });

  it('counts error statuses and skips ticks while maxInFlight requests are open', async () => {
    const t = await target(503, 400);
    const traffic = startTraffic({ backendUrl: t.url, ratePerSecond: 50, paths: ['/x'], maxInFlight: 2 });
    await new Promise((r) => setTimeout(r, 600));
    await traffic.stop();
    const stats = traffic.stats();
    expect(stats.byStatus['503']).toBeGreaterThanOrEqual(2);
    expect(stats.skipped).toBeGreaterThan(5);
    expect(stats.ok).toBe(0);
    expect(stats.inFlight).toBe(0);
  });

  it('refuses bad options naming the field', () => {
    expect(() => startTraffic({ backendUrl: 'nope', ratePerSecond: 1, paths: ['/'] })).toThrow(/backendUrl:/);
    expect(() => startTraffic({ backendUrl: 'http://127.0.0.1:1', ratePerSecond: 1, paths: [] })).toThrow(
      /paths: give at least one path/,
    );
  });
});
