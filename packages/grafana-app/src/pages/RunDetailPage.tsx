import { css } from '@emotion/css';
import type { GrafanaTheme2 } from '@grafana/data';
import {
  Alert,
  Badge,
  Button,
  ConfirmModal,
  Field,
  LoadingPlaceholder,
  Stack,
  Text,
  TextArea,
  TextLink,
  useStyles2,
} from '@grafana/ui';
import React, { useState } from 'react';
import { Link, useParams } from 'react-router-dom';
import { api, ServiceError } from '../api/client';
import type { RunDetailView } from '../api/types';
import { ApprovalPanel, ServiceErrorAlert } from '../components/ApprovalPanel';
import { FindingCard } from '../components/EvidenceView';
import { formatJson } from '../components/evidence-model';
import { PlanDiff } from '../components/PlanDiff';
import { RunSteps, RunTimeline } from '../components/RunTimeline';
import {
  contextFacts,
  FINAL_STATUSES,
  formatDuration,
  formatTime,
  RUN_STATUS_COLOR,
  statusText,
} from '../components/run-format';
import { useRunPolling } from '../components/run-polling';
import { APP_URL } from '../settings';

/**
 * A run (`runs/:runId`): its header, what it found (with evidence), its plan as a diff, the approval it
 * waits for, and a live timeline, followed by JSON polling until the run has ended.
 */
export function RunDetailPage() {
  const { runId = '' } = useParams<{ runId: string }>();
  const styles = useStyles2(getStyles);
  const { detail, events, done, error, refresh } = useRunPolling(runId);

  if (!detail) {
    if (error) {
      return (
        <div className={styles.page}>
          <ServiceErrorAlert title={`Run ${runId} could not be loaded`} error={error} />
          <Link to={`${APP_URL}/runs`}>Back to runs</Link>
        </div>
      );
    }
    return <LoadingPlaceholder text="Loading run…" />;
  }

  const { run, steps, findings, plans, approvals } = detail;
  const pending =
    run.status === 'waiting_approval' ? approvals.find((a) => a.status === 'pending') : undefined;
  const pendingPlans = pending ? plans.filter((p) => p.step === pending.step) : [];
  const shownPlans = pending ? plans.filter((p) => p.step !== pending.step) : plans;

  return (
    <div className={styles.page}>
      <RunHeader detail={detail} onCancelled={refresh} />
      {error && <ServiceErrorAlert title="The run could not be refreshed; retrying" error={error} />}
      {pending && (
        <ApprovalPanel
          runId={run.id}
          approval={pending}
          plans={pendingPlans}
          onDecided={() => void refresh()}
        />
      )}
      <section aria-labelledby="run-steps">
        <h3 id="run-steps">Steps</h3>
        <RunSteps steps={steps} />
      </section>
      {findings.length > 0 && (
        <section aria-labelledby="run-findings">
          <h3 id="run-findings">Findings</h3>
          <Stack direction="column" gap={2}>
            {findings.map((f) => (
              <FindingCard key={f.step} finding={f} />
            ))}
          </Stack>
        </section>
      )}
      {shownPlans.length > 0 && (
        <section aria-labelledby="run-plan">
          <h3 id="run-plan">Plan</h3>
          <PlanDiff plans={shownPlans} />
        </section>
      )}
      {approvals.some((a) => a.status !== 'pending') && (
        <section aria-labelledby="run-decisions">
          <h3 id="run-decisions">Decisions</h3>
          <ul className={styles.plainList}>
            {approvals
              .filter((a) => a.status !== 'pending')
              .map((a) => (
                <li key={a.id}>
                  <Text>
                    {a.step}: {a.status}
                    {a.decidedBy ? ` by ${a.decidedBy}` : ''}
                    {a.breakGlass ? ' (break-glass)' : ''}
                    {a.reason ? ` — ${a.reason}` : ''}
                  </Text>{' '}
                  <Text color="secondary">{formatTime(a.decidedAt)}</Text>
                </li>
              ))}
          </ul>
        </section>
      )}
      <section aria-labelledby="run-timeline">
        <h3 id="run-timeline">Timeline</h3>
        <RunTimeline events={events} live={!done} />
      </section>
    </div>
  );
}

