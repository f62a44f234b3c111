import { css } from '@emotion/css';
import { dateTimeFormat, dateTimeFormatTimeAgo, type GrafanaTheme2 } from '@grafana/data';
import {
  Alert,
  Button,
  Combobox,
  type ComboboxOption,
  EmptyState,
  Field,
  LinkButton,
  LoadingPlaceholder,
  Stack,
  Text,
  TextLink,
  Tooltip,
  useStyles2,
} from '@grafana/ui';
import React, { useCallback, useEffect, useRef, useState } from 'react';
import { api, ServiceError } from '../api/client';
import type { RunStatus, RunView } from '../api/types';
import { RunStatusBadge, runUrl } from '../components/catalog-results';
import { TableHead, tableStyle } from '../components/table';
import { APP_URL } from '../settings';

const STATUSES: RunStatus[] = [
  'queued',
  'running',
  'waiting_approval',
  'succeeded',
  'failed',
  'escalated',
  'cancelled',
];
const STATUS_OPTIONS: Array<ComboboxOption<RunStatus>> = STATUSES.map((s) => ({
  label: s.replace('_', ' '),
  value: s,
}));

/** Props of {@link RunsPage}. */
export interface RunsPageProps {
  /** Runs per page ("Load more" fetches the next). @default 25 */
  pageSize?: number;
}

const asServiceError = (e: unknown): ServiceError =>
  e instanceof ServiceError ? e : new ServiceError(0, 'CLIENT_ERROR', String(e));

/** A time as "5 minutes ago", with the absolute time on hover and focus. */
function When({ iso }: { iso: string | null }) {
  if (!iso) return <Text color="secondary">—</Text>;
  const absolute = dateTimeFormat(iso);
  return (
    <Tooltip content={absolute}>
      {/* Focusable so that keyboard users get the tooltip too. */}
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: the tooltip must be reachable by keyboard */}
      <time dateTime={iso} title={absolute} tabIndex={0}>
        {dateTimeFormatTimeAgo(iso)}
      </time>
    </Tooltip>
  );
}

/** The runs history: filter by status and runbook, newest first, "Load more" for older runs. */
export function RunsPage({ pageSize = 25 }: RunsPageProps) {
  const styles = useStyles2(getStyles);
  const [status, setStatus] = useState<RunStatus | undefined>(undefined);
  const [runbookId, setRunbookId] = useState<string | undefined>(undefined);
  const [runbookOptions, setRunbookOptions] = useState<Array<ComboboxOption<string>>>([]);
  const [runs, setRuns] = useState<RunView[]>([]);
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<ServiceError | null>(null);
  // Answers to an older filter are dropped: only the latest request may fill the table.
  const generation = useRef(0);

  const fetchPage = useCallback(
    (cursor: string | undefined) => {
      const mine = ++generation.current;
      setLoading(true);
      setError(null);
      api
        .listRuns({ status, runbookId, limit: pageSize, ...(cursor ? { cursor } : {}) })
        .then(
          (page) => {
            if (mine !== generation.current) return;
            setRuns((before) => (cursor ? [...before, ...page.runs] : page.runs));
            setNextCursor(page.nextCursor);
          },
          (e: unknown) => {
            if (mine === generation.current) setError(asServiceError(e));
          },
        )
        .finally(() => {
          if (mine === generation.current) setLoading(false);
        });
    },
    [status, runbookId, pageSize],
  );

  useEffect(() => {
    setRuns([]);
    setNextCursor(null);
    fetchPage(undefined);
  }, [fetchPage]);

  useEffect(() => {
    // The runbook filter's choices; without them the filter is still usable by typing an id.
    api.listRunbooks().then(
      (list) => setRunbookOptions(list.map((r) => ({ label: `${r.title} (${r.id})`, value: r.id }))),
      () => setRunbookOptions([]),
    );
  }, []);

  return (
    <div className={styles.page}>
      <Stack justifyContent="space-between" alignItems="flex-end" wrap="wrap">
        <Stack gap={2} alignItems="flex-end" wrap="wrap">
          <Field label="Status" htmlFor="runs-status" className={styles.noMargin}>
            <Combobox
              id="runs-status"
              options={STATUS_OPTIONS}
              value={status ?? null}
              onChange={(o) => setStatus(o?.value)}
              isClearable
              placeholder="Any status"
              width={24}
            />
          </Field>
          <Field label="Runbook" htmlFor="runs-runbook" className={styles.noMargin}>
            <Combobox
              id="runs-runbook"
              options={runbookOptions}
              value={runbookId ?? null}
              onChange={(o) => setRunbookId(o?.value)}
              createCustomValue
              isClearable
              placeholder="Any runbook"
              width={40}
            />
          </Field>
        </Stack>
        <Stack gap={1}>
          <Button variant="secondary" icon="sync" onClick={() => fetchPage(undefined)} disabled={loading}>
            Refresh
          </Button>
          <LinkButton href={APP_URL} variant="secondary" icon="book">
            Catalog
          </LinkButton>
        </Stack>
      </Stack>

      {error && (
        <Alert
          severity="error"
          title={`Runs could not be loaded: ${error.code} (${error.status || 'no answer'})`}
        >
          {error.message}
        </Alert>
      )}

      {runs.length > 0 && (
        <table className={styles.table} aria-label="Runs">
          <TableHead columns={['Run', 'Runbook', 'Mode', 'Status', 'Requested by', 'Created', 'Ended']} />
          <tbody>
            {runs.map((run) => (
              <tr key={run.id}>
                <td>
                  <TextLink href={runUrl(run.id)} inline={false}>
                    <span className={styles.mono}>{run.id}</span>
                  </TextLink>
                </td>
                <td>{run.runbookId}</td>
                <td>{run.mode}</td>
                <td>
                  <RunStatusBadge status={run.status} />
                </td>
                <td>{run.requestedBy}</td>
                <td>
                  <When iso={run.createdAt} />
                </td>
                <td>
                  <When iso={run.endedAt} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      {loading && <LoadingPlaceholder text="Loading runs…" />}
      {!loading && !error && runs.length === 0 && (
        <EmptyState
          variant="not-found"
          message={status || runbookId ? 'No run matches these filters.' : 'No run yet.'}
        />
      )}
      {nextCursor && !loading && (
        <div>
          <Button variant="secondary" onClick={() => fetchPage(nextCursor)}>
            Load more
          </Button>
        </div>
      )}
    </div>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  page: css({ display: 'flex', flexDirection: 'column', gap: theme.spacing(2) }),
  noMargin: css({ marginBottom: 0 }),
  mono: css({ fontFamily: theme.typography.fontFamilyMonospace }),
  table: css({
    ...tableStyle(theme, { padding: theme.spacing(0.75, 1) }),
    width: '100%',
    'tbody tr:hover': { background: theme.colors.action.hover },
  }),
});
