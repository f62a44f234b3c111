import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { isInputValidationError, isRunbookError, RunbookError } from '../core/errors';

/** A field-level problem in a request: the dotted path (`input.namespace`, `agents[0].name`) and what is wrong. */
export interface FieldIssue {
  path: string;
  message: string;
}

/** The body of every error response. */
export interface ErrorBody {
  error: { code: string; message: string; details: FieldIssue[] | Record<string, unknown> | null };
}

/** An error the service answers with a given HTTP status (authentication, roles, readiness). */
export class HttpError extends RunbookError {
  /** The HTTP status it is answered with. */
  readonly status: number;
  constructor(status: number, code: string, message: string, details?: Record<string, unknown>) {
    super(code, message, { retriable: false, ...(details ? { details } : {}) });
    this.status = status;
  }
}

/**
 * A refused authentication (401), or a Grafana user without a role (403). `actor` is whom the credentials
 * did name, if anyone (the token's holder, the Grafana login): for the audit of the refusal only, never
 * part of the response.
 */
export class AuthenticationError extends HttpError {
  readonly actor: { name: string; via: 'token' | 'grafana' } | undefined;
  constructor(
    status: 401 | 403,
    code: string,
    message: string,
    options: { actor?: { name: string; via: 'token' | 'grafana' }; details?: Record<string, unknown> } = {},
  ) {
    super(status, code, message, options.details);
    this.actor = options.actor;
  }
}

/** True when `e` is an {@link HttpError}. */
export function isHttpError(e: unknown): e is HttpError {
  return isRunbookError(e) && typeof (e as { status?: unknown }).status === 'number';
}

/**
 * HTTP status of each engine error code. Codes missing here are answered as 500 `INTERNAL`: an engine error
 * that reaches the API unmapped is a bug of the service, and its message was not written for HTTP callers.
 */
const STATUS_OF_CODE: Record<string, number> = {
  NOT_FOUND: 404,
  INVALID_INPUT: 400,
  INVALID_STATE: 409,
  FOUR_EYES: 403,
  BREAK_GLASS_REASON_REQUIRED: 400,
  NO_PENDING_APPROVAL: 409,
  APPROVAL_EXPIRED: 409,
  RESOURCE_LOCKED: 409,
  BUDGET_EXHAUSTED: 409,
};

/** Fastify's own request errors, renamed to the service's codes. */
const FASTIFY_CODES: Record<string, { status: number; code: string; message: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: {
    status: 400,
    code: 'INVALID_JSON',
    message: 'The request body is not valid JSON. Send a JSON object with `Content-Type: application/json`.',
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: {
    status: 400,
    code: 'INVALID_JSON',
    message: 'The request body is empty but declared as JSON. Send a JSON object, or no Content-Type.',
  },
  FST_ERR_CTP_BODY_TOO_LARGE: {
    status: 413,
    code: 'BODY_TOO_LARGE',
    message: 'The request body is larger than this service accepts. Send a smaller body.',
  },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
    message: 'Unsupported Content-Type. Send `application/json`.',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    status: 400,
    code: 'INVALID_REQUEST',
    message: 'The Content-Length header does not match the body.',
  },
};

/** `/input/agents/0/name` → `input.agents[0].name` (the engine's own path format). */
function dottedPath(instancePath: string): string {
  return instancePath
    .split('/')
    .filter((p) => p !== '')
    .map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`))
    .join('');
}

/** The status and body an error is answered with, and whether it is the service's fault (to be logged). */
export function errorResponse(error: unknown): { status: number; body: ErrorBody; internal: boolean } {
  const answer = (
    status: number,
    code: string,
    message: string,
    details: ErrorBody['error']['details'] = null,
  ) => ({ status, body: { error: { code, message, details } }, internal: status >= 500 });

  if (hasZodFastifySchemaValidationErrors(error)) {
    const where = (error as { validationContext?: string }).validationContext ?? 'body';
    const issues = error.validation.map((v) => ({
      path: dottedPath(v.instancePath),
      message: v.message ?? '',
    }));
    const list = issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ');
    return answer(400, 'INVALID_REQUEST', `Invalid request ${where}: ${list}. Fix the named fields.`, issues);
  }
  if (isHttpError(error)) return answer(error.status, error.code, error.message, error.details ?? null);
  if (isInputValidationError(error)) return answer(400, error.code, error.message, error.issues);
  if (isRunbookError(error)) {
    const status = STATUS_OF_CODE[error.code];
    if (status !== undefined) return answer(status, error.code, error.message, error.details ?? null);
  } else if (error instanceof Error) {
    const fastifyError = error as FastifyError;
    const known = fastifyError.code ? FASTIFY_CODES[fastifyError.code] : undefined;
    if (known) return answer(known.status, known.code, known.message);
    // Other client errors raised by Fastify itself (bad URL encoding, …): their messages are the framework's.
    const status = fastifyError.statusCode;
    if (fastifyError.code?.startsWith('FST_') && status !== undefined && status >= 400 && status < 500) {
      return answer(status, 'BAD_REQUEST', error.message);
    }
  }
  return answer(
    500,
    'INTERNAL',
    'The service failed to handle the request. It was logged; try again, and report it if it persists.',
  );
}

/**
 * Makes every error response `{ error: { code, message, details } }`: validation, JSON, size, unknown routes,
 * engine errors and crashes. Internal errors are logged with their stack; the body never carries it.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    const { status, body, internal } = errorResponse(error);
    if (internal) request.log.error({ err: error }, 'request failed');
    else request.log.info({ code: body.error.code, status }, 'request refused');
    return reply.code(status).type('application/json').send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    const body: ErrorBody = {
      error: {
        code: 'NOT_FOUND',
        message: `No route ${request.method} ${request.url.split('?')[0]}. See GET /api/v1/openapi.json for the API.`,
        details: null,
      },
    };
    return reply.code(404).send(body);
  });
}
