/**
 * The nested "Runbook actions" panel plugin, built, in Chromium: the host page plays a Grafana dashboard
 * (`/d/<uid>`), imports dist/panels/runbook-actions/module.js with SystemJS from where Grafana serves it,
 * checks that its `plugin` export is a PanelPlugin and renders the panel component with saved options and
 * dashboard variables (a TemplateSrv double registered with setTemplateSrv). Its buttons drive the real
 * service through the Grafana proxy double; what happened is read back from the service's API.
 */
import { join } from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ARTIFACTS,
  type BrowserFixture,
  computedColor,
  openHostPage,
  PLUGIN_ID,
  type RunDetail,
  startFixture,
  watch,
} from './fixture.ts';
import type { PanelSpec } from './host/state.ts';

const GRACE = { login: 'grace', role: 'Editor', userId: 7 } as const;
const WAIT = { timeout: 20_000 };
const TIME_RANGE = { from: '2026-11-28T03:00:00.000Z', to: '2026-11-28T04:00:00.000Z' };

let f: BrowserFixture;
/** Start-up (service, page server, Chromium) may take a minute or more on a busy machine. */
const START_UP_MS = 150_000;

beforeAll(async () => {
  f = await startFixture(GRACE);
}, START_UP_MS);
afterAll(async () => {
  await f?.close();
});

/** Opens a dashboard page and renders `spec` in it. */
async function openPanel(page: Page, spec: PanelSpec) {
  const modules: string[] = [];
  page.on('response', (response) => {
    const path = new URL(response.url()).pathname;
    if (path.endsWith('/module.js')) modules.push(`${response.status()} ${path}`);
  });
  await openHostPage(page, f.host.url, '/d/agents', 'ready');
  await page.evaluate((s) => {
    if (!window.__host.dashboard) throw new Error('the host page is no dashboard');
    return window.__host.dashboard.renderPanel(s);
  }, spec);
  // The panel's own module.js, from the app's public path, as Grafana serves a nested plugin.
  expect(modules).toContain(`200 /public/plugins/${PLUGIN_ID}/panels/runbook-actions/module.js`);
  return page.getByRole('list', { name: 'Runbook actions' });
}

/**
 * The background colour of the dialog's confirm button with the pointer away from it. Grafana's ConfirmModal
 * focuses the confirm button, and a focused Button has its variant's `shade` colour: this fails if it is not
 * focused.
 */
async function confirmButtonBackground(page: Page, dialog: Locator) {
  await page.mouse.move(1, 1);
  return dialog.getByRole('button', { name: 'Execute', exact: true }).evaluate((button) => {
    if (document.activeElement !== button) throw new Error('the confirm button has not got the focus');
    return getComputedStyle(button).backgroundColor;
  });
}

const executions = async (runbookId: string) =>
  (await f.runs(`&runbookId=${runbookId}`)).filter((r) => r.mode === 'execute');

