import { parse } from 'yaml';
import { z } from 'zod';
import { InputValidationError } from '../core/errors';
import { NotifyConfig } from '../notify/service-config';
import { AlertRouting } from './alert-routing';
import { readConfigText } from './config-file';
import { ServerOptions } from './options';

/**
 * The service config file (`runbook serve --config`, the Kubernetes ConfigMap): per-runbook roles and alert
 * routing. Strict: a misspelt key is an error, not a silently ignored setting.
 */
export const ServiceConfig = z.strictObject({
  /** Per-runbook roles for starting runs. @default {} (diagnose: viewer; plan and execute: editor) */
  runbookRoles: ServerOptions.shape.runbookRoles.optional(),
  /** How Alertmanager alerts become runs. @default no routes */
  alerts: AlertRouting.optional(),
  /** Paging, Slack, status page and on-call escalation for `step.notify` and escalations (NOTIFY.md). @default none */
  notify: NotifyConfig.optional(),
});
/** A parsed service config, defaults applied; pass it as {@link createServer}'s options. */
export type ServiceConfig = z.output<typeof ServiceConfig>;

/** Thrown when the service config cannot be read or is not YAML/JSON; its message names the file. */
export class ServiceConfigError extends Error {
  override readonly name = 'ServiceConfigError';
}

/**
 * Reads and validates a service config file (YAML or JSON). Throws a {@link ServiceConfigError} when it is
 * missing or unparsable, and an {@link InputValidationError} naming each bad field
 * (`alerts.routes.0.mode: …`) when it does not match {@link ServiceConfig}.
 */
export function readServiceConfig(path: string): ServiceConfig {
  const text = readConfigText(path, 'service config', ServiceConfigError);
  let document: unknown;
  try {
    // JSON is YAML too, so one parser reads both.
    document = parse(text);
  } catch (e) {
    throw new ServiceConfigError(
      `The service config ${path} is neither YAML nor JSON (${(e as Error).message.split('\n')[0]}).`,
    );
  }
  // An empty file is an empty config: no overrides, no alert routes.
  const parsed = ServiceConfig.safeParse(document ?? {});
  if (!parsed.success) {
    throw new InputValidationError(
      `service config ${path}`,
      parsed.error.issues.flatMap((i) =>
        // One line per unknown key, at its own path (`alerts.routes.0.matchRegexp`), not at its parent's.
        i.code === 'unrecognized_keys'
          ? i.keys.map((key) => ({
              path: [...i.path, key].join('.'),
              message: 'unknown key; check its spelling against the config format (CLI.md, serve)',
            }))
          : [{ path: i.path.join('.'), message: i.message }],
      ),
    );
  }
  return parsed.data;
}
