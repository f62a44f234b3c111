import { get, type IncomingMessage, type ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { serverFixture, TOKENS } from './server-fixture';

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
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Opens a stream, retrying while it is refused with 429 (a slot released only when the server saw a close). */
async function openWhenFree(url: string, headers: Record<string, string>, ms = 3_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const stream = await openStream(url, headers);
    if (stream.response.statusCode !== 429 || Date.now() > deadline) return stream;
    stream.close();
    await pause(25);
  }
}

/** Fails if the server logged a warning or an error since line `from` of its log (it did log something). */
function expectQuietLog(lines: readonly string[], from: number): void {
  const logged = lines.slice(from).map((l) => JSON.parse(l));
  expect(logged.length).toBeGreaterThan(0);
  expect(logged.filter((l) => l.level >= 40)).toEqual([]);
}

const POLL_MS = 200;

describe('GET /runs/:id/events over HTTP (PostgreSQL)', () => {
  const f = serverFixture({ schema: 'live', server: { eventStreams: { pollIntervalMs: POLL_MS } } });
  const url = (path: string) => `${f.base}/api/v1${path}`;
  const auditOf = async (runId: string) => f.store.readRunAudit(runId, 0, 1000);

  it('streams a finished run: its audit rows in order, then end', async () => {
    const logsFrom = f.logLines.length;
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
    expectQuietLog(f.logLines, logsFrom);
  });

  it('streams a live run as it happens: waits through the approval, then ends when it succeeds', async () => {
    const logsFrom = f.logLines.length;
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
    await pause(POLL_MS * 2);
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
    expectQuietLog(f.logLines, logsFrom);
  });

  it('resumes after Last-Event-ID or ?after, the header winning, with only the later rows', async () => {
    const logsFrom = f.logLines.length;
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
    expectQuietLog(f.logLines, logsFrom);
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
      await pause(POLL_MS * 2.5);
      expect(polls).toBeGreaterThanOrEqual(2); // it was polling while the client listened
      stream.close();
      await stream.ended;
      await pause(POLL_MS * 1.5); // a poll in flight may finish
      const afterClose = polls;
      await pause(POLL_MS * 3);
      expect(polls).toBe(afterClose);
      expectQuietLog(f.logLines, logsBefore);
    } finally {
      driver.query = query;
      await f.store.driver.query("UPDATE runs SET status = 'cancelled' WHERE id = $1", [runId]);
    }
  });
});

describe('closing the server with event streams open', () => {
  const f = serverFixture({ schema: 'live' });

  it('ends the open streams and closes promptly', async () => {
    const logsFrom = f.logLines.length;
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
    expectQuietLog(f.logLines, logsFrom);
  });
});

