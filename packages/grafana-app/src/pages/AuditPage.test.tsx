import { render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import React from 'react';
import { MemoryRouter, Route, Routes } from 'react-router-dom';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_URL } from '../settings';
import { type Harness, startHarness } from '../test/harness';
import { AuditPage } from './AuditPage';

let h: Harness;
const runIds: string[] = [];
beforeAll(async () => {
  h = await startHarness({ user: { login: 'vera', role: 'Viewer' } });
  for (let i = 0; i < 2; i++) {
    const reply = await h.service('POST', '/runs', {
      runbookId: 'inspect-latency',
      mode: 'diagnose',
      input: {},
    });
    expect(reply.status).toBe(200);
    runIds.push(reply.body.run.id);
  }
});
afterAll(async () => {
  await h?.stop();
});

const LONG = { timeout: 20_000 };

function renderAudit(search = '', pageSize?: number) {
  return render(
    <MemoryRouter
      initialEntries={[`${APP_URL}/audit${search}`]}
      future={{ v7_startTransition: true, v7_relativeSplatPath: true }}
    >
      <Routes>
        <Route path={`${APP_URL}/audit`} element={<AuditPage pageSize={pageSize} />} />
      </Routes>
    </MemoryRouter>,
  );
}

/** The seq column of the table's rows. */
const seqs = () =>
  within(screen.getByRole('table'))
    .getAllByRole('row')
    .slice(1)
    .map((r) => Number(within(r).getAllByRole('cell')[0]?.textContent));

describe('AuditPage (real service through the Grafana proxy double, as a Viewer)', () => {
  it('keeps "Verify again" when the verification fails, and verifies when asked again', async () => {
    // A user without an org role: Grafana's proxy refuses every route (403).
    h.setUser({ login: 'vera', role: 'None' });
    try {
      renderAudit();
      const failed = await screen.findByText('The audit chain could not be verified', {}, LONG);
      const alert = failed.closest('[role="status"], [role="alert"]') as HTMLElement;
      expect(alert).toHaveTextContent('GRAFANA_FORBIDDEN');
      const again = within(alert).getByRole('button', { name: 'Verify again' });
      h.setUser({ login: 'vera', role: 'Viewer' });
      await userEvent.setup().click(again);
      expect(await screen.findByText('Audit chain verified', {}, LONG)).toBeInTheDocument();
    } finally {
      h.setUser({ login: 'vera', role: 'Viewer' });
    }
  });

  it('shows the verified chain with its entry count and head hash, and the entries with run links', async () => {
    const verify = await h.service('GET', '/audit/verify');
    expect(verify.body.ok).toBe(true);
    const all = await h.service('GET', '/audit?limit=1000');
    renderAudit();

    const status = await screen.findByText('Audit chain verified', {}, LONG);
    const alert = status.closest('[role="status"], [role="alert"]') as HTMLElement;
    expect(alert).toHaveTextContent(`All ${verify.body.entries} entries verified`);
    expect(alert).toHaveTextContent(verify.body.headHash);

    await waitFor(() => expect(seqs()).toEqual(all.body.entries.map((e: { seq: number }) => e.seq)), LONG);
    const first = within(screen.getByRole('table')).getAllByRole('row')[1] as HTMLElement;
    const cells = within(first).getAllByRole('cell');
    expect(cells[2]).toHaveTextContent('root');
    expect(cells[3]).toHaveTextContent('run.created');
    expect(within(first).getByRole('link', { name: runIds[0] })).toHaveAttribute(
      'href',
      `${APP_URL}/runs/${runIds[0]}`,
    );
    // The data is there, collapsed.
    const details = cells[5]?.querySelector('details') as HTMLDetailsElement;
    expect(details.open).toBe(false);
    expect(details).toHaveTextContent('inspect-latency');
  });

  it('pages by nextAfter', async () => {
    const user = userEvent.setup();
    const all = (await h.service('GET', '/audit?limit=1000')).body.entries.map((e: { seq: number }) => e.seq);
    expect(all.length).toBeGreaterThan(3);
    renderAudit('', 2);

    await waitFor(() => expect(seqs()).toEqual(all.slice(0, 2)), LONG);
    await user.click(screen.getByRole('button', { name: 'Load more' }));
    await waitFor(() => expect(seqs()).toEqual(all.slice(0, 4)), LONG);
    while (screen.queryByRole('button', { name: /Load more|Loading/ })) {
      const before = seqs().length;
      await user.click(screen.getByRole('button', { name: 'Load more' }));
      await waitFor(() => expect(seqs().length).toBeGreaterThan(before), LONG);
    }
    expect(seqs()).toEqual(all);
  });

  it('filters by run, from the field and from the URL', async () => {
    const user = userEvent.setup();
    const [one, two] = runIds as [string, string];
    const ofOne = (await h.service('GET', `/audit?runId=${one}`)).body.entries.map(
      (e: { seq: number }) => e.seq,
    );
    renderAudit();
    await waitFor(() => expect(seqs().length).toBeGreaterThan(ofOne.length), LONG);

    await user.type(screen.getByLabelText(/^Run/), one);
    await user.click(screen.getByRole('button', { name: 'Filter' }));
    await waitFor(() => expect(seqs()).toEqual(ofOne), LONG);
    expect(screen.getByText(`Audit entries of run ${one}, oldest first`)).toBeInTheDocument();
    expect(within(screen.getByRole('table')).queryByRole('link', { name: two })).not.toBeInTheDocument();

    await user.click(screen.getByRole('button', { name: 'Show all' }));
    await waitFor(
      () =>
        expect(within(screen.getByRole('table')).getAllByRole('link', { name: two }).length).toBeGreaterThan(
          0,
        ),
      LONG,
    );
  });

  it('opened with ?runId= shows only that run, and says so when it has none', async () => {
    const [, two] = runIds as [string, string];
    const ofTwo = (await h.service('GET', `/audit?runId=${two}`)).body.entries.map(
      (e: { seq: number }) => e.seq,
    );
    const { unmount } = renderAudit(`?runId=${two}`);
    await waitFor(() => expect(seqs()).toEqual(ofTwo), LONG);
    unmount();

    renderAudit('?runId=run_nothing_here');
    expect(
      await screen.findByText('No audit entries for run run_nothing_here.', {}, LONG),
    ).toBeInTheDocument();
  });
});
