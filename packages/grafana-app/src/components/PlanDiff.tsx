import { css } from '@emotion/css';
import type { GrafanaTheme2 } from '@grafana/data';
import { Badge, type BadgeColor, Stack, Text, useStyles2 } from '@grafana/ui';
import React from 'react';
import type { RunDetailView } from '../api/types';
import { formatJson } from './evidence-model';
import { TableHead, tableStyle } from './table';

/** An act step's plan, as the service shows it. */
export type Plan = RunDetailView['plans'][number];

const RISK_COLOR: Record<string, BadgeColor> = { low: 'green', medium: 'orange', high: 'red' };

/** A plan's status as a badge colour: applied is done, failures are red, pending states are blue. */
export function planStatusColor(status: string): BadgeColor {
  if (status === 'applied') return 'green';
  if (status === 'failed' || status === 'verification-failed') return 'red';
  if (status === 'reverted' || status === 'noop') return 'darkgrey';
  if (status === 'waiting_approval') return 'orange';
  return 'blue';
}

/**
 * The plans of a run's actions as before → after diffs: one row per change (target, field, before, after),
 * with each plan's risk and whether it is destructive.
 */
export function PlanDiff({ plans }: { plans: Plan[] }) {
  const styles = useStyles2(getStyles);
  if (plans.length === 0) return <Text color="secondary">This run has no plan (yet).</Text>;
  return (
    <Stack direction="column" gap={2}>
      {plans.map((plan) => (
        <section key={plan.step} className={styles.plan} aria-label={`Plan of step ${plan.step}`}>
          <Stack direction="row" gap={1} alignItems="center" wrap="wrap">
            <Text weight="medium">{plan.step}</Text>
            <Badge text={plan.status} color={planStatusColor(plan.status)} />
            <Badge
              text={`${plan.risk} risk`}
              color={RISK_COLOR[plan.risk] ?? 'darkgrey'}
              icon={plan.risk === 'high' ? 'exclamation-triangle' : undefined}
            />
            {plan.destructive && <Badge text="destructive" color="red" icon="trash-alt" />}
          </Stack>
          <p className={styles.summary}>
            <Text>{plan.summary}</Text>{' '}
            <Text color="secondary">
              ({plan.action} on {plan.target})
            </Text>
          </p>
          {plan.changes.length === 0 ? (
            <Text color="secondary">No changes: the target is already as wanted.</Text>
          ) : (
            <ChangesTable label={`Changes planned by step ${plan.step}`} changes={plan.changes} />
          )}
        </section>
      ))}
    </Stack>
  );
}

/**
 * A plan's changes as before → after rows (target, field, before, after). `label` names the table for screen
 * readers (a hidden caption).
 */
export function ChangesTable({ label, changes }: { label: string; changes: Plan['changes'] }) {
  const styles = useStyles2(getStyles);
  return (
    <div className={styles.scrollX}>
      <table className={styles.table}>
        <caption className={styles.visuallyHidden}>{label}</caption>
        <TableHead columns={['Target', 'Field', 'Before', 'After']} />
        <tbody>
          {changes.map((c) => (
            <tr key={`${c.target}/${c.field}`}>
              <td>{c.target}</td>
              <td>{c.field}</td>
              <td>
                <code className={styles.before}>{formatJson(c.before)}</code>
              </td>
              <td>
                <span aria-hidden="true" className={styles.arrow}>
                  →{' '}
                </span>
                <code className={styles.after}>{formatJson(c.after)}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  plan: css({
    padding: theme.spacing(1.5),
    border: `1px solid ${theme.colors.border.weak}`,
    borderRadius: theme.shape.radius.default,
  }),
  summary: css({ margin: theme.spacing(1, 0) }),
  scrollX: css({ overflowX: 'auto' }),
  table: css(tableStyle(theme, { verticalAlign: 'top' })),
  before: css({
    whiteSpace: 'pre-wrap',
    fontFamily: theme.typography.fontFamilyMonospace,
    background: theme.colors.error.transparent,
    padding: theme.spacing(0, 0.5),
  }),
  after: css({
    whiteSpace: 'pre-wrap',
    fontFamily: theme.typography.fontFamilyMonospace,
    background: theme.colors.success.transparent,
    padding: theme.spacing(0, 0.5),
  }),
  arrow: css({ color: theme.colors.text.secondary }),
  visuallyHidden: css({
    position: 'absolute',
    width: 1,
    height: 1,
    overflow: 'hidden',
    clip: 'rect(0 0 0 0)',
    whiteSpace: 'nowrap',
  }),
});