describe('limits on open event streams', () => {
  const f = serverFixture({
    schema: 'live',
    server: { eventStreams: { pollIntervalMs: 100, heartbeatMs: 100, maxPerIdentity: 2, maxOpen: 3 } },
  });
  const url = (runId: string) => `${f.base}/api/v1/runs/${runId}/events`;
  const queuedRun = (namespace: string) =>
    f.engine.enqueue('scale-check', { namespace }, { mode: 'diagnose', actor: 'erin' });
  const opened = async (runId: string, token: string) => {
    const stream = await openWhenFree(url(runId), auth(token));
    expect(stream.response.statusCode).toBe(200);
    await stream.until(() => stream.events.length >= 1, 'run.created');
    return stream;
  };
  const refused = (runId: string, token: string) =>
    f.call('GET', `/api/v1/runs/${runId}/events`, { token, headers: { accept: 'text/event-stream' } });

  it('refuses a stream beyond the per-identity or the replica cap with 429 TOO_MANY_STREAMS, and frees a slot when a stream closes', async () => {
    const logsFrom = f.logLines.length;
    const runId = await queuedRun('caps');
    const vera = [await opened(runId, TOKENS.vera), await opened(runId, TOKENS.vera)];

    const third = await refused(runId, TOKENS.vera);
    expect(third.status).toBe(429);
    expect(third.headers['content-type']).toMatch(/^application\/json/);
    const perIdentity = (third.body as Any).error;
    expect(perIdentity.code).toBe('TOO_MANY_STREAMS');
    expect(perIdentity.details).toEqual({ scope: 'identity', open: 2, max: 2 });
    expect(perIdentity.message).toContain('You have 2 run event streams open');
    expect(perIdentity.message).toContain('Close one');
    expect(perIdentity.message).toContain('Accept: application/json');
    // Polling is what the refusal offers, and it is not capped.
    const polled = await f.call('GET', `/api/v1/runs/${runId}/events`, {
      token: TOKENS.vera,
      headers: { accept: 'application/json' },
    });
    expect(polled.status).toBe(200);
    expect((polled.body as Any).events.map((e: Any) => e.kind)).toEqual(['run.created']);

    const erin = await opened(runId, TOKENS.erin);
    const overReplica = await refused(runId, TOKENS.ada);
    expect(overReplica.status).toBe(429);
    const total = (overReplica.body as Any).error;
    expect(total.code).toBe('TOO_MANY_STREAMS');
    expect(total.details).toEqual({ scope: 'replica', open: 3, max: 3 });
    expect(total.message).toContain('This replica has 3 run event streams open');
    expect(total.message).toContain('Accept: application/json');

    // A stream that closes gives its slot back: to anyone under the replica cap, and to its identity.
    vera[0]?.close();
    const ada = await opened(runId, TOKENS.ada);
    expect((await refused(runId, TOKENS.abe)).status).toBe(429);
    for (const s of [...vera, erin, ada]) s.close();
    const again = [await opened(runId, TOKENS.vera), await opened(runId, TOKENS.vera)];
    for (const s of again) s.close();
    await f.store.driver.query("UPDATE runs SET status = 'cancelled' WHERE id = $1", [runId]);
    expectQuietLog(f.logLines, logsFrom);
  });

  it('frees the slot of a stream that ended with its run', async () => {
    const planned = await f.call('POST', '/api/v1/runs', {
      token: TOKENS.erin,
      body: { runbookId: 'fix-low', input: { key: 'sse-slots', value: '1' }, mode: 'plan' },
    });
    const runId = (planned.body as Any).run.id as string;
    // Three streams one after the other for an identity that may hold two at a time.
    for (let i = 0; i < 3; i++) {
      const stream = await openWhenFree(url(runId), auth(TOKENS.vera));
      expect(stream.response.statusCode).toBe(200);
      await stream.ended;
      expect(stream.events.at(-1)?.event).toBe('end');
    }
    // And the identity's two slots are both free.
    const open = [
      await opened(await queuedRun('after-end-1'), TOKENS.vera),
      await opened(await queuedRun('after-end-2'), TOKENS.vera),
    ];
    for (const s of open) s.close();
  });

  it('streams of one run share one poller: three viewers cost the store what one does', async () => {
    const runId = await queuedRun('fan-out');
    const driver = f.store.driver;
    const query = driver.query.bind(driver);
    let polls = 0;
    driver.query = ((sql: string, params?: unknown[]) => {
      if (sql.includes('FROM audit WHERE run_id') && params?.[0] === runId) polls++;
      return query(sql, params);
    }) as typeof driver.query;
    try {
      const streams = [
        await opened(runId, TOKENS.vera),
        await opened(runId, TOKENS.vera),
        await opened(runId, TOKENS.erin),
      ];
      const from = polls;
      await pause(1_000);
      const perSecond = polls - from;
      // One poller at 100 ms: about 10 queries a second; one per stream would be about 30.
      expect(perSecond).toBeGreaterThanOrEqual(5);
      expect(perSecond).toBeLessThanOrEqual(14);

      // Each still gets every event: a row appended now reaches all three, once.
      await f.store.appendAudit({ ts: new Date().toISOString(), actor: 'erin', kind: 'test.note', runId });
      for (const s of streams) await s.until(() => s.events.length >= 2, 'test.note');
      const rows = await f.store.readRunAudit(runId, 0, 100);
      for (const s of streams) expect(seqs(s.events)).toEqual(rows.map((r) => r.seq));
      for (const s of streams) s.close();
    } finally {
      driver.query = query;
      await f.store.driver.query("UPDATE runs SET status = 'cancelled' WHERE id = $1", [runId]);
    }
  });
});

