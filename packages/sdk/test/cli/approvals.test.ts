import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/cli/run-cli';
import { readState, writeFixtureState } from './fixtures/runbooks';
import { cliWithStore, tempDir } from './harness';

const dir = tempDir('approvals');
const cli = cliWithStore(join(dir.path, 'store'));
const stateFile = join(dir.path, 'state.json');
const purge = ['purge-cache', '--input', `stateFile=${stateFile}`, '--yes'];

beforeAll(() => writeFixtureState(stateFile, { cache: ['k1', 'k2'] }));
afterAll(() => dir.dispose());

/** Starts a purge as alice; it must stop waiting for a second person. */
async function requestPurge(): Promise<string> {
  const r = await cli(['run', ...purge, '--as', 'alice']);
  expect(r.code).toBe(ExitCode.WaitingApproval);
  const id = /^ {2}runbook approve (run_\w+) --data-dir /m.exec(r.stdout)?.[1];
  expect(id).toBeDefined();
  return id as string;
}

describe('a destructive plan needs a second person', () => {
  it('run stops with exit 3, shows the plan and exactly what another person must run', async () => {
    const r = await cli(['run', ...purge, '--as', 'alice']);
    expect(r.code).toBe(ExitCode.WaitingApproval);
    const id = /runbook approve (run_\w+)/.exec(r.stdout)?.[1];
    expect(r.stdout).toContain('purge-cache (execute): waiting_approval');
    expect(r.stdout).toContain(`Run ${id} waits for approval of step "purge":\n  Delete 2 cache keys\n`);
    expect(r.stdout).toMatch(
      /fixture\.purge-cache on fixture:cache\/checkout {2}\(risk high, DESTRUCTIVE; plan [0-9a-f]{12}\)/,
    );
    expect(r.stdout).toContain('fixture:cache/checkout keys: ["k1","k2"] → []');
    expect(r.stdout).toContain(
      `Another person must approve it:\n  runbook approve ${id} --data-dir ${join(dir.path, 'store')}\n`,
    );
    expect(readState(stateFile).cache).toEqual(['k1', 'k2']);

    // The requester cannot approve their own run (four eyes): exit 6, nothing applied, still waiting.
    const self = await cli(['approve', id as string, '--as', 'alice']);
    expect(self.code).toBe(ExitCode.Refused);
    expect(self.stderr).toBe(
      'error: alice requested this run and cannot also approve it: another person must approve. In an emergency, use break-glass with a reason.\n',
    );
    // RUNBOOK_ACTOR is the default identity (the harness sets alice): same refusal.
    expect((await cli(['approve', id as string])).code).toBe(ExitCode.Refused);

    // Break-glass needs a reason: a usage error before anything is decided.
    const noReason = await cli(['approve', id as string, '--as', 'bob', '--break-glass']);
    expect(noReason.code).toBe(ExitCode.Usage);
    expect(noReason.stderr).toMatch(/^error: --break-glass needs --reason/);
    expect(readState(stateFile).cache).toEqual(['k1', 'k2']);
    expect((await cli(['show', id as string, '--json'])).json().run.status).toBe('waiting_approval');
    const waitingShow = await cli(['show', id as string]);
    expect(waitingShow.stdout).toMatch(/⏸ purge\s+act\s+waiting for approval: Delete 2 cache keys/);
    expect(waitingShow.stdout).toMatch(
      /Approvals:\n {2}purge: pending since .*\(requested by alice, plan [0-9a-f]{12}\)/,
    );
    expect(waitingShow.stdout).toContain(`Waiting for another person: runbook approve ${id}`);

    // Bob approves: the run resumes in this process and applies the plan.
    const bob = await cli(['approve', id as string, '--as', 'bob', '--reason', 'cache is poisoned', '--yes']);
    expect(bob.code).toBe(ExitCode.Ok);
    expect(bob.stdout).toMatch(
      new RegExp(
        `\\nApproved step "purge" of run ${id} as bob \\(plan [0-9a-f]{12}, requested by alice\\)\\.\\nResuming run ${id}…\\n`,
      ),
    );
    expect(bob.stdout).toContain('purge-cache (execute): succeeded');
    expect(readState(stateFile).cache).toEqual([]);

    const shown = (await cli(['show', id as string, '--json'])).json();
    expect(shown.run).toMatchObject({
      status: 'succeeded',
      requestedBy: 'alice',
      outcome: { kind: 'done', summary: 'cache purged' },
    });
    expect(shown.approvals).toEqual([
      expect.objectContaining({
        step: 'purge',
        status: 'approved',
        requestedBy: 'alice',
        decidedBy: 'bob',
        reason: 'cache is poisoned',
        breakGlass: false,
      }),
    ]);
    expect(shown.steps.find((s: { name: string }) => s.name === 'purge').result.status).toBe('applied');

    // Nothing waits any more.
    const again = await cli(['approve', id as string, '--as', 'carol']);
    expect(again.code).toBe(ExitCode.Refused);
    expect(again.stderr).toContain(`Run ${id} is succeeded and has no pending approval`);
  });

  it('--json reports the pending approval and the approve command', async () => {
    writeFixtureState(stateFile, { cache: ['k3'] });
    const r = await cli(['run', ...purge, '--json']);
    expect(r.code).toBe(ExitCode.WaitingApproval);
    const doc = r.json();
    expect(doc.exitCode).toBe(3);
    expect(doc.run.status).toBe('waiting_approval');
    expect(doc.pendingApproval).toMatchObject({
      step: 'purge',
      plan: { action: 'fixture.purge-cache', destructive: true, risk: 'high' },
    });
    expect(doc.approveCommand).toBe(`runbook approve ${doc.run.id}`);

    const approved = await cli(['approve', doc.run.id, '--as', 'bob', '--json', '--yes']);
    expect(approved.code).toBe(ExitCode.Ok);
    const out = approved.json();
    expect(out.approval).toMatchObject({ status: 'approved', decidedBy: 'bob' });
    expect(out.run.status).toBe('succeeded');
    expect(readState(stateFile).cache).toEqual([]);
  });

  it('report writes the incident report of an approved run: timeline, approval, action', async () => {
    writeFixtureState(stateFile, { cache: ['k9'] });
    const id = await requestPurge();
    expect((await cli(['approve', id, '--as', 'bob', '--reason', 'poisoned', '--yes'])).code).toBe(
      ExitCode.Ok,
    );

    const r = await cli(['report', id, '--title', 'Checkout cache poisoned', '--impact', 'Stale prices.']);
    expect(r.code).toBe(ExitCode.Ok);
    expect(r.stdout).toMatch(/^# Checkout cache poisoned\n/);
    expect(r.stdout).toContain('Stale prices.');
    expect(r.stdout).toContain('## Timeline');
    expect(r.stdout).toMatch(/\| [^|]+ \| approval \| bob \|/);
    expect(r.stdout).toMatch(/\| [^|]+ \| action \| [^|]+ \|.*purge/);

    const json = (await cli(['report', id, '--json'])).json();
    expect(json.runId).toBe(id);
    expect(json.markdown).toMatch(/^# Incident: purge-cache\n/);
    const kinds = json.timeline.map((e: { kind: string }) => e.kind);
    expect(kinds[0]).toBe('run');
    expect(kinds).toEqual(expect.arrayContaining(['check', 'approval', 'action', 'end']));

    const missing = await cli(['report', 'run_nope']);
    expect(missing.code).not.toBe(ExitCode.Ok);
    expect(missing.stderr).toContain('run_nope');
  });

  it('break-glass with a reason lets the requester approve, recorded as such', async () => {
    writeFixtureState(stateFile, { cache: ['k4'] });
    const id = await requestPurge();
    const r = await cli([
      'approve',
      id,
      '--as',
      'alice',
      '--break-glass',
      '--reason',
      'bob is unreachable, checkout down',
      '--yes',
    ]);
    expect(r.code).toBe(ExitCode.Ok);
    expect(r.stdout).toContain('BREAK-GLASS, recorded in the audit log');
    expect(readState(stateFile).cache).toEqual([]);
    const [approval] = (await cli(['show', id, '--json'])).json().approvals;
    expect(approval).toMatchObject({
      decidedBy: 'alice',
      breakGlass: true,
      reason: 'bob is unreachable, checkout down',
    });
  });

  it('reject ends the run cancelled without applying; cancel of an ended run is refused', async () => {
    writeFixtureState(stateFile, { cache: ['k5'] });
    const id = await requestPurge();
    const r = await cli(['reject', id, '--as', 'bob', '--reason', 'not now']);
    expect(r.code).toBe(ExitCode.Ok);
    expect(r.stdout).toContain(`Rejected step "purge" of run ${id} as bob`);
    expect((await cli(['show', id, '--json'])).json().run.status).toBe('cancelled');
    expect(readState(stateFile).cache).toEqual(['k5']);
    const cancel = await cli(['cancel', id]);
    expect(cancel.code).toBe(ExitCode.Refused);
    expect(cancel.stderr).toBe(`error: Run ${id} already ended; there is nothing to cancel.\n`);
  });

  it('approve --no-resume leaves the run queued; resume finishes it; cancel stops a waiting run', async () => {
    const id = await requestPurge();
    const approved = await cli(['approve', id, '--as', 'bob', '--no-resume']);
    expect(approved.code).toBe(ExitCode.Ok);
    expect(approved.stdout).toContain(
      `The run is queued: continue it with \`runbook resume ${id}\`, or let a worker pick it up.`,
    );
    expect((await cli(['show', id, '--json'])).json().run.status).toBe('queued');
    expect(readState(stateFile).cache).toEqual(['k5']);
    const resumed = await cli(['resume', id, '--yes']);
    expect(resumed.code).toBe(ExitCode.Ok);
    expect(readState(stateFile).cache).toEqual([]);

    writeFixtureState(stateFile, { cache: ['k6'] });
    const waiting = await requestPurge();
    const cancelled = await cli(['cancel', waiting, '--as', 'bob', '--reason', 'duplicate', '--json']);
    expect(cancelled.code).toBe(ExitCode.Ok);
    expect(cancelled.json()).toMatchObject({ runId: waiting, result: 'cancelled' });
    expect((await cli(['show', waiting, '--json'])).json().run.status).toBe('cancelled');
    expect(readState(stateFile).cache).toEqual(['k6']);
  });

  it('approve shows the plan, binds to the reviewed hash with --plan, and asks on a terminal', async () => {
    writeFixtureState(stateFile, { cache: ['k7'] });
    const id = await requestPurge();
    const stale = await cli(['approve', id, '--as', 'bob', '--plan', '0000000', '--yes']);
    expect(stale.code).toBe(ExitCode.Refused);
    expect(stale.stderr).toContain('not 0000000');
    expect(stale.stdout).toContain('fixture:cache/checkout keys: ["k7"] → []');
    const declined = await cli(['approve', id, '--as', 'bob'], { tty: true, stdin: 'n\n' });
    expect(declined.code).toBe(ExitCode.Cancelled);
    expect(readState(stateFile).cache).toEqual(['k7']);
    const hash = /plan ([0-9a-f]{12})\)/.exec(stale.stdout)?.[1] as string;
    const ok = await cli(['approve', id, '--as', 'bob', '--plan', hash], { tty: true, stdin: 'y\n' });
    expect(ok.code).toBe(ExitCode.Ok);
    expect(readState(stateFile).cache).toEqual([]);
  });

  it('without a terminal or --yes, approve records the decision and leaves the run to resume', async () => {
    writeFixtureState(stateFile, { cache: ['k8'] });
    const id = await requestPurge();
    const approved = await cli(['approve', id, '--as', 'bob']);
    expect(approved.code).toBe(ExitCode.Ok);
    expect(approved.stdout).toContain('The run is queued');
    expect(readState(stateFile).cache).toEqual(['k8']);
    expect((await cli(['resume', id])).code).toBe(ExitCode.Usage);
    expect((await cli(['resume', id, '--yes'])).code).toBe(ExitCode.Ok);
    expect(readState(stateFile).cache).toEqual([]);
  });

  it('the audit chain records it all and verifies', async () => {
    const r = await cli(['audit', 'verify', '--json']);
    expect(r.code).toBe(ExitCode.Ok);
    expect(r.json()).toMatchObject({ ok: true, problems: [] });
  });
});
