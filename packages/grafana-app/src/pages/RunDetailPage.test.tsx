import { render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import React from 'react';
import { MemoryRouter, Route, Routes } from 'react-router-dom';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, ServiceError } from '../api/client';
import { buttonVariant } from '../components/button-variant.testutil';
import { RunPoller, type RunPollState } from '../components/run-polling';
import { APP_URL } from '../settings';
import { type Harness, startHarness, startWaitingFailover } from '../test/harness';
import { RunDetailPage } from './RunDetailPage';

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ user: { login: 'erin', role: 'Editor' } });
});
afterAll(async () => {
  await h?.stop();
});

const LONG = { timeout: 20_000 };

function renderRun(runId: string) {
  return render(
    <MemoryRouter
      initialEntries={[`${APP_URL}/runs/${runId}`]}
      future={{ v7_startTransition: true, v7_relativeSplatPath: true }}
    >
      <Routes>
        <Route path={`${APP_URL}/runs/:runId`} element={<RunDetailPage />} />
      </Routes>
    </MemoryRouter>,
  );
}

/** A diagnose run of inspect-latency (finished when the service answers). */
async function diagnoseRun(): Promise<string> {
  const reply = await h.service('POST', '/runs', {
    runbookId: 'inspect-latency',
    mode: 'diagnose',
    input: {},
    context: {
      source: 'grafana',
      dashboard: { uid: 'lat', title: 'API latency', url: '/d/lat/api-latency' },
      panel: { id: 4, title: 'p95 by route' },
    },
  });
  expect(reply.status).toBe(200);
  return reply.body.run.id;
}

const waitingFailover = () => startWaitingFailover(h);

/** Requests the Grafana double forwarded to the service for this run. */
const requestsFor = (runId: string) => h.proxy.forwarded.filter((f) => f.target.includes(runId)).length;

