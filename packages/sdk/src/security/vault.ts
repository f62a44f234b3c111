import { z } from 'zod';
import { Duration, toMillis } from '../core/duration';
import { isRunbookError, RunbookError } from '../core/errors';
import { parseOptions } from '../core/parse-options';
import { type ResourceRef, resourceRef } from '../core/resource';

/** How to reach a Vault server's KV v2 secrets engine. */
export const VaultOptions = z.object({
  /** The server, `VAULT_ADDR`, e.g. `https://vault:8200`. */
  url: z.url({ protocol: /^https?$/, error: 'expected an http(s):// URL such as https://vault:8200' }),
  /** The token sent as `X-Vault-Token`; never shown in messages. */
  token: z.string().min(1, 'expected a Vault token'),
  /** The KV v2 mount. @default "secret" */
  mount: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]*$/i, 'expected a mount name such as "secret"')
    .default('secret'),
  /** The name in resource references (`vault:<name>/<mount>/<path>`). @default "vault" */
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_.-]*$/i, 'expected letters, digits, "_", "." or "-"')
    .default('vault'),
  /** Bound on every request. @default "10s" */
  timeout: Duration.default('10s'),
});
export type VaultOptions = z.output<typeof VaultOptions>;
export type VaultOptionsInput = z.input<typeof VaultOptions>;

