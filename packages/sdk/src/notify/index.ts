/**
 * `@aiwebtest/runbooks/notify` — paging, chat and status page, and the on-call procedure as code.
 *
 * Clients over `fetch` for PagerDuty Events v2 ({@link pagerDuty}), Slack incoming webhooks ({@link slackWebhook})
 * and an Atlassian Statuspage ({@link statusPage}); {@link createNotifier}, the engine's `Notifier` routing
 * `pager[:team]`, `slack:#channel` and `statuspage[:status]`; the manual's severities ({@link SEVERITY_LEVELS})
 * and escalation path ({@link ON_CALL_POLICY}) as data; the {@link Escalator} that pages levels over time; the
 * incident timeline and report.
 *
 * @module \@aiwebtest/runbooks/notify
 */

export { DeliveryRetryOptions, type DeliveryRetryOptionsInput } from './delivery';
export {
  isNotificationError,
  isUnknownChannelError,
  NotificationError,
  UnknownChannelError,
} from './errors';
export {
  EscalatedIncident,
  type EscalationEvent,
  Escalator,
  EscalatorOptions,
  type EscalatorOptionsInput,
  EscalatorState,
  type OpenIncident,
} from './escalator';
export { type IncidentReportInput, incidentReport } from './incident-report';
export { type IncidentUpdates, incidentUpdates } from './incident-updates';
export {
  createNotifier,
  type EngineNotification,
  type NotifierSinks,
  type RunEnded,
  runDedupKey,
} from './notifier';
export {
  PAGERDUTY_SUMMARY_LIMIT,
  type PagerDutyAccepted,
  type PagerDutyClient,
  PagerDutyOptions,
  type PagerDutyOptionsInput,
  type PagerDutyTrigger,
  pagerDuty,
} from './pagerduty';
export {
  PagerDutyWebhookEvent,
  pagerDutySignature,
  verifyPagerDutySignature,
  webhookDecision,
} from './pagerduty-webhook';
export {
  EscalationLevel,
  type EscalationLevelInput,
  EscalationPolicy,
  type EscalationPolicyInput,
  ON_CALL_POLICY,
  SeverityName,
} from './policy';
export {
  NotifyConfig,
  type NotifyConfigInput,
  type NotifyWiring,
  notifierFromConfig,
  SecretRef,
} from './service-config';
export {
  type PagerDutySeverity,
  pagerDutySeverity,
  SEVERITY_LEVELS,
  type SeverityLevel,
  type StatusPageImpact,
  statusPageImpact,
} from './severity';
export {
  type SlackMessage,
  type SlackWebhook,
  SlackWebhookOptions,
  type SlackWebhookOptionsInput,
  slackWebhook,
} from './slack';
export {
  IncidentStatus,
  type StatusPageClient,
  type StatusPageIncident,
  StatusPageOptions,
  type StatusPageOptionsInput,
  statusPage,
} from './status-page';
export {
  incidentTimeline,
  TimelineAuditRecord,
  type TimelineEntry,
  TimelineInput,
  type TimelineKind,
  TimelineRun,
} from './timeline';
