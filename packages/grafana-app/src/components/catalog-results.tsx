import { css } from '@emotion/css';
import type { GrafanaTheme2 } from '@grafana/data';
import { Alert, Badge, type BadgeColor, LinkButton, Stack, Text, useStyles2 } from '@grafana/ui';
import React from 'react';
import type { RunbookView, RunDetailView, RunStatus } from '../api/types';
import { APP_URL } from '../settings';
import { ChangesTable } from './PlanDiff';
import { FINDING_COLOR, RUN_STATUS_COLOR, statusText } from './run-format';

type PlanView = RunDetailView['plans'][number];
type FindingView = RunDetailView['findings'][number];

/** The app's page of a run. */
export const runUrl = (runId: string): string => `${APP_URL}/runs/${encodeURIComponent(runId)}`;

const SEVERITY_COLOR: Record<RunbookView['severity'], BadgeColor> = {
  P0: 'red',
  P1: 'orange',
  P2: 'blue',
  P3: 'darkgrey',
};

/** A runbook's severity as a badge. */
export function SeverityBadge({ severity }: { severity: RunbookView['severity'] }) {
  return <Badge color={SEVERITY_COLOR[severity]} text={severity} aria-label={`severity ${severity}`} />;
}

/** A run's status as a badge, in the colours and words of the run pages. */
export function RunStatusBadge({ status }: { status: RunStatus }) {
  return <Badge color={RUN_STATUS_COLOR[status] ?? 'darkgrey'} text={statusText(status)} />;
}

/** A link to a run's page. */
export function RunLink({ runId, label = 'Open run' }: { runId: string; label?: string }) {
  return (
    <LinkButton href={runUrl(runId)} icon="arrow-right" variant="secondary" size="sm">
      {label} {runId}
    </LinkButton>
  );
}

/**
 * The answer to an execute request: queued, or found by the plan's idempotency key because an earlier
 * attempt reached the service although its answer was lost (then no second run was started).
 */
export function ExecutionQueued({
  runId,
  replayed,
  title,
}: {
  runId: string;
  replayed: boolean;
  title: string;
}) {
  return (
    <Alert severity="success" title={replayed ? 'Already started' : title}>
      <Stack direction="column" gap={1}>
        <Text>
          {replayed
            ? 'This plan was already sent for execution (the answer was lost on the way): no second run was started. Follow it on its page.'
            : 'The run is queued (it may wait for an approval); follow it on its page.'}
        </Text>
        <div>
          <RunLink runId={runId} />
        </div>
      </Stack>
    </Alert>
  );
}

/** The outcome a run ended with (`done` summary or escalation reason), if any. */
export function outcomeText(outcome: unknown): string | undefined {
  if (typeof outcome !== 'object' || outcome === null) return undefined;
  const o = outcome as { kind?: unknown; summary?: unknown; reason?: unknown };
  if (typeof o.summary === 'string') return o.summary;
  if (typeof o.reason === 'string') return `escalated: ${o.reason}`;
  return undefined;
}

/** The findings of a run's checks: status and summary. */
export function Findings({ findings }: { findings: FindingView[] }) {
  const styles = useStyles2(getStyles);
  if (findings.length === 0) return null;
  return (
    <ul className={styles.list} aria-label="Findings">
      {findings.map((f) => (
        <li key={f.step}>
          <Stack gap={1} alignItems="center">
            <Badge color={FINDING_COLOR[f.status] ?? 'darkgrey'} text={f.status} />
            <Text weight="medium">{f.step}</Text>
            <Text>{f.summary}</Text>
          </Stack>
        </li>
      ))}
    </ul>
  );
}

/** The planned changes of a run's actions: one row per change, before → after. */
export function PlanTable({ plans }: { plans: PlanView[] }) {
  if (plans.length === 0) return <Text color="secondary">No action was planned: nothing would change.</Text>;
  return (
    <Stack direction="column" gap={2}>
      {plans.map((plan) => (
        <div key={plan.step}>
          <Stack gap={1} alignItems="center" wrap="wrap">
            <Text weight="medium">{plan.summary}</Text>
            <Badge
              color={plan.risk === 'high' ? 'red' : plan.risk === 'medium' ? 'orange' : 'blue'}
              text={`${plan.risk} risk`}
            />
            {plan.destructive && <Badge color="red" icon="exclamation-triangle" text="destructive" />}
            <Text color="secondary">{plan.status}</Text>
          </Stack>
          {plan.changes.length === 0 ? (
            <Text color="secondary">No change: already as asked.</Text>
          ) : (
            <ChangesTable label={`Changes of ${plan.step}`} changes={plan.changes} />
          )}
        </div>
      ))}
    </Stack>
  );
}

/** A finished diagnose or plan run: status, outcome, findings, plans and the link to its page. */
export function RunSummary({ detail }: { detail: RunDetailView }) {
  const outcome = outcomeText(detail.run.outcome);
  return (
    <Stack direction="column" gap={2}>
      <Stack gap={1} alignItems="center">
        <RunStatusBadge status={detail.run.status} />
        {outcome && <Text>{outcome}</Text>}
        {detail.run.error && <Text color="error">{detail.run.error.message}</Text>}
      </Stack>
      <Findings findings={detail.findings} />
      {detail.run.mode !== 'diagnose' && <PlanTable plans={detail.plans} />}
      <div>
        <RunLink runId={detail.run.id} />
      </div>
    </Stack>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  list: css({ listStyle: 'none', margin: 0, padding: 0, display: 'grid', gap: theme.spacing(1) }),
});
