import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { finding } from '../../src/core/finding';
import { defineRunbook } from '../../src/core/runbook';
import { defineCheck } from '../../src/core/step';
import { Engine } from '../../src/engine/engine';
import { hashToken } from '../../src/server/identity';
import { type ServeResult, serve } from '../../src/server/serve';
import { postgresStore, type StoreUnderTest, uniqueSchema } from '../support/stores';
import { captureLog } from './server-fixture';

const TOKEN = 'shutdown-test-editor-token';

/**
 * `slow-check`: one check that takes `ms` the first time it runs in this process (stopping early when its
 * signal aborts) and no time when run again, so a run handed over finishes at once on the next engine.
 */
function slowRunbook() {
  let runs = 0;
  const runbook = defineRunbook({
    id: 'slow-check',
    title: 'A slow check',
    severity: 'P3',
    input: z.object({ ms: z.number().int().min(0) }),
    async run({ input, step }) {
      await step.check(
        'slow',
        defineCheck({
          kind: 'test.slow',
          async run(ctx) {
            runs++;
            if (runs === 1) {
              await new Promise<void>((resolve, reject) => {
                const timer = setTimeout(resolve, input.ms);
                ctx.signal.addEventListener('abort', () => {
                  clearTimeout(timer);
                  reject(ctx.signal.reason);
                });
              });
            }
            return finding('ok', `checked (run ${runs})`, { runs });
          },
        }),
      );
      return step.done('checked');
    },
  });
  return { runbook, runs: () => runs };
}

/** `serve()` with its own engine on the shared store, started and controlled by the test. */
function startService(engine: Engine, shutdownGraceMs: number, handOverNow?: AbortSignal) {
  const log: string[] = [];
  const stop = new AbortController();
  let base = '';
  let listening = () => {};
  const ready = new Promise<void>((r) => {
    listening = r;
  });
  const done: Promise<ServeResult> = serve({
    engine,
    tokens: [{ name: 'erin', sha256: hashToken(TOKEN), role: 'editor' }],
    port: 0,
    signal: stop.signal,
    pollIntervalMs: 50,
    shutdownGraceMs,
    ...(handOverNow ? { handOverNow } : {}),
    logger: captureLog(log),
    onListening: (where) => {
      base = where.url;
      listening();
    },
  });
  return {
    ready,
    done,
    log,
    stop: () => stop.abort(),
    /** Starts an inline run (diagnose answers with the run when it ends); resolves with the raw answer. */
    async diagnose(input: {
      ms: number;
    }): Promise<{ status: number; connection: string | null; body: unknown }> {
      const response = await fetch(`${base}/api/v1/runs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ runbookId: 'slow-check', mode: 'diagnose', input }),
      });
      return {
        status: response.status,
        connection: response.headers.get('connection'),
        body: await response.json(),
      };
    },
    async startRun(input: { ms: number }): Promise<string> {
      const response = await fetch(`${base}/api/v1/runs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ runbookId: 'slow-check', mode: 'execute', input }),
      });
      expect(response.status).toBe(202);
      return ((await response.json()) as { runId: string }).runId;
    },
  };
}

