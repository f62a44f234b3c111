import { css } from '@emotion/css';
import type { GrafanaTheme2 } from '@grafana/data';
import {
  Alert,
  Button,
  Card,
  EmptyState,
  Field,
  Icon,
  Input,
  LinkButton,
  LoadingPlaceholder,
  RadioButtonGroup,
  Stack,
  TagList,
  useStyles2,
} from '@grafana/ui';
import React, { useCallback, useEffect, useMemo, useState } from 'react';
import { api, ServiceError } from '../api/client';
import type { RunbookView } from '../api/types';
import { type CatalogAction, CatalogActionDrawer } from '../components/catalog-action';
import { SeverityBadge } from '../components/catalog-results';
import { APP_URL } from '../settings';

type Severity = RunbookView['severity'];
const SEVERITIES: Severity[] = ['P0', 'P1', 'P2', 'P3'];
const SEVERITY_OPTIONS = [
  { label: 'All', value: 'all' as const },
  ...SEVERITIES.map((s) => ({ label: s, value: s })),
];

/** True when the runbook's title, id, description or a tag contains the search text (case-insensitive). */
export function matchesSearch(runbook: RunbookView, search: string): boolean {
  const needle = search.trim().toLowerCase();
  if (!needle) return true;
  return [runbook.title, runbook.id, runbook.description ?? '', ...(runbook.tags ?? [])].some((text) =>
    text.toLowerCase().includes(needle),
  );
}

type Load =
  | { state: 'loading' }
  | { state: 'error'; error: ServiceError }
  | { state: 'done'; runbooks: RunbookView[] };

/** The runbook catalog: search, severity filter, and Diagnose / Plan / Run on each runbook. */
export function CatalogPage() {
  const styles = useStyles2(getStyles);
  const [load, setLoad] = useState<Load>({ state: 'loading' });
  const [search, setSearch] = useState('');
  const [severity, setSeverity] = useState<Severity | 'all'>('all');
  const [open, setOpen] = useState<{ runbook: RunbookView; action: CatalogAction } | null>(null);

  const fetchRunbooks = useCallback(() => {
    setLoad({ state: 'loading' });
    api.listRunbooks().then(
      (runbooks) => setLoad({ state: 'done', runbooks }),
      (e: unknown) =>
        setLoad({
          state: 'error',
          error: e instanceof ServiceError ? e : new ServiceError(0, 'CLIENT_ERROR', String(e)),
        }),
    );
  }, []);
  useEffect(fetchRunbooks, [fetchRunbooks]);

  const shown = useMemo(
    () =>
      load.state === 'done'
        ? load.runbooks.filter(
            (r) => (severity === 'all' || r.severity === severity) && matchesSearch(r, search),
          )
        : [],
    [load, search, severity],
  );

  return (
    <div className={styles.page}>
      <Stack justifyContent="space-between" alignItems="flex-end" wrap="wrap">
        <Stack gap={2} alignItems="flex-end" wrap="wrap">
          <Field label="Search" className={styles.noMargin}>
            <Input
              id="catalog-search"
              placeholder="Title, id, description or tag"
              prefix={<Icon name="search" />}
              value={search}
              onChange={(e) => setSearch(e.currentTarget.value)}
              width={40}
            />
          </Field>
          <Field label="Severity" className={styles.noMargin}>
            <RadioButtonGroup
              id="catalog-severity"
              options={SEVERITY_OPTIONS}
              value={severity}
              onChange={(v) => setSeverity(v)}
            />
          </Field>
        </Stack>
        <Stack gap={1}>
          <LinkButton href={`${APP_URL}/runs`} variant="secondary" icon="history">
            Runs
          </LinkButton>
          <LinkButton href={`${APP_URL}/audit`} variant="secondary" icon="list-ul">
            Audit log
          </LinkButton>
        </Stack>
      </Stack>

      {load.state === 'loading' && <LoadingPlaceholder text="Loading runbooks…" />}
      {load.state === 'error' && (
        <Alert
          severity="error"
          title={`Runbooks could not be loaded: ${load.error.code} (${load.error.status || 'no answer'})`}
        >
          <Stack direction="column" gap={1}>
            <span>{load.error.message}</span>
            <div>
              <Button variant="secondary" size="sm" onClick={fetchRunbooks}>
                Try again
              </Button>
            </div>
          </Stack>
        </Alert>
      )}
      {load.state === 'done' && load.runbooks.length === 0 && (
        <EmptyState variant="not-found" message="The runbook service has no runbooks." />
      )}
      {load.state === 'done' && load.runbooks.length > 0 && shown.length === 0 && (
        <EmptyState variant="not-found" message="No runbook matches the search and severity." />
      )}

      <ul className={styles.list} aria-label="Runbooks">
        {shown.map((runbook) => (
          <li key={runbook.id}>
            <Card>
              <Card.Heading>{runbook.title}</Card.Heading>
              <Card.Meta>{[runbook.id]}</Card.Meta>
              <Card.Figure>
                <SeverityBadge severity={runbook.severity} />
              </Card.Figure>
              {runbook.description && <Card.Description>{runbook.description}</Card.Description>}
              {runbook.tags && runbook.tags.length > 0 && (
                <Card.Tags>
                  <TagList tags={runbook.tags} />
                </Card.Tags>
              )}
              <Card.Actions>
                {(['diagnose', 'plan', 'run'] as const).map((action) => (
                  <Button
                    key={action}
                    variant={action === 'run' ? 'primary' : 'secondary'}
                    icon={action === 'diagnose' ? 'search' : action === 'plan' ? 'list-ul' : 'play'}
                    aria-label={`${label(action)} ${runbook.title}`}
                    onClick={() => setOpen({ runbook, action })}
                  >
                    {label(action)}
                  </Button>
                ))}
              </Card.Actions>
            </Card>
          </li>
        ))}
      </ul>

      {open && (
        <CatalogActionDrawer
          key={`${open.runbook.id}/${open.action}`}
          runbook={open.runbook}
          action={open.action}
          onClose={() => setOpen(null)}
        />
      )}
    </div>
  );
}

const label = (action: CatalogAction) => action.charAt(0).toUpperCase() + action.slice(1);

const getStyles = (theme: GrafanaTheme2) => ({
  page: css({ display: 'flex', flexDirection: 'column', gap: theme.spacing(2) }),
  noMargin: css({ marginBottom: 0 }),
  list: css({ listStyle: 'none', margin: 0, padding: 0, display: 'grid', gap: theme.spacing(1) }),
});