/** A secret path under the mount: segments of letters, digits, `_`, `-`, `.`, no `..`. */
export const SecretPath = z
  .string()
  .regex(
    /^(?!.*(^|\/)\.\.?(\/|$))[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/,
    'expected a secret path such as "api/openrouter" (segments of letters, digits, "_", "-", ".")',
  );

/** One version of a secret as KV v2 returns it. */
export interface SecretVersion {
  data: Record<string, unknown>;
  version: number;
  createdTime: string;
}

/** What KV v2 keeps about a secret's versions. */
export interface SecretMetadata {
  currentVersion: number;
  oldestVersion: number;
  maxVersions: number;
  /** Kept versions that are neither deleted nor destroyed. */
  readableVersions: number[];
}

/**
 * A Vault KV v2 client, as little as rotation needs: read a version, read metadata, write with check-and-set.
 * Values never appear in its errors; only paths, versions and Vault's own error texts do.
 */
export class VaultKv {
  readonly name: string;
  readonly mount: string;
  readonly url: string;
  readonly #token: string;
  readonly #timeoutMs: number;

  /** @internal Use {@link connectVault}. */
  constructor(options: VaultOptions) {
    this.name = options.name;
    this.mount = options.mount;
    this.url = options.url.replace(/\/+$/, '');
    this.#token = options.token;
    this.#timeoutMs = toMillis(options.timeout);
  }

  /** `vault:<name>/<mount>/<path…>`. */
  ref(path: string): ResourceRef {
    return resourceRef('vault', this.name, this.mount, ...path.split('/'));
  }

  /** A version of the secret (the current one by default); `undefined` when there is none. */
  async read(
    path: string,
    options: { version?: number; signal?: AbortSignal } = {},
  ): Promise<SecretVersion | undefined> {
    const query = options.version === undefined ? '' : `?version=${options.version}`;
    const body = await this.#request(
      'GET',
      `data/${encodePath(path)}${query}`,
      undefined,
      options.signal,
      `read ${path}`,
    );
    if (body === undefined) return undefined;
    const d = (
      body as { data?: { data?: unknown; metadata?: { version?: unknown; created_time?: unknown } } }
    ).data;
    if (!d?.data || typeof d.metadata?.version !== 'number') {
      throw new VaultError(
        `Vault read of ${this.mount}/${path} answered without data or metadata.version: is the mount KV v2?`,
        null,
      );
    }
    return {
      data: d.data as Record<string, unknown>,
      version: d.metadata.version,
      createdTime: String(d.metadata.created_time ?? ''),
    };
  }

  /** The secret's metadata; `undefined` when it does not exist. */
  async metadata(path: string, options: { signal?: AbortSignal } = {}): Promise<SecretMetadata | undefined> {
    const body = await this.#request(
      'GET',
      `metadata/${encodePath(path)}`,
      undefined,
      options.signal,
      `read metadata of ${path}`,
    );
    if (body === undefined) return undefined;
    const d = (body as { data?: Record<string, unknown> }).data ?? {};
    const versions = (d.versions ?? {}) as Record<string, { deletion_time?: string; destroyed?: boolean }>;
    return {
      currentVersion: Number(d.current_version ?? 0),
      oldestVersion: Number(d.oldest_version ?? 0),
      maxVersions: Number(d.max_versions ?? 0),
      readableVersions: Object.entries(versions)
        .filter(([, v]) => !v.destroyed && !v.deletion_time)
        .map(([n]) => Number(n))
        .sort((a, b) => a - b),
    };
  }

  /**
   * Writes `data` as a new version with check-and-set: only when the current version is `cas` (0: only when the
   * secret does not exist). A mismatch is a {@link VaultError} with `casMismatch` true. Returns the new version.
   */
  async write(
    path: string,
    data: Record<string, unknown>,
    cas: number,
    options: { signal?: AbortSignal } = {},
  ): Promise<number> {
    const body = await this.#request(
      'POST',
      `data/${encodePath(path)}`,
      { data, options: { cas } },
      options.signal,
      `write ${path} (cas ${cas})`,
    );
    const version = (body as { data?: { version?: unknown } } | undefined)?.data?.version;
    if (typeof version !== 'number') {
      throw new VaultError(`Vault write of ${this.mount}/${path} answered without data.version.`, null);
    }
    return version;
  }

  /** What `JSON.stringify` shows: never the token. */
  toJSON() {
    return { name: this.name, url: this.url, mount: this.mount };
  }

  async #request(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    signal: AbortSignal | undefined,
    what: string,
  ): Promise<unknown> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    let response: Response;
    try {
      response = await fetch(`${this.url}/v1/${encodeURIComponent(this.mount)}/${path}`, {
        method,
        headers: {
          'X-Vault-Token': this.#token,
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      throw new VaultError(
        `Vault ${what} at ${this.url} failed: ${(e as Error)?.message ?? e}. Is VAULT_ADDR right and Vault up?`,
        null,
        {
          cause: e,
          retriable: true,
        },
      );
    }
    const text = await response.text();
    if (response.status === 404 && method === 'GET') return undefined;
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      parsed = {};
    }
    if (!response.ok) {
      const errors = (parsed as { errors?: unknown }).errors;
      const reason =
        Array.isArray(errors) && errors.length > 0
          ? errors.map(String).join('; ')
          : `HTTP ${response.status}`;
      const hint =
        response.status === 403
          ? ' The token lacks the policy for this path (or is wrong/expired).'
          : reason.includes('check-and-set')
            ? ' Another writer changed the secret since it was read: plan again.'
            : '';
      throw new VaultError(
        `Vault ${what} in mount ${this.mount} failed: ${reason}.${hint}`,
        response.status,
        {
          retriable: response.status >= 500 || response.status === 429,
          casMismatch: reason.includes('check-and-set parameter did not match'),
        },
      );
    }
    return parsed;
  }
}

/** Validates the options (an `InputValidationError` names each bad field). Nothing is called until used. */
export function connectVault(options: VaultOptionsInput): VaultKv {
  return new VaultKv(parseOptions('vault', VaultOptions, options));
}

/** A Vault request failed: `status` is the HTTP status (`null` when there was no answer). */
export class VaultError extends RunbookError {
  readonly status: number | null;
  /** The write's check-and-set version was not the current one. */
  readonly casMismatch: boolean;
  constructor(
    message: string,
    status: number | null,
    options: { cause?: unknown; retriable?: boolean; casMismatch?: boolean } = {},
  ) {
    super('VAULT_ERROR', message, {
      cause: options.cause,
      retriable: options.retriable ?? false,
      details: { status },
    });
    this.status = status;
    this.casMismatch = options.casMismatch ?? false;
  }
}

/** True when `e` is a {@link VaultError}. */
export function isVaultError(e: unknown): e is VaultError {
  return isRunbookError(e) && e.code === 'VAULT_ERROR';
}

function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}
