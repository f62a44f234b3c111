import { z } from 'zod';
import { InputValidationError } from '../core/errors';
import { readConfigText } from './config-file';
import { TokenGrant } from './options';

/**
 * The service's tokens file: `{ "tokens": [{ "name", "sha256", "role", "grafana"?, "alertmanager"? }] }`.
 * It holds only each token's SHA-256 (`printf %s "$TOKEN" | sha256sum`), never a token, so reading it
 * grants nothing. `"grafana": true` marks the Grafana app's token, valid only with Grafana's
 * `X-Grafana-Context`; `"alertmanager": true` marks Alertmanager's webhook token, valid only on the webhook,
 * which takes no other token. A token is at most one of the two (see {@link TokenGrant}).
 */
export const TokensFile = z.strictObject({
  tokens: z
    .array(TokenGrant)
    .min(1, 'must list at least one token: the API never runs without authentication')
    .superRefine((grants, ctx) => {
      const seen = new Map<string, number>();
      grants.forEach((grant, i) => {
        const first = seen.get(grant.sha256);
        if (first !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: [i, 'sha256'],
            message: `is the same token as tokens.${first} ("${grants[first]?.name}"); each token names one holder`,
          });
        } else seen.set(grant.sha256, i);
      });
    }),
});
/** A parsed tokens file: hashes are lowercase hex. */
export type TokensFile = z.output<typeof TokensFile>;

/** Thrown when the tokens file cannot be read or is not JSON; its message names the file. */
export class TokensFileError extends Error {
  override readonly name = 'TokensFileError';
}

/**
 * Reads and validates a tokens file. Throws a {@link TokensFileError} when it is missing or not JSON, and an
 * {@link InputValidationError} naming each bad field (`tokens.0.sha256: …`) when it does not match
 * {@link TokensFile}.
 */
export function readTokensFile(path: string): TokensFile['tokens'] {
  const text = readConfigText(path, 'tokens file', TokensFileError);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new TokensFileError(
      `The tokens file ${path} is not JSON (${(e as Error).message}); expected {"tokens": [{"name", "sha256", "role", "grafana"?, "alertmanager"?}]}.`,
    );
  }
  const parsed = TokensFile.safeParse(json);
  if (!parsed.success) {
    throw new InputValidationError(
      `tokens file ${path}`,
      parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    );
  }
  return parsed.data.tokens;
}
