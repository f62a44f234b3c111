import { spawnSync } from 'node:child_process';
import { Registry } from 'prom-client';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { resourceRef } from '../../src/core/resource';
import { defineRunbook } from '../../src/core/runbook';
import { defineAction } from '../../src/core/step';
import { Engine } from '../../src/engine/engine';
import { serviceMetrics } from '../../src/server/metrics';
import { fixRunbook } from '../support/runbooks';
import { postgresStore, uniqueSchema } from '../support/stores';
import { scaleRunbook, serverFixture, testRunbooks } from './server-fixture';

/** promtool from the Debian package; a missing binary fails the test rather than skipping it. */
const PROMTOOL = process.env.PROMTOOL ?? '/usr/bin/promtool';

/**
 * A runbook whose only action holds its resource's lock until `release()` is called, so a second run on
 * the same resource meets a held lock.
 */
function lockingRunbook() {
  let release = () => {};
  let entered = () => {};
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const applying = new Promise<void>((r) => {
    entered = r;
  });
  const target = resourceRef('test', 'shared');
  const runbook = defineRunbook({
    id: 'hold-lock',
    title: 'Hold a shared lock',
    severity: 'P3',
    input: z.object({ wait: z.boolean() }),
    async run({ input, step }) {
      await step.act(
        'hold',
        defineAction({
          kind: 'test.hold',
          target,
          risk: 'low',
          destructive: false,
          async plan() {
            return {
              summary: 'hold the lock',
              changes: [{ target, field: 'held', before: false, after: true }],
              params: {},
            };
          },
          async apply() {
            entered();
            if (input.wait) await gate;
            return {};
          },
        }),
      );
    },
  });
  return { runbook, release: () => release(), applying };
}

