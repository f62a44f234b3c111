import { z } from 'zod';

/**
 * Routing of Alertmanager alerts to runbooks (a zod-validated config file). To be completed: label
 * matchers → runbook, inputs and mode.
 */
export const AlertRouting = z.strictObject({
  routes: z.array(z.unknown()).default([]),
});
/** Routing of Alertmanager alerts to runbooks. */
export type AlertRouting = z.input<typeof AlertRouting>;
