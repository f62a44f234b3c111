import { render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import React from 'react';
import { MemoryRouter } from 'react-router-dom';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_URL } from '../settings';
import { type Harness, startHarness } from '../test/harness';
import { RunsPage } from './RunsPage';

const SLOW = { timeout: 20_000 };

let h: Harness;
/** The seeded runs' ids, oldest first. */
const seeded: string[] = [];
let waiting: string;

beforeAll(async () => {
  h = await startHarness({ user: { login: 'vic', role: 'Viewer' } });
  // Four finished diagnose runs by `root`, then a failover execute that waits for a second admin's approval.
  for (const service of ['a', 'b', 'c', 'd']) {
    const reply = await h.service('POST', '/runs', {
      runbookId: 'inspect-latency',
      input: { service },
      mode: 'diagnose',
    });
    expect(reply.status, JSON.stringify(reply.body)).toBe(200);
    seeded.push(reply.body.run.id);
  }
  const queued = await h.service('POST', '/runs', {
    runbookId: 'failover-database',
    input: { reason: 'primary down' },
    mode: 'execute',
  });
  expect(queued.status, JSON.stringify(queued.body)).toBe(202);
  waiting = queued.body.runId;
  seeded.push(waiting);
  await waitFor(async () => expect((await h.run(waiting)).run.status).toBe('waiting_approval'), SLOW);
});
afterAll(async () => {
  await h?.stop();
});

/** The run ids in the table, top to bottom. */
const rowIds = () =>
  within(screen.getByRole('table', { name: 'Runs' }))
    .getAllByRole('link')
    .map((a) => a.textContent);

/** The page inside a router, as Grafana renders app pages (its links are router links). */
const renderRuns = () =>
  render(
    <MemoryRouter
      initialEntries={[`${APP_URL}/runs`]}
      future={{ v7_startTransition: true, v7_relativeSplatPath: true }}
    >
      <RunsPage pageSize={2} />
    </MemoryRouter>,
  );

describe('RunsPage (real service through the Grafana proxy double, as a Viewer)', () => {
  it('pages through the history newest first with "Load more"; rows link to their run', async () => {
    const user = userEvent.setup();
    renderRuns();
    const newestFirst = [...seeded].reverse();

    await waitFor(() => expect(rowIds()).toEqual(newestFirst.slice(0, 2)), SLOW);
    await user.click(screen.getByRole('button', { name: 'Load more' }));
    await waitFor(() => expect(rowIds()).toEqual(newestFirst.slice(0, 4)), SLOW);
    await user.click(screen.getByRole('button', { name: 'Load more' }));
    await waitFor(() => expect(rowIds()).toEqual(newestFirst), SLOW);
    expect(screen.queryByRole('button', { name: 'Load more' })).not.toBeInTheDocument();

    const table = screen.getByRole('table', { name: 'Runs' });
    const link = within(table).getByRole('link', { name: waiting });
    expect(link).toHaveAttribute('href', `/a/aiwebtest-runbooks-app/runs/${waiting}`);
    const row = link.closest('tr') as HTMLElement;
    expect(within(row).getByText('failover-database')).toBeInTheDocument();
    expect(within(row).getByText('execute')).toBeInTheDocument();
    expect(within(row).getByText('waiting for approval')).toBeInTheDocument();
    expect(within(row).getByText('root')).toBeInTheDocument();
    // Relative time shown, the absolute time on hover.
    const created = row.querySelector('time') as HTMLElement;
    expect(created.textContent).toMatch(/ago|now/);
    expect(created.getAttribute('title')).toMatch(/\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}/);
  });

  it('filters by status and by runbook, asking the service', async () => {
    const user = userEvent.setup();
    // A Combobox: replace its text to filter the options, move the highlight to the first match with the arrow
    // keys (typing over an earlier choice leaves the highlight where that choice was), and pick it with Enter.
    const choose = async (label: string, text: string) => {
      const input = screen.getByLabelText(label);
      await user.clear(input);
      await user.type(input, text, { skipClick: true });
      for (let i = 0; i < 10 && !input.getAttribute('aria-activedescendant')?.endsWith('-item-0'); i++) {
        await user.keyboard('{ArrowDown}');
      }
      expect(input.getAttribute('aria-activedescendant')).toMatch(/-item-0$/);
      await user.keyboard('{Enter}');
    };
    renderRuns();
    await waitFor(() => expect(rowIds()).toHaveLength(2), SLOW);

    await choose('Status', 'waiting');
    await waitFor(() => expect(rowIds()).toEqual([waiting]), SLOW);
    expect(screen.queryByRole('button', { name: 'Load more' })).not.toBeInTheDocument();

    await choose('Status', 'succeeded');
    // Four succeeded runs, two per page: the filter is applied by the service, so paging still works.
    await waitFor(() => expect(rowIds()).toEqual([...seeded].reverse().slice(1, 3)), SLOW);
    await user.click(screen.getByRole('button', { name: 'Load more' }));
    await waitFor(() => expect(rowIds()).toEqual([...seeded].reverse().slice(1)), SLOW);

    await choose('Runbook', 'failover-database');
    await waitFor(() => expect(screen.getByText('No run matches these filters.')).toBeInTheDocument(), SLOW);
    await choose('Status', 'waiting');
    await waitFor(() => expect(rowIds()).toEqual([waiting]), SLOW);
  });
});
