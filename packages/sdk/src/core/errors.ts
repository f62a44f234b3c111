/**
 * Errors thrown by the SDK. Every error is a {@link RunbookError} with a stable string `code`, a message
 * that says what was wrong and what to do, and the original `cause` where there was one.
 * Use the `isXError` guards on caught values (which are `unknown`).
 */

/** Serializable shape of an error, as stored with a step or a run. */
export interface ErrorInfo {
  /** Stable machine-readable code, e.g. `RESOURCE_LOCKED`. */
  code: string;
  /** Human message: what was wrong and what to do. */
  message: string;
  /** Error class name. */
  name: string;
  /** Structured details, redacted before storage. */
  details?: Record<string, unknown>;
}

// A registry-wide symbol, so that errors thrown by one copy of this package (a runbook pack's) are
// recognised by another (the CLI's or the service's): `instanceof` would fail across copies.
const BRAND = Symbol.for('@aiwebtest/runbooks.RunbookError');

/** Base class of every error the SDK throws. */
export class RunbookError extends Error {
  readonly [BRAND] = true;
  /** Stable machine-readable code. */
  readonly code: string;
  /** Structured details for callers and for the stored record. */
  readonly details: Record<string, unknown> | undefined;
  /** Whether the engine may retry the step that threw it. */
  readonly retriable: boolean;

  constructor(
    code: string,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown>; retriable?: boolean } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details;
    this.retriable = options.retriable ?? true;
  }

  /** The serializable form stored with steps and runs. */
  toInfo(): ErrorInfo {
    return {
      code: this.code,
      message: this.message,
      name: this.name,
      ...(this.details ? { details: this.details } : {}),
    };
  }
}

/** True when `e` is a {@link RunbookError}. */
export function isRunbookError(e: unknown): e is RunbookError {
  return typeof e === 'object' && e !== null && (e as { [BRAND]?: unknown })[BRAND] === true;
}

/** True when `e` is a {@link RunbookError} with the given code (works across copies of the package). */
function hasCode(e: unknown, code: string): boolean {
  return isRunbookError(e) && e.code === code;
}

/** Thrown by a step to say that retrying cannot help (bad credentials, a missing resource). */
export class NonRetriableError extends RunbookError {
  constructor(
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown>; code?: string } = {},
  ) {
    super(options.code ?? 'NON_RETRIABLE', message, { ...options, retriable: false });
  }
}
/** True when `e` is a {@link NonRetriableError} or another error marked not retriable. */
export function isNonRetriableError(e: unknown): e is RunbookError {
  return isRunbookError(e) && !e.retriable;
}

/** Thrown by a step to ask for a retry after a given delay (a 429 with `Retry-After`, say). */
export class RetryAfterError extends RunbookError {
  /** Milliseconds to wait before the next attempt. */
  readonly retryAfterMs: number;
  constructor(message: string, retryAfterMs: number, options: { cause?: unknown } = {}) {
    super('RETRY_AFTER', message, { ...options, details: { retryAfterMs } });
    this.retryAfterMs = retryAfterMs;
  }
}
/** True when `e` is a {@link RetryAfterError}. */
export function isRetryAfterError(e: unknown): e is RetryAfterError {
  return hasCode(e, 'RETRY_AFTER');
}

/** Input did not match a runbook's schema (or other external input was invalid). Nothing was run. */
export class InputValidationError extends RunbookError {
  /** One entry per problem: the field path (`a.b[0]`) and what was expected. */
  readonly issues: { path: string; message: string }[];
  constructor(subject: string, issues: { path: string; message: string }[]) {
    const list = issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ');
    super(
      'INVALID_INPUT',
      `Invalid ${subject}: ${list}. Fix the named fields and try again; nothing was run.`,
      {
        details: { issues },
        retriable: false,
      },
    );
    this.issues = issues;
  }
}
/** True when `e` is an {@link InputValidationError}. */
export function isInputValidationError(e: unknown): e is InputValidationError {
  return hasCode(e, 'INVALID_INPUT');
}

/** Two steps in one run used the same name; step names are the durable keys and must be unique. */
export class DuplicateStepError extends RunbookError {
  constructor(runbookId: string, step: string) {
    super(
      'DUPLICATE_STEP',
      `Runbook "${runbookId}" used the step name "${step}" twice in one run. Step names are the keys results are stored under: give each step a unique, stable name (e.g. "restart-\${agent}").`,
      { retriable: false, details: { step } },
    );
  }
}

/** Another run holds the lease lock on the resource. */
export class ResourceLockedError extends RunbookError {
  readonly resource: string;
  readonly holderRunId: string;
  constructor(resource: string, holderRunId: string, holderStep: string, expiresAt: Date) {
    super(
      'RESOURCE_LOCKED',
      `Resource ${resource} is locked by run ${holderRunId} (step "${holderStep}") until ${expiresAt.toISOString()}. Wait for that run to finish, or inspect it with \`runbook show ${holderRunId}\`.`,
      {
        retriable: false,
        details: { resource, holderRunId, holderStep, expiresAt: expiresAt.toISOString() },
      },
    );
    this.resource = resource;
    this.holderRunId = holderRunId;
  }
}
/** True when `e` is a {@link ResourceLockedError}. */
export function isResourceLockedError(e: unknown): e is ResourceLockedError {
  return hasCode(e, 'RESOURCE_LOCKED');
}

