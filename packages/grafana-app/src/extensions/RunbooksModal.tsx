import { css } from '@emotion/css';
import type { GrafanaTheme2 } from '@grafana/data';
import { Alert, Button, ConfirmModal, LoadingPlaceholder, Stack, Text, useStyles2 } from '@grafana/ui';
import React, { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { api, ServiceError } from '../api/client';
import type { RunbookView, RunDetailView } from '../api/types';
import { ExecutionQueued, RunLink, SeverityBadge } from '../components/catalog-results';
import { FindingCard } from '../components/EvidenceView';
import { InputForm } from '../components/InputForm';
import { newIdempotencyKey } from '../components/idempotency';
import { PlanDiff } from '../components/PlanDiff';
import type { IncidentContext } from './context-labels';
import { type MatchReason, matchRunbooks, prefillInput } from './matching';

const asServiceError = (e: unknown): ServiceError =>
  e instanceof ServiceError
    ? e
    : new ServiceError(0, 'CLIENT_ERROR', e instanceof Error ? e.message : String(e));

function ErrorAlert({ error, title }: { error: ServiceError; title?: string }) {
  return (
    <Alert severity="error" title={title ?? `${error.code} (${error.status || 'no answer'})`}>
      {title ? `${error.code} (${error.status || 'no answer'}): ` : ''}
      {error.message}
    </Alert>
  );
}

const reasonText = (reason: MatchReason): string =>
  reason.kind === 'trigger'
    ? `matches ${Object.entries(reason.match)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ')}`
    : `shares the tag ${reason.tags.join(', ')}`;

/** Props of {@link RunbooksModal}. */
export interface RunbooksModalProps {
  /** What the panel or alert says (labels, tags, variables, the run context to send). */
  incident: IncidentContext;
  /** Closes the modal (Grafana's openModal passes it). */
  onDismiss?: () => void;
}

type Load =
  | { state: 'loading' }
  | { state: 'error'; error: ServiceError }
  | { state: 'done'; runbooks: RunbookView[] };

/**
 * The body of the "Runbooks…" modal: the context's labels, the runbooks that match them (trigger labels, then
 * shared dashboard tags), the other runbooks below a divider, and for the open runbook its input (prefilled
 * from the context), its diagnosis inline, its plan, and running it after a confirmation that shows the plan.
 */
export function RunbooksModal({ incident, onDismiss }: RunbooksModalProps) {
  const styles = useStyles2(getStyles);
  const [load, setLoad] = useState<Load>({ state: 'loading' });
  const [openId, setOpenId] = useState<string | null>(null);

  const fetchRunbooks = useCallback(() => {
    setLoad({ state: 'loading' });
    api.listRunbooks().then(
      (runbooks) => setLoad({ state: 'done', runbooks }),
      (e: unknown) => setLoad({ state: 'error', error: asServiceError(e) }),
    );
  }, []);
  useEffect(fetchRunbooks, [fetchRunbooks]);

  const matches = useMemo(
    () => (load.state === 'done' ? matchRunbooks(load.runbooks, incident.labels, incident.tags) : null),
    [load, incident],
  );
  // The best match starts open, with its input prefilled: the on-call engineer's likely next click.
  useEffect(() => {
    const first = matches?.matching[0];
    if (first?.reason.kind === 'trigger') setOpenId((id) => id ?? first.runbook.id);
  }, [matches]);

  const labelEntries = Object.entries(incident.labels);
  const item = (runbook: RunbookView, reason?: MatchReason) => {
    const isOpen = openId === runbook.id;
    return (
      <li key={runbook.id} className={styles.item}>
        <Stack gap={1} alignItems="center" justifyContent="space-between" wrap="wrap">
          <Stack gap={1} alignItems="center" wrap="wrap">
            <SeverityBadge severity={runbook.severity} />
            <Text weight="medium">{runbook.title}</Text>
            <Text color="secondary">{runbook.id}</Text>
            {reason && <Text color="secondary">— {reasonText(reason)}</Text>}
          </Stack>
          <Button
            size="sm"
            variant={isOpen ? 'secondary' : 'primary'}
            fill={isOpen ? 'outline' : 'solid'}
            aria-expanded={isOpen}
            aria-label={`${isOpen ? 'Close' : 'Open'} ${runbook.title}`}
            onClick={() => setOpenId(isOpen ? null : runbook.id)}
          >
            {isOpen ? 'Close' : 'Open'}
          </Button>
        </Stack>
        {runbook.description && <p className={styles.description}>{runbook.description}</p>}
        {isOpen && <RunbookActions runbook={runbook} incident={incident} />}
      </li>
    );
  };

  return (
    <Stack direction="column" gap={2}>
      <section aria-label="Context">
        {labelEntries.length === 0 && incident.tags.length === 0 ? (
          <Text color="secondary">This {incident.kind} carries no labels: every runbook is listed.</Text>
        ) : (
          <ul className={styles.chips} aria-label="Context labels">
            {labelEntries.map(([name, values]) => (
              <li key={name} className={styles.chip}>
                {name}={values.join(' | ')}
              </li>
            ))}
            {incident.tags.map((tag) => (
              <li key={`tag:${tag}`} className={styles.chip}>
                tag:{tag}
              </li>
            ))}
          </ul>
        )}
        {incident.runContext.timeRange && (
          <Text color="secondary" variant="bodySmall">
            {incident.runContext.timeRange.from} → {incident.runContext.timeRange.to}
          </Text>
        )}
      </section>

      {load.state === 'loading' && <LoadingPlaceholder text="Loading runbooks…" />}
      {load.state === 'error' && (
        <Stack direction="column" gap={1}>
          <ErrorAlert error={load.error} title="The runbooks could not be loaded" />
          <div>
            <Button variant="secondary" icon="sync" onClick={fetchRunbooks}>
              Retry
            </Button>
          </div>
        </Stack>
      )}
      {matches && (
        <>
          <section aria-label="Matching">
            <Text element="h3" variant="h5">
              Matching runbooks
            </Text>
            {matches.matching.length === 0 ? (
              <Text color="secondary">No runbook matches this {incident.kind}'s labels or tags.</Text>
            ) : (
              <ul className={styles.list} aria-label="Matching runbooks">
                {matches.matching.map((m) => item(m.runbook, m.reason))}
              </ul>
            )}
          </section>
          {matches.others.length > 0 && (
            <section aria-label="Others">
              <hr className={styles.divider} />
              <Text element="h3" variant="h5">
                Other runbooks
              </Text>
              <ul className={styles.list} aria-label="Other runbooks">
                {matches.others.map((r) => item(r))}
              </ul>
            </section>
          )}
        </>
      )}
      {onDismiss && (
        <div>
          <Button variant="secondary" fill="outline" onClick={onDismiss}>
            Close
          </Button>
        </div>
      )}
    </Stack>
  );
}

/** The input's top-level values as the schema's defaults: "Change input" starts from what was used. */
function withDefaults(
  schema: Record<string, unknown>,
  input: Record<string, unknown>,
): Record<string, unknown> {
  const properties = schema.properties as Record<string, Record<string, unknown>> | undefined;
  if (!properties) return schema;
  const next: Record<string, unknown> = { ...properties };
  for (const [name, value] of Object.entries(input)) {
    if (properties[name]) next[name] = { ...properties[name], default: value };
  }
  return { ...schema, properties: next };
}

/**
 * One runbook's way through: input (prefilled from the context) → Diagnose (findings and evidence inline) →
 * Plan (the plan diff) → Run, confirmed with the plan shown. Every run carries the panel's or alert's context.
 */
function RunbookActions({ runbook, incident }: { runbook: RunbookView; incident: IncidentContext }) {
  const styles = useStyles2(getStyles);
  const prefilled = useMemo(
    () => prefillInput(runbook.input, incident.labels, incident.variables),
    [runbook, incident],
  );
  const [input, setInput] = useState<Record<string, unknown> | null>(null);
  const [editing, setEditing] = useState(true);
  const [diagnosis, setDiagnosis] = useState<RunDetailView | null>(null);
  // The shown plan and the idempotency key of every attempt to run it: a retry after a lost answer (a 502 or
  // 504 after the service had queued the run) gets the same run back instead of a second execution.
  const [plan, setPlan] = useState<{ detail: RunDetailView; key: string } | null>(null);
  const [executed, setExecuted] = useState<{ runId: string; replayed: boolean } | null>(null);
  const [busy, setBusy] = useState<'diagnose' | 'plan' | 'execute' | null>(null);
  const [error, setError] = useState<ServiceError | null>(null);
  const [confirming, setConfirming] = useState(false);
  const context = incident.runContext;
  // The form or the button that was used goes away when a result comes: focus moves to the newest result's
  // heading so that keyboard users stay inside the modal (and Escape still closes it).
  const diagnosisHeading = useRef<HTMLHeadingElement>(null);
  const planHeading = useRef<HTMLHeadingElement>(null);
  const executedHeading = useRef<HTMLHeadingElement>(null);
  const stage = editing ? null : executed ? 'executed' : plan ? 'plan' : diagnosis ? 'diagnosis' : null;
  useEffect(() => {
    const target = { diagnosis: diagnosisHeading, plan: planHeading, executed: executedHeading };
    if (stage) target[stage].current?.focus();
  }, [stage]);

  const diagnose = async (value: Record<string, unknown>) => {
    setBusy('diagnose');
    setError(null);
    try {
      const detail = await api.diagnose(runbook.id, value, context);
      setInput(value);
      setDiagnosis(detail);
      setPlan(null);
      setExecuted(null);
      setEditing(false);
    } catch (e) {
      setError(asServiceError(e));
    } finally {
      setBusy(null);
    }
  };

  const makePlan = async () => {
    if (!input) return;
    setBusy('plan');
    setError(null);
    try {
      const detail = (await api.startRun({
        runbookId: runbook.id,
        input,
        mode: 'plan',
        context,
      })) as RunDetailView;
      setPlan({ detail, key: newIdempotencyKey('grafana-modal') });
    } catch (e) {
      setError(asServiceError(e));
    } finally {
      setBusy(null);
    }
  };

  const execute = async () => {
    if (!input || !plan) return;
    setBusy('execute');
    setError(null);
    try {
      setExecuted(await api.execute({ runbookId: runbook.id, input, context, idempotencyKey: plan.key }));
    } catch (e) {
      setError(asServiceError(e));
    } finally {
      setBusy(null);
      setConfirming(false);
    }
  };

  const destructive = plan?.detail.plans.some((p) => p.destructive) ?? false;
  const filled = Object.entries(prefilled.filled);

  if (editing) {
    return (
      <div className={styles.actions}>
        {filled.length > 0 && (
          <p className={styles.description}>
            From the {incident.kind}: {filled.map(([k, v]) => `${k} = ${v}`).join(', ')}
          </p>
        )}
        <InputForm
          schema={input ? withDefaults(prefilled.schema, input) : prefilled.schema}
          submitLabel="Diagnose"
          onSubmit={diagnose}
          onCancel={input ? () => setEditing(false) : undefined}
          busy={busy === 'diagnose'}
          error={error}
          idPrefix={`runbooks-modal-${runbook.id}`}
        />
      </div>
    );
  }

  return (
    <div className={styles.actions}>
      <Stack direction="column" gap={2}>
        {diagnosis && (
          <section aria-label={`Diagnosis of ${runbook.title}`}>
            <Stack direction="column" gap={1}>
              <h4 ref={diagnosisHeading} tabIndex={-1} className={styles.heading}>
                Diagnosis
              </h4>
              {diagnosis.run.error && <Text color="error">{diagnosis.run.error.message}</Text>}
              {diagnosis.findings.length === 0 ? (
                <Text color="secondary">The diagnosis found nothing to report.</Text>
              ) : (
                diagnosis.findings.map((f) => <FindingCard key={f.step} finding={f} />)
              )}
              <div>
                <RunLink runId={diagnosis.run.id} label="Diagnosis run" />
              </div>
            </Stack>
          </section>
        )}
        {plan && (
          <section aria-label={`Plan of ${runbook.title}`}>
            <Stack direction="column" gap={1}>
              <h4 ref={planHeading} tabIndex={-1} className={styles.heading}>
                Plan
              </h4>
              <PlanDiff plans={plan.detail.plans} />
              <div>
                <RunLink runId={plan.detail.run.id} label="Plan run" />
              </div>
            </Stack>
          </section>
        )}
        {error && <ErrorAlert error={error} />}
        {executed ? (
          <section aria-label={`Run of ${runbook.title}`}>
            <Stack direction="column" gap={1}>
              <h4 ref={executedHeading} tabIndex={-1} className={styles.heading}>
                Run
              </h4>
              <ExecutionQueued runId={executed.runId} replayed={executed.replayed} title="Run queued" />
            </Stack>
          </section>
        ) : (
          <Stack gap={1} wrap="wrap">
            {!plan ? (
              <Button
                onClick={makePlan}
                disabled={busy !== null}
                icon={busy === 'plan' ? 'spinner' : undefined}
              >
                Plan
              </Button>
            ) : (
              <Button
                variant={destructive ? 'destructive' : 'primary'}
                onClick={() => setConfirming(true)}
                disabled={busy !== null}
                icon={busy === 'execute' ? 'spinner' : undefined}
              >
                Run…
              </Button>
            )}
            <Button
              variant="secondary"
              fill="outline"
              onClick={() => {
                setError(null);
                setEditing(true);
              }}
              disabled={busy !== null}
            >
              Change input
            </Button>
          </Stack>
        )}
      </Stack>
      {plan && (
        <ConfirmModal
          isOpen={confirming}
          title={`Run ${runbook.title}?`}
          body={
            <Stack direction="column" gap={1}>
              <Text>The runbook will run again and apply this plan (or wait for approval):</Text>
              <PlanDiff plans={plan.detail.plans} />
            </Stack>
          }
          confirmText="Run"
          confirmButtonVariant={destructive ? 'destructive' : 'primary'}
          onConfirm={execute}
          onDismiss={() => setConfirming(false)}
        />
      )}
    </div>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  list: css({
    listStyle: 'none',
    margin: theme.spacing(1, 0, 0),
    padding: 0,
    display: 'grid',
    gap: theme.spacing(1),
  }),
  item: css({
    padding: theme.spacing(1.5),
    border: `1px solid ${theme.colors.border.weak}`,
    borderRadius: theme.shape.radius.default,
    background: theme.colors.background.secondary,
  }),
  description: css({ color: theme.colors.text.secondary, margin: theme.spacing(0.5, 0, 0) }),
  actions: css({ marginTop: theme.spacing(1.5) }),
  // A heading that takes focus: the theme's h6, no extra margin, and a visible focus ring for keyboard users.
  heading: css({
    ...theme.typography.h6,
    margin: 0,
    // A box-shadow ring like Grafana's own focus styles: its global `[tabindex='-1']:focus { outline: none
    // !important }` hides an outline on a heading that takes the focus after a result.
    '&:focus-visible': {
      boxShadow: `0 0 0 2px ${theme.colors.background.canvas}, 0 0 0 4px ${theme.colors.primary.main}`,
    },
  }),
  chips: css({
    listStyle: 'none',
    margin: 0,
    padding: 0,
    display: 'flex',
    flexWrap: 'wrap',
    gap: theme.spacing(0.5),
  }),
  chip: css({
    fontFamily: theme.typography.fontFamilyMonospace,
    fontSize: theme.typography.bodySmall.fontSize,
    padding: theme.spacing(0.25, 0.75),
    borderRadius: theme.shape.radius.pill,
    border: `1px solid ${theme.colors.border.medium}`,
  }),
  divider: css({
    border: 'none',
    borderTop: `1px solid ${theme.colors.border.medium}`,
    margin: theme.spacing(1, 0),
  }),
});
