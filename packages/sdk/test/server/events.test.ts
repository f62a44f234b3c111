import { get, type IncomingMessage } from 'node:http';
import Fastify from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { describe, expect, it } from 'vitest';
import { AccessPolicy } from '../../src/server/access';
import { installErrorHandling } from '../../src/server/errors';
import { ServerOptions } from '../../src/server/options';
import { EVENT_POLL_INTERVAL_MS, eventRoutes } from '../../src/server/routes/events';
import { liveServer } from './live-server';
import { TOKENS } from './server-fixture';

// biome-ignore lint/suspicious/noExplicitAny: response bodies are read loosely; their schemas are checked by the server
type Any = any;

interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/**
 * An event stream read over real HTTP (node:http, a connection of its own): events as they arrive,
 * comments, the response, and `ended` once the server closed the stream.
 */
async function openStream(url: string, headers: Record<string, string> = {}) {
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    const request = get(url, { headers, agent: false }, resolve);
    request.on('error', reject);
  });
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const waiters: (() => void)[] = [];
  let buffer = '';
  const notify = () => {
    for (const w of waiters.splice(0)) w();
  };
  response.setEncoding('utf8');
  response.on('data', (chunk: string) => {
    buffer += chunk;
    let cut = buffer.indexOf('\n\n');
    while (cut >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event: SseEvent = { event: 'message', data: '' };
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) comments.push(line.slice(1).trim());
        else if (line.startsWith('id: ')) event.id = line.slice(4);
        else if (line.startsWith('event: ')) event.event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length > 0) {
        event.data = data.join('\n');
        events.push(event);
      }
      cut = buffer.indexOf('\n\n');
    }
    notify();
  });
  const ended = new Promise<void>((resolve) => response.on('close', () => resolve()));
  let isEnded = false;
  void ended.then(() => {
    isEnded = true;
    notify();
  });
  /** Resolves when `predicate` holds for what arrived so far; fails after `ms`. */
  const until = async (predicate: () => boolean, what: string, ms = 5_000) => {
    const deadline = Date.now() + ms;
    while (!predicate()) {
      if (isEnded)
        throw new Error(`stream ended before ${what}; got ${events.map((e) => e.event).join(', ')}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`timed out waiting for ${what}; got ${events.map((e) => e.event).join(', ')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  };
  return {
    response,
    events,
    comments,
    ended,
    get isEnded() {
      return isEnded;
    },
    until,
    close: () => response.destroy(),
  };
}

const auth = (token: string) => ({ authorization: `Bearer ${token}` });
const seqs = (events: SseEvent[]) => events.filter((e) => e.event !== 'end').map((e) => Number(e.id));

describe('GET /runs/:id/events over HTTP (PostgreSQL)', () => {
  const f = liveServer();
  const url = (path: string) => `${f.base}/api/v1${path}`;
  const auditOf = async (runId: string) => f.store.readRunAudit(runId, 0, 1000);

  it('streams a finished run: its audit rows in order, then end', async () => {
    const planned = await f.call('POST', '/api/v1/runs', {
      token: TOKENS.erin,
      body: { runbookId: 'fix-low', input: { key: 'sse-done', value: '1' }, mode: 'plan' },
    });
    const runId = (planned.body as Any).run.id as string;
    const stream = await openStream(url(`/runs/${runId}/events`), auth(TOKENS.vera));
    expect(stream.response.statusCode).toBe(200);
    expect(stream.response.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(stream.response.headers['cache-control']).toBe('no-store');
    expect(stream.response.headers['x-accel-buffering']).toBe('no');
    await stream.ended;

    const rows = await auditOf(runId);
    expect(rows.length).toBeGreaterThanOrEqual(3);
    const audited = rows.map((r) => ({ seq: r.seq, entry: JSON.parse(r.entry) }));
    expect(stream.events.slice(0, -1)).toEqual(
      audited.map(({ seq, entry }) => ({
        id: String(seq),
        event: entry.kind,
        data: JSON.stringify({
          seq,
          ts: entry.ts,
          actor: entry.actor,
          kind: entry.kind,
          ...(entry.step !== undefined ? { step: entry.step } : {}),
          ...(entry.data !== undefined ? { data: entry.data } : {}),
        }),
      })),
    );
    expect(stream.events[0]?.event).toBe('run.created');
    const end = stream.events.at(-1);
    expect(end?.event).toBe('end');
    expect(JSON.parse(end?.data ?? '')).toEqual({ status: 'succeeded', lastSeq: rows.at(-1)?.seq });
  });

  it('streams a live run as it happens: waits through the approval, then ends when it succeeds', async () => {
    const started = await f.call('POST', '/api/v1/runs', {
      token: TOKENS.erin,
      body: { runbookId: 'fix-high', input: { key: 'sse-live', value: 'on' }, mode: 'execute' },
    });
    const runId = (started.body as Any).runId as string;
    const stream = await openStream(url(`/runs/${runId}/events`), auth(TOKENS.vera));
    await stream.until(() => stream.events.length >= 1, 'run.created');
    expect(stream.events.map((e) => e.event)).toEqual(['run.created']);

    const waiting = await f.engine.resume(runId);
    expect(waiting.status).toBe('waiting_approval');
    const whileWaiting = await auditOf(runId);
    await stream.until(
      () => stream.events.length >= whileWaiting.length,
      'the rows up to the approval request',
    );
    // Waiting for approval is not an end: the stream stays open.
    await new Promise((r) => setTimeout(r, EVENT_POLL_INTERVAL_MS * 2));
    expect(stream.isEnded).toBe(false);
    expect(seqs(stream.events)).toEqual(whileWaiting.map((r) => r.seq));

    const approved = await f.call('POST', `/api/v1/runs/${runId}/approve`, { token: TOKENS.abe, body: {} });
    expect(approved.status).toBe(200);
    const done = await f.engine.resume(runId);
    expect(done.status).toBe('succeeded');
    await stream.until(() => stream.events.at(-1)?.event === 'end', 'end');
    await stream.ended;

    const all = await auditOf(runId);
    expect(seqs(stream.events)).toEqual(all.map((r) => r.seq));
    const kinds = stream.events.map((e) => e.event);
    expect(kinds).toContain('approval.approved');
    expect(kinds.indexOf('approval.approved')).toBeGreaterThan(whileWaiting.length - 1);
    expect(f.world.get('sse-live')).toBe('on');
  });

  it('resumes after Last-Event-ID or ?after, the header winning, with only the later rows', async () => {
    const planned = await f.call('POST', '/api/v1/runs', {
      token: TOKENS.erin,
      body: { runbookId: 'fix-low', input: { key: 'sse-resume', value: '2' }, mode: 'plan' },
    });
    const runId = (planned.body as Any).run.id as string;
    const rows = await auditOf(runId);
    const second = rows[1]?.seq as number;
    const later = rows.filter((r) => r.seq > second).map((r) => r.seq);
    expect(later.length).toBeGreaterThan(0);

    const byHeader = await openStream(url(`/runs/${runId}/events`), {
      ...auth(TOKENS.vera),
      'last-event-id': String(second),
    });
    await byHeader.ended;
    expect(seqs(byHeader.events)).toEqual(later);
    expect(byHeader.events.at(-1)?.event).toBe('end');

    const byQuery = await openStream(url(`/runs/${runId}/events?after=${second}`), auth(TOKENS.vera));
    await byQuery.ended;
    expect(seqs(byQuery.events)).toEqual(later);

    const both = await openStream(url(`/runs/${runId}/events?after=0`), {
      ...auth(TOKENS.vera),
      'last-event-id': String(second),
    });
    await both.ended;
    expect(seqs(both.events)).toEqual(later);

    const atEnd = await openStream(url(`/runs/${runId}/events?after=${rows.at(-1)?.seq}`), auth(TOKENS.vera));
    await atEnd.ended;
    expect(atEnd.events.map((e) => e.event)).toEqual(['end']);
  });

  it('answers JSON pages for polling with Accept: application/json or ?format=json', async () => {
    const planned = await f.call('POST', '/api/v1/runs', {
      token: TOKENS.erin,
      body: { runbookId: 'fix-low', input: { key: 'sse-json', value: '3' }, mode: 'plan' },
    });
    const runId = (planned.body as Any).run.id as string;
    const rows = await auditOf(runId);

    const whole = await f.call('GET', `/api/v1/runs/${runId}/events`, {
      token: TOKENS.vera,
      headers: { accept: 'application/json' },
    });
    expect(whole.status).toBe(200);
    expect(whole.headers['content-type']).toMatch(/^application\/json/);
    const page = whole.body as Any;
    expect(page).toMatchObject({ status: 'succeeded', done: true, nextAfter: rows.at(-1)?.seq });
    expect(page.events.map((e: Any) => e.seq)).toEqual(rows.map((r) => r.seq));
    expect(page.events[0]).toMatchObject({
      kind: 'run.created',
      actor: 'erin',
      data: { runbookId: 'fix-low' },
    });

    // Small pages: not done until the last one, each continuing after the previous.
    const polled: number[] = [];
    let after = 0;
    let done = false;
    for (let i = 0; i < 20 && !done; i++) {
      const next = (
        await f.call('GET', `/api/v1/runs/${runId}/events?format=json&limit=2&after=${after}`, {
          token: TOKENS.vera,
        })
      ).body as Any;
      polled.push(...next.events.map((e: Any) => e.seq));
      done = next.done;
      if (!done) expect(next.events).toHaveLength(2);
      after = next.nextAfter;
    }
    expect(done).toBe(true);
    expect(polled).toEqual(rows.map((r) => r.seq));

    // A run still queued is never done, and an empty page keeps its position.
    const queuedId = await f.engine.enqueue(
      'scale-check',
      { namespace: 'q' },
      { mode: 'diagnose', actor: 'erin' },
    );
    const queuedRows = await auditOf(queuedId);
    const queued = (
      await f.call('GET', `/api/v1/runs/${queuedId}/events?format=json&after=${queuedRows.at(-1)?.seq}`, {
        token: TOKENS.vera,
      })
    ).body as Any;
    expect(queued).toEqual({ events: [], nextAfter: queuedRows.at(-1)?.seq, status: 'queued', done: false });
    await f.store.driver.query("UPDATE runs SET status = 'cancelled' WHERE id = $1", [queuedId]);
  });

  it('refuses before streaming: unknown run 404, bad Last-Event-ID 400, no token 401 — all JSON', async () => {
    const missing = await f.call('GET', '/api/v1/runs/run_nope/events', {
      token: TOKENS.vera,
      headers: { accept: 'text/event-stream' },
    });
    expect(missing.status).toBe(404);
    expect(missing.headers['content-type']).toMatch(/^application\/json/);
    expect((missing.body as Any).error.code).toBe('NOT_FOUND');
    expect((missing.body as Any).error.message).toContain('run_nope');

    const badHeader = await f.call('GET', '/api/v1/runs/run_nope/events', {
      token: TOKENS.vera,
      headers: { 'last-event-id': 'yesterday' },
    });
    expect(badHeader.status).toBe(400);
    expect((badHeader.body as Any).error.details.map((d: Any) => d.path)).toEqual(['last-event-id']);

    const badAfter = await f.call('GET', '/api/v1/runs/run_nope/events?after=-1', { token: TOKENS.vera });
    expect(badAfter.status).toBe(400);
    expect((badAfter.body as Any).error.details.map((d: Any) => d.path)).toEqual(['after']);

    expect((await f.call('GET', '/api/v1/runs/run_nope/events')).status).toBe(401);
  });

  it('stops polling the store when the client disconnects, and logs nothing about it', async () => {
    const runId = await f.engine.enqueue(
      'scale-check',
      { namespace: 'gone' },
      { mode: 'diagnose', actor: 'erin' },
    );
    // Count the stream's queries on the real driver: the effect of a stream that kept polling.
    const driver = f.store.driver;
    const query = driver.query.bind(driver);
    let polls = 0;
    driver.query = ((sql: string, params?: unknown[]) => {
      if (sql.includes('FROM audit WHERE run_id') && params?.[0] === runId) polls++;
      return query(sql, params);
    }) as typeof driver.query;
    try {
      const logsBefore = f.logLines.length;
      const stream = await openStream(url(`/runs/${runId}/events`), auth(TOKENS.vera));
      await stream.until(() => stream.events.length >= 1, 'run.created');
      await new Promise((r) => setTimeout(r, EVENT_POLL_INTERVAL_MS * 2.5));
      expect(polls).toBeGreaterThanOrEqual(2); // it was polling while the client listened
      stream.close();
      await stream.ended;
      await new Promise((r) => setTimeout(r, EVENT_POLL_INTERVAL_MS * 1.5)); // a poll in flight may finish
      const afterClose = polls;
      await new Promise((r) => setTimeout(r, EVENT_POLL_INTERVAL_MS * 3));
      expect(polls).toBe(afterClose);
      const logged = f.logLines.slice(logsBefore).map((l) => JSON.parse(l));
      expect(logged.filter((l) => l.level >= 40)).toEqual([]);
    } finally {
      driver.query = query;
      await f.store.driver.query("UPDATE runs SET status = 'cancelled' WHERE id = $1", [runId]);
    }
  });

  it('logged no warning or error while streaming', () => {
    const logged = f.logLines.map((l) => JSON.parse(l));
    expect(logged.length).toBeGreaterThan(0);
    expect(logged.filter((l) => l.level >= 40)).toEqual([]);
  });
});

describe('closing the server with event streams open', () => {
  const f = liveServer();

  it('ends the open streams and closes promptly', async () => {
    const runId = await f.engine.enqueue(
      'scale-check',
      { namespace: 'close' },
      { mode: 'diagnose', actor: 'erin' },
    );
    const streams = await Promise.all(
      [1, 2].map(() => openStream(`${f.base}/api/v1/runs/${runId}/events`, auth(TOKENS.vera))),
    );
    for (const s of streams) await s.until(() => s.events.length >= 1, 'run.created');

    const t0 = Date.now();
    await f.app.close();
    expect(Date.now() - t0).toBeLessThan(2_000);
    for (const s of streams) {
      await s.ended;
      // Ended without `end`: the run goes on, and an EventSource reconnects to another replica.
      expect(s.events.map((e) => e.event)).toEqual(['run.created']);
    }
  });
});

describe('event stream heartbeat', () => {
  const f = liveServer();

  it('sends `: keep-alive` comments while the run is idle', async () => {
    const runId = await f.engine.enqueue(
      'scale-check',
      { namespace: 'idle' },
      { mode: 'diagnose', actor: 'erin' },
    );
    // The route alone, with a short heartbeat (the default is 15 s), on its own listener.
    const app = Fastify();
    app.setValidatorCompiler(validatorCompiler);
    app.setSerializerCompiler(serializerCompiler);
    installErrorHandling(app);
    const settings = ServerOptions.parse({ engine: f.engine });
    eventRoutes(app, { engine: f.engine, access: new AccessPolicy(), settings }, { heartbeatMs: 100 });
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const address = app.server.address();
      if (!address || typeof address === 'string') throw new Error('no address');
      const stream = await openStream(`http://127.0.0.1:${address.port}/runs/${runId}/events`);
      await stream.until(() => stream.comments.length >= 3, 'three heartbeats', 3_000);
      expect(new Set(stream.comments)).toEqual(new Set(['keep-alive']));
      expect(stream.events.map((e) => e.event)).toEqual(['run.created']);
    } finally {
      await app.close();
    }
  });
});
