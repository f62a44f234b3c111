import { render, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import React, { useState } from 'react';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, type ServiceError } from '../api/client';
import type { RunbookView } from '../api/types';
import { type Harness, startHarness } from '../test/harness';
import { InputForm } from './InputForm';

let h: Harness;
let scaleAgent: RunbookView;
beforeAll(async () => {
  h = await startHarness({ user: { login: 'erin', role: 'Editor' } });
  // The schema exactly as the service publishes it.
  scaleAgent = (await api.listRunbooks()).find((r) => r.id === 'scale-agent') as RunbookView;
});
afterAll(async () => {
  await h?.stop();
});

/** The form wired to the real service: a plan-mode run of scale-agent, with the service's answer kept. */
function PlanForm({ schema, onPlanned }: { schema: unknown; onPlanned: (runId: string) => void }) {
  const [error, setError] = useState<ServiceError | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <InputForm
      schema={schema}
      submitLabel="Plan"
      busy={busy}
      error={error}
      onSubmit={(input) => {
        setBusy(true);
        setError(null);
        api
          .startRun({ runbookId: 'scale-agent', input, mode: 'plan' })
          .then((r) => onPlanned('runId' in r ? r.runId : r.run.id))
          .catch((e: ServiceError) => setError(e))
          .finally(() => setBusy(false));
      }}
    />
  );
}

describe('InputForm (generated from the service’s input schema)', () => {
  it('shows a field per property with its description and default, and sends the typed input', async () => {
    const user = userEvent.setup();
    const planned: string[] = [];
    render(<PlanForm schema={scaleAgent.input} onPlanned={(id) => planned.push(id)} />);

    expect(await screen.findByText('The agent to scale', {}, { timeout: 20_000 })).toBeInTheDocument();
    expect(screen.getByText('Replicas wanted')).toBeInTheDocument();
    const replicas = screen.getByLabelText(/^replicas/);
    expect(replicas).toHaveValue('2');
    const debug = screen.getByLabelText(/^debug/);
    expect(debug).not.toBeChecked();

    // Nothing chosen for the required enum: refused on the client, naming the field; no run is created.
    await user.click(screen.getByRole('button', { name: 'Plan' }));
    expect(await screen.findByText('agent is required.')).toBeInTheDocument();
    expect(await h.runs()).toHaveLength(0);

    await user.click(screen.getByRole('radio', { name: 'generation-agent' }));
    await user.clear(replicas);
    await user.type(replicas, '4');
    await user.click(debug);
    await user.click(screen.getByRole('button', { name: 'Plan' }));

    await waitFor(() => expect(planned).toHaveLength(1), { timeout: 20_000 });
    const detail = await h.run(planned[0] as string);
    expect(detail.run).toMatchObject({
      runbookId: 'scale-agent',
      mode: 'plan',
      requestedBy: 'erin',
      input: { agent: 'generation-agent', replicas: 4, debug: true },
    });
  });

  it('checks bounds and whole numbers on the client, with the field named', async () => {
    const user = userEvent.setup();
    const before = (await h.runs()).length;
    render(<PlanForm schema={scaleAgent.input} onPlanned={() => {}} />);
    const replicas = await screen.findByLabelText(/^replicas/, {}, { timeout: 20_000 });
    await user.click(screen.getByRole('radio', { name: 'requirements-agent' }));

    await user.clear(replicas);
    await user.type(replicas, '11');
    await user.click(screen.getByRole('button', { name: 'Plan' }));
    expect(await screen.findByText('replicas must be at most 10.')).toBeInTheDocument();

    await user.clear(replicas);
    await user.type(replicas, '2.5');
    await user.click(screen.getByRole('button', { name: 'Plan' }));
    expect(await screen.findByText('replicas must be a whole number.')).toBeInTheDocument();
    expect(await h.runs()).toHaveLength(before);
  });

  it("puts the service's INVALID_INPUT field issues on the field they name", async () => {
    const user = userEvent.setup();
    // A stale copy of the schema without the bound (as when the runbook changed after the page loaded):
    // the client lets 50 through, the service refuses it with INVALID_INPUT and the field's issue.
    const schema = structuredClone(scaleAgent.input) as {
      properties: Record<string, Record<string, unknown>>;
    };
    delete schema.properties.replicas?.maximum;
    const before = (await h.runs()).length;
    render(<PlanForm schema={schema} onPlanned={() => {}} />);

    const replicas = await screen.findByLabelText(/^replicas/, {}, { timeout: 20_000 });
    await user.click(screen.getByRole('radio', { name: 'generation-agent' }));
    await user.clear(replicas);
    await user.type(replicas, '50');
    await user.click(screen.getByRole('button', { name: 'Plan' }));

    // The alert carries the service's code and message; the replicas field carries its own issue.
    expect(await screen.findByText('INVALID_INPUT (400)', {}, { timeout: 20_000 })).toBeInTheDocument();
    expect(screen.getByText(/Invalid input for runbook "scale-agent": input\.replicas/)).toBeInTheDocument();
    const issue = screen.getByText('Too big: expected number to be <=10');
    // The nearest box around the message that holds a control is the replicas field's.
    let box = issue.parentElement;
    while (box && !box.querySelector('input')) box = box.parentElement;
    expect(box?.querySelector('input')).toBe(replicas);
    expect(await h.runs()).toHaveLength(before);

    // Editing the field clears its error.
    await user.type(replicas, '1');
    expect(screen.queryByText('Too big: expected number to be <=10')).not.toBeInTheDocument();
  });
});
