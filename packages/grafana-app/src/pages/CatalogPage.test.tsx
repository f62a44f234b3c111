import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import React from 'react';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buttonVariant } from '../components/button-variant.testutil';
import { isExecute, loseAnswers } from '../components/lost-answer.testutil';
import { type Harness, startHarness } from '../test/harness';
import { CatalogPage } from './CatalogPage';

const ADMIN = { login: 'gina', role: 'Admin' } as const;
const SLOW = { timeout: 20_000 };

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ user: ADMIN });
});
afterEach(() => h.setUser(ADMIN));
afterAll(async () => {
  await h?.stop();
});

const shownIds = () =>
  within(screen.getByRole('list', { name: 'Runbooks' }))
    .queryAllByRole('listitem')
    .map((item) => (item.textContent?.match(/scale-agent|failover-database|inspect-latency/) ?? [''])[0]);

async function openAction(action: 'Diagnose' | 'Plan' | 'Run', title: string) {
  const user = userEvent.setup();
  render(<CatalogPage />);
  await user.click(await screen.findByRole('button', { name: `${action} ${title}` }, SLOW));
  return { user, drawer: await screen.findByRole('dialog', {}, SLOW) };
}

describe('CatalogPage (real service through the Grafana proxy double)', () => {
  it("lists the service's runbooks; search and the severity filter narrow the list", async () => {
    const user = userEvent.setup();
    render(<CatalogPage />);
    expect(await screen.findByText('Scale an agent', {}, SLOW)).toBeInTheDocument();
    expect(screen.getByText('Fail the database over to its standby')).toBeInTheDocument();
    expect(
      screen.getByText('Diagnose only: shows latency evidence of every kind the app renders.'),
    ).toBeInTheDocument();
    expect(screen.getByLabelText('severity P1')).toBeInTheDocument();
    expect(shownIds().sort()).toEqual(['failover-database', 'inspect-latency', 'scale-agent']);

    const search = screen.getByLabelText('Search');
    await user.type(search, 'LATENCY');
    expect(shownIds()).toEqual(['inspect-latency']);
    await user.clear(search);
    await user.type(search, 'standby'); // in the description only
    expect(shownIds()).toEqual(['failover-database']);
    await user.clear(search);
    await user.type(search, 'nothing like this');
    expect(shownIds()).toEqual([]);
    expect(screen.getByText('No runbook matches the search and severity.')).toBeInTheDocument();
    await user.clear(search);

    await user.click(screen.getByRole('radio', { name: 'P2' }));
    expect(shownIds()).toEqual(['scale-agent']);
    await user.click(screen.getByRole('radio', { name: 'P0' }));
    expect(shownIds()).toEqual([]);
    await user.click(screen.getByRole('radio', { name: 'All' }));
    expect(shownIds()).toHaveLength(3);
  });

  it('diagnoses with the typed input and shows the finding and the link to the run', async () => {
    const { user, drawer } = await openAction('Diagnose', 'Inspect API latency');
    const service = within(drawer).getByLabelText(/^service/);
    expect(service).toHaveValue('api-gateway');
    await user.clear(service);
    await user.type(service, 'checkout');
    await user.click(within(drawer).getByRole('button', { name: 'Diagnose' }));

    expect(
      await within(drawer).findByText('checkout p95 latency is 610 ms (objective 300 ms)', {}, SLOW),
    ).toBeInTheDocument();
    expect(within(drawer).getByText('latency inspected')).toBeInTheDocument();
    // The form (and its focused button) went away: focus is on the result's heading, inside the drawer.
    await waitFor(() =>
      expect(document.activeElement).toBe(within(drawer).getByRole('heading', { name: 'Diagnosis' })),
    );
    const link = within(drawer).getByRole('link', { name: /Open run/ });
    const runId = link.getAttribute('href')?.replace('/a/aiwebtest-runbooks-app/runs/', '') ?? '';
    const detail = await h.run(runId);
    expect(detail.run).toMatchObject({
      runbookId: 'inspect-latency',
      mode: 'diagnose',
      status: 'succeeded',
      requestedBy: 'gina',
      input: { service: 'checkout' },
      context: { source: 'grafana' },
    });
    // So the keyboard still works there: Escape, pressed where the focus is, closes the drawer. (user-event's
    // Escape has no keyCode, which the drawer reads, so the key is sent as a browser sends it.)
    fireEvent.keyDown(document.activeElement as HTMLElement, { key: 'Escape', code: 'Escape', keyCode: 27 });
    await waitFor(() => expect(screen.queryByRole('dialog')).not.toBeInTheDocument(), SLOW);
  });

  it("refuses a Viewer's Plan with Grafana's 403 and creates no run", async () => {
    h.setUser({ login: 'vic', role: 'Viewer' });
    const before = (await h.runs()).length;
    const { user, drawer } = await openAction('Plan', 'Scale an agent');
    await user.click(within(drawer).getByRole('radio', { name: 'generation-agent' }));
    await user.click(within(drawer).getByRole('button', { name: 'Plan' }));

    // What Grafana's proxy answered (its reqRole check), with its code and status, where the action was taken.
    expect(await within(drawer).findByText('GRAFANA_FORBIDDEN (403)', {}, SLOW)).toBeInTheDocument();
    expect(within(drawer).getByText(/plugin proxy route access denied/)).toBeInTheDocument();
    expect(within(drawer).queryByRole('link', { name: /Open run/ })).not.toBeInTheDocument();
    expect(await h.runs()).toHaveLength(before);
  });

  it('Run shows the plan first and executes only after confirmation', async () => {
    const { user, drawer } = await openAction('Run', 'Scale an agent');
    await user.click(within(drawer).getByRole('radio', { name: 'generation-agent' }));
    const replicas = within(drawer).getByLabelText(/^replicas/);
    await user.clear(replicas);
    await user.type(replicas, '3');
    await user.click(within(drawer).getByRole('button', { name: 'Plan and review' }));

    // The plan: replicas 0 → 3, from a plan-mode run; nothing executed, nothing changed.
    const changes = await within(drawer).findByRole('table', { name: 'Changes of scale' }, SLOW);
    expect(within(changes).getByRole('row', { name: /replicas 0 3/ })).toBeInTheDocument();
    const planRuns = (await h.runs()).filter((r) => r.runbookId === 'scale-agent');
    expect(planRuns.map((r) => r.mode)).toEqual(['plan']);
    expect(h.world().agents['generation-agent']?.replicas).toBe(0);

    // Dismissing the confirmation executes nothing.
    await user.click(within(drawer).getByRole('button', { name: 'Execute…' }));
    const modal = await screen.findByRole('dialog', { name: 'Execute Scale an agent?' }, SLOW);
    expect(within(modal).getByRole('row', { name: /replicas 0 3/ })).toBeInTheDocument();
    // Nothing in this plan is destructive: the confirm button is the primary one, not the red one.
    expect(buttonVariant(within(modal).getByRole('button', { name: 'Execute' }))).toBe('primary');
    await user.click(within(modal).getByRole('button', { name: 'Cancel' }));
    await waitFor(() => expect(screen.queryByRole('dialog', { name: 'Execute Scale an agent?' })).toBeNull());
    expect((await h.runs()).filter((r) => r.mode === 'execute')).toHaveLength(0);

    await user.click(within(drawer).getByRole('button', { name: 'Execute…' }));
    const again = await screen.findByRole('dialog', { name: 'Execute Scale an agent?' }, SLOW);
    await user.click(within(again).getByRole('button', { name: 'Execute' }));
    const link = await within(drawer).findByRole('link', { name: /Open run/ }, SLOW);
    const runId = link.getAttribute('href')?.replace('/a/aiwebtest-runbooks-app/runs/', '') ?? '';

    // The service ran it: an execute run by the Grafana user, with the planned input, and the world changed.
    await waitFor(async () => expect((await h.run(runId)).run.status).toBe('succeeded'), SLOW);
    expect((await h.run(runId)).run).toMatchObject({
      mode: 'execute',
      requestedBy: 'gina',
      input: { agent: 'generation-agent', replicas: 3, debug: false },
    });
    expect(h.world().agents['generation-agent']?.replicas).toBe(3);
  });

  it('a lost answer to Execute: executing the same plan again gets the same run back, never a second run', async () => {
    const { user, drawer } = await openAction('Run', 'Scale an agent');
    await user.click(within(drawer).getByRole('radio', { name: 'requirements-agent' }));
    const replicas = within(drawer).getByLabelText(/^replicas/);
    await user.clear(replicas);
    await user.type(replicas, '4');
    await user.click(within(drawer).getByRole('button', { name: 'Plan and review' }));
    await within(drawer).findByRole('table', { name: 'Changes of scale' }, SLOW);
    const executions = async () =>
      (await h.runs()).filter(
        (r) => r.mode === 'execute' && (r.input as { agent?: string }).agent === 'requirements-agent',
      );
    expect(await executions()).toHaveLength(0);

    // The service queues the run, but Grafana's proxy answers 504: the user sees a failure.
    const restore = loseAnswers(h.backendSrv, { match: isExecute });
    try {
      await user.click(within(drawer).getByRole('button', { name: 'Execute…' }));
      const modal = await screen.findByRole('dialog', { name: 'Execute Scale an agent?' }, SLOW);
      await user.click(within(modal).getByRole('button', { name: 'Execute' }));
      expect(await within(drawer).findByText('UNREACHABLE (504)', {}, SLOW)).toBeInTheDocument();
    } finally {
      restore();
    }
    const queued = await executions();
    expect(queued).toHaveLength(1);

    // Trying again with the same plan: the service answers with the run it already has.
    await user.click(within(drawer).getByRole('button', { name: 'Execute…' }));
    const again = await screen.findByRole('dialog', { name: 'Execute Scale an agent?' }, SLOW);
    await user.click(within(again).getByRole('button', { name: 'Execute' }));
    expect(await within(drawer).findByText('Already started', {}, SLOW)).toBeInTheDocument();
    const link = within(drawer).getByRole('link', { name: /Open run/ });
    expect(link.getAttribute('href')).toBe(`/a/aiwebtest-runbooks-app/runs/${queued[0]?.id}`);
    expect(await executions()).toHaveLength(1);
    await waitFor(async () => expect((await h.run(queued[0]?.id ?? '-')).run.status).toBe('succeeded'), SLOW);
    expect(h.world().agents['requirements-agent']?.replicas).toBe(4);
  });
});
