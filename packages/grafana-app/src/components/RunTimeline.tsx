import { css } from '@emotion/css';
import type { GrafanaTheme2 } from '@grafana/data';
import { Badge, Stack, Text, useStyles2 } from '@grafana/ui';
import React from 'react';
import type { RunDetailView } from '../api/types';
import { eventSummary, formatDuration, formatTime, statusText, stepStatusColor } from './run-format';
import type { RunEvent } from './run-polling';

type Step = RunDetailView['steps'][number];

/** A run's steps in order, each with its status, attempts, duration and error. */
export function RunSteps({ steps }: { steps: Step[] }) {
  const styles = useStyles2(getStyles);
  if (steps.length === 0) return <Text color="secondary">No step has started yet.</Text>;
  return (
    <ol className={styles.list} aria-label="Steps">
      {steps.map((s) => {
        const duration = formatDuration(s.startedAt, s.endedAt);
        return (
          <li key={s.seq} className={styles.item}>
            <Stack direction="row" gap={1} alignItems="center" wrap="wrap">
              <Badge text={statusText(s.status)} color={stepStatusColor(s.status)} />
              <Text weight="medium">{s.name}</Text>
              <Text color="secondary">{s.kind}</Text>
              {duration && <Text color="secondary">{duration}</Text>}
              {s.attempts > 1 && <Text color="secondary">{s.attempts} attempts</Text>}
            </Stack>
            {s.error && (
              <div className={styles.error}>
                {s.error.message} ({s.error.code})
              </div>
            )}
          </li>
        );
      })}
    </ol>
  );
}

/**
 * What happened in a run, event by event (its audit entries), as they arrive. The list is a polite live
 * region, so screen readers hear new events without losing their place.
 */
export function RunTimeline({ events, live }: { events: RunEvent[]; live: boolean }) {
  const styles = useStyles2(getStyles);
  return (
    <div>
      {events.length === 0 ? (
        <Text color="secondary">No events yet.</Text>
      ) : (
        <ol className={styles.list} aria-label="Timeline" aria-live="polite" aria-relevant="additions">
          {events.map((e) => {
            const summary = eventSummary(e);
            return (
              <li key={e.seq} className={styles.event}>
                <span className={styles.time} title={e.ts}>
                  {formatTime(e.ts)}
                </span>
                <span>
                  <code className={styles.kind}>{e.kind}</code>
                  {e.step && <Text weight="medium"> {e.step}</Text>}
                  {summary && <Text> — {summary}</Text>}
                  <Text color="secondary"> by {e.actor}</Text>
                </span>
              </li>
            );
          })}
        </ol>
      )}
      {live && (
        <Text color="secondary" italic>
          Following the run…
        </Text>
      )}
    </div>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  list: css({ listStyle: 'none', margin: 0, padding: 0 }),
  item: css({
    padding: theme.spacing(0.75, 0),
    borderBottom: `1px solid ${theme.colors.border.weak}`,
  }),
  event: css({
    display: 'grid',
    gridTemplateColumns: 'minmax(10em, max-content) 1fr',
    gap: theme.spacing(1),
    padding: theme.spacing(0.5, 0),
    borderBottom: `1px solid ${theme.colors.border.weak}`,
  }),
  time: css({ color: theme.colors.text.secondary, fontVariantNumeric: 'tabular-nums' }),
  kind: css({ fontFamily: theme.typography.fontFamilyMonospace }),
  error: css({ color: theme.colors.error.text, marginTop: theme.spacing(0.5) }),
});
