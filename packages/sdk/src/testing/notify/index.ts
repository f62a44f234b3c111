/** Notification doubles: PagerDuty Events v2, Slack incoming webhooks, Atlassian Statuspage. */
export { InjectedFailure, type InjectedFailureInput, secretFingerprint } from './http-double';
export {
  type PagerDutyDouble,
  type PagerDutyDoubleIncident,
  PagerDutyDoubleOptions,
  type PagerDutyDoubleOptionsInput,
  type PagerDutyLoggedEvent,
  startPagerDutyDouble,
} from './pagerduty-double';
export {
  type SlackDouble,
  SlackDoubleOptions,
  type SlackDoubleOptionsInput,
  type SlackLoggedMessage,
  startSlackDouble,
} from './slack-double';
export {
  type StatusPageDouble,
  type StatusPageDoubleIncident,
  StatusPageDoubleOptions,
  type StatusPageDoubleOptionsInput,
  type StatusPageDoubleUpdate,
  type StatusPageLoggedRequest,
  startStatusPageDouble,
} from './status-page-double';
