import { css } from '@emotion/css';
import type { GrafanaTheme2, PanelProps } from '@grafana/data';
import { Alert, Button, Stack, Text, useStyles2 } from '@grafana/ui';
import React, { useCallback, useEffect, useMemo, useState } from 'react';
import { api, type RunContextInput, ServiceError } from '../../../api/client';
import type { RunbookView, RunView } from '../../../api/types';
import { normalizeOptions, type RunbookActionsOptions } from '../options';
import type { Interpolate } from '../variables';
import { ActionItem } from './ActionItem';

type Load<T> = { state: 'loading' } | { state: 'ok'; value: T } | { state: 'error'; error: ServiceError };

const asServiceError = (e: unknown): ServiceError =>
  e instanceof ServiceError
    ? e
    : new ServiceError(0, 'CLIENT_ERROR', e instanceof Error ? e.message : String(e));

function ErrorAlert({ title, error }: { title: string; error: ServiceError }) {
  return (
    <Alert severity="error" title={title}>
      <Text>
        {error.code} ({error.status || 'no answer'}): {error.message}
      </Text>
    </Alert>
  );
}

/**
 * The panel: one button per configured action, with the last run of its runbook. Runbooks (for their
 * titles and input schemas) and last runs come from the runbook service through the app's proxy routes;
 * the last runs are read again after every action and whenever the dashboard's time range is refreshed.
 */
export function RunbookActionsPanel({
  options,
  id,
  title,
  timeRange,
  width,
  height,
  replaceVariables,
}: PanelProps<RunbookActionsOptions>) {
  const styles = useStyles2(getStyles);
  const { actions, problems } = useMemo(() => normalizeOptions(options), [options]);
  const runbookIds = useMemo(() => [...new Set(actions.map((a) => a.runbookId))], [actions]);
  const runbookKey = runbookIds.join('\n');

  const [catalog, setCatalog] = useState<Load<Map<string, RunbookView>>>({ state: 'loading' });
  const [lastRuns, setLastRuns] = useState<Load<Record<string, RunView | null>>>({ state: 'loading' });
  const [reload, setReload] = useState(0);
  // A dashboard refresh recomputes the time range: read the last runs again then too.
  const refreshKey = `${timeRange.from.valueOf()}-${timeRange.to.valueOf()}`;

  // biome-ignore lint/correctness/useExhaustiveDependencies: `reload` asks for a new read
  useEffect(() => {
    let live = true;
    setCatalog((c) => (c.state === 'ok' ? c : { state: 'loading' }));
    api.listRunbooks().then(
      (list) => live && setCatalog({ state: 'ok', value: new Map(list.map((r) => [r.id, r])) }),
      (e: unknown) => live && setCatalog({ state: 'error', error: asServiceError(e) }),
    );
    return () => {
      live = false;
    };
  }, [reload]);

  const [runsTick, setRunsTick] = useState(0);
  // biome-ignore lint/correctness/useExhaustiveDependencies: the keys stand for the ids and the refreshes
  useEffect(() => {
    let live = true;
    const ids = runbookKey === '' ? [] : runbookKey.split('\n');
    Promise.all(
      ids.map((runbookId) =>
        api.listRuns({ runbookId, limit: 1 }).then((page) => [runbookId, page.runs[0] ?? null] as const),
      ),
    ).then(
      (entries) => live && setLastRuns({ state: 'ok', value: Object.fromEntries(entries) }),
      (e: unknown) => live && setLastRuns({ state: 'error', error: asServiceError(e) }),
    );
    return () => {
      live = false;
    };
  }, [runbookKey, refreshKey, runsTick, reload]);

  const onRunStarted = useCallback(() => setRunsTick((t) => t + 1), []);
  const interpolate: Interpolate = useCallback(
    (value, scopedVars, format) => replaceVariables(value, scopedVars, format),
    [replaceVariables],
  );
  const context: RunContextInput = useMemo(
    () => ({
      source: 'grafana-panel',
      panel: { id, ...(title ? { title } : {}) },
      timeRange: { from: timeRange.from.toISOString(), to: timeRange.to.toISOString() },
    }),
    [id, title, timeRange],
  );

  const retry = () => setReload((r) => r + 1);

  return (
    <div className={styles.root} style={{ width, height }}>
      <Stack direction="column" gap={1}>
        {problems.length > 0 && (
          <Alert severity="warning" title="Some actions are configured wrongly and are not shown">
            <ul>
              {problems.map((p) => (
                <li key={p.path}>
                  {p.path}: {p.message}
                </li>
              ))}
            </ul>
          </Alert>
        )}
        {actions.length === 0 && problems.length === 0 && (
          <Text color="secondary">
            No actions configured: edit the panel and add runbook actions under “Actions”.
          </Text>
        )}
        {catalog.state === 'error' && (
          <ErrorAlert title="The runbook service did not answer" error={catalog.error} />
        )}
        {catalog.state === 'ok' && lastRuns.state === 'error' && (
          <ErrorAlert title="The last runs could not be read" error={lastRuns.error} />
        )}
        {actions.length > 0 && (
          <ul className={styles.list} aria-label="Runbook actions" aria-busy={catalog.state === 'loading'}>
            {actions.map((action, index) => {
              const runbook = catalog.state === 'ok' ? catalog.value.get(action.runbookId) : undefined;
              const disabledReason =
                catalog.state === 'loading'
                  ? 'Loading the runbooks…'
                  : catalog.state === 'error'
                    ? 'The runbook service did not answer'
                    : runbook
                      ? undefined
                      : `The service has no runbook "${action.runbookId}"`;
              return (
                <ActionItem
                  // biome-ignore lint/suspicious/noArrayIndexKey: actions have no id of their own; two may run the same runbook in the same mode
                  key={`${index}:${action.runbookId}:${action.mode}`}
                  action={action}
                  runbook={runbook}
                  disabledReason={disabledReason}
                  lastRun={lastRuns.state === 'ok' ? lastRuns.value[action.runbookId] : undefined}
                  interpolate={interpolate}
                  context={context}
                  onRunStarted={onRunStarted}
                />
              );
            })}
          </ul>
        )}
        {catalog.state === 'ok' &&
          actions
            .filter(
              (a, i) =>
                !catalog.value.has(a.runbookId) &&
                actions.findIndex((b) => b.runbookId === a.runbookId) === i,
            )
            .map((a) => (
              <Alert
                key={`missing:${a.runbookId}`}
                severity="warning"
                title={`Unknown runbook ${a.runbookId}`}
              >
                The runbook service has no runbook with this id: edit the panel and pick one of its runbooks.
              </Alert>
            ))}
        {catalog.state === 'loading' && <Text color="secondary">Loading the runbooks…</Text>}
        {(catalog.state === 'error' || lastRuns.state === 'error') && (
          <div>
            <Button size="sm" variant="secondary" icon="sync" onClick={retry}>
              Try again
            </Button>
          </div>
        )}
      </Stack>
    </div>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  root: css({ overflow: 'auto', padding: theme.spacing(0.5) }),
  list: css({ listStyle: 'none', margin: 0, padding: 0 }),
});
