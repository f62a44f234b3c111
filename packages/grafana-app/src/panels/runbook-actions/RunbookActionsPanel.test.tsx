import { createServer } from 'node:net';
import {
  EventBusSrv,
  getDefaultTimeRange,
  LoadingState,
  type PanelProps,
  type StandardEditorProps,
} from '@grafana/data';
import { setBackendSrv } from '@grafana/runtime';
import { render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import React from 'react';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buttonVariant } from '../../components/button-variant.testutil';
import { isExecute, isRunRead, loseAnswers } from '../../components/lost-answer.testutil';
import { type Harness, startHarness } from '../../test/harness';
import { ActionsEditor } from './components/ActionsEditor';
import { RunbookActionsPanel } from './components/RunbookActionsPanel';
import type { ActionConfig, RunbookActionsOptions } from './options';

const ADMIN = { login: 'gina', role: 'Admin' } as const;
const SLOW = { timeout: 20_000 };

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ user: ADMIN });
});
afterEach(() => {
  h.setUser(ADMIN);
  h.proxy.setSettings({ jsonData: { serviceUrl: h.serviceUrl } });
  setBackendSrv(h.backendSrv);
});
afterAll(async () => {
  await h?.stop();
});

/**
 * The dashboard's variables as Grafana's template service interpolates them for a panel: defined ones
 * replaced (`$x`, `${x}`, `[[x]]`), unknown ones left as written. The panel gets it as `replaceVariables`.
 */
function dashboardVariables(vars: Record<string, string>): PanelProps['replaceVariables'] {
  return (text) =>
    text.replace(/\$(\w+)|\$\{(\w+)\}|\[\[(\w+)\]\]/g, (whole, a, b, c) => vars[a ?? b ?? c] ?? whole);
}

function panelProps(
  actions: ActionConfig[],
  vars: Record<string, string> = {},
): PanelProps<RunbookActionsOptions> {
  const timeRange = getDefaultTimeRange();
  return {
    id: 7,
    title: 'Agent actions',
    data: { state: LoadingState.Done, series: [], timeRange },
    timeRange,
    timeZone: 'browser',
    options: { actions },
    transparent: false,
    width: 600,
    height: 400,
    fieldConfig: { defaults: {}, overrides: [] },
    renderCounter: 0,
    eventBus: new EventBusSrv(),
    onOptionsChange: () => {},
    onFieldConfigChange: () => {},
    replaceVariables: dashboardVariables(vars),
    onChangeTimeRange: () => {},
  };
}

const INSPECT: ActionConfig = {
  label: 'Inspect latency',
  runbookId: 'inspect-latency',
  mode: 'diagnose',
  inputs: [{ field: 'service', value: '$service' }],
};
const SCALE: ActionConfig = {
  label: 'Scale agent',
  runbookId: 'scale-agent',
  mode: 'execute',
  inputs: [
    { field: 'agent', value: '$agent' },
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's ${name} variable syntax, not a JS template
    { field: 'replicas', value: '${replicas}' },
  ],
};
const VARS = { service: 'checkout', agent: 'generation-agent', replicas: '3' };

const usable = (button: HTMLElement) =>
  !button.hasAttribute('disabled') && button.getAttribute('aria-disabled') !== 'true';

/** The list item of the action whose button is `label`. */
async function item(label: string) {
  const button = await screen.findByRole('button', { name: label }, SLOW);
  // Grafana's Button with a tooltip is disabled by aria-disabled (it stays focusable to show why).
  await waitFor(() => expect(usable(button)).toBe(true), SLOW);
  const li = button.closest('li');
  if (!li) throw new Error(`no list item around ${label}`);
  return { button, li: li as HTMLElement };
}

