/**
 * The app's "Runbooks…" panel-menu link, built, in Chromium: the host page plays a dashboard (`/d/<uid>`),
 * takes the link from the AppPlugin's `addedLinkConfigs` (as Grafana's extension registry does), calls
 * `configure` with a panel context (query results as data frames with labels, a PromQL target with a
 * dashboard variable, the dashboard's tags, the time range) and shows the link in a panel menu; clicking it
 * calls `onClick` with an `openModal` that renders the body in Grafana's Modal, as Grafana does.
 */
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ARTIFACTS,
  type BrowserFixture,
  openHostPage,
  type RunDetail,
  startFixture,
  watch,
} from './fixture.ts';
import type { PanelMenuSpec } from './host/state.ts';

const GRACE = { login: 'grace', role: 'Editor', userId: 7 } as const;
const WAIT = { timeout: 20_000 };

let f: BrowserFixture;
/** Start-up (service, page server, Chromium) may take a minute or more on a busy machine. */
const START_UP_MS = 150_000;

beforeAll(async () => {
  f = await startFixture(GRACE);
}, START_UP_MS);
afterAll(async () => {
  await f?.close();
});

const start = Date.parse('2026-11-28T03:00:00.000Z');
const AGENT_PANEL: PanelMenuSpec = {
  id: 4,
  title: 'Agent replicas',
  dashboard: { uid: 'agents', title: 'Agents', tags: ['agents', 'queues'] },
  targets: [{ refId: 'A', expr: 'sum by (job) (agent_replicas{agent="$agent"})' }],
  series: [
    {
      name: 'replicas',
      fields: [
        { name: 'Time', values: [start, start + 60_000] },
        { name: 'Value', values: [0, 0], labels: { alertname: 'AgentReplicasLow', job: 'agents' } },
      ],
    },
  ],
  timeRange: {
    raw: { from: 'now-1h', to: 'now' },
    from: '2026-11-28T03:00:00.000Z',
    to: '2026-11-28T04:00:00.000Z',
  },
  variables: [{ name: 'agent', value: 'generation-agent' }],
};

async function showPanelMenu(page: Page, spec: PanelMenuSpec): Promise<string[]> {
  return page.evaluate((s) => {
    if (!window.__host.dashboard) throw new Error('the host page is no dashboard');
    return window.__host.dashboard.showPanelMenu(s);
  }, spec);
}

/** The runbook ids of a list of runbooks in the modal, in order. */
async function runbookIds(page: Page, list: string): Promise<string[]> {
  const texts = await page.getByRole('list', { name: list }).getByRole('listitem').allTextContents();
  return texts.map((t) => /scale-agent|failover-database|inspect-latency|purge-queue/.exec(t)?.[0] ?? t);
}

describe('the "Runbooks…" panel-menu link of the built module.js in Chromium', () => {
  it('lists the matching runbooks for the panel, diagnoses inline with the panel context, and closes on Escape', async () => {
    const page = await f.browser.context.newPage();
    const problems = watch(page);
    await openHostPage(page, f.host.url, '/d/agents', 'ready');

    expect(await showPanelMenu(page, AGENT_PANEL)).toEqual(['Runbooks…']);
    await page.getByRole('menuitem', { name: 'Runbooks…' }).click();
    const modal = page.getByRole('dialog', { name: 'Runbooks for Agent replicas' });
    await modal.waitFor(WAIT);

    // The context: labels of the data frames, the target's matcher with $agent resolved, the dashboard's tags.
    const chips = await modal
      .getByRole('list', { name: 'Context labels' })
      .getByRole('listitem')
      .allTextContents();
    expect(chips).toEqual([
      'alertname=AgentReplicasLow',
      'job=agents',
      'agent=generation-agent',
      'tag:agents',
      'tag:queues',
    ]);
    // Matching: by the alert trigger first, then by a shared dashboard tag; the rest below.
    await modal.getByRole('list', { name: 'Matching runbooks' }).waitFor(WAIT);
    expect(await runbookIds(page, 'Matching runbooks')).toEqual(['scale-agent', 'purge-queue']);
    await modal.getByText('— matches alertname=AgentReplicasLow').waitFor();
    await modal.getByText('— shares the tag queues').waitFor();
    expect((await runbookIds(page, 'Other runbooks')).sort()).toEqual([
      'failover-database',
      'inspect-latency',
    ]);

    // The best match is open, its input prefilled from the labels; the diagnosis shows inline.
    const matching = modal.getByRole('list', { name: 'Matching runbooks' });
    await matching.getByText('From the panel: agent = generation-agent').waitFor(WAIT);
    expect(await matching.getByRole('radio', { name: 'generation-agent' }).isChecked()).toBe(true);
    const before = (await f.runs()).length;
    await matching.getByRole('button', { name: 'Diagnose', exact: true }).click();
    const diagnosis = modal.getByRole('region', { name: 'Diagnosis of Scale an agent' });
    await diagnosis.getByText('generation-agent has 0 of 2 replicas').waitFor(WAIT);
    // The result's heading takes the focus, so the keyboard stays in the modal.
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Diagnosis');

    const runs = await f.runs();
    expect(runs).toHaveLength(before + 1);
    const detail = await f.service.get<RunDetail>(`runs/${runs[0]?.id}`);
    expect(detail.run).toMatchObject({
      runbookId: 'scale-agent',
      mode: 'diagnose',
      requestedBy: 'grace',
      input: { agent: 'generation-agent', replicas: 2, debug: false },
    });
    expect(detail.run.context).toMatchObject({
      source: 'grafana',
      dashboard: { uid: 'agents', title: 'Agents' },
      panel: { id: 4, title: 'Agent replicas' },
      timeRange: { from: '2026-11-28T03:00:00.000Z', to: '2026-11-28T04:00:00.000Z' },
      labels: { alertname: 'AgentReplicasLow', job: 'agents', agent: 'generation-agent' },
      variables: { agent: 'generation-agent' },
    });
    // A diagnosis changes nothing.
    expect(f.readWorld()).toBeUndefined();
    await page.screenshot({ path: join(ARTIFACTS, 'runbooks-modal.png'), fullPage: true });

    await page.keyboard.press('Escape');
    await modal.waitFor({ state: 'detached', timeout: 5_000 });
    expect(problems).toEqual([]);
    await page.close();
  });

  it('is hidden on a panel with no label and no dashboard tag (configure returns undefined)', async () => {
    const page = await f.browser.context.newPage();
    const problems = watch(page);
    await openHostPage(page, f.host.url, '/d/notes', 'ready');
    const shown = await showPanelMenu(page, {
      ...AGENT_PANEL,
      title: 'Notes',
      dashboard: { uid: 'notes', title: 'Notes', tags: [] },
      targets: [{ refId: 'A', expr: 'sum(rate(http_requests_total[5m]))' }],
      series: [{ name: 'total', fields: [{ name: 'Value', values: [1] }] }],
      variables: [],
    });
    expect(shown).toEqual([]);
    expect(await page.getByRole('menuitem').count()).toBe(0);
    expect(problems).toEqual([]);
    await page.close();
  });
});
