import { render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import React from 'react';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
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
});