describe('slow and idle clients', () => {
  const IDLE_MS = 2_000;
  const f = serverFixture({
    schema: 'live',
    server: {
      idleTimeoutMs: IDLE_MS,
      eventStreams: { pollIntervalMs: 100, heartbeatMs: 100, maxPerIdentity: 2 },
    },
  });
  const url = (runId: string) => `${f.base}/api/v1/runs/${runId}/events`;

  /** A queued run whose audit holds 16 MB: more than the loopback socket buffers take from a paused client. */
  let bigRun: Promise<string> | undefined;
  const bigRunId = () => {
    bigRun ??= (async () => {
      const runId = await f.engine.enqueue(
        'scale-check',
        { namespace: 'big' },
        { mode: 'diagnose', actor: 'erin' },
      );
      const blob = 'x'.repeat(1024 * 1024);
      for (let i = 0; i < 16; i++) {
        await f.store.appendAudit({
          ts: new Date().toISOString(),
          actor: 'erin',
          kind: 'test.bulk',
          runId,
          data: { i, blob },
        });
      }
      return runId;
    })();
    return bigRun;
  };

  /** The server side of the next request for `runId`, and every MaxListenersExceededWarning meanwhile. */
  const watchServer = (runId: string) => {
    const responses: ServerResponse[] = [];
    const warnings: Error[] = [];
    const onRequest = (request: IncomingMessage, response: ServerResponse) => {
      if (request.url?.includes(runId)) responses.push(response);
    };
    const onWarning = (warning: Error) => {
      if (warning.name === 'MaxListenersExceededWarning') warnings.push(warning);
    };
    f.app.server.on('request', onRequest);
    process.on('warning', onWarning);
    return {
      responses,
      warnings,
      /** Listeners on the response and its socket that a pending write could add. */
      listeners: () => {
        const response = responses[0];
        const socket = response?.socket;
        return {
          responseDrain: response?.listenerCount('drain') ?? 0,
          responseClose: response?.listenerCount('close') ?? 0,
          socketDrain: socket?.listenerCount('drain') ?? 0,
          socketClose: socket?.listenerCount('close') ?? 0,
        };
      },
      stop: () => {
        f.app.server.off('request', onRequest);
        process.off('warning', onWarning);
      },
    };
  };
  const until = async (predicate: () => boolean, what: string, ms: number) => {
    const deadline = Date.now() + ms;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await pause(20);
    }
  };

  it('sends `: keep-alive` comments while the run is idle, which keep the stream open past the idle timeout', async () => {
    const logsFrom = f.logLines.length;
    const runId = await f.engine.enqueue(
      'scale-check',
      { namespace: 'idle' },
      { mode: 'diagnose', actor: 'erin' },
    );
    const stream = await openStream(url(runId), auth(TOKENS.vera));
    await stream.until(() => stream.comments.length >= 25, '25 heartbeats (2.5 s)', 6_000);
    expect(stream.isEnded).toBe(false);
    expect(new Set(stream.comments)).toEqual(new Set(['keep-alive']));
    expect(stream.events.map((e) => e.event)).toEqual(['run.created']);
    stream.close();
    await f.store.driver.query("UPDATE runs SET status = 'cancelled' WHERE id = $1", [runId]);
    expectQuietLog(f.logLines, logsFrom);
  });

  it('a client that stops reading gets no heartbeats piled up and no listeners added, then every event once it reads again', async () => {
    const logsFrom = f.logLines.length;
    const runId = await bigRunId();
    const server = watchServer(runId);
    try {
      const stream = await openStream(url(runId), auth(TOKENS.vera));
      stream.response.pause();
      await until(
        () => server.responses[0]?.writableNeedDrain === true,
        'the server to wait for the socket',
        5_000,
      );
      const atStart = server.listeners();
      const commentsAtStart = stream.comments.length;
      // Six heartbeats' worth of not reading (well under the idle timeout).
      for (let i = 0; i < 12; i++) {
        await pause(50);
        expect(server.listeners()).toEqual(atStart);
      }
      expect(server.responses[0]?.writableNeedDrain).toBe(true);

      const rows = await f.store.readRunAudit(runId, 0, 100);
      const resumedAt = Date.now();
      stream.response.resume();
      await stream.until(() => stream.events.length >= rows.length, 'every event', 10_000);
      const drainMs = Date.now() - resumedAt;
      expect(seqs(stream.events)).toEqual(rows.map((r) => r.seq));
      // The heartbeats of the pause (six of them) were skipped, not queued behind the events: at most the
      // ones due while the backlog drained after the resume arrive with it (100 ms apart; a busy machine
      // drains 16 MiB slowly).
      expect(stream.comments.length - commentsAtStart).toBeLessThanOrEqual(1 + Math.floor(drainMs / 100));
      await stream.until(() => stream.comments.length >= commentsAtStart + 3, 'heartbeats again', 3_000);
      expect(stream.isEnded).toBe(false);
      expect(server.warnings).toEqual([]);
      stream.close();
    } finally {
      server.stop();
    }
    expectQuietLog(f.logLines, logsFrom);
  });

  it('a client that stops reading for longer than the idle timeout is disconnected, and its slot freed', async () => {
    const runId = await bigRunId();
    const server = watchServer(runId);
    try {
      const stalled = await openStream(url(runId), auth(TOKENS.vera));
      stalled.response.pause();
      await until(
        () => server.responses[0]?.writableNeedDrain === true,
        'the server to wait for the socket',
        5_000,
      );
      const atStart = server.listeners();
      const t0 = Date.now();
      const closed = new Promise<void>((resolve) => server.responses[0]?.once('close', () => resolve()));
      let listenersGrew = false;
      const sampling = setInterval(() => {
        const now = server.listeners();
        if (now.responseDrain > atStart.responseDrain || now.socketDrain > atStart.socketDrain)
          listenersGrew = true;
      }, 50);
      await closed;
      clearInterval(sampling);
      // Nothing was written while it did not read, so the idle timeout ended it. (Node lets one timeout pass
      // when the pending write made progress since the previous one, so it takes up to twice the timeout.)
      expect(Date.now() - t0).toBeLessThan(2 * IDLE_MS + 1_500);
      expect(server.responses[0]?.writableFinished).toBe(false);
      expect(listenersGrew).toBe(false);
      expect(server.warnings).toEqual([]);
      stalled.close();

      // Its slot is free: the identity may open its two streams again.
      const other = await f.engine.enqueue(
        'scale-check',
        { namespace: 'after-stall' },
        { mode: 'diagnose', actor: 'erin' },
      );
      const streams = [
        await openWhenFree(url(other), auth(TOKENS.vera), 1_000),
        await openWhenFree(url(other), auth(TOKENS.vera), 1_000),
      ];
      expect(streams.map((s) => s.response.statusCode)).toEqual([200, 200]);
      for (const s of streams) s.close();
      await f.store.driver.query("UPDATE runs SET status = 'cancelled' WHERE id IN ($1, $2)", [runId, other]);
    } finally {
      server.stop();
    }
  });
});