describe('RunDetailPage (real service through the Grafana proxy double)', () => {
  it("shows a diagnose run's steps and every kind of evidence, then stops polling", async () => {
    const runId = await diagnoseRun();
    renderRun(runId);

    expect(await screen.findByLabelText('Status: succeeded', {}, LONG)).toBeInTheDocument();
    expect(screen.getByRole('heading', { name: 'inspect-latency' })).toBeInTheDocument();
    expect(screen.getByText(runId)).toBeInTheDocument();
    expect(screen.getByText('root')).toBeInTheDocument(); // requested by
    // Where it was started from.
    expect(screen.getByRole('link', { name: 'API latency' })).toHaveAttribute('href', '/d/lat/api-latency');
    expect(screen.getByText('p95 by route')).toBeInTheDocument();

    // The step and its finding.
    const steps = screen.getByRole('list', { name: 'Steps' });
    expect(within(steps).getByText('latency')).toBeInTheDocument();
    expect(within(steps).getByText('succeeded')).toBeInTheDocument();
    const finding = screen.getByRole('region', { name: 'Finding of step latency' });
    expect(
      within(finding).getByText('api-gateway p95 latency is 610 ms (objective 300 ms)'),
    ).toBeInTheDocument();

    // Table: headers and cells.
    const table = within(finding).getByRole('table');
    expect(within(table).getByRole('columnheader', { name: 'p95 ms' })).toBeInTheDocument();
    const firstRow = within(table).getAllByRole('row')[1] as HTMLElement;
    expect(
      within(firstRow)
        .getAllByRole('cell')
        .map((c) => c.textContent),
    ).toEqual(['/api/generate', '610', '3']);
    // Log lines, in a focusable scroll region.
    const log = within(finding).getByRole('region', { name: 'gateway log: 2 lines' });
    expect(log).toHaveAttribute('tabindex', '0');
    expect(log.textContent).toContain('03:04:10 upstream timeout /api/generate');
    // The series graph says what it shows.
    expect(
      within(finding).getByRole('img', {
        name: 'p95 latency: 6 points from 03:00:00 to 03:05:00 UTC: min 120 ms, max 650 ms, last 610 ms',
      }),
    ).toBeInTheDocument();
    // Text and link.
    expect(within(finding).getByText('latency rose after the 03:00 deploy')).toBeInTheDocument();
    expect(within(finding).getByRole('link', { name: /grafana\.example\/d\/latency/ })).toHaveAttribute(
      'href',
      'http://grafana.example/d/latency',
    );

    // The timeline has the run's events; the run is done, so polling has stopped.
    const timeline = screen.getByRole('list', { name: 'Timeline' });
    expect(within(timeline).getByText('run.created')).toBeInTheDocument();
    await waitFor(() => expect(screen.queryByText('Following the run…')).not.toBeInTheDocument(), LONG);
    const before = requestsFor(runId);
    await new Promise((r) => setTimeout(r, 2_000));
    expect(requestsFor(runId)).toBe(before);
  });

  it("shows the service's message for an unknown run", async () => {
    renderRun('run_nonexistent');
    const alert = await screen.findByRole('alert', {}, LONG);
    expect(alert).toHaveTextContent('Run run_nonexistent not found');
    expect(alert).toHaveTextContent('NOT_FOUND');
  });

  it('a high-risk run waits for approval: refused for an Editor and for the requester, approved by another Admin', async () => {
    const user = userEvent.setup();
    const runId = await waitingFailover();
    h.setUser({ login: 'erin', role: 'Editor' });
    renderRun(runId);

    // The plan as a diff, with its risk.
    const panel = await screen.findByRole('region', { name: 'Waiting for approval' }, LONG);
    const plan = within(panel).getByRole('region', { name: 'Plan of step failover' });
    expect(within(plan).getByText('high risk')).toBeInTheDocument();
    const change = within(plan).getAllByRole('row')[1] as HTMLElement;
    expect(
      within(change)
        .getAllByRole('cell')
        .map((c) => c.textContent),
    ).toEqual(['test:database/main', 'primary', 'db-a', '→ db-b']);

    // An Editor: the proxy's Admin-only route refuses, and nothing is decided.
    await user.click(within(panel).getByRole('button', { name: 'Approve' }));
    expect(
      await within(panel).findByText('Only Grafana Admins may approve or reject plans', {}, LONG),
    ).toBeVisible();
    // Grafana's own refusal, as the client reports it.
    expect(within(panel).getByRole('alert')).toHaveTextContent('plugin proxy route access denied');
    expect(within(panel).getByRole('alert')).toHaveTextContent('GRAFANA_FORBIDDEN');
    expect((await h.run(runId)).approvals[0]?.status).toBe('pending');

    // Rejecting needs a reason, before anything is sent.
    await user.click(within(panel).getByRole('button', { name: 'Reject' }));
    expect(
      within(panel).getByText('Give a reason to reject: it is recorded with the decision.'),
    ).toBeVisible();
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument();

    // The requester as an Admin: the service's four-eyes rule, with its message.
    h.setUser({ login: 'erin', role: 'Admin' });
    await user.click(within(panel).getByRole('button', { name: 'Approve' }));
    const fourEyes = await within(panel).findByText(
      /erin requested this run and cannot also approve it/,
      {},
      LONG,
    );
    expect(fourEyes.closest('[role="alert"]')).toHaveTextContent('FOUR_EYES');
    expect((await h.run(runId)).approvals[0]?.status).toBe('pending');

    // Another Admin approves with a reason: the worker continues the run to the end.
    h.setUser({ login: 'ada', role: 'Admin' });
    await user.type(within(panel).getByLabelText(/^Reason/), 'standby is healthy');
    await user.click(within(panel).getByRole('button', { name: 'Approve' }));
    expect(await screen.findByLabelText('Status: succeeded', {}, LONG)).toBeInTheDocument();
    const timeline = screen.getByRole('list', { name: 'Timeline' });
    await waitFor(() => expect(within(timeline).getByText('action.applied')).toBeInTheDocument(), LONG);
    expect(within(timeline).getAllByText(/by ada/).length).toBeGreaterThan(0);
    expect(screen.queryByRole('region', { name: 'Waiting for approval' })).not.toBeInTheDocument();
    expect(screen.getByText(/failover: approved by ada — standby is healthy/)).toBeInTheDocument();

    const stored = await h.run(runId);
    expect(stored.run.status).toBe('succeeded');
    expect(stored.approvals[0]).toMatchObject({
      status: 'approved',
      decidedBy: 'ada',
      reason: 'standby is healthy',
    });
    expect(h.world().database.primary).toBe('db-b');
  });

  it('Reject needs a reason and, confirmed, ends the run cancelled', async () => {
    const user = userEvent.setup();
    const runId = await waitingFailover();
    const primary = h.world().database.primary;
    h.setUser({ login: 'ada', role: 'Admin' });
    renderRun(runId);

    const panel = await screen.findByRole('region', { name: 'Waiting for approval' }, LONG);
    await user.click(within(panel).getByRole('button', { name: 'Reject' }));
    expect(
      within(panel).getByText('Give a reason to reject: it is recorded with the decision.'),
    ).toBeVisible();
    await user.type(within(panel).getByLabelText(/^Reason/), 'not during business hours');
    await user.click(within(panel).getByRole('button', { name: 'Reject' }));

    // Confirmed in a modal that shows the plan.
    const dialog = await screen.findByRole('dialog', {}, LONG);
    expect(within(dialog).getByText('Reject this plan?')).toBeInTheDocument();
    expect(within(dialog).getByText(/^promote db-. to primary$/)).toBeInTheDocument();
    await user.click(within(dialog).getByRole('button', { name: 'Reject' }));

    expect(await screen.findByLabelText('Status: cancelled', {}, LONG)).toBeInTheDocument();
    const stored = await h.run(runId);
    expect(stored.run.status).toBe('cancelled');
    expect(stored.approvals[0]).toMatchObject({
      status: 'rejected',
      decidedBy: 'ada',
      reason: 'not during business hours',
    });
    expect(h.world().database.primary).toBe(primary);
  });

  it('break-glass lets the requester approve their own run, with a reason', async () => {
    const user = userEvent.setup();
    const runId = await waitingFailover();
    h.setUser({ login: 'erin', role: 'Admin' });
    renderRun(runId);

    const panel = await screen.findByRole('region', { name: 'Waiting for approval' }, LONG);
    await user.click(within(panel).getByLabelText(/^Break glass/));
    await user.click(within(panel).getByRole('button', { name: 'Approve' }));
    expect(
      within(panel).getByText('Break-glass approval needs a reason: it is audited as an emergency approval.'),
    ).toBeVisible();
    expect((await h.run(runId)).approvals[0]?.status).toBe('pending');

    await user.type(within(panel).getByLabelText(/^Reason/), 'outage, nobody else on call');
    await user.click(within(panel).getByRole('button', { name: 'Approve' }));
    expect(await screen.findByLabelText('Status: succeeded', {}, LONG)).toBeInTheDocument();
    expect(screen.getByText(/failover: approved by erin \(break-glass\)/)).toBeInTheDocument();
    const stored = await h.run(runId);
    expect(stored.approvals[0]).toMatchObject({ status: 'approved', decidedBy: 'erin', breakGlass: true });
    const audit = await h.service('GET', `/audit?runId=${runId}`);
    expect(audit.body.entries.map((e: { entry: { kind: string } }) => e.entry.kind)).toContain(
      'approval.break-glass',
    );
  });

  it('Cancel on a waiting run, confirmed with the plan shown, ends it cancelled', async () => {
    const user = userEvent.setup();
    const runId = await waitingFailover();
    h.setUser({ login: 'erin', role: 'Editor' });
    renderRun(runId);

    await user.click(await screen.findByRole('button', { name: 'Cancel run' }, LONG));
    const dialog = await screen.findByRole('dialog', {}, LONG);
    expect(within(dialog).getByText(/^promote db-. to primary$/)).toBeInTheDocument();
    // Dismissing changes nothing.
    await user.click(within(dialog).getByRole('button', { name: 'Keep running' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).not.toBeInTheDocument());
    expect((await h.run(runId)).run.status).toBe('waiting_approval');

    await user.click(screen.getByRole('button', { name: 'Cancel run' }));
    await user.type(within(await screen.findByRole('dialog')).getByRole('textbox'), 'false alarm');
    // Cancelling destroys the run's plan: the confirm button is the destructive (red) one.
    expect(
      buttonVariant(within(screen.getByRole('dialog')).getByRole('button', { name: 'Cancel run' })),
    ).toBe('destructive');
    await user.click(within(screen.getByRole('dialog')).getByRole('button', { name: 'Cancel run' }));

    expect(await screen.findByLabelText('Status: cancelled', {}, LONG)).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Cancel run' })).not.toBeInTheDocument();
    expect((await h.run(runId)).run.status).toBe('cancelled');
  });
});

describe('RunPoller (real service)', () => {
  it('keeps the events of a poll whose run read failed, and shows them once the run is read', async () => {
    const runId = await diagnoseRun();
    const states: RunPollState[] = [];
    let failures = 1;
    const poller = new RunPoller({
      runId,
      intervalMs: 100,
      onChange: (s) => states.push(s),
      // The real service calls, except that the first read of the run fails as a gateway timeout would.
      source: {
        runEvents: api.runEvents,
        getRun: async (id) => {
          if (failures-- > 0) throw new ServiceError(504, 'GATEWAY_TIMEOUT', 'the proxy timed out');
          return api.getRun(id);
        },
      },
    });
    poller.start();
    try {
      await waitFor(() => expect(states.at(-1)?.done).toBe(true), LONG);
    } finally {
      poller.stop();
    }
    expect(states[0]?.error?.code).toBe('GATEWAY_TIMEOUT');
    const last = states.at(-1) as RunPollState;
    expect(last.error).toBeNull();
    expect(last.detail?.run.status).toBe('succeeded');
    // Every event of the run, once each, as the service lists them.
    const all = await api.runEvents(runId, 0);
    expect(all.events.length).toBeGreaterThan(0);
    expect(last.events.map((e) => e.seq)).toEqual(all.events.map((e) => e.seq));
  });

  /** Hides or shows the page as a browser does: `document.visibilityState` and a `visibilitychange` event. */
  function setHidden(hidden: boolean) {
    Object.defineProperty(document, 'visibilityState', {
      configurable: true,
      get: () => (hidden ? 'hidden' : 'visible'),
    });
    document.dispatchEvent(new Event('visibilitychange'));
  }

  it('does not poll while the page is hidden, polls at once when shown, and stops for good', async () => {
    const runId = await waitingFailover();
    const states: RunPollState[] = [];
    // The default visibility: the document's.
    const poller = new RunPoller({ runId, intervalMs: 100, onChange: (s) => states.push(s) });
    poller.start();
    try {
      await waitFor(() => expect(states.at(-1)?.detail?.run.status).toBe('waiting_approval'), LONG);
      expect(states.at(-1)?.events.map((e) => e.kind)).toContain('approval.requested');

      setHidden(true);
      await new Promise((r) => setTimeout(r, 300)); // let a request in flight finish
      const hiddenAt = requestsFor(runId);
      await new Promise((r) => setTimeout(r, 600));
      expect(requestsFor(runId)).toBe(hiddenAt);

      setHidden(false);
      await waitFor(() => expect(requestsFor(runId)).toBeGreaterThan(hiddenAt), LONG);
    } finally {
      setHidden(false);
      poller.stop();
    }
    const seen = states.length;
    await new Promise((r) => setTimeout(r, 300));
    const stoppedAt = requestsFor(runId);
    await new Promise((r) => setTimeout(r, 500));
    expect(requestsFor(runId)).toBe(stoppedAt);
    expect(states.length).toBe(seen);
  });
});
