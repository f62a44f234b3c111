/**
 * The "Runbooks…" links the app adds to Grafana: in a dashboard panel's menu and on an alert instance. Each
 * opens a modal with the runbooks that fit what the panel or alert shows (see RunbooksModal).
 *
 * Both are declared in plugin.json `extensions.addedLinks` under ONE entry with both targets: Grafana looks
 * a link's declaration up by title with `find` (the first entry of that title) and compares targets and
 * description with it, so two entries of the same title would hide the second link.
 */
import {
  type PluginExtensionAddedLinkConfig,
  type PluginExtensionEventHelpers,
  type PluginExtensionPanelContext,
  PluginExtensionPoints,
} from '@grafana/data';
import { getTemplateSrv } from '@grafana/runtime';
import { LoadingPlaceholder } from '@grafana/ui';
import React, { Suspense } from 'react';
import {
  alertIncident,
  hasUsableContext,
  type IncidentContext,
  panelIncident,
  type VariableValue,
} from './context-labels';

// The modal (and the run views it brings) is a chunk of its own: module.js, which holds these links, is
// loaded on every dashboard, the modal only when someone clicks "Runbooks…".
const RunbooksModal = React.lazy(() => import('./RunbooksModal').then((m) => ({ default: m.RunbooksModal })));

/** The links' title, as in plugin.json. */
export const LINK_TITLE = 'Runbooks…';
/** The links' description, as in plugin.json (Grafana warns when they differ). */
export const LINK_DESCRIPTION = 'Diagnose and recover with the runbooks that match this panel or alert';

/**
 * The context of Grafana's alert-instance action: `{ instance, rule }` (Grafana's own `Alert` and
 * `CombinedRule`, not exported to plugins), read defensively by {@link alertIncident}.
 */
export interface AlertInstanceContext {
  instance?: {
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    activeAt?: string;
    state?: string;
    fingerprint?: string;
  };
  rule?: { name?: string; labels?: Record<string, string> };
}

/** Grafana's TemplateSrv, when the app runs inside Grafana (undefined in a unit test). */
function templateSrv() {
  try {
    return getTemplateSrv() ?? undefined;
  } catch {
    return undefined;
  }
}

/** The dashboard's variables with their current values, from Grafana's TemplateSrv. */
export function dashboardVariables(): Record<string, VariableValue> {
  const out: Record<string, VariableValue> = {};
  const srv = templateSrv();
  if (!srv) return out;
  try {
    for (const variable of srv.getVariables()) {
      const current = (variable as { current?: { value?: unknown } }).current?.value;
      if (typeof current === 'string') out[variable.name] = current;
      else if (Array.isArray(current) && current.every((v) => typeof v === 'string'))
        out[variable.name] = current as string[];
    }
  } catch {
    // Variables are a hint for prefilling; without them the labels still work.
  }
  return out;
}

/** The panel context as the modal uses it: labels with variables resolved through Grafana's TemplateSrv. */
export function incidentFromPanel(context: unknown): IncidentContext {
  const srv = templateSrv();
  return panelIncident(context, {
    variables: dashboardVariables(),
    ...(srv ? { replace: (text, scopedVars) => srv.replace(text, scopedVars as never) } : {}),
  });
}

/** Opens the runbooks modal for an incident. */
function open(helpers: PluginExtensionEventHelpers<object>, incident: IncidentContext, title: string) {
  helpers.openModal({
    title,
    width: '80%',
    body: ({ onDismiss }: { onDismiss?: () => void }) => (
      <Suspense fallback={<LoadingPlaceholder text="Loading runbooks…" />}>
        <RunbooksModal incident={incident} onDismiss={onDismiss} />
      </Suspense>
    ),
  });
}

/**
 * The panel-menu link. `configure` hides it (returns undefined) on a panel with nothing to match runbooks on:
 * no label in its query results or queries and no dashboard tag (a text panel, a sum over everything on an
 * untagged dashboard). It is synchronous and cheap: it reads labels already in the context and does no
 * request; the variables are resolved only when the link is clicked.
 */
export const panelMenuLink: PluginExtensionAddedLinkConfig<PluginExtensionPanelContext> = {
  title: LINK_TITLE,
  description: LINK_DESCRIPTION,
  targets: [PluginExtensionPoints.DashboardPanelMenu],
  icon: 'book',
  configure: (context) => (context && hasUsableContext(panelIncident(context)) ? {} : undefined),
  onClick: (_event, helpers) => {
    const incident = incidentFromPanel(helpers.context);
    const title = helpers.context?.title ? `Runbooks for ${helpers.context.title}` : 'Runbooks';
    open(helpers, incident, title);
  },
};

/** The alert-instance action: hidden for an instance without labels (there is then nothing to match). */
export const alertInstanceLink: PluginExtensionAddedLinkConfig<AlertInstanceContext> = {
  title: LINK_TITLE,
  description: LINK_DESCRIPTION,
  targets: [PluginExtensionPoints.AlertInstanceAction],
  icon: 'book',
  configure: (context) => (context && hasUsableContext(alertIncident(context)) ? {} : undefined),
  onClick: (_event, helpers) => {
    const incident = alertIncident(helpers.context);
    const alertname = incident.labels.alertname?.[0];
    open(helpers, incident, alertname ? `Runbooks for ${alertname}` : 'Runbooks');
  },
};

/** Every link the app adds, in the order module.tsx adds them. */
export const LINKS = [panelMenuLink, alertInstanceLink] as const;