/** The remediation budget for a resource and action kind is spent; the action was not applied. */
export class BudgetExhaustedError extends RunbookError {
  constructor(resource: string, actionKind: string, max: number, windowText: string) {
    super(
      'BUDGET_EXHAUSTED',
      `Remediation budget spent: ${actionKind} was applied to ${resource} ${max} time(s) in the last ${windowText}. The action was not applied; a human should look at why it keeps failing.`,
      { retriable: false, details: { resource, actionKind, max, window: windowText } },
    );
  }
}
/** True when `e` is a {@link BudgetExhaustedError}. */
export function isBudgetExhaustedError(e: unknown): e is BudgetExhaustedError {
  return hasCode(e, 'BUDGET_EXHAUSTED');
}

/** A step or a run ran past its timeout. */
export class TimeoutError extends RunbookError {
  constructor(what: string, ms: number) {
    super(
      'TIMEOUT',
      `${what} timed out after ${ms}ms. Raise its \`timeout\` option if it legitimately needs longer.`,
    );
  }
}
/** True when `e` is a {@link TimeoutError}. */
export function isTimeoutError(e: unknown): e is TimeoutError {
  return hasCode(e, 'TIMEOUT');
}

/** The run was cancelled (by a user, a signal, or because its lease was lost). */
export class CancelledError extends RunbookError {
  constructor(reason: string) {
    super('CANCELLED', `Run cancelled: ${reason}.`, { retriable: false });
  }
}
/** True when `e` is a {@link CancelledError}. */
export function isCancelledError(e: unknown): e is CancelledError {
  return hasCode(e, 'CANCELLED');
}

/** Verification after an apply reported failure. */
export class VerificationFailedError extends RunbookError {
  constructor(step: string, summary: string, reverted: boolean) {
    super(
      'VERIFICATION_FAILED',
      `Step "${step}" was applied but verification failed: ${summary}. ${reverted ? 'The change was reverted.' : 'The action has no revert; the change is still in place.'}`,
      { retriable: false, details: { step, reverted } },
    );
  }
}
/** True when `e` is a {@link VerificationFailedError}. */
export function isVerificationFailedError(e: unknown): e is VerificationFailedError {
  return hasCode(e, 'VERIFICATION_FAILED');
}

/** An approval could not be recorded (wrong person, expired, nothing pending, no reason for break-glass). */
export class ApprovalError extends RunbookError {
  constructor(code: string, message: string, details?: Record<string, unknown>) {
    super(code, message, { retriable: false, ...(details ? { details } : {}) });
  }
}
/** True when `e` is an {@link ApprovalError}. */
export function isApprovalError(e: unknown): e is ApprovalError {
  return isRunbookError(e) && e.name === 'ApprovalError';
}

/** A run or runbook that was asked for does not exist, or is in a state that does not allow the request. */
export class NotFoundError extends RunbookError {
  constructor(what: string, hint: string) {
    super('NOT_FOUND', `${what} not found. ${hint}`, { retriable: false });
  }
}
/** True when `e` is a {@link NotFoundError}. */
export function isNotFoundError(e: unknown): e is NotFoundError {
  return hasCode(e, 'NOT_FOUND');
}

/** The run's state does not allow the request (resuming a finished run, approving a run that waits for nothing). */
export class InvalidStateError extends RunbookError {
  constructor(message: string) {
    super('INVALID_STATE', message, { retriable: false });
  }
}
/** True when `e` is an {@link InvalidStateError}. */
export function isInvalidStateError(e: unknown): e is InvalidStateError {
  return hasCode(e, 'INVALID_STATE');
}

/**
 * An idempotency key was used again by the same requester for another request (another runbook, mode,
 * approval or input). Nothing was started. An {@link InvalidStateError} (code `INVALID_STATE`, so callers
 * that map codes keep answering 409 / refused); tell it apart with {@link isIdempotencyKeyReusedError}.
 */
export class IdempotencyKeyReusedError extends InvalidStateError {
  /** The run first started with the key. */
  readonly runId: string;
  readonly idempotencyKey: string;
  constructor(
    idempotencyKey: string,
    actor: string,
    existing: { id: string; runbookId: string; mode: string },
  ) {
    super(
      `Idempotency key "${idempotencyKey}" was already used by ${actor} for run ${existing.id} (${existing.runbookId}, ${existing.mode}) with other parameters; use a new key for a new request.`,
    );
    this.runId = existing.id;
    this.idempotencyKey = idempotencyKey;
  }
}
/** True when `e` is an {@link IdempotencyKeyReusedError} (by name, so that it works across copies of the package). */
export function isIdempotencyKeyReusedError(e: unknown): e is IdempotencyKeyReusedError {
  return isInvalidStateError(e) && e.name === 'IdempotencyKeyReusedError';
}

/** This process lost the lease on the run it was executing (another process took it over). */
export class LeaseLostError extends RunbookError {
  constructor(runId: string) {
    super(
      'LEASE_LOST',
      `Lost the lease on run ${runId}: another engine process took it over after this one stalled. This process stopped executing it.`,
      { retriable: false },
    );
  }
}

/** Converts any thrown value into the stored {@link ErrorInfo}. */
export function toErrorInfo(e: unknown): ErrorInfo {
  if (isRunbookError(e)) return e.toInfo();
  if (e instanceof Error) return { code: 'ERROR', name: e.name, message: e.message };
  return { code: 'ERROR', name: 'Error', message: String(e) };
}

/** Rebuilds a thrown error from its stored form, so a replayed failed step throws what it threw before. */
export function fromErrorInfo(info: ErrorInfo): RunbookError {
  const error = new RunbookError(info.code, info.message, {
    retriable: false,
    ...(info.details ? { details: info.details } : {}),
  });
  error.name = info.name;
  return error;
}
