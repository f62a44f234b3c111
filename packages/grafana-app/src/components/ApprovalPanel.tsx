import { css } from '@emotion/css';
import type { GrafanaTheme2 } from '@grafana/data';
import { Alert, Button, Checkbox, ConfirmModal, Field, Stack, Text, TextArea, useStyles2 } from '@grafana/ui';
import React, { useId, useState } from 'react';
import { api, ServiceError } from '../api/client';
import type { RunDetailView } from '../api/types';
import { type Plan, PlanDiff } from './PlanDiff';

type Approval = RunDetailView['approvals'][number];

/** What a decision needs before it is sent; `null` when it may be sent. */
export function decisionProblem(
  decision: 'approve' | 'reject',
  reason: string,
  breakGlass: boolean,
): string | null {
  const given = reason.trim() !== '';
  if (decision === 'reject' && !given) return 'Give a reason to reject: it is recorded with the decision.';
  if (decision === 'approve' && breakGlass && !given)
    return 'Break-glass approval needs a reason: it is audited as an emergency approval.';
  return null;
}

/** Formats a service failure as the service put it: its message and code. */
export function ServiceErrorAlert({
  title,
  error,
  children,
}: {
  title: string;
  error: ServiceError;
  /** What the user can do about it (a retry button), below the message. */
  children?: React.ReactNode;
}) {
  return (
    <Alert title={title} severity="error">
      {error.message} <Text color="secondary">({error.code})</Text>
      {children}
    </Alert>
  );
}

/** Why a decision was refused, in a few words; the alert's body has the message itself. */
function refusalTitle(error: ServiceError): string {
  if (error.code === 'FOUR_EYES') return 'You requested this run: another admin must decide';
  if (error.status === 403) return 'Only Grafana Admins may approve or reject plans';
  return 'The decision was refused';
}

/**
 * A pending approval: the plan it is bound to, a reason, break-glass, and Approve / Reject. Only admins
 * other than the requester may decide (the service enforces it and answers 403 otherwise, which is shown
 * with its message). Rejecting always needs a reason; approving one's own run needs break-glass and a reason.
 */
export function ApprovalPanel({
  runId,
  approval,
  plans,
  onDecided,
}: {
  runId: string;
  approval: Approval;
  /** The plans of the step waiting for approval. */
  plans: Plan[];
  /** Called after the service accepted the decision. */
  onDecided: () => void;
}) {
  const styles = useStyles2(getStyles);
  const titleId = useId();
  const reasonId = useId();
  const [reason, setReason] = useState('');
  const [breakGlass, setBreakGlass] = useState(false);
  const [tried, setTried] = useState<'approve' | 'reject' | null>(null);
  const [confirming, setConfirming] = useState<'approve' | 'reject' | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ServiceError | null>(null);

  const destructive = plans.some((p) => p.destructive);
  const problem = tried ? decisionProblem(tried, reason, breakGlass) : null;

  const send = async (decision: 'approve' | 'reject') => {
    setBusy(true);
    setError(null);
    try {
      const body = reason.trim() === '' ? {} : { reason: reason.trim() };
      if (decision === 'approve')
        await api.approve(runId, { ...body, ...(breakGlass ? { breakGlass: true } : {}) });
      else await api.reject(runId, body);
      onDecided();
    } catch (e) {
      setError(e instanceof ServiceError ? e : new ServiceError(0, 'UNKNOWN', String(e)));
    } finally {
      setBusy(false);
      setConfirming(null);
    }
  };

  const attempt = (decision: 'approve' | 'reject') => {
    setTried(decision);
    if (decisionProblem(decision, reason, breakGlass)) return;
    // Rejecting ends the run, and approving a destructive plan lets it destroy: both are confirmed.
    if (decision === 'reject' || destructive) setConfirming(decision);
    else void send(decision);
  };

  return (
    <section className={styles.panel} aria-labelledby={titleId}>
      <h3 id={titleId}>Waiting for approval</h3>
      <p>
        <Text>
          Step <strong>{approval.step}</strong>, requested by <strong>{approval.requestedBy}</strong>; the
          approval expires at {new Date(approval.expiresAt).toLocaleString()}. An admin other than the
          requester decides.
        </Text>
      </p>
      <PlanDiff plans={plans} />
      <div className={styles.form}>
        <Field
          label="Reason"
          description="Recorded in the audit log with the decision. Required to reject, and for break-glass."
          invalid={problem !== null}
          error={problem ?? undefined}
        >
          <TextArea
            id={reasonId}
            value={reason}
            rows={2}
            maxLength={2000}
            onChange={(e) => setReason(e.currentTarget.value)}
          />
        </Field>
        <Checkbox
          label="Break glass: approve a run I requested myself (emergency only, audited)"
          value={breakGlass}
          onChange={(e) => setBreakGlass(e.currentTarget.checked)}
        />
        <Stack direction="row" gap={1}>
          <Button
            variant={destructive ? 'destructive' : 'primary'}
            icon="check"
            disabled={busy}
            onClick={() => attempt('approve')}
          >
            Approve
          </Button>
          <Button
            variant="destructive"
            fill="outline"
            icon="times"
            disabled={busy}
            onClick={() => attempt('reject')}
          >
            Reject
          </Button>
        </Stack>
        {error && <ServiceErrorAlert title={refusalTitle(error)} error={error} />}
      </div>
      <ConfirmModal
        isOpen={confirming !== null}
        title={confirming === 'reject' ? 'Reject this plan?' : 'Approve this destructive plan?'}
        body={
          <Stack direction="column" gap={1}>
            <Text>
              {confirming === 'reject'
                ? 'The run ends cancelled and nothing of this plan is applied.'
                : 'The run continues and applies this plan, which destroys what it changes.'}
            </Text>
            <PlanDiff plans={plans} />
          </Stack>
        }
        confirmText={confirming === 'reject' ? 'Reject' : 'Approve'}
        disabled={busy}
        onConfirm={() => (confirming ? send(confirming) : undefined)}
        onDismiss={() => setConfirming(null)}
      />
    </section>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  panel: css({
    padding: theme.spacing(2),
    border: `1px solid ${theme.colors.warning.border}`,
    borderRadius: theme.shape.radius.default,
    background: theme.colors.warning.transparent,
    h3: { marginTop: 0 },
  }),
  form: css({ marginTop: theme.spacing(2), display: 'flex', flexDirection: 'column', gap: theme.spacing(1) }),
});
