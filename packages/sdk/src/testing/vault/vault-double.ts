import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { parseOptions } from '../../core/parse-options';
import { readBody, sendJson } from '../llm/double-server';

const SecretData = z.record(z.string(), z.unknown());

/** Options of {@link startVaultDouble}. */
export const VaultDoubleOptions = z.strictObject({
  /** The token it accepts in `X-Vault-Token`; any other request gets 403 "permission denied". @default "vault-double-token" */
  token: z.string().min(1).default('vault-double-token'),
  /** The KV v2 mount path. @default "secret" */
  mount: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]*$/i, 'expected a mount name such as "secret"')
    .default('secret'),
  /** Secrets present at start, by path under the mount (`api/openrouter`), each written as version 1. @default {} */
  secrets: z.record(z.string().min(1), SecretData).default({}),
  /** Versions kept per secret (`max_versions`); older ones are deleted for good. @default 10 */
  maxVersions: z.number().int().min(1).max(100).default(10),
  /** Interface to listen on. @default "127.0.0.1" */
  host: z.string().min(1).default('127.0.0.1'),
  /** Port; 0 picks a free one. @default 0 */
  port: z.number().int().min(0).max(65_535).default(0),
});
export type VaultDoubleOptions = z.output<typeof VaultDoubleOptions>;
export type VaultDoubleOptionsInput = z.input<typeof VaultDoubleOptions>;

/** One request as the double logged it: never a value, only the data's key names. */
export interface VaultLoggedRequest {
  method: string;
  /** The path without the query, e.g. `/v1/secret/data/api/openrouter`. */
  path: string;
  /** `?version=` of a read, when given. */
  version: number | null;
  /** `options.cas` of a write, when given. */
  cas: number | null;
  /** Key names of a write's `data`. */
  keys: string[];
  status: number;
}

/** One stored version of a secret. */
export interface VaultSecretVersion {
  version: number;
  createdTime: string;
  data: Record<string, unknown>;
}

/** A running Vault KV v2 double. */
export interface VaultDouble {
  /** `http://127.0.0.1:<port>` (what `VAULT_ADDR` holds). */
  readonly url: string;
  readonly token: string;
  readonly mount: string;
  /** Every request received, oldest first, without values. */
  readonly requests: readonly VaultLoggedRequest[];
  /** Writes a new version directly (as another writer would), without cas. Returns its version number. */
  write(path: string, data: Record<string, unknown>): number;
  /** The current version's data, or `undefined` when there is none. */
  read(path: string): Record<string, unknown> | undefined;
  /** Every kept version, oldest first. */
  versions(path: string): VaultSecretVersion[];
  close(): Promise<void>;
}

interface StoredSecret {
  currentVersion: number;
  createdTime: string;
  updatedTime: string;
  versions: Map<number, VaultSecretVersion>;
}

const CAS_MISMATCH = 'check-and-set parameter did not match the current version';

/**
 * Starts a HashiCorp Vault double serving the KV v2 secrets engine at one mount over real HTTP: `GET`/`POST`/`PUT
 * /v1/<mount>/data/<path>` (with `?version=` and `options.cas`, answering Vault's own error text on a cas
 * mismatch), `GET /v1/<mount>/metadata/<path>`, the `X-Vault-Token` check (403 `{"errors":["permission denied"]}`),
 * and `GET /v1/sys/health`. Responses have Vault's envelope (`request_id`, `lease_id`, `data`, …).
 */
