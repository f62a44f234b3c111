import { z } from 'zod';
import { AuthenticationError } from './errors';
import type { Role } from './options';

/** The header Grafana's plugin proxy sets to the JSON of the signed-in user (lowercase, as Node gives it). */
export const GRAFANA_CONTEXT_HEADER = 'x-grafana-context';

/** Larger headers are refused unparsed: Grafana's user JSON is a few hundred bytes. */
export const GRAFANA_CONTEXT_MAX_BYTES = 8 * 1024;

/**
 * The part of `X-Grafana-Context` the service uses. Grafana sends more keys (OrgName, Email, Teams, …),
 * which are tolerated and ignored. `OrgRole` is the user's role in the org the request was made in; an
 * empty one is what Grafana sends for a user without a role, like `None`.
 */
export const GrafanaContext = z.looseObject({
  UserID: z.number().int(),
  Login: z.string().trim().min(1).max(200),
  OrgID: z.number().int(),
  OrgRole: z.enum(['Viewer', 'Editor', 'Admin', 'None', '']),
  IsServiceAccount: z.boolean().optional(),
});
/** The part of `X-Grafana-Context` the service uses. */
export type GrafanaContext = z.infer<typeof GrafanaContext>;

/** The service role of each Grafana org role; `None` (and empty) has none. */
export const ROLE_OF_ORG_ROLE: Readonly<Record<GrafanaContext['OrgRole'], Role | null>> = {
  Viewer: 'viewer',
  Editor: 'editor',
  Admin: 'admin',
  None: null,
  '': null,
};

/**
 * Parses and validates `X-Grafana-Context`. Throws 401 `INVALID_GRAFANA_CONTEXT` naming the problem (sent
 * more than once, too large, not JSON, which key is missing or of the wrong type); messages never repeat the
 * header's value. Only call it once the Grafana app's token was verified: the header alone proves nothing.
 * `appToken` (the name of that token) is the actor of a refusal, for its audit.
 *
 * Pass the header's values one by one, as `request.raw.headersDistinct` has them: Node's `headers` joins a
 * repeated header with ", ", which would only be refused as "not valid JSON".
 */
export function parseGrafanaContext(header: string | readonly string[], appToken: string): GrafanaContext {
  const invalid = (message: string, details?: Record<string, unknown>) =>
    new AuthenticationError(
      401,
      'INVALID_GRAFANA_CONTEXT',
      `${message} It must be the JSON object Grafana's plugin proxy sets (UserID, Login, OrgID, OrgRole, …). Nothing was changed.`,
      { actor: { name: appToken, via: 'token' }, ...(details ? { details } : {}) },
    );
  const values = typeof header === 'string' ? [header] : header;
  // Two users in one request: which one acts is not for the service to guess.
  if (values.length > 1) throw invalid(`${GRAFANA_CONTEXT_HEADER} was sent more than once.`);
  const value = values[0] ?? '';
  if (Buffer.byteLength(value, 'utf8') > GRAFANA_CONTEXT_MAX_BYTES) {
    throw invalid(`${GRAFANA_CONTEXT_HEADER} is larger than ${GRAFANA_CONTEXT_MAX_BYTES} bytes.`);
  }
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    throw invalid(`${GRAFANA_CONTEXT_HEADER} is not valid JSON.`);
  }
  const parsed = GrafanaContext.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({
      path: i.path.length > 0 ? i.path.join('.') : '(root)',
      message: i.message,
    }));
    const list = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
    throw invalid(`${GRAFANA_CONTEXT_HEADER} is not valid: ${list}.`, { issues });
  }
  return parsed.data;
}