/** One sample of the exposition: `name{k="v",…} value`, label order ignored. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]),
    );
    if (Object.keys(found).length !== Object.keys(labels).length) continue;
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe('GET /metrics', () => {
  const lock = lockingRunbook();
  const service = serverFixture({
    schema: 'met',
    runbooks: (world) => [...testRunbooks(world), lock.runbook],
    server: { metrics: { registry: new Registry() } },
  });
  let engine: Engine;
  let base: string;
  beforeAll(() => {
    ({ engine, base } = service);
  });

  const scrape = async () => {
    const response = await fetch(`${base}/metrics`);
    expect(response.status).toBe(200);
    return { text: await response.text(), contentType: response.headers.get('content-type') };
  };

  it('counts runs and times runs and steps by runbook, mode and outcome', async () => {
    const before = await scrape();
    expect(sample(before.text, 'runbook_approvals_pending')).toBe(0);
    expect(
      sample(before.text, 'runbook_runs_total', {
        runbook: 'fix-low',
        mode: 'execute',
        outcome: 'succeeded',
      }),
    ).toBeUndefined();

    // Two execute runs of fix-low: the first applies (check + act), the second finds it fine (check only).
    expect(
      (await engine.start('fix-low', { key: 'a', value: 'x' }, { actor: 'erin', mode: 'execute' })).status,
    ).toBe('succeeded');
    expect(
      (await engine.start('fix-low', { key: 'a', value: 'x' }, { actor: 'erin', mode: 'execute' })).status,
    ).toBe('succeeded');
    expect((await engine.start('scale-check', { namespace: 'web' }, { actor: 'vera' })).status).toBe(
      'succeeded',
    );
    // fix-high waits for a second person: pending, and not (yet) a counted run.
    const waiting = await engine.start(
      'fix-high',
      { key: 'b', value: 'y' },
      { actor: 'erin', mode: 'execute' },
    );
    expect(waiting.status).toBe('waiting_approval');

    const { text, contentType } = await scrape();
    expect(contentType).toBe(new Registry().contentType);
    expect(
      sample(text, 'runbook_runs_total', { runbook: 'fix-low', mode: 'execute', outcome: 'succeeded' }),
    ).toBe(2);
    expect(
      sample(text, 'runbook_runs_total', { runbook: 'scale-check', mode: 'diagnose', outcome: 'succeeded' }),
    ).toBe(1);
    expect(text).not.toMatch(/runbook_runs_total\{[^}]*outcome="waiting_approval"/);
    expect(sample(text, 'runbook_run_duration_seconds_count', { runbook: 'fix-low', mode: 'execute' })).toBe(
      2,
    );
    expect(
      sample(text, 'runbook_run_duration_seconds_sum', { runbook: 'fix-low', mode: 'execute' }),
    ).toBeGreaterThan(0);
    expect(
      sample(text, 'runbook_run_duration_seconds_bucket', {
        runbook: 'fix-low',
        mode: 'execute',
        le: '+Inf',
      }),
    ).toBe(2);
    // fix-low ran 2 checks and 1 act (the second run found the value already set); scale-check 1 check.
    expect(sample(text, 'runbook_step_duration_seconds_count', { runbook: 'fix-low', kind: 'check' })).toBe(
      2,
    );
    expect(sample(text, 'runbook_step_duration_seconds_count', { runbook: 'fix-low', kind: 'act' })).toBe(1);
    expect(
      sample(text, 'runbook_step_duration_seconds_count', { runbook: 'scale-check', kind: 'check' }),
    ).toBe(1);
    expect(sample(text, 'runbook_approvals_pending')).toBe(1);
    // Process metrics come along by default.
    expect(sample(text, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    // Bounded cardinality: no run id or actor appears anywhere in the exposition.
    expect(text).not.toContain(waiting.runId);
    expect(text).not.toMatch(/erin|vera/);

    // Approved and resumed: counted once, and no longer pending.
    await engine.approve(waiting.runId, { actor: 'ada' });
    expect((await engine.resume(waiting.runId)).status).toBe('succeeded');
    const after = (await scrape()).text;
    expect(
      sample(after, 'runbook_runs_total', { runbook: 'fix-high', mode: 'execute', outcome: 'succeeded' }),
    ).toBe(1);
    expect(
      sample(after, 'runbook_run_duration_seconds_count', { runbook: 'fix-high', mode: 'execute' }),
    ).toBe(1);
    expect(sample(after, 'runbook_approvals_pending')).toBe(0);
  });

  it('counts actions refused on a locked resource', async () => {
    const holder = engine.start('hold-lock', { wait: true }, { actor: 'erin', mode: 'execute' });
    await lock.applying;
    const refused = await engine.start('hold-lock', { wait: false }, { actor: 'erin', mode: 'execute' });
    expect(refused.status).toBe('failed');
    expect(refused.error?.code).toBe('RESOURCE_LOCKED');
    lock.release();
    expect((await holder).status).toBe('succeeded');

    const { text } = await scrape();
    expect(sample(text, 'runbook_lock_contention_total', { runbook: 'hold-lock' })).toBe(1);
    expect(
      sample(text, 'runbook_runs_total', { runbook: 'hold-lock', mode: 'execute', outcome: 'failed' }),
    ).toBe(1);
    expect(
      sample(text, 'runbook_runs_total', { runbook: 'hold-lock', mode: 'execute', outcome: 'succeeded' }),
    ).toBe(1);
  });

  it('passes promtool check metrics', async () => {
    const { text } = await scrape();
    const result = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    // A missing promtool is an error here (ENOENT), never a skip.
    expect(result.error).toBeUndefined();
    expect({ status: result.status, stdout: result.stdout, stderr: result.stderr }).toEqual({
      status: 0,
      stdout: '',
      stderr: '',
    });
  });

  it('is unauthenticated: any or no Authorization header is ignored', async () => {
    const response = await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer nonsense' } });
    expect(response.status).toBe(200);
  });
});

describe('serviceMetrics', () => {
  it('answers a scrape with NaN pending approvals when the store fails, and unregisters on dispose', async () => {
    const sut = await postgresStore(uniqueSchema('metx'));
    try {
      const engine = new Engine({ store: sut.store, runbooks: [] });
      const registry = new Registry();
      const errors: string[] = [];
      const metrics = serviceMetrics(engine, registry, {
        processMetrics: false,
        onError: (_e, what) => errors.push(what),
      });
      await sut.store.driver.query('DROP TABLE approvals');
      const text = await registry.metrics();
      expect(sample(text, 'runbook_approvals_pending')).toBeNaN();
      expect(errors).toEqual(['counting pending approvals']);
      expect(() => serviceMetrics(engine, registry, { processMetrics: false })).toThrow(
        /already been registered/,
      );
      metrics.dispose();
      expect((await registry.metrics()).trim()).toBe('');
      // Disposed metrics can be registered again (an app rebuilt on the same registry).
      serviceMetrics(engine, registry, { processMetrics: false }).dispose();
    } finally {
      await sut.dispose();
    }
  });
});

describe('alert and budget metrics', () => {
  const service = serverFixture({
    schema: 'meta',
    engine: {
      budgets: [
        { action: 'test.budgeted', resourcePrefix: 'test:budget/', max: 5, per: '1h' },
        { action: 'test.never-used', max: 2, per: '10m' },
      ],
    },
    runbooks: (world) => [
      fixRunbook(world, 'fix-alert'),
      fixRunbook(world, 'fix-alert-high', { risk: 'high' }),
      fixRunbook(world, 'fix-budgeted', { kind: 'test.budgeted' }),
      scaleRunbook(),
    ],
    server: { metrics: { registry: new Registry(), processMetrics: false } },
  });
  let engine: Engine;
  let base: string;
  beforeAll(() => {
    ({ engine, base } = service);
  });

  /** The context of a run started by an Alertmanager alert that began `agoMs` ago. */
  const alertContext = (agoMs: number) => ({
    source: 'alertmanager',
    receiver: 'runbooks',
    externalURL: 'http://alertmanager.example:9093',
    groupKey: '{}:{alertname="ValueDrift"}',
    alert: {
      fingerprint: 'c0ffee',
      status: 'firing',
      labels: { alertname: 'ValueDrift' },
      annotations: {},
      startsAt: new Date(Date.now() - agoMs).toISOString(),
      endsAt: '0001-01-01T00:00:00Z',
      generatorURL: '',
    },
  });

  const scrape = async () => {
    const response = await fetch(`${base}/metrics`);
    expect(response.status).toBe(200);
    return response.text();
  };
  /** Queues a run as an alert would, and executes it in this engine. */
  const alertRun = async (runbookId: string, input: object, mode: 'diagnose' | 'execute', agoMs: number) => {
    const { runId } = await engine.submit(runbookId, input, {
      actor: 'alertmanager',
      mode,
      context: alertContext(agoMs),
    });
    const result = await engine.runNext();
    expect(result?.runId).toBe(runId);
    return result;
  };

  it('times alert-started runs from the alert start to diagnosis and to recovery, once per run', async () => {
    // An execute run that fixes something: diagnosed at its first plan, recovered when it succeeds.
    expect((await alertRun('fix-alert', { key: 'alert/a', value: 'x' }, 'execute', 10_000))?.status).toBe(
      'succeeded',
    );
    // A diagnose run: diagnosed when it ends; never a recovery.
    expect((await alertRun('scale-check', { namespace: 'web' }, 'diagnose', 20_000))?.status).toBe(
      'succeeded',
    );
    // Runs not started by an alert are not timed.
    await engine.start('fix-alert', { key: 'alert/b', value: 'x' }, { actor: 'erin', mode: 'execute' });

    const text = await scrape();
    expect(sample(text, 'runbook_alert_to_diagnosis_seconds_count', { runbook: 'fix-alert' })).toBe(1);
    expect(
      sample(text, 'runbook_alert_to_diagnosis_seconds_sum', { runbook: 'fix-alert' }),
    ).toBeGreaterThanOrEqual(10);
    expect(sample(text, 'runbook_alert_to_diagnosis_seconds_sum', { runbook: 'fix-alert' })).toBeLessThan(15);
    expect(sample(text, 'runbook_alert_to_recovery_seconds_count', { runbook: 'fix-alert' })).toBe(1);
    expect(
      sample(text, 'runbook_alert_to_recovery_seconds_sum', { runbook: 'fix-alert' }),
    ).toBeGreaterThanOrEqual(10);
    expect(sample(text, 'runbook_alert_to_diagnosis_seconds_bucket', { runbook: 'fix-alert', le: '5' })).toBe(
      0,
    );
    expect(
      sample(text, 'runbook_alert_to_diagnosis_seconds_bucket', { runbook: 'fix-alert', le: '30' }),
    ).toBe(1);
    expect(sample(text, 'runbook_alert_to_diagnosis_seconds_count', { runbook: 'scale-check' })).toBe(1);
    expect(
      sample(text, 'runbook_alert_to_diagnosis_seconds_sum', { runbook: 'scale-check' }),
    ).toBeGreaterThanOrEqual(20);
    expect(
      sample(text, 'runbook_alert_to_recovery_seconds_count', { runbook: 'scale-check' }),
    ).toBeUndefined();

    // A run that waits for approval is diagnosed at its plan, and not again when it is resumed.
    const waiting = await alertRun('fix-alert-high', { key: 'alert/c', value: 'x' }, 'execute', 30_000);
    expect(waiting?.status).toBe('waiting_approval');
    const diagnosedOnly = await scrape();
    expect(
      sample(diagnosedOnly, 'runbook_alert_to_diagnosis_seconds_count', { runbook: 'fix-alert-high' }),
    ).toBe(1);
    expect(
      sample(diagnosedOnly, 'runbook_alert_to_recovery_seconds_count', { runbook: 'fix-alert-high' }),
    ).toBe(undefined);
    await engine.approve(waiting?.runId as string, { actor: 'ada' });
    expect((await engine.runNext())?.status).toBe('succeeded');
    const recovered = await scrape();
    expect(sample(recovered, 'runbook_alert_to_diagnosis_seconds_count', { runbook: 'fix-alert-high' })).toBe(
      1,
    );
    expect(sample(recovered, 'runbook_alert_to_recovery_seconds_count', { runbook: 'fix-alert-high' })).toBe(
      1,
    );
    expect(
      sample(recovered, 'runbook_alert_to_recovery_seconds_sum', { runbook: 'fix-alert-high' }),
    ).toBeGreaterThanOrEqual(30);
    // Labels stay bounded: no run id, fingerprint or alert label appears.
    expect(recovered).not.toContain(waiting?.runId as string);
    expect(recovered).not.toMatch(/c0ffee|ValueDrift/);
  });

  it('shows the remediation budget left per rule, dropping by one with each apply on the most-used resource', async () => {
    const remaining = async () =>
      sample(await scrape(), 'runbook_remediation_budget_remaining', {
        action: 'test.budgeted',
        resource_prefix: 'test:budget/',
      });
    expect(await remaining()).toBe(5);
    const apply = async (key: string, value: string) =>
      expect(
        (await engine.start('fix-budgeted', { key, value }, { actor: 'erin', mode: 'execute' })).status,
      ).toBe('succeeded');
    await apply('budget/b', '1');
    expect(await remaining()).toBe(4);
    await apply('budget/b', '2');
    expect(await remaining()).toBe(3);
    // Another resource has its own budget: the most-used one still has 3 left.
    await apply('budget/c', '1');
    expect(await remaining()).toBe(3);
    // A rule for every resource has an empty prefix label.
    expect(
      sample(await scrape(), 'runbook_remediation_budget_remaining', {
        action: 'test.never-used',
        resource_prefix: '',
      }),
    ).toBe(2);
  });

  it('still passes promtool check metrics', async () => {
    const result = spawnSync(PROMTOOL, ['check', 'metrics'], { input: await scrape(), encoding: 'utf8' });
    expect(result.error).toBeUndefined();
    expect({ status: result.status, stdout: result.stdout, stderr: result.stderr }).toEqual({
      status: 0,
      stdout: '',
      stderr: '',
    });
  });
});