export async function startVaultDouble(input: VaultDoubleOptionsInput = {}): Promise<VaultDouble> {
  const o = parseOptions('startVaultDouble', VaultDoubleOptions, input);
  const secrets = new Map<string, StoredSecret>();
  const requests: VaultLoggedRequest[] = [];

  const write = (path: string, data: Record<string, unknown>): VaultSecretVersion => {
    const now = new Date().toISOString();
    let secret = secrets.get(path);
    if (!secret) {
      secret = { currentVersion: 0, createdTime: now, updatedTime: now, versions: new Map() };
      secrets.set(path, secret);
    }
    const version: VaultSecretVersion = {
      version: secret.currentVersion + 1,
      createdTime: now,
      data: structuredClone(data),
    };
    secret.currentVersion = version.version;
    secret.updatedTime = now;
    secret.versions.set(version.version, version);
    for (const v of secret.versions.keys())
      if (v <= version.version - o.maxVersions) secret.versions.delete(v);
    return version;
  };
  for (const [path, data] of Object.entries(o.secrets)) write(path, data);

  const dataPrefix = `/v1/${o.mount}/data/`;
  const metadataPrefix = `/v1/${o.mount}/metadata/`;

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://vault');
    const method = (req.method ?? 'GET').toUpperCase();
    const entry: VaultLoggedRequest = {
      method,
      path: url.pathname,
      version: null,
      cas: null,
      keys: [],
      status: 0,
    };
    requests.push(entry);
    const send = (status: number, body: unknown) => {
      entry.status = status;
      sendJson(res, status, body);
    };
    if (url.pathname === '/v1/sys/health') {
      send(200, { initialized: true, sealed: false, standby: false, version: '1.15.0-double' });
      return;
    }
    if (req.headers['x-vault-token'] !== o.token) return send(403, { errors: ['permission denied'] });

    if (url.pathname.startsWith(metadataPrefix) && method === 'GET') {
      const secret = secrets.get(decodeURIComponent(url.pathname.slice(metadataPrefix.length)));
      if (!secret) return send(404, { errors: [] });
      const versions = Object.fromEntries(
        [...secret.versions.values()].map((v) => [
          String(v.version),
          { created_time: v.createdTime, deletion_time: '', destroyed: false },
        ]),
      );
      return send(
        200,
        envelope({
          cas_required: false,
          created_time: secret.createdTime,
          current_version: secret.currentVersion,
          custom_metadata: null,
          delete_version_after: '0s',
          max_versions: o.maxVersions,
          oldest_version: Math.min(...secret.versions.keys()),
          updated_time: secret.updatedTime,
          versions,
        }),
      );
    }
    if (!url.pathname.startsWith(dataPrefix)) return send(404, { errors: [] });
    const path = decodeURIComponent(url.pathname.slice(dataPrefix.length));
    if (path === '') return send(404, { errors: [] });

    if (method === 'GET') {
      const asked = url.searchParams.get('version');
      const secret = secrets.get(path);
      const number = asked === null || asked === '0' ? secret?.currentVersion : Number(asked);
      entry.version = asked === null ? null : Number(asked);
      const version = number === undefined ? undefined : secret?.versions.get(number);
      if (!version) return send(404, { errors: [] });
      return send(200, envelope({ data: structuredClone(version.data), metadata: metadataOf(version) }));
    }
    if (method === 'POST' || method === 'PUT') {
      let body: { data?: unknown; options?: { cas?: unknown } };
      try {
        // Over readBody's limit (1 MiB) reads as undefined: refused like unparsable input.
        const text = await readBody(req);
        if (text === undefined) throw new Error('request body too large');
        body = JSON.parse(text || '{}');
      } catch {
        return send(400, { errors: ['failed to parse JSON input'] });
      }
      const parsedData = SecretData.safeParse(body.data);
      if (!parsedData.success) return send(400, { errors: ['no data provided'] });
      entry.keys = Object.keys(parsedData.data);
      const cas = body.options?.cas;
      if (cas !== undefined) {
        if (typeof cas !== 'number' || !Number.isInteger(cas) || cas < 0) {
          return send(400, { errors: ['invalid cas parameter'] });
        }
        entry.cas = cas;
        if (cas !== (secrets.get(path)?.currentVersion ?? 0)) return send(400, { errors: [CAS_MISMATCH] });
      }
      const version = write(path, parsedData.data);
      return send(200, envelope(metadataOf(version)));
    }
    return send(405, { errors: [] });
  }

  const server = createServer((req, res) => {
    serve(req, res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${o.host}:${port}`,
    token: o.token,
    mount: o.mount,
    requests,
    write: (path, data) => write(path, data).version,
    read(path) {
      const secret = secrets.get(path);
      const current = secret?.versions.get(secret.currentVersion);
      return current ? structuredClone(current.data) : undefined;
    },
    versions: (path) => [...(secrets.get(path)?.versions.values() ?? [])].map((v) => structuredClone(v)),
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

function metadataOf(v: VaultSecretVersion) {
  return {
    created_time: v.createdTime,
    custom_metadata: null,
    deletion_time: '',
    destroyed: false,
    version: v.version,
  };
}

/** Vault's response envelope around `data`. */
function envelope(data: unknown) {
  return {
    request_id: randomUUID(),
    lease_id: '',
    renewable: false,
    lease_duration: 0,
    data,
    wrap_info: null,
    warnings: null,
    auth: null,
  };
}