describe('serve() shutdown', () => {
  let sut: StoreUnderTest;
  beforeAll(async () => {
    sut = await postgresStore(uniqueSchema('shut'));
  });
  afterAll(async () => {
    await sut?.dispose();
  });

  /** Waits until the run is executing (its lease held by `engine`). */
  async function executing(runId: string, engine: Engine): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const run = await sut.store.getRun(runId);
      if (run?.status === 'running' && run.leaseOwner?.startsWith(`${engine.owner}/`)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`run ${runId} was never claimed by ${engine.owner}`);
  }

  it('lets the run in progress finish when the grace period is long enough (nothing handed over)', async () => {
    const slow = slowRunbook();
    const engine = new Engine({ store: sut.store, runbooks: [slow.runbook], leaseTtl: '5m' });
    const service = startService(engine, 10_000);
    await service.ready;
    const runId = await service.startRun({ ms: 600 });
    await executing(runId, engine);
    service.stop();

    expect(await service.done).toEqual({ handedOver: 0 });
    expect(await sut.store.getRun(runId)).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect(slow.runs()).toBe(1);
    const kinds = (await sut.store.readRunAudit(runId)).map((r) => JSON.parse(r.entry).kind);
    expect(kinds).not.toContain('run.handed-over');
    expect(service.log.join('')).not.toContain('handing the runs still executing over');
  });

  it('hands the run over when the grace period ends: not cancelled, claimable at once', async () => {
    const slow = slowRunbook();
    // A 5-minute lease: another engine gets the run right away only because it was released.
    const engine = new Engine({ store: sut.store, runbooks: [slow.runbook], leaseTtl: '5m' });
    const service = startService(engine, 200);
    await service.ready;
    const runId = await service.startRun({ ms: 60_000 });
    await executing(runId, engine);
    const stoppedAt = Date.now();
    service.stop();

    expect(await service.done).toEqual({ handedOver: 1 });
    expect(Date.now() - stoppedAt).toBeLessThan(5_000); // not the 60 s check
    const released = await sut.store.getRun(runId);
    expect(released).toMatchObject({
      status: 'queued',
      leaseOwner: null,
      endedAt: null,
      cancelRequested: null,
      error: null,
    });
    const log = service.log.join('');
    expect(log).toContain(
      'grace period of 200ms over: handing the runs still executing over to another replica',
    );
    expect(log).toContain('handed over 1 run(s)');

    const next = new Engine({ store: sut.store, runbooks: [slow.runbook], leaseTtl: '5m' });
    const result = await next.runNext();
    expect(result).toMatchObject({ runId, status: 'succeeded' });
    expect(slow.runs()).toBe(2);
    expect(await sut.store.getRun(runId)).toMatchObject({ status: 'succeeded', attempts: 2 });
    const audit = (await sut.store.readRunAudit(runId)).map((r) => JSON.parse(r.entry));
    expect(audit.find((e) => e.kind === 'run.handed-over')?.data.reason).toMatch(/grace period of 200ms/);
    expect(audit.map((e) => e.kind)).not.toContain('run.cancelled');
  });

  it('hands over at once, before the grace period ends, when asked to (a second signal)', async () => {
    const slow = slowRunbook();
    const engine = new Engine({ store: sut.store, runbooks: [slow.runbook], leaseTtl: '5m' });
    const now = new AbortController();
    const service = startService(engine, 60_000, now.signal);
    await service.ready;
    const runId = await service.startRun({ ms: 60_000 });
    await executing(runId, engine);
    service.stop();
    await new Promise((r) => setTimeout(r, 300));
    expect((await sut.store.getRun(runId))?.status).toBe('running'); // still in its grace period
    const askedAt = Date.now();
    now.abort();

    expect(await service.done).toEqual({ handedOver: 1 });
    expect(Date.now() - askedAt).toBeLessThan(5_000);
    expect(await sut.store.getRun(runId)).toMatchObject({ status: 'queued', leaseOwner: null });
    const audit = (await sut.store.readRunAudit(runId)).map((r) => JSON.parse(r.entry));
    expect(audit.find((e) => e.kind === 'run.handed-over')?.data.reason).toMatch(
      /asked to hand over at once/,
    );
    const next = new Engine({ store: sut.store, runbooks: [slow.runbook], leaseTtl: '5m' });
    expect(await next.runNext()).toMatchObject({ runId, status: 'succeeded' });
  });

  it('counts the grace period from the signal, and hands over an inline run whose request is still in flight', async () => {
    const slow = slowRunbook();
    const engine = new Engine({ store: sut.store, runbooks: [slow.runbook], leaseTtl: '5m' });
    const graceMs = 300;
    const service = startService(engine, graceMs);
    await service.ready;
    // A diagnose runs inside its request: closing the server waits for that request.
    const answer = service.diagnose({ ms: 60_000 });
    let runId = '';
    for (let i = 0; i < 200 && !runId; i++) {
      const [run] = await sut.store.listRuns({ runbookId: 'slow-check', status: 'running', limit: 1 });
      if (run?.mode === 'diagnose' && run.leaseOwner?.startsWith(`${engine.owner}/`)) runId = run.id;
      else await new Promise((r) => setTimeout(r, 25));
    }
    expect(runId).not.toBe('');
    const stoppedAt = Date.now();
    service.stop();

    expect(await service.done).toEqual({ handedOver: 1 });
    // Grace plus the hand-over itself, not the 60 s check nor the request + grace.
    expect(Date.now() - stoppedAt).toBeLessThan(graceMs + 1_500);
    // The request in flight got its answer (not a reset connection): the run, queued for another replica.
    const reply = await answer;
    expect(reply.status).toBe(200);
    // Told to close its kept-alive connection, which would otherwise hold the shutdown.
    expect(reply.connection).toBe('close');
    expect(reply.body).toMatchObject({ run: { id: runId, status: 'queued', mode: 'diagnose' } });
    expect(await sut.store.getRun(runId)).toMatchObject({
      status: 'queued',
      leaseOwner: null,
      endedAt: null,
      cancelRequested: null,
    });
    const audit = (await sut.store.readRunAudit(runId)).map((r) => JSON.parse(r.entry));
    expect(audit.find((e) => e.kind === 'run.handed-over')?.data.reason).toMatch(
      new RegExp(`grace period of ${graceMs}ms`),
    );
    expect(audit.map((e) => e.kind)).not.toContain('run.cancelled');

    const next = new Engine({ store: sut.store, runbooks: [slow.runbook], leaseTtl: '5m' });
    expect(await next.runNext()).toMatchObject({ runId, status: 'succeeded' });
  });
});
