// The "Runbooks…" links: their configs as the module registers them against plugin.json (Grafana's own
// rules), and the modal they open, driven against a real runbook service through the Grafana proxy double.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type PluginExtensionAddedLinkConfig,
  type PluginExtensionEventHelpers,
  type PluginExtensionOpenModalOptions,
  PluginExtensionPoints,
} from '@grafana/data';
import { render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import React from 'react';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { buttonVariant } from '../components/button-variant.testutil';
import { isExecute, loseAnswers } from '../components/lost-answer.testutil';
import { plugin } from '../module';
import { type Harness, startHarness } from '../test/harness';
import { alertInstanceLink as alertLink, LINK_TITLE, panelMenuLink as panelLink } from './links';

const PLUGIN_ID = 'aiwebtest-runbooks-app';
const srcDir = join(dirname(fileURLToPath(import.meta.url)), '..');

const AddedLink = z.strictObject({
  targets: z.array(z.string()).min(1),
  title: z.string().min(1),
  description: z.string().min(1),
});
type AddedLink = z.infer<typeof AddedLink>;
const pluginJsonLinks = (): AddedLink[] =>
  z
    .object({ extensions: z.object({ addedLinks: z.array(AddedLink) }) })
    .parse(JSON.parse(readFileSync(join(srcDir, 'plugin.json'), 'utf8'))).extensions.addedLinks;

type LinkConfig = PluginExtensionAddedLinkConfig<object>;
// Each link's context type differs; the checks here read them alike.
const panelMenuLink = panelLink as unknown as LinkConfig;
const alertInstanceLink = alertLink as unknown as LinkConfig;
const targetsOf = (config: LinkConfig) => [config.targets].flat();
const CORE_POINTS = new Set<string>(Object.values(PluginExtensionPoints));

/**
 * Why Grafana would refuse or warn about a link config against the plugin.json declarations, following its
 * registry (AddedLinksRegistry, MetaValidator, isAddedLinkMetaInfoMissing): a title and a description,
 * `configure` a function, a path under /a/<id>/ or an onClick, a declaration found by title with `find`
 * (the FIRST entry of that title) listing every target, and no entry of that title with another description.
 */
function linkProblems(configs: readonly LinkConfig[], declared: readonly AddedLink[]): string[] {
  const problems: string[] = [];
  for (const config of configs) {
    const name = `${config.title} → ${targetsOf(config).join(', ')}`;
    if (!config.title) problems.push(`${name}: no title`);
    if (!config.description) problems.push(`${name}: no description`);
    if (config.configure !== undefined && typeof config.configure !== 'function')
      problems.push(`${name}: configure is not a function`);
    if (!config.path && !config.onClick) problems.push(`${name}: neither path nor onClick`);
    if (config.path !== undefined && !config.path.startsWith(`/a/${PLUGIN_ID}/`))
      problems.push(`${name}: path ${config.path} is not under /a/${PLUGIN_ID}/`);
    for (const target of targetsOf(config)) {
      if (!CORE_POINTS.has(target)) problems.push(`${name}: ${target} is not a Grafana extension point`);
    }
    const first = declared.find((d) => d.title === config.title);
    if (!first) {
      problems.push(`${name}: not declared in plugin.json extensions.addedLinks`);
      continue;
    }
    const missing = targetsOf(config).filter((t) => !first.targets.includes(t));
    if (missing.length > 0)
      problems.push(`${name}: the first declaration titled "${config.title}" lacks ${missing.join(', ')}`);
    if (declared.some((d) => d.title === config.title && d.description !== config.description))
      problems.push(`${name}: a declaration titled "${config.title}" has another description`);
  }
  for (const d of declared) {
    for (const target of d.targets) {
      if (!configs.some((c) => c.title === d.title && targetsOf(c).includes(target)))
        problems.push(`plugin.json declares "${d.title}" → ${target}, which no addLink adds`);
    }
  }
  return problems;
}

const registered = () => plugin.addedLinkConfigs as LinkConfig[];

describe('the link configs against plugin.json', () => {
  it('the module adds exactly the two links, each declared with its title, targets and description', () => {
    expect(registered()).toEqual([panelMenuLink, alertInstanceLink]);
    expect(registered().map((c) => [c.title, targetsOf(c)])).toEqual([
      [LINK_TITLE, ['grafana/dashboard/panel/menu']],
      [LINK_TITLE, ['grafana/alerting/instance/action']],
    ]);
    expect(linkProblems(registered(), pluginJsonLinks())).toEqual([]);
  });

  // The rule is only worth something if it fails on broken declarations.
  it.each<[string, (links: AddedLink[]) => AddedLink[], string]>([
    [
      // What plugin.json first had: Grafana finds the first "Runbooks…" entry for both links.
      'one entry per target under the same title',
      (links) => (links[0]?.targets ?? []).map((t) => ({ ...(links[0] as AddedLink), targets: [t] })),
      'the first declaration titled "Runbooks…" lacks grafana/alerting/instance/action',
    ],
    ['a missing declaration', () => [], 'not declared in plugin.json'],
    [
      'another description',
      (links) => links.map((l) => ({ ...l, description: 'Other' })),
      'has another description',
    ],
    [
      'a target no link adds',
      (links) =>
        links.map((l) => ({ ...l, targets: [...l.targets, PluginExtensionPoints.ExploreToolbarAction] })),
      'which no addLink adds',
    ],
  ])('the rule rejects %s', (_name, change, problem) => {
    const problems = linkProblems(registered(), change(structuredClone(pluginJsonLinks())));
    expect(
      problems.some((p) => p.includes(problem)),
      problems.join('\n'),
    ).toBe(true);
  });

  it('the rule rejects a path outside the app and a link that does nothing', () => {
    const broken: LinkConfig[] = [
      { ...panelMenuLink, path: '/d/agents' } as LinkConfig,
      { ...alertInstanceLink, onClick: undefined } as LinkConfig,
    ];
    expect(linkProblems(broken, pluginJsonLinks())).toEqual([
      `${LINK_TITLE} → grafana/dashboard/panel/menu: path /d/agents is not under /a/${PLUGIN_ID}/`,
      `${LINK_TITLE} → grafana/alerting/instance/action: neither path nor onClick`,
    ]);
  });

  const panel = {
    pluginId: 'timeseries',
    id: 4,
    title: 'Agent replicas',
    timeRange: { from: 'now-1h', to: 'now' },
    timeZone: 'utc',
    dashboard: { uid: 'agents', title: 'AI-Web-Test Agents', tags: [] as string[] },
    targets: [{ refId: 'A', expr: 'ALERTS{alertname="AgentReplicasLow"}' }],
  };
  it.each<[string, LinkConfig, object | undefined, boolean]>([
    ['a panel with matchers', panelMenuLink, panel, true],
    [
      'a panel with labelled results only',
      panelMenuLink,
      { ...panel, targets: [], data: { series: [{ fields: [{ name: 'v', labels: { agent: 'a' } }] }] } },
      true,
    ],
    [
      'a panel on a tagged dashboard',
      panelMenuLink,
      { ...panel, targets: [], dashboard: { ...panel.dashboard, tags: ['agents'] } },
      true,
    ],
    [
      'a panel with nothing to match',
      panelMenuLink,
      { ...panel, targets: [{ refId: 'A', expr: 'sum(up)' }] },
      false,
    ],
    ['no context', panelMenuLink, undefined, false],
    [
      'an alert instance',
      alertInstanceLink,
      { instance: { labels: { alertname: 'AgentReplicasLow' } } },
      true,
    ],
    ['an alert without labels', alertInstanceLink, { instance: { labels: {} } }, false],
    ['no alert context', alertInstanceLink, undefined, false],
  ])('configure answers synchronously for %s', (_name, link, context, shown) => {
    const answer = link.configure?.(context as never);
    // Grafana refuses a Promise from configure: the answer must be there now.
    expect(answer instanceof Promise || typeof (answer as { then?: unknown })?.then === 'function').toBe(
      false,
    );
    expect(answer).toEqual(shown ? {} : undefined);
  });
});

// ---------------------------------------------------------------------------------------------------------
// The modal, opened through the links' onClick as Grafana calls it, against the real service.

const ADMIN = { login: 'gina', role: 'Admin' } as const;
const SLOW = { timeout: 20_000 };

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ user: ADMIN });
});
afterAll(async () => {
  await h?.stop();
});

