import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Activity, startActivity } from './activity';
import { type LabHealthOptions, labHealth } from './lab-health';
import { type LabPartsFixture, startLabPartsFixture, until } from './lab-parts.fixture';
import { scenario } from './scenarios';

const HEALTH: LabHealthOptions = {
  confidenceWindowMinutes: 0.05,
  p95WindowMinutes: 0.05,
  slowQuerySeconds: 1,
};

let lab: LabPartsFixture;
let activity: Activity;

const failing = async () => (await labHealth(lab.parts, HEALTH)).checks.filter((c) => !c.ok);
/** Every check passes but those named in `except`. */
const healthy = (except: string[] = []) =>
  until('a healthy lab', async () => {
    const bad = (await failing()).filter((c) => !except.includes(c.name));
    return bad.length === 0 || bad.map((c) => `${c.name}: ${c.detail}`).join('; ');
  });
const failingCheck = (name: string, detail: RegExp) =>
  until(`the "${name}" check to fail with ${detail}`, async () => {
    const bad = await failing();
    return (
      bad.some((c) => c.name === name && detail.test(c.detail)) ||
      bad.map((c) => `${c.name}: ${c.detail}`).join('; ')
    );
  });

beforeAll(async () => {
  lab = await startLabPartsFixture();
  activity = startActivity(lab.parts, { tickMs: 200, executionRealMs: [200, 400], trafficPerSecond: 4 });
  await healthy();
});

afterAll(async () => {
  await activity?.stop();
  await lab?.close();
});

describe('labHealth', () => {
  it('checks every part of the lab', async () => {
    const report = await labHealth(lab.parts, HEALTH);
    expect(report.healthy).toBe(true);
    expect(report.checks.map((c) => c.name)).toEqual([
      'agent requirements-agent',
      'agent generation-agent',
      'agent execution-agent',
      'agent observation-agent',
      'agent analysis-agent',
      'agent evolution-agent',
      'platform workloads',
      'redis',
      'security incident',
      'backend',
      'openrouter breaker',
      'database',
      'pgbouncer pool',
      'stuck executions',
      'execution p95',
      'selenium grid',
      'generation confidence',
      'api latency',
      'openrouter',
      'database activity',
      'model accuracy',
      'data drift',
    ]);
  });

  it('says an operator forced the OpenRouter breaker open', async () => {
    const force = (action: string) =>
      fetch(`${lab.parts.backend.url}/api/v1/admin/circuit-breaker/openrouter/${action}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
    expect((await force('open')).status).toBe(200);
    try {
      await failingCheck('openrouter breaker', /forced open by an operator/);
    } finally {
      await force('auto');
    }
    await healthy();
  });

  it('execution-stuck: names the stuck executions and the broken hub', async () => {
    const incident = await scenario('execution-stuck').inject(lab.parts);
    try {
      await failingCheck('stuck executions', /running for 9\d\d s \(> 600 s\)/);
      await failingCheck('selenium grid', /hub is not ready/);
    } finally {
      await incident.undo();
    }
    await healthy();
  });

  it('database-slow: names the lock holder and the slow queries', async () => {
    const incident = await scenario('database-slow').inject(lab.parts);
    try {
      await failingCheck(
        'database activity',
        /lock on test_executions by pid \d+ \(aiwebtest-report-export\)/,
      );
      await failingCheck('database activity', /query by pid \d+ \(aiwebtest-lab-chaos-slow\)/);
    } finally {
      await incident.undo();
    }
    // Stats requests that waited behind the lock raise the backend's p95, which covers the last 60 s: longer
    // than a test may wait, so that one check is left out here.
    await healthy(['api latency']);
  });
});
