import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/cli/exit-codes';
import { cli, tempDir } from './harness';

const V1 = fileURLToPath(new URL('./fixtures/queue-v1.ts', import.meta.url));
const V2 = fileURLToPath(new URL('./fixtures/queue-v2.ts', import.meta.url));
const V3 = fileURLToPath(new URL('./fixtures/queue-v3.ts', import.meta.url));
const CLI_MD = new URL('../../CLI.md', import.meta.url);

describe('runbook record and runbook replay', () => {
  const dir = tempDir('replay');
  afterAll(() => dir.dispose());
  const state = join(dir.path, 'queue.json');
  const store = ['--data-dir', join(dir.path, 'store')];

  it('records a run and replays it: the same version agrees, a lower threshold differs at "depth"', async () => {
    writeFileSync(state, JSON.stringify({ depth: 40 }));
    const run = await cli([
      'diagnose',
      'queue-backlog',
      '--runbooks',
      V1,
      '--input',
      `stateFile=${state}`,
      ...store,
      '--json',
    ]);
    expect(run.code).toBe(ExitCode.Ok);
    const runId = run.json().run.id as string;

    const fixtureFile = join(dir.path, 'incident.json');
    const recorded = await cli(['record', runId, '-o', fixtureFile, ...store]);
    expect(recorded.code).toBe(ExitCode.Ok);
    expect(recorded.stdout).toBe(`Recorded run ${runId} of queue-backlog (1 steps) to ${fixtureFile}.\n`);
    const fixture = JSON.parse(readFileSync(fixtureFile, 'utf8'));
    expect(fixture.steps[0]).toMatchObject({
      name: 'depth',
      result: { status: 'ok', observation: { depth: 40 } },
    });

    writeFileSync(state, JSON.stringify({ depth: 1000 })); // a replay never reads the world again
    const same = await cli(['replay', fixtureFile, '--runbooks', V1]);
    expect(same.code).toBe(ExitCode.Ok);
    expect(same.stdout).toContain('Same decisions at every step and the same outcome.');

    const changed = await cli(['replay', fixtureFile, '--runbooks', V2]);
    expect(changed.code).toBe(ExitCode.Failed);
    expect(changed.stdout).toMatch(
      /≠ {2}1 {2}depth {2}check {2}ok {8}fail {2}ok → fail: 40 jobs waiting, more than 30/,
    );
    expect(changed.stdout).toMatch(
      /≠ outcome {2}recorded: succeeded \(queue fine\)\n {11}now: {6}escalated \(queue backlog: 40 jobs waiting, more than 30\)/,
    );
    expect(changed.stdout).toContain('Decisions differ: first at step "depth" (ok → fail).');
    // CLI.md shows this very output, with its own run id and time.
    const shown = /### `replay <fixture>`[\s\S]*?```text\n([\s\S]*?)```/.exec(
      readFileSync(CLI_MD, 'utf8'),
    )?.[1];
    expect(
      changed.stdout
        .replaceAll(runId, 'run_mx0nkae644b6nbtx')
        .replace(fixture.recordedAt, '2026-11-28T16:56:45.320Z'),
    ).toBe(shown);

    // A check that could only be answered from the recording: the same decisions, but --strict refuses them.
    const unjudged = await cli(['replay', fixtureFile, '--runbooks', V3]);
    expect(unjudged.code).toBe(ExitCode.Ok);
    expect(unjudged.stdout).toContain(
      'Same decisions at every step and the same outcome (1 check was not re-judged, their findings are the recorded ones: depth).',
    );
    const strict = await cli(['replay', fixtureFile, '--runbooks', V3, '--strict']);
    expect(strict.code).toBe(ExitCode.Failed);
    expect(strict.stdout).toContain('--strict: 1 check(s) not re-judged, so exit 1.');
    expect((await cli(['replay', fixtureFile, '--runbooks', V1, '--strict'])).code).toBe(ExitCode.Ok);

    const json = await cli(['replay', fixtureFile, '--runbooks', V1, '--input', 'maxDepth=10', '--json']);
    expect(json.code).toBe(ExitCode.Failed);
    expect(json.json()).toMatchObject({
      runbook: 'queue-backlog',
      recordedRunId: runId,
      same: false,
      firstDifference: { name: 'depth', recorded: 'ok', replayed: 'fail' },
      outcome: { recorded: { status: 'succeeded' }, replayed: { status: 'escalated' }, same: false },
    });
  });

  it('refuses what it cannot use, naming the problem', async () => {
    const existing = join(dir.path, 'incident.json');
    const kept = readFileSync(existing, 'utf8');
    const runId = JSON.parse(kept).run.id as string;
    const refused = await cli(['record', runId, '-o', existing, ...store]);
    expect(refused.code).toBe(ExitCode.Refused);
    expect(refused.stderr).toContain('exists; pass --force to replace it');
    expect(readFileSync(existing, 'utf8')).toBe(kept);
    expect((await cli(['record', runId, '-o', existing, '--force', ...store])).code).toBe(ExitCode.Ok);
    expect(statSync(existing).mode & 0o777).toBe(0o600);

    const unknown = await cli(['record', 'no-such-run', ...store]);
    expect(unknown.code).toBe(ExitCode.Refused);
    expect(unknown.stderr).toContain('Run "no-such-run" not found');

    const bad = join(dir.path, 'bad.json');
    writeFileSync(
      bad,
      JSON.stringify({ format: 'runbook-fixture/v1', runbook: 'queue-backlog', steps: 'x' }),
    );
    const malformed = await cli(['replay', bad, '--runbooks', V1]);
    expect(malformed.code).toBe(ExitCode.Usage);
    expect(malformed.stderr).toMatch(
      /Invalid .*bad\.json:\n {2}recordedAt: .*\n {2}run: .*\n {2}steps: Invalid input: expected array/,
    );

    writeFileSync(bad, '{ not json');
    expect((await cli(['replay', bad, '--runbooks', V1])).stderr).toContain('bad.json: not JSON');
    expect((await cli(['replay', join(dir.path, 'missing.json'), '--runbooks', V1])).stderr).toContain(
      'missing.json: cannot read it (ENOENT)',
    );
  });
});