/** A TCP port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

describe('Runbook actions panel (real service through the Grafana proxy double)', () => {
  it('renders a button per configured action with the last run of its runbook', async () => {
    const before = await h.service('POST', '/runbooks/inspect-latency/diagnose', { input: {} });
    expect(before.status).toBe(200);
    const lastId = before.body.run.id as string;

    render(<RunbookActionsPanel {...panelProps([INSPECT, SCALE], VARS)} />);
    const list = await screen.findByRole('list', { name: 'Runbook actions' }, SLOW);
    expect(within(list).getAllByRole('listitem')).toHaveLength(2);

    const inspect = await item('Inspect latency');
    await waitFor(() => expect(within(inspect.li).getByText('Last diagnose:')).toBeInTheDocument(), SLOW);
    expect(within(inspect.li).getByText('succeeded')).toBeInTheDocument();
    expect(within(inspect.li).getByRole('link', { name: new RegExp(lastId) })).toHaveAttribute(
      'href',
      `/a/aiwebtest-runbooks-app/runs/${lastId}`,
    );
    const scale = await item('Scale agent');
    expect(within(scale.li).getByText('No run yet')).toBeInTheDocument();
  });

  it('diagnose: runs with the dashboard variables resolved at click time and shows the outcome', async () => {
    const user = userEvent.setup();
    const vars = { ...VARS };
    render(<RunbookActionsPanel {...panelProps([INSPECT], vars)} />);
    const { button, li } = await item('Inspect latency');
    // The variable changes after the panel rendered: the click reads the value it has now.
    vars.service = 'payments';
    const runsBefore = (await h.runs()).length;
    await user.click(button);

    const outcome = within(li).getByRole('status', { name: 'Outcome of Inspect latency' });
    await waitFor(() => expect(within(outcome).getByText('latency inspected')).toBeInTheDocument(), SLOW);
    expect(
      within(outcome).getByText('payments p95 latency is 610 ms (objective 300 ms)'),
    ).toBeInTheDocument();

    const runs = await h.runs();
    expect(runs).toHaveLength(runsBefore + 1);
    const run = runs[0];
    expect(run).toMatchObject({
      runbookId: 'inspect-latency',
      mode: 'diagnose',
      status: 'succeeded',
      input: { service: 'payments' },
      requestedBy: 'gina',
    });
    expect(run?.context).toMatchObject({
      source: 'grafana-panel',
      panel: { id: 7, title: 'Agent actions' },
      variables: { service: 'payments' },
    });
    expect(within(outcome).getByRole('link', { name: new RegExp(run?.id ?? '-') })).toHaveAttribute(
      'href',
      `/a/aiwebtest-runbooks-app/runs/${run?.id}`,
    );
    // The last run shown is refreshed to the run just made.
    await waitFor(
      () =>
        expect(
          within(li)
            .getAllByRole('link')
            .some((a) => a.getAttribute('href')?.endsWith(run?.id ?? '-') && !outcome.contains(a)),
        ).toBe(true),
      SLOW,
    );
  });

  it('plan: shows the plan diff and applies nothing', async () => {
    const user = userEvent.setup();
    render(<RunbookActionsPanel {...panelProps([{ ...SCALE, label: 'Plan scale', mode: 'plan' }], VARS)} />);
    const { button, li } = await item('Plan scale');
    await user.click(button);
    const outcome = within(li).getByRole('status');
    await waitFor(
      () => expect(within(outcome).getByText('Plan only: nothing was applied.')).toBeInTheDocument(),
      SLOW,
    );
    const changes = within(outcome).getByRole('table');
    expect(within(changes).getByText('replicas')).toBeInTheDocument();
    expect(within(changes).getByText('0')).toBeInTheDocument();
    expect(within(changes).getByText('3')).toBeInTheDocument();
    expect(h.world().agents['generation-agent']).toEqual({ replicas: 0, debug: false });
    expect((await h.runs()).filter((r) => r.mode === 'execute')).toEqual([]);
  });

  it('execute: shows the plan for confirmation, applies nothing until confirmed, then applies', async () => {
    const user = userEvent.setup();
    render(<RunbookActionsPanel {...panelProps([SCALE], VARS)} />);
    const { button, li } = await item('Scale agent');

    // First time: the plan is shown and dismissed. Nothing is executed.
    await user.click(button);
    let dialog = await screen.findByRole('dialog', {}, SLOW);
    expect(within(dialog).getByText('Execute Scale an agent?')).toBeInTheDocument();
    expect(within(dialog).getByText('scale generation-agent from 0 to 3 replicas')).toBeInTheDocument();
    // Nothing in this plan is destructive: the confirm button is the primary one, not the red one.
    expect(buttonVariant(within(dialog).getByRole('button', { name: 'Execute' }))).toBe('primary');
    await user.click(within(dialog).getByRole('button', { name: 'Cancel' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).not.toBeInTheDocument(), SLOW);
    expect(within(li).getByText('Not executed: the plan was not confirmed.')).toBeInTheDocument();
    expect(h.world().agents['generation-agent']).toEqual({ replicas: 0, debug: false });
    let runs = await h.runs();
    expect(runs.filter((r) => r.runbookId === 'scale-agent' && r.mode === 'execute')).toEqual([]);
    expect(runs[0]).toMatchObject({ runbookId: 'scale-agent', mode: 'plan', status: 'succeeded' });

    // Second time: confirmed with the keyboard. The plan is applied by an execute-mode run.
    await user.click(button);
    dialog = await screen.findByRole('dialog', {}, SLOW);
    expect(h.world().agents['generation-agent']).toEqual({ replicas: 0, debug: false });
    within(dialog).getByRole('button', { name: 'Execute' }).focus();
    await user.keyboard('{Enter}');

    await waitFor(
      () => expect(h.world().agents['generation-agent']).toEqual({ replicas: 3, debug: false }),
      SLOW,
    );
    runs = await h.runs();
    const executions = runs.filter((r) => r.runbookId === 'scale-agent' && r.mode === 'execute');
    expect(executions).toHaveLength(1);
    const executed = await h.waitForRun(executions[0]?.id ?? '-');
    expect(executed.run).toMatchObject({
      status: 'succeeded',
      input: { agent: 'generation-agent', replicas: 3 },
      requestedBy: 'gina',
    });
    expect(executed.run.idempotencyKey).toMatch(/^grafana-panel-[0-9a-f]{32}$/);
    const outcome = within(li).getByRole('status');
    await waitFor(() => expect(within(outcome).getByText('succeeded')).toBeInTheDocument(), SLOW);
    expect(within(outcome).getByRole('link', { name: new RegExp(executed.run.id) })).toBeInTheDocument();

    // Planned again now, nothing is left to change: no confirmation is offered.
    await user.click(button);
    await waitFor(
      () =>
        expect(
          within(li).getByText('The plan changes nothing: there is nothing to execute.'),
        ).toBeInTheDocument(),
      SLOW,
    );
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument();
  });

  it('execute after a lost answer: trying the same plan again gets the same run back, never a second run', async () => {
    const user = userEvent.setup();
    const scale: ActionConfig = { ...SCALE, label: 'Scale requirements' };
    render(<RunbookActionsPanel {...panelProps([scale], { agent: 'requirements-agent', replicas: '5' })} />);
    const { button, li } = await item('Scale requirements');
    const executions = async () =>
      (await h.runs()).filter(
        (r) => r.mode === 'execute' && (r.input as { agent?: string }).agent === 'requirements-agent',
      );
    expect(await executions()).toHaveLength(0);

    // The service queues the run, but Grafana's proxy answers 504: the user sees a failure.
    const restore = loseAnswers(h.backendSrv, { match: isExecute });
    try {
      await user.click(button);
      const dialog = await screen.findByRole('dialog', {}, SLOW);
      await user.click(within(dialog).getByRole('button', { name: 'Execute' }));
      expect(await within(li).findByText('UNREACHABLE (504)', {}, SLOW)).toBeInTheDocument();
    } finally {
      restore();
    }
    const queued = await executions();
    expect(queued).toHaveLength(1);

    // Trying again confirms the same plan and sends the same key: the service answers with its run.
    await user.click(within(li).getByRole('button', { name: 'Try again…' }));
    const again = await screen.findByRole('dialog', {}, SLOW);
    expect(within(again).getByText('scale requirements-agent from 2 to 5 replicas')).toBeInTheDocument();
    await user.click(within(again).getByRole('button', { name: 'Execute' }));
    const outcome = within(li).getByRole('status');
    expect(await within(outcome).findByText('Already started:', {}, SLOW)).toBeInTheDocument();
    expect(within(outcome).getByRole('link', { name: new RegExp(queued[0]?.id ?? '-') })).toBeInTheDocument();
    expect(await executions()).toHaveLength(1);
    await h.waitForRun(queued[0]?.id ?? '-');
    expect(h.world().agents['requirements-agent']).toEqual({ replicas: 5, debug: false });
  });

  it('execute: a failed status read keeps the started run and its link, and says the status is unknown', async () => {
    const user = userEvent.setup();
    const scale: ActionConfig = { ...SCALE, label: 'Scale requirements' };
    render(<RunbookActionsPanel {...panelProps([scale], { agent: 'requirements-agent', replicas: '6' })} />);
    const { button, li } = await item('Scale requirements');
    await user.click(button);
    const dialog = await screen.findByRole('dialog', {}, SLOW);
    // The execution is started; reading it back fails (Grafana's proxy times out on the status read).
    const restore = loseAnswers(h.backendSrv, { match: isRunRead, status: 502 });
    try {
      await user.click(within(dialog).getByRole('button', { name: 'Execute' }));
      const outcome = within(li).getByRole('status');
      expect(await within(outcome).findByText(/Could not refresh status/, {}, SLOW)).toBeInTheDocument();
      expect(within(outcome).getByText('Execution started:')).toBeInTheDocument();
      const execution = (await h.runs()).find(
        (r) =>
          r.mode === 'execute' &&
          (r.input as { agent?: string }).agent === 'requirements-agent' &&
          r.input &&
          (r.input as { replicas?: number }).replicas === 6,
      );
      expect(execution).toBeDefined();
      expect(
        within(outcome).getByRole('link', { name: new RegExp(execution?.id ?? '-') }),
      ).toBeInTheDocument();
      expect(within(outcome).queryByRole('alert')).not.toBeInTheDocument();
      await h.waitForRun(execution?.id ?? '-');
    } finally {
      restore();
    }
  });

  it('execute of a high-risk runbook: after confirmation the run waits for approval and applies nothing', async () => {
    const user = userEvent.setup();
    const failover: ActionConfig = {
      label: 'Fail over',
      runbookId: 'failover-database',
      mode: 'execute',
      inputs: [{ field: 'reason', value: 'incident $incident' }],
    };
    render(<RunbookActionsPanel {...panelProps([failover], { incident: 'INC-7' })} />);
    const { button, li } = await item('Fail over');
    await user.click(button);
    const dialog = await screen.findByRole('dialog', {}, SLOW);
    expect(within(dialog).getByText('promote db-b to primary')).toBeInTheDocument();
    await user.click(within(dialog).getByRole('button', { name: 'Execute' }));
    const outcome = within(li).getByRole('status');
    await waitFor(() => expect(within(outcome).getByText('waiting for approval')).toBeInTheDocument(), SLOW);
    const execution = (await h.runs()).find(
      (r) => r.runbookId === 'failover-database' && r.mode === 'execute',
    );
    expect(execution).toMatchObject({ status: 'waiting_approval', input: { reason: 'incident INC-7' } });
    expect(h.world().database).toEqual({ primary: 'db-a', standby: 'db-b' });
  });

  it('shows what is wrong and starts nothing when a dashboard variable is missing', async () => {
    const user = userEvent.setup();
    render(<RunbookActionsPanel {...panelProps([SCALE], { replicas: '2' })} />);
    const { button, li } = await item('Scale agent');
    const before = (await h.runs()).length;
    await user.click(button);
    expect(await within(li).findByText('agent: the dashboard has no variable $agent')).toBeInTheDocument();
    expect(await h.runs()).toHaveLength(before);
  });

  it("shows the service's or Grafana's error code and message when a run is refused", async () => {
    const user = userEvent.setup();
    // A Viewer may diagnose but not plan: Grafana's proxy route for POST /runs requires Editor.
    h.setUser({ login: 'vic', role: 'Viewer' });
    render(<RunbookActionsPanel {...panelProps([SCALE], VARS)} />);
    const { button, li } = await item('Scale agent');
    await user.click(button);
    expect(await within(li).findByText('GRAFANA_FORBIDDEN (403)', {}, SLOW)).toBeInTheDocument();
    expect(screen.queryByRole('dialog')).not.toBeInTheDocument();

    // The service's own refusal: input out of the runbook's range.
    h.setUser(ADMIN);
    render(
      <RunbookActionsPanel
        {...panelProps([{ ...SCALE, label: 'Scale big' }], { ...VARS, replicas: '99' })}
      />,
    );
    const big = await item('Scale big');
    await user.click(big.button);
    const outcome = within(big.li).getByRole('status');
    await waitFor(() => expect(outcome).toHaveTextContent(/\(400\)/), SLOW);
    expect(outcome).toHaveTextContent(/replicas/);
    expect(h.world().agents['generation-agent']?.replicas).toBe(3);
  });

  it('shows an error state when the service is unreachable, and the editor falls back to text fields', async () => {
    h.proxy.setSettings({ jsonData: { serviceUrl: `http://127.0.0.1:${await closedPort()}` } });
    render(<RunbookActionsPanel {...panelProps([INSPECT, SCALE], VARS)} />);
    expect(await screen.findByText('The runbook service did not answer', {}, SLOW)).toBeInTheDocument();
    expect(
      screen.getByText(/^UNREACHABLE \(502\): The runbook service could not be reached/),
    ).toBeInTheDocument();
    expect(usable(screen.getByRole('button', { name: 'Inspect latency' }))).toBe(false);
    expect(usable(screen.getByRole('button', { name: 'Scale agent' }))).toBe(false);

    const editor = render(<ActionsEditor {...editorProps([SCALE])} />);
    expect(await editor.findByText('Runbooks could not be listed', {}, SLOW)).toBeInTheDocument();
    expect(editor.getByDisplayValue('scale-agent')).toBeInTheDocument();
    expect(editor.getByLabelText('Input value 1')).toHaveValue('$agent');

    // Back again: "Try again" reads the runbooks and the panel's buttons work.
    h.proxy.setSettings({ jsonData: { serviceUrl: h.serviceUrl } });
    await userEvent.setup().click(screen.getByRole('button', { name: 'Try again' }));
    await waitFor(
      () => expect(usable(screen.getByRole('button', { name: 'Inspect latency' }))).toBe(true),
      SLOW,
    );
    expect(screen.queryByText('The runbook service did not answer')).not.toBeInTheDocument();
  });

  it("editor: offers the service's runbooks and one value per input field of the chosen runbook", async () => {
    let saved: ActionConfig[] | undefined;
    const editor = render(
      <ActionsEditor
        {...editorProps([SCALE], (v) => {
          saved = v;
        })}
      />,
    );
    // The runbook chooser shows the chosen runbook's title.
    expect(await editor.findByDisplayValue('Scale an agent', {}, SLOW)).toBeInTheDocument();
    expect(editor.getByLabelText('Runbook')).toHaveValue('Scale an agent');
    expect(editor.getByLabelText(/^Input: agent/)).toHaveValue('$agent');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's ${name} variable syntax, not a JS template
    expect(editor.getByLabelText(/^Input: replicas/)).toHaveValue('${replicas}');
    expect(editor.getByLabelText(/^Input: debug/)).toHaveValue('');
    const user = userEvent.setup();
    await user.type(editor.getByLabelText(/^Input: debug/), 't');
    expect(saved?.[0]?.inputs).toContainEqual({ field: 'debug', value: 't' });
  });
});

function editorProps(
  value: ActionConfig[],
  onChange: (v: ActionConfig[] | undefined) => void = () => {},
): StandardEditorProps<ActionConfig[]> {
  return {
    value,
    onChange,
    id: 'actions',
    item: { id: 'actions', name: 'Actions' },
    context: { data: [] },
  };
}
