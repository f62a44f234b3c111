import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { Escalator, EscalatorState } from './escalator';
import { incidentUpdates } from './incident-updates';
import { createNotifier } from './notifier';
import { pagerDuty } from './pagerduty';
import { EscalationPolicy, ON_CALL_POLICY } from './policy';
import { type SlackWebhook, slackWebhook } from './slack';
import { statusPage } from './status-page';

/**
 * Where a secret is read from: an environment variable or a file (a mounted Kubernetes Secret). Never the value
 * itself: a config file is shown, diffed and logged; secrets are not.
 */
export const SecretRef = z.union([
  z.strictObject({ env: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'expected an environment variable name') }),
  z.strictObject({ file: z.string().min(1) }),
]);
export type SecretRef = z.infer<typeof SecretRef>;

/** A URL written in the config, or read from the environment like a secret (where it differs per environment). */
const UrlOrRef = z.union([z.url(), SecretRef]);

/** The `notify:` section of the service config (service.yaml). */
export const NotifyConfig = z.strictObject({
  /** PagerDuty Events v2. @default none: `pager` channels are unknown */
  pagerduty: z
    .strictObject({
      /** @default "https://events.pagerduty.com" */
      url: UrlOrRef.optional(),
      /** Routing key per team (`default` serves the `pager` channel). */
      routingKeys: z.record(z.string().min(1), SecretRef),
      /**
       * The signing secret of a PagerDuty v3 webhook subscription (incident.acknowledged, incident.resolved) that
       * posts to `POST /api/v1/incidents/pagerduty`: acknowledgements and resolutions made in PagerDuty then reach
       * the escalator. @default none: the route does not exist
       */
      webhookSecret: SecretRef.optional(),
    })
    .optional(),
  /**
   * Slack incoming webhooks by channel (`"#incidents"`). The URL is the webhook's only credential, so it is a
   * secret like a routing key: `{ env }` or `{ file }`, never written inline. @default none
   */
  slack: z
    .strictObject({
      webhooks: z.record(z.string().regex(/^#/, 'expected a channel such as "#incidents"'), SecretRef),
    })
    .optional(),
  /** An Atlassian Statuspage. @default none */
  statuspage: z
    .strictObject({
      /** @default "https://api.statuspage.io" */
      url: UrlOrRef.optional(),
      pageId: z.string().min(1),
      apiKey: SecretRef,
      /** @default [] */
      componentIds: z.array(z.string().min(1)).optional(),
    })
    .optional(),
  /**
   * The on-call escalation: when present, escalations to `pager` open an incident that pages the policy's levels
   * over time (their teams need routing keys). `true` uses the manual's policy. @default none
   */
  escalation: z.union([z.literal(true), EscalationPolicy]).optional(),
  /**
   * A JSON file the escalator keeps its incidents in, rewritten on every change and read at start: a restarted
   * service goes on paging (and never pages a level twice) instead of forgetting open incidents. @default memory only
   */
  escalationStateFile: z.string().min(1).optional(),
  /** Where status updates of escalated incidents go, a `slack.webhooks` channel. @default "#incidents" if configured */
  updatesChannel: z.string().regex(/^#/).optional(),
});
export type NotifyConfig = z.infer<typeof NotifyConfig>;
/** {@link NotifyConfig} as written. */
export type NotifyConfigInput = z.input<typeof NotifyConfig>;

/** What {@link notifierFromConfig} builds. */
export interface NotifyWiring {
  /** The engine's notifier; wire `notifier.runEnded` to the engine's `onRunEnd` (resolves a succeeded run's pages). */
  notifier: ReturnType<typeof createNotifier>;
  /** Present when `escalation` is configured; the caller starts and stops it. */
  escalator?: Escalator;
  /** Every secret read, for the engine's redactor. */
  secrets: string[];
}

/**
 * Builds the engine's notifier (and the escalator) from a service config's `notify:` section, reading secrets
 * from `env` or files. Throws naming the config path of a secret that is missing (never its value).
 */
export function notifierFromConfig(
  config: NotifyConfig,
  env: Record<string, string | undefined> = process.env,
): NotifyWiring {
  const secrets: string[] = [];
  const read = (ref: SecretRef, path: string): string => {
    let value: string | undefined;
    if ('env' in ref) value = env[ref.env];
    else {
      try {
        value = readFileSync(ref.file, 'utf8').trim();
      } catch (e) {
        throw new TypeError(
          `notify.${path}: cannot read ${ref.file} (${(e as NodeJS.ErrnoException).code ?? 'error'}).`,
        );
      }
    }
    if (!value?.trim()) {
      throw new TypeError(
        `notify.${path}: ${'env' in ref ? `environment variable ${ref.env}` : `file ${ref.file}`} is empty or not set.`,
      );
    }
    secrets.push(value.trim());
    return value.trim();
  };
  const url = (value: z.infer<typeof UrlOrRef> | undefined, path: string): string | undefined =>
    value === undefined || typeof value === 'string' ? value : read(value, path);

  const pd = config.pagerduty
    ? pagerDuty({
        ...(config.pagerduty.url ? { url: url(config.pagerduty.url, 'pagerduty.url') } : {}),
        routingKeys: Object.fromEntries(
          Object.entries(config.pagerduty.routingKeys).map(([team, ref]) => [
            team,
            read(ref, `pagerduty.routingKeys.${team}`),
          ]),
        ),
      })
    : undefined;
  const slack: Record<string, SlackWebhook> = {};
  for (const [channel, ref] of Object.entries(config.slack?.webhooks ?? {})) {
    slack[channel] = slackWebhook({ url: read(ref, `slack.webhooks.${channel}`), channel });
  }
  const page = config.statuspage
    ? statusPage({
        ...(config.statuspage.url ? { url: url(config.statuspage.url, 'statuspage.url') } : {}),
        pageId: config.statuspage.pageId,
        apiKey: read(config.statuspage.apiKey, 'statuspage.apiKey'),
        componentIds: config.statuspage.componentIds ?? [],
      })
    : undefined;

  let escalator: Escalator | undefined;
  if (config.pagerduty?.webhookSecret && config.escalation === undefined) {
    throw new TypeError(
      'notify.pagerduty.webhookSecret: PagerDuty webhooks report to the escalator, so it needs notify.escalation.',
    );
  }
  if (config.escalation !== undefined) {
    if (!pd) throw new TypeError('notify.escalation: needs notify.pagerduty (the levels are paged there).');
    const policy = config.escalation === true ? ON_CALL_POLICY : config.escalation;
    const missing = policy.levels.filter((l) => !pd.teams.includes(l.team)).map((l) => l.team);
    if (missing.length) {
      throw new TypeError(
        `notify.escalation: no routing key for team(s) ${missing.join(', ')}: add them to notify.pagerduty.routingKeys.`,
      );
    }
    const updatesChannel = config.updatesChannel ?? (slack['#incidents'] ? '#incidents' : undefined);
    const stateFile = config.escalationStateFile;
    const webhookSecret = config.pagerduty?.webhookSecret;
    escalator = new Escalator({
      policy,
      pagerDuty: pd,
      ...(webhookSecret ? { pagerDutyWebhookSecret: read(webhookSecret, 'pagerduty.webhookSecret') } : {}),
      ...(stateFile
        ? { state: readEscalatorState(stateFile), onChange: (state) => writeEscalatorState(stateFile, state) }
        : {}),
      updates: incidentUpdates({
        ...(updatesChannel && slack[updatesChannel] ? { slack: slack[updatesChannel] } : {}),
        ...(page ? { statusPage: page } : {}),
      }),
    });
  }
  const notifier = createNotifier({
    ...(pd ? { pagerDuty: pd } : {}),
    slack,
    ...(page ? { statusPage: page } : {}),
    ...(escalator ? { escalator } : {}),
  });
  return { notifier, ...(escalator ? { escalator } : {}), secrets };
}

function readEscalatorState(file: string): EscalatorState | undefined {
  if (!existsSync(file)) return undefined;
  const parsed = EscalatorState.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TypeError(
      `notify.escalationStateFile: ${file} is not an escalator state (${issue?.path.join('.') || '(root)'}: ${issue?.message}). Move it away to start with no open incidents.`,
    );
  }
  return parsed.data;
}

// Written to a temporary file and renamed over the old one: a crash mid-write never leaves half a state.
function writeEscalatorState(file: string, state: EscalatorState): void {
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(temporary, file);
}