/** Clicks the link as Grafana does (onClick with the context and openModal) and renders what it opens. */
function click(link: LinkConfig, context: object, extensionPointId: string) {
  let opened: PluginExtensionOpenModalOptions | undefined;
  const helpers = {
    context,
    extensionPointId,
    openModal: (options: PluginExtensionOpenModalOptions) => {
      opened = options;
    },
    openSidebar: () => {},
    closeSidebar: () => {},
    toggleSidebar: () => {},
  } as PluginExtensionEventHelpers<object>;
  link.onClick?.(undefined, helpers);
  if (!opened) throw new Error('the link opened no modal');
  const Body = opened.body;
  render(<Body onDismiss={() => {}} />);
  return opened;
}

const itemsOf = (list: HTMLElement) =>
  within(list)
    .getAllByRole('listitem')
    .map((li) => li.textContent?.match(/scale-agent|failover-database|inspect-latency/)?.[0]);

describe('the Runbooks… modal (real service through the Grafana proxy double)', () => {
  it('from a panel: the matching runbook first, input prefilled; Diagnose inline, Plan, Run after confirmation', async () => {
    const user = userEvent.setup();
    const opened = click(
      panelMenuLink,
      {
        pluginId: 'timeseries',
        id: 4,
        title: 'Agent replicas',
        timeRange: { from: '2026-11-28T02:00:00.000Z', to: '2026-11-28T03:00:00.000Z' },
        timeZone: 'utc',
        dashboard: { uid: 'agents', title: 'AI-Web-Test Agents', tags: ['agents'] },
        // The agent comes from a template variable, resolved from the panel's scoped variables.
        targets: [{ refId: 'A', expr: 'ALERTS{alertname="AgentReplicasLow", agent="$agent"}' }],
        scopedVars: { agent: { text: 'generation-agent', value: 'generation-agent' } },
      },
      PluginExtensionPoints.DashboardPanelMenu,
    );
    expect(opened.title).toBe('Runbooks for Agent replicas');

    const matching = await screen.findByRole('list', { name: 'Matching runbooks' }, SLOW);
    expect(itemsOf(matching)).toEqual(['scale-agent']);
    expect(within(matching).getByText('— matches alertname=AgentReplicasLow')).toBeInTheDocument();
    expect(itemsOf(screen.getByRole('list', { name: 'Other runbooks' })).sort()).toEqual([
      'failover-database',
      'inspect-latency',
    ]);
    expect(
      within(screen.getByRole('list', { name: 'Context labels' })).getByText('agent=generation-agent'),
    ).toBeInTheDocument();

    // The best match is open (once its form has rendered) with its input prefilled from the label.
    expect(await within(matching).findByRole('radio', { name: 'generation-agent' }, SLOW)).toBeChecked();
    expect(within(matching).getByText('From the panel: agent = generation-agent')).toBeInTheDocument();
    await user.click(within(matching).getByRole('button', { name: 'Diagnose' }));

    const diagnosis = await within(matching).findByRole(
      'region',
      { name: 'Diagnosis of Scale an agent' },
      SLOW,
    );
    // The form and its button went away: focus is on the diagnosis' heading, still inside the modal.
    await waitFor(() =>
      expect(document.activeElement).toBe(within(diagnosis).getByRole('heading', { name: 'Diagnosis' })),
    );
    const finding = within(diagnosis).getByRole('region', { name: 'Finding of step replicas' });
    expect(within(finding).getByText('generation-agent has 0 of 2 replicas')).toBeInTheDocument();
    const diagnoseRunId =
      within(diagnosis)
        .getByRole('link', { name: /Diagnosis run/ })
        .getAttribute('href')
        ?.replace(`/a/${PLUGIN_ID}/runs/`, '') ?? '';
    const diagnosed = await h.run(diagnoseRunId);
    expect(diagnosed.run).toMatchObject({
      runbookId: 'scale-agent',
      mode: 'diagnose',
      requestedBy: 'gina',
      input: { agent: 'generation-agent', replicas: 2, debug: false },
      context: {
        source: 'grafana',
        dashboard: { uid: 'agents', title: 'AI-Web-Test Agents', url: '/d/agents' },
        panel: { id: 4, title: 'Agent replicas' },
        timeRange: { from: '2026-11-28T02:00:00.000Z', to: '2026-11-28T03:00:00.000Z' },
        labels: { alertname: 'AgentReplicasLow', agent: 'generation-agent' },
      },
    });

    await user.click(within(matching).getByRole('button', { name: 'Plan' }));
    const plan = await within(matching).findByRole('region', { name: 'Plan of Scale an agent' }, SLOW);
    await waitFor(() =>
      expect(document.activeElement).toBe(within(plan).getByRole('heading', { name: 'Plan' })),
    );
    const changes = within(plan).getByRole('table', { name: 'Changes planned by step scale' });
    expect(
      within(changes).getByRole('row', { name: /agents\/generation-agent replicas 0 2/ }),
    ).toBeInTheDocument();
    expect((await h.runs()).filter((r) => r.mode === 'execute')).toHaveLength(0);
    expect(h.world().agents['generation-agent']?.replicas).toBe(0);

    // Run asks first, showing the plan; dismissing runs nothing.
    await user.click(within(matching).getByRole('button', { name: 'Run…' }));
    const confirm = await screen.findByRole('dialog', { name: 'Run Scale an agent?' }, SLOW);
    expect(within(confirm).getByRole('row', { name: /replicas 0 2/ })).toBeInTheDocument();
    // Nothing in this plan is destructive: the confirm button is the primary one, not the red one.
    expect(buttonVariant(within(confirm).getByRole('button', { name: 'Run' }))).toBe('primary');
    await user.click(within(confirm).getByRole('button', { name: 'Cancel' }));
    await waitFor(() => expect(screen.queryByRole('dialog', { name: 'Run Scale an agent?' })).toBeNull());
    expect((await h.runs()).filter((r) => r.mode === 'execute')).toHaveLength(0);

    // Confirmed, the service queues the run but Grafana's proxy answers 504: the user sees a failure.
    const restore = loseAnswers(h.backendSrv, { match: isExecute });
    try {
      await user.click(within(matching).getByRole('button', { name: 'Run…' }));
      const lost = await screen.findByRole('dialog', { name: 'Run Scale an agent?' }, SLOW);
      await user.click(within(lost).getByRole('button', { name: 'Run' }));
      expect(await within(matching).findByText('UNREACHABLE (504)', {}, SLOW)).toBeInTheDocument();
    } finally {
      restore();
    }
    expect((await h.runs()).filter((r) => r.mode === 'execute')).toHaveLength(1);

    // Run again with the same plan: the service answers with the run it already has, no second run.
    await user.click(within(matching).getByRole('button', { name: 'Run…' }));
    const again = await screen.findByRole('dialog', { name: 'Run Scale an agent?' }, SLOW);
    await user.click(within(again).getByRole('button', { name: 'Run' }));
    const link = await within(matching).findByRole('link', { name: /Open run/ }, SLOW);
    expect(within(matching).getByText('Already started')).toBeInTheDocument();
    const runId = link.getAttribute('href')?.replace(`/a/${PLUGIN_ID}/runs/`, '') ?? '';
    expect(link.getAttribute('href')).toBe(`/a/${PLUGIN_ID}/runs/${runId}`);
    const executions = (await h.runs()).filter((r) => r.mode === 'execute');
    expect(executions.map((r) => r.id)).toEqual([runId]);
    await waitFor(() =>
      expect(document.activeElement).toBe(within(matching).getByRole('heading', { name: 'Run' })),
    );

    const done = await h.waitForRun(runId);
    expect(done.run).toMatchObject({
      mode: 'execute',
      status: 'succeeded',
      requestedBy: 'gina',
      input: { agent: 'generation-agent', replicas: 2, debug: false },
      context: { source: 'grafana', panel: { id: 4 }, labels: { agent: 'generation-agent' } },
    });
    expect(h.world().agents['generation-agent']?.replicas).toBe(2);
  });

  it("from an alert instance: matched on the alert's labels, its agent prefilled, the alert in the run context", async () => {
    const user = userEvent.setup();
    const opened = click(
      alertInstanceLink,
      {
        instance: {
          labels: { alertname: 'AgentReplicasLow', agent: 'requirements-agent', severity: 'warning' },
          annotations: { summary: 'requirements-agent is below its replicas' },
          activeAt: '2026-11-28T03:00:00Z',
          state: 'Alerting',
        },
        rule: { name: 'AgentReplicasLow' },
      },
      PluginExtensionPoints.AlertInstanceAction,
    );
    expect(opened.title).toBe('Runbooks for AgentReplicasLow');
    const matching = await screen.findByRole('list', { name: 'Matching runbooks' }, SLOW);
    expect(itemsOf(matching)).toEqual(['scale-agent']);
    expect(within(matching).getByRole('radio', { name: 'requirements-agent' })).toBeChecked();
    const replicas = within(matching).getByLabelText(/^replicas/);
    await user.clear(replicas);
    await user.type(replicas, '3');
    await user.click(within(matching).getByRole('button', { name: 'Diagnose' }));

    const diagnosis = await within(matching).findByRole(
      'region',
      { name: 'Diagnosis of Scale an agent' },
      SLOW,
    );
    expect(within(diagnosis).getByText('requirements-agent has 2 of 3 replicas')).toBeInTheDocument();
    const runId =
      within(diagnosis)
        .getByRole('link', { name: /Diagnosis run/ })
        .getAttribute('href')
        ?.replace(`/a/${PLUGIN_ID}/runs/`, '') ?? '';
    expect((await h.run(runId)).run).toMatchObject({
      mode: 'diagnose',
      input: { agent: 'requirements-agent', replicas: 3 },
      context: {
        source: 'grafana',
        alert: {
          labels: { alertname: 'AgentReplicasLow', agent: 'requirements-agent', severity: 'warning' },
          startsAt: '2026-11-28T03:00:00Z',
        },
      },
    });
  });

  it("shows the service's refusal where the action was taken: a Viewer cannot plan", async () => {
    h.setUser({ login: 'vic', role: 'Viewer' });
    try {
      const user = userEvent.setup();
      click(alertInstanceLink, { instance: { labels: { alertname: 'AgentReplicasLow' } } }, 'x');
      const matching = await screen.findByRole('list', { name: 'Matching runbooks' }, SLOW);
      // No agent label: the required choice is left to the user.
      expect(within(matching).getByRole('radio', { name: 'generation-agent' })).not.toBeChecked();
      await user.click(within(matching).getByRole('radio', { name: 'generation-agent' }));
      await user.click(within(matching).getByRole('button', { name: 'Diagnose' }));
      await within(matching).findByRole('region', { name: 'Diagnosis of Scale an agent' }, SLOW);
      const before = (await h.runs()).length;
      await user.click(within(matching).getByRole('button', { name: 'Plan' }));
      expect(await within(matching).findByText('GRAFANA_FORBIDDEN (403)', {}, SLOW)).toBeInTheDocument();
      expect(within(matching).queryByRole('region', { name: 'Plan of Scale an agent' })).toBeNull();
      expect(await h.runs()).toHaveLength(before);
    } finally {
      h.setUser(ADMIN);
    }
  });
});