describe('the Runbook actions panel plugin (dist/panels/runbook-actions/module.js) in Chromium', () => {
  it('executes an action with inputs from dashboard variables only after the plan was shown and confirmed', async () => {
    const page = await f.browser.context.newPage();
    const problems = watch(page);
    const list = await openPanel(page, {
      id: 12,
      title: 'Agent actions',
      timeRange: TIME_RANGE,
      variables: [
        { name: 'agent', value: 'generation-agent' },
        { name: 'replicas', value: '3' },
        { name: 'service', value: 'checkout-api' },
      ],
      options: {
        actions: [
          {
            label: 'Scale the agent',
            runbookId: 'scale-agent',
            mode: 'execute',
            inputs: [
              { field: 'agent', value: '$agent' },
              // Grafana's `${name}` syntax, meant literally (not a JS template).
              // biome-ignore lint/suspicious/noTemplateCurlyInString: a Grafana variable reference
              { field: 'replicas', value: '${replicas}' },
            ],
          },
          {
            label: 'Latency',
            runbookId: 'inspect-latency',
            mode: 'diagnose',
            inputs: [{ field: 'service', value: '[[service]]' }],
          },
        ],
      },
    });
    // Both configured actions, each with its runbook's last run (none yet).
    await list.getByRole('button', { name: 'Scale the agent' }).waitFor(WAIT);
    await expect.poll(() => list.getByRole('listitem').count(), WAIT).toBe(2);
    await expect.poll(() => list.getByText('No run yet').count(), WAIT).toBe(2);
    await page.waitForFunction(
      () =>
        !document
          .querySelector('[aria-label="Runbook actions"]')
          ?.getAttribute('aria-busy')
          ?.includes('true'),
    );

    await list.getByRole('button', { name: 'Scale the agent' }).click();
    // The plan first: a plan-mode run with the variables resolved, and nothing applied or executed.
    const confirm = page.getByRole('dialog', { name: 'Execute Scale an agent?' });
    await confirm.getByRole('table', { name: 'Changes planned by step scale' }).waitFor(WAIT);
    expect(f.readWorld()).toBeUndefined();
    expect(await executions('scale-agent')).toEqual([]);
    const plans = await f.runs('&runbookId=scale-agent');
    expect(plans.map((r) => r.mode)).toEqual(['plan']);
    const plan = await f.service.get<RunDetail>(`runs/${plans[0]?.id}`);
    expect(plan.run.input).toEqual({ agent: 'generation-agent', replicas: 3, debug: false });
    // A plan that destroys nothing is confirmed with the primary button.
    const colors = await page.evaluate(() => window.__host.themeColors?.('dark'));
    if (!colors) throw new Error('the host page gives no theme colours');
    const primary = await computedColor(page, colors.primaryShade);
    await expect.poll(() => confirmButtonBackground(page, confirm), WAIT).toBe(primary);

    await confirm.getByRole('button', { name: 'Execute', exact: true }).click();
    const outcome = page.getByRole('status', { name: 'Outcome of Scale the agent' });
    await outcome.getByText('Execution started:').waitFor(WAIT);
    await outcome.getByText('succeeded', { exact: true }).waitFor(WAIT);
    // The last run shown next to the button is the execution.
    const item = list
      .getByRole('listitem')
      .filter({ has: page.getByRole('button', { name: 'Scale the agent' }) });
    await item.getByText('Last execute:').waitFor(WAIT);

    const [execution] = await executions('scale-agent');
    if (!execution) throw new Error('no execution');
    const done = await f.waitForRunStatus(execution.id, 'succeeded');
    expect(done.run).toMatchObject({
      runbookId: 'scale-agent',
      mode: 'execute',
      requestedBy: 'grace',
      input: { agent: 'generation-agent', replicas: 3, debug: false },
    });
    expect(done.run.context).toMatchObject({
      source: 'grafana-panel',
      panel: { id: 12, title: 'Agent actions' },
      timeRange: TIME_RANGE,
      variables: { agent: 'generation-agent', replicas: '3' },
    });
    expect(f.readWorld()?.agents['generation-agent']).toEqual({ replicas: 3, debug: false });

    // The other action: a diagnosis with the variable in the `[[…]]` syntax, its finding inline.
    await list.getByRole('button', { name: 'Latency' }).click();
    await page
      .getByRole('status', { name: 'Outcome of Latency' })
      .getByText('checkout-api p95 latency is 610 ms (objective 300 ms)')
      .waitFor(WAIT);
    await page.screenshot({ path: join(ARTIFACTS, 'panel.png'), fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  });

  it('a destructive plan is confirmed with the destructive button, applies nothing before, and waits for an admin', async () => {
    const page = await f.browser.context.newPage();
    const problems = watch(page);
    const list = await openPanel(page, {
      id: 13,
      title: 'Queue actions',
      timeRange: TIME_RANGE,
      variables: [{ name: 'queue', value: 'requirements-jobs' }],
      options: {
        actions: [
          {
            label: 'Purge the queue',
            runbookId: 'purge-queue',
            mode: 'execute',
            inputs: [
              { field: 'queue', value: '$queue' },
              { field: 'reason', value: 'jobs stuck since 03:00' },
            ],
          },
        ],
      },
    });
    const button = list.getByRole('button', { name: 'Purge the queue' });
    await button.waitFor(WAIT);
    await expect.poll(() => button.isEnabled(), WAIT).toBe(true);
    const queuesBefore = f.readWorld()?.queues;
    await button.click();

    const confirm = page.getByRole('dialog', { name: 'Execute Purge a work queue?' });
    await confirm.getByText('destructive', { exact: true }).waitFor(WAIT);
    await confirm.getByText('drop 7 jobs from requirements-jobs (jobs stuck since 03:00)').waitFor(WAIT);
    const colors = await page.evaluate(() => window.__host.themeColors?.('dark'));
    if (!colors) throw new Error('the host page gives no theme colours');
    // Polled: the button's colour eases in (a CSS transition).
    const destructive = await computedColor(page, colors.errorShade);
    await expect.poll(() => confirmButtonBackground(page, confirm), WAIT).toBe(destructive);
    expect(destructive).not.toBe(await computedColor(page, colors.primaryShade));
    // Nothing applied, nothing executed while the plan waits for the click.
    expect(f.readWorld()?.queues).toEqual(queuesBefore);
    expect(await executions('purge-queue')).toEqual([]);

    await confirm.getByRole('button', { name: 'Execute', exact: true }).click();
    const outcome = page.getByRole('status', { name: 'Outcome of Purge the queue' });
    await outcome.getByText('waiting for approval').waitFor(WAIT);
    const [execution] = await executions('purge-queue');
    if (!execution) throw new Error('no execution');
    const waiting = await f.waitForRunStatus(execution.id, 'waiting_approval');
    expect(waiting.run).toMatchObject({ requestedBy: 'grace', input: { queue: 'requirements-jobs' } });
    expect(waiting.approvals?.map((a) => a.status)).toEqual(['pending']);
    expect(f.readWorld()?.queues).toEqual(queuesBefore);

    // Only an admin's approval applies it.
    await f.service.post(`runs/${execution.id}/approve`, { reason: 'the browser test approves' });
    await f.waitForRunStatus(execution.id, 'succeeded');
    expect(f.readWorld()?.queues?.['requirements-jobs']).toEqual({ depth: 0 });
    expect(problems).toEqual([]);
    await page.close();
  });
});
