import { describe, expect, it } from 'vitest';
import { parseFixture, recordRun } from '../../src/replay/fixture';
import { replayRun } from '../../src/replay/replay';
import { serverFixture, TOKENS } from './server-fixture';

// GET /api/v1/runs/:id/fixture: what `runbook record` writes, from the service (whose embedded store the CLI
// cannot open while it runs).
describe('GET /api/v1/runs/:id/fixture (PostgreSQL, over HTTP)', () => {
  const f = serverFixture({ schema: 'fixture_api' });

  it("answers a viewer with the run's fixture, which replays the same", async () => {
    const runId = await f.engine.enqueue(
      'fix-low',
      { key: 'fixture-api', value: 'new' },
      { mode: 'execute', actor: 'ada' },
    );
    expect((await f.engine.resume(runId)).status).toBe('succeeded');

    const answer = await f.call('GET', `/api/v1/runs/${runId}/fixture`, { token: TOKENS.vera });
    expect(answer.status).toBe(200);
    const fixture = parseFixture(answer.body, 'the answer');
    const { recordedAt: _served, ...served } = fixture;
    const { recordedAt: _stored, ...stored } = await recordRun(f.store, runId);
    expect(served).toEqual(stored);
    expect(fixture.steps.map((s) => [s.name, s.kind, s.status])).toEqual([
      ['inspect', 'check', 'succeeded'],
      ['fix', 'act', 'succeeded'],
    ]);
    const runbook = f.engine.runbook('fix-low');
    expect((await replayRun(runbook, fixture)).same).toBe(true);
  });

  it('refuses an unknown run (404) and a caller without a token (401)', async () => {
    const unknown = await f.call('GET', '/api/v1/runs/run_nope/fixture', { token: TOKENS.vera });
    expect(unknown.status).toBe(404);
    expect((unknown.body as { error: { code: string } }).error.code).toBe('NOT_FOUND');
    expect((await f.call('GET', '/api/v1/runs/run_nope/fixture', {})).status).toBe(401);
  });
});
