import type { z } from 'zod';
import { InputValidationError } from '../core/errors';
import type { RunMode } from '../core/step';
import type { Role, ServerOptions } from './options';

/** The least role of each mode: diagnosing changes nothing, planning and executing are an editor's. */
export const DEFAULT_ROLE_OF_MODE: Readonly<Record<RunMode, Role>> = {
  diagnose: 'viewer',
  plan: 'editor',
  execute: 'editor',
};

/**
 * Per-runbook roles (the `runbookRoles` option), overriding {@link DEFAULT_ROLE_OF_MODE} for the modes
 * named: a runbook that only reads may let viewers plan it; one whose every action is delicate may want
 * admins to execute it. Destructive and high-risk plans still wait for an admin's approval whatever role
 * started the run.
 */
export type RunbookRoles = z.output<typeof ServerOptions>['runbookRoles'];

/** Which role starting a run of a runbook in a mode needs. */
export class AccessPolicy {
  constructor(private readonly overrides: RunbookRoles = {}) {}

  /** The least role for `mode` of `runbookId`; the default one for a runbook with no override (or none at all). */
  roleFor(runbookId: string, mode: RunMode): Role {
    return this.overrides[runbookId]?.[mode] ?? DEFAULT_ROLE_OF_MODE[mode];
  }
}

/**
 * Throws an {@link InputValidationError} naming `runbookRoles.<id>` for each key of `roles` that is not a
 * runbook among `known`: a typo (`fix-hihg`) would otherwise leave the runbook meant at its default roles,
 * a security setting failing open. `known` takes runbook ids or the runbooks themselves.
 */
export function checkRunbookRoles(
  roles: RunbookRoles | undefined,
  known: readonly (string | { id: string })[],
): void {
  const ids = known.map((k) => (typeof k === 'string' ? k : k.id));
  const loaded = [...ids].sort().join(', ') || 'none';
  const issues = Object.keys(roles ?? {})
    .filter((id) => !ids.includes(id))
    .map((id) => ({
      path: `runbookRoles.${id}`,
      message: `no runbook "${id}" is loaded, so its roles would apply to nothing; loaded: ${loaded}`,
    }));
  if (issues.length > 0) throw new InputValidationError('runbook roles', issues);
}