/** Who started the run, how, when, from where, its outcome, and Cancel while it can still be cancelled. */
function RunHeader({ detail, onCancelled }: { detail: RunDetailView; onCancelled: () => Promise<void> }) {
  const styles = useStyles2(getStyles);
  const { run } = detail;
  const facts = contextFacts(run.context);
  const duration = formatDuration(run.startedAt, run.endedAt);
  const final = FINAL_STATUSES.includes(run.status);
  return (
    <header className={styles.header}>
      <Stack direction="row" gap={1} alignItems="center" wrap="wrap">
        <h2 className={styles.title}>{run.runbookId}</h2>
        {/* A live region: the status changes while the page follows the run. */}
        <span role="status" aria-label={`Status: ${statusText(run.status)}`}>
          <Badge text={statusText(run.status)} color={RUN_STATUS_COLOR[run.status]} />
        </span>
        <Badge text={run.mode} color="blue" />
        {!final && <CancelRun detail={detail} onCancelled={onCancelled} />}
      </Stack>
      <dl className={styles.facts}>
        <dt>Run</dt>
        <dd>
          <code>{run.id}</code>
        </dd>
        <dt>Requested by</dt>
        <dd>{run.requestedBy}</dd>
        <dt>Created</dt>
        <dd>{formatTime(run.createdAt)}</dd>
        {run.startedAt && (
          <>
            <dt>Started</dt>
            <dd>{formatTime(run.startedAt)}</dd>
          </>
        )}
        {run.endedAt && (
          <>
            <dt>Ended</dt>
            <dd>
              {formatTime(run.endedAt)}
              {duration ? ` (${duration})` : ''}
            </dd>
          </>
        )}
        {facts.map((f) => (
          <React.Fragment key={f.label}>
            <dt>{f.label}</dt>
            <dd>
              {f.href ? (
                <TextLink href={f.href} external={!f.href.startsWith('/')} inline>
                  {f.text}
                </TextLink>
              ) : (
                f.text
              )}
            </dd>
          </React.Fragment>
        ))}
        <dt>Input</dt>
        <dd>
          <code className={styles.inline}>{JSON.stringify(run.input)}</code>
        </dd>
      </dl>
      {run.cancelRequested && !final && (
        <Alert title="Cancel requested" severity="info">
          {run.cancelRequested} asked to cancel this run; it stops at its next step.
        </Alert>
      )}
      {run.error && (
        <Alert title={`The run ${statusText(run.status)}`} severity="error">
          {run.error.message} ({run.error.code})
        </Alert>
      )}
      {final && run.outcome !== null && run.outcome !== undefined && (
        <div>
          <Text color="secondary">Outcome: </Text>
          <code className={styles.inline}>{formatJson(run.outcome)}</code>
        </div>
      )}
    </header>
  );
}

/** Cancel (editors): confirmed in a modal that shows what the run was going to change. */
function CancelRun({ detail, onCancelled }: { detail: RunDetailView; onCancelled: () => Promise<void> }) {
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState('');
  const [error, setError] = useState<ServiceError | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const { run, plans } = detail;

  const cancel = async () => {
    setError(null);
    try {
      const answer = await api.cancel(run.id, reason.trim() === '' ? {} : { reason: reason.trim() });
      setOpen(false);
      setNote(answer.result === 'requested' ? 'Cancel requested: the run stops at its next step.' : null);
      await onCancelled();
    } catch (e) {
      setOpen(false);
      setError(e instanceof ServiceError ? e : new ServiceError(0, 'UNKNOWN', String(e)));
    }
  };

  return (
    <>
      <Button
        variant="destructive"
        icon="times"
        size="sm"
        onClick={() => setOpen(true)}
        disabled={run.cancelRequested !== null}
      >
        Cancel run
      </Button>
      {error && <ServiceErrorAlert title="The run could not be cancelled" error={error} />}
      {note && <Text color="secondary">{note}</Text>}
      <ConfirmModal
        isOpen={open}
        title="Cancel this run?"
        body={
          <Stack direction="column" gap={1}>
            <Text>
              {run.runbookId} ({run.mode}, {statusText(run.status)}) stops; what it has not applied yet is not
              applied.
            </Text>
            {plans.length > 0 && <PlanDiff plans={plans} />}
            <Field label="Reason (optional)">
              <TextArea
                value={reason}
                rows={2}
                maxLength={2000}
                onChange={(e) => setReason(e.currentTarget.value)}
              />
            </Field>
          </Stack>
        }
        confirmText="Cancel run"
        dismissText="Keep running"
        onConfirm={cancel}
        onDismiss={() => setOpen(false)}
      />
    </>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  page: css({ display: 'flex', flexDirection: 'column', gap: theme.spacing(3) }),
  header: css({ display: 'flex', flexDirection: 'column', gap: theme.spacing(1) }),
  title: css({ margin: 0 }),
  facts: css({
    display: 'grid',
    gridTemplateColumns: 'max-content 1fr',
    columnGap: theme.spacing(2),
    rowGap: theme.spacing(0.5),
    margin: 0,
    dt: { color: theme.colors.text.secondary },
    dd: { margin: 0, wordBreak: 'break-word' },
  }),
  inline: css({ fontFamily: theme.typography.fontFamilyMonospace, whiteSpace: 'pre-wrap' }),
  plainList: css({ margin: 0, paddingLeft: theme.spacing(2) }),
});
