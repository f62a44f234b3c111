import { css } from '@emotion/css';
import type { GrafanaTheme2 } from '@grafana/data';
import { Alert, Button, Field, Input, LoadingPlaceholder, Stack, Text, useStyles2 } from '@grafana/ui';
import React, { useCallback, useEffect, useRef, useState } from 'react';
import { Link, useSearchParams } from 'react-router-dom';
import { api, ServiceError } from '../api/client';
import type { AuditRowView, AuditVerification } from '../api/types';
import { ServiceErrorAlert } from '../components/ApprovalPanel';
import { formatJson } from '../components/evidence-model';
import { formatTime } from '../components/run-format';
import { TableHead, tableStyle } from '../components/table';
import { APP_URL } from '../settings';

/** Entries read per page. */
export const AUDIT_PAGE_SIZE = 50;

const toError = (e: unknown) => (e instanceof ServiceError ? e : new ServiceError(0, 'UNKNOWN', String(e)));

/**
 * The audit log (`audit`): the hash chain's verification at the top, then the entries, oldest first, a page
 * at a time, optionally for one run (`?runId=`).
 */
export function AuditPage({
  pageSize = AUDIT_PAGE_SIZE,
}: {
  /**
   * Entries read per page.
   * @default 50
   */
  pageSize?: number;
}) {
  const styles = useStyles2(getStyles);
  const [params, setParams] = useSearchParams();
  const runId = params.get('runId') ?? '';
  const [filter, setFilter] = useState(runId);
  const [entries, setEntries] = useState<AuditRowView[]>([]);
  const [nextAfter, setNextAfter] = useState<number | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<ServiceError | null>(null);
  // Answers that arrive after the filter changed or the page left are dropped.
  const generation = useRef(0);

  const load = useCallback(
    async (after: number | undefined, append: boolean) => {
      const mine = ++generation.current;
      setLoading(true);
      setError(null);
      try {
        const page = await api.listAudit({
          limit: pageSize,
          ...(after ? { after } : {}),
          ...(runId ? { runId } : {}),
        });
        if (mine !== generation.current) return;
        setEntries((prev) => (append ? [...prev, ...page.entries] : page.entries));
        setNextAfter(page.nextAfter);
      } catch (e) {
        if (mine === generation.current) setError(toError(e));
      } finally {
        if (mine === generation.current) setLoading(false);
      }
    },
    [runId, pageSize],
  );

  useEffect(() => {
    setFilter(runId);
    void load(undefined, false);
    return () => {
      generation.current++;
    };
  }, [runId, load]);

  const applyFilter = (value: string) => {
    const next = new URLSearchParams(params);
    if (value.trim()) next.set('runId', value.trim());
    else next.delete('runId');
    setParams(next);
  };

  return (
    <div className={styles.page}>
      <ChainStatus />
      <form
        onSubmit={(e) => {
          e.preventDefault();
          applyFilter(filter);
        }}
      >
        <Stack direction="row" gap={1} alignItems="flex-end">
          <Field label="Run" description="Show only the entries of one run">
            <Input
              id="audit-run-filter"
              value={filter}
              placeholder="run id"
              width={36}
              onChange={(e) => setFilter(e.currentTarget.value)}
            />
          </Field>
          <div className={styles.filterActions}>
            <Stack direction="row" gap={1}>
              <Button type="submit" variant="secondary">
                Filter
              </Button>
              {runId && (
                <Button type="button" variant="secondary" fill="text" onClick={() => applyFilter('')}>
                  Show all
                </Button>
              )}
            </Stack>
          </div>
        </Stack>
      </form>
      {error && <ServiceErrorAlert title="The audit log could not be read" error={error} />}
      {entries.length === 0 && loading && <LoadingPlaceholder text="Loading the audit log…" />}
      {entries.length === 0 && !loading && !error && (
        <Text color="secondary">
          {runId ? `No audit entries for run ${runId}.` : 'The audit log is empty.'}
        </Text>
      )}
      {entries.length > 0 && (
        <div className={styles.scrollX}>
          <table className={styles.table}>
            <caption className={styles.caption}>
              {runId ? `Audit entries of run ${runId}` : 'Audit entries'}, oldest first
            </caption>
            <TableHead columns={['Seq', 'Time', 'Actor', 'Kind', 'Run', 'Data']} />
            <tbody>
              {entries.map((row) => (
                <AuditEntryRow key={row.seq} row={row} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      {nextAfter !== null && (
        <div>
          <Button variant="secondary" disabled={loading} onClick={() => void load(nextAfter, true)}>
            {loading ? 'Loading…' : 'Load more'}
          </Button>
        </div>
      )}
    </div>
  );
}

function AuditEntryRow({ row }: { row: AuditRowView }) {
  const styles = useStyles2(getStyles);
  const { entry } = row;
  return (
    <tr>
      <td className={styles.number}>{row.seq}</td>
      <td title={entry.ts}>{formatTime(entry.ts)}</td>
      <td>{entry.actor}</td>
      <td>
        <code>{entry.kind}</code>
        {entry.step ? <Text color="secondary"> {entry.step}</Text> : null}
      </td>
      <td>
        {entry.runId ? (
          <Link to={`${APP_URL}/runs/${encodeURIComponent(entry.runId)}`}>{entry.runId}</Link>
        ) : (
          '—'
        )}
      </td>
      <td>
        {entry.data === undefined ? (
          '—'
        ) : (
          <details>
            <summary>data</summary>
            <pre className={styles.json}>{formatJson(entry.data)}</pre>
          </details>
        )}
      </td>
    </tr>
  );
}

/** The result of recomputing the chain: OK with the entry count and head hash, or every problem, prominently. */
function ChainStatus() {
  const styles = useStyles2(getStyles);
  const [result, setResult] = useState<AuditVerification | null>(null);
  const [error, setError] = useState<ServiceError | null>(null);
  const [checking, setChecking] = useState(true);
  const alive = useRef(true);

  const verify = useCallback(async () => {
    setChecking(true);
    setError(null);
    try {
      const r = await api.verifyAudit();
      if (alive.current) setResult(r);
    } catch (e) {
      if (alive.current) setError(toError(e));
    } finally {
      if (alive.current) setChecking(false);
    }
  }, []);

  useEffect(() => {
    alive.current = true;
    void verify();
    return () => {
      alive.current = false;
    };
  }, [verify]);

  const again = (
    <Button size="sm" variant="secondary" icon="sync" disabled={checking} onClick={() => void verify()}>
      Verify again
    </Button>
  );
  if (error) {
    return (
      <ServiceErrorAlert title="The audit chain could not be verified" error={error}>
        <div className={styles.retry}>{again}</div>
      </ServiceErrorAlert>
    );
  }
  if (!result) return <LoadingPlaceholder text="Verifying the audit chain…" />;
  if (result.ok) {
    return (
      <Alert title="Audit chain verified" severity="success">
        <Stack direction="column" gap={1}>
          <Text>
            All {result.entries} entries verified: each entry's hash matches its content and the entry before
            it.
          </Text>
          <Text>
            Head hash: <code className={styles.hash}>{result.headHash}</code>
          </Text>
          <div>{again}</div>
        </Stack>
      </Alert>
    );
  }
  return (
    <Alert title={`Audit chain broken: ${result.problems.length} problem(s)`} severity="error">
      <Stack direction="column" gap={1}>
        <Text>
          The log has been changed or truncated outside the service. Entries checked: {result.entries}.
        </Text>
        <ul>
          {result.problems.map((p) => (
            <li key={`${p.seq}-${p.problem}`}>
              Entry {p.seq}: {p.message} ({p.problem})
            </li>
          ))}
        </ul>
        <div>{again}</div>
      </Stack>
    </Alert>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  page: css({ display: 'flex', flexDirection: 'column', gap: theme.spacing(2) }),
  // Level with the input, above the Field's bottom margin.
  filterActions: css({ marginBottom: theme.spacing(2) }),
  scrollX: css({ overflowX: 'auto' }),
  table: css({ ...tableStyle(theme, { verticalAlign: 'top' }), width: '100%' }),
  caption: css({ textAlign: 'left', color: theme.colors.text.secondary, padding: theme.spacing(0.5, 0) }),
  number: css({ fontVariantNumeric: 'tabular-nums' }),
  json: css({
    fontFamily: theme.typography.fontFamilyMonospace,
    fontSize: theme.typography.bodySmall.fontSize,
    maxHeight: 240,
    overflow: 'auto',
    margin: 0,
  }),
  hash: css({ fontFamily: theme.typography.fontFamilyMonospace, wordBreak: 'break-all' }),
  retry: css({ marginTop: theme.spacing(1) }),
});
