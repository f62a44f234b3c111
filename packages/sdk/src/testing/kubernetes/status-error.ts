/**
 * An error the simulated API server answers with: a Kubernetes `Status` object with the HTTP code and
 * `reason` a real API server uses for the same failure.
 */
export class StatusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: { name?: string; group?: string; kind?: string; causes?: unknown[] },
  ) {
    super(message);
    this.name = 'StatusError';
  }

  /** The body sent on the wire. */
  toStatus(): Record<string, unknown> {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

/** `deployments.apps "web" not found`, as the API server words it. */
export function qualifiedResource(resource: string, group: string): string {
  return group === '' ? resource : `${resource}.${group}`;
}

export const notFound = (resource: string, group: string, name: string) =>
  new StatusError(404, 'NotFound', `${qualifiedResource(resource, group)} "${name}" not found`, {
    name,
    group,
    kind: resource,
  });

export const alreadyExists = (resource: string, group: string, name: string) =>
  new StatusError(409, 'AlreadyExists', `${qualifiedResource(resource, group)} "${name}" already exists`, {
    name,
    group,
    kind: resource,
  });

export const conflict = (resource: string, group: string, name: string) =>
  new StatusError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualifiedResource(resource, group)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    { name, group, kind: resource },
  );

export const invalid = (kind: string, group: string, name: string, field: string, why: string) =>
  new StatusError(422, 'Invalid', `${kind} "${name}" is invalid: ${field}: ${why}`, {
    name,
    group,
    kind,
    causes: [{ reason: 'FieldValueInvalid', message: why, field }],
  });

export const badRequest = (message: string) => new StatusError(400, 'BadRequest', message);

export const gone = (message: string) => new StatusError(410, 'Expired', message);
