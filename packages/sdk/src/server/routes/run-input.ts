import { InputValidationError, isInputValidationError } from '../../core/errors';
import type { Engine } from '../../engine/engine';

/**
 * Validates a runbook's input before a run is created, so that a bad field is reported by its path in the
 * request body (`input.namespace`), as the request's own validation errors are.
 */
export function checkRunInput(engine: Engine, runbookId: string, input: unknown): void {
  try {
    engine.validateInput(runbookId, input);
  } catch (e) {
    if (!isInputValidationError(e)) throw e;
    throw new InputValidationError(
      `input for runbook "${runbookId}"`,
      e.issues.map((i) => ({
        path: i.path ? (i.path.startsWith('[') ? `input${i.path}` : `input.${i.path}`) : 'input',
        message: i.message,
      })),
    );
  }
}
