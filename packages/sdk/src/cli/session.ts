import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import { isRunbookError, NotFoundError } from '../core/errors';
import type { Runbook } from '../core/runbook';
import { Engine, type EngineSettings } from '../engine/engine';
import type { Notifier } from '../engine/events';
import type { ConfirmPlan } from '../engine/run-execution';
import { openStore } from '../store/open-store';
import type { RunStore } from '../store/run-store';
import { UsageError } from './exit-codes';
import type { CliIo } from './io';

/** The store options every command that reads or writes runs accepts. */
export interface StoreFlags {
  storeUrl?: string;
  dataDir?: string;
  storeSchema?: string;
}

/** Who the command acts as: `--as`, else `RUNBOOK_ACTOR`, else the OS user. */
export function actorOf(as: string | undefined, env: CliIo['env']): string {
  const actor = (as ?? env.RUNBOOK_ACTOR ?? osUser()).trim();
  if (!actor) throw new UsageError('The actor is empty: pass --as <name> or set RUNBOOK_ACTOR.');
  return actor;
}

function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown'; // no passwd entry (some containers)
  }
}

/** Where runs are kept: PostgreSQL when a URL is given, else the embedded store under the data dir. */
export function storeLocation(
  flags: StoreFlags,
  io: Pick<CliIo, 'env' | 'cwd'>,
): { url?: string; dataDir: string; schema?: string } {
  if (flags.storeUrl !== undefined && flags.dataDir !== undefined) {
    throw new UsageError('Pass either --store-url (PostgreSQL) or --data-dir (embedded store), not both.');
  }
  // An explicit flag beats the environment: --data-dir means the embedded store even with RUNBOOK_DATABASE_URL set.
  const url = flags.storeUrl ?? (flags.dataDir === undefined ? io.env.RUNBOOK_DATABASE_URL : undefined);
  const schema = flags.storeSchema ?? io.env.RUNBOOK_STORE_SCHEMA;
  if (schema !== undefined && schema.trim() === '') {
    throw new UsageError(
      'The store schema is empty: pass --store-schema <name> or unset RUNBOOK_STORE_SCHEMA.',
    );
  }
  const dataDir = resolve(io.cwd, flags.dataDir ?? io.env.RUNBOOK_DATA_DIR ?? '.runbook/store');
  return { ...(url ? { url } : {}), dataDir, ...(schema ? { schema } : {}) };
}

/**
 * Opens the run store, runs `work`, and always closes the store. Commands that only look at or decide on
 * existing runs pass `existing`: they never create an embedded store where none is (a wrong directory).
 */
export async function withStore<T>(
  flags: StoreFlags,
  io: CliIo,
  work: (store: RunStore) => Promise<T>,
  options: { existing?: boolean } = {},
): Promise<T> {
  const location = storeLocation(flags, io);
  if (options.existing && !location.url && !existsSync(location.dataDir)) {
    throw new NotFoundError(
      `Embedded store ${location.dataDir}`,
      'No run has been started with it. Pass the --data-dir the run was started with, or --store-url / RUNBOOK_DATABASE_URL for PostgreSQL.',
    );
  }
  let store: RunStore;
  try {
    store = await openStore(location);
  } catch (e) {
    if (isRunbookError(e)) throw e; // invalid options or a store in use, already phrased for people
    throw new Error(
      `Cannot open the run store (${describeLocation(location)}): ${(e as Error)?.message ?? String(e)}`,
    );
  }
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

/** Where the store is, for messages: never the URL's credentials. */
export function describeLocation(location: { url?: string; dataDir: string }): string {
  if (!location.url) return `embedded store in ${location.dataDir}`;
  try {
    const u = new URL(location.url);
    return `PostgreSQL at ${u.hostname}${u.port ? `:${u.port}` : ''}${u.pathname}`;
  } catch {
    return 'PostgreSQL';
  }
}

/** An engine over `store`; the store URL's password is registered as a secret so it is never shown. */
export function createEngine(
  store: RunStore,
  runbooks: readonly Runbook[],
  options: {
    flags: StoreFlags;
    io: CliIo;
    confirm?: ConfirmPlan;
    /** Engine settings from the command's flags (`serve --lease-ttl`). @default the engine's defaults */
    settings?: Pick<EngineSettings, 'leaseTtl'>;
    /** Delivers notifications and escalations (`serve` with a `notify:` config), and the secrets it read. */
    notify?: { notifier: Notifier; secrets: readonly string[] };
  },
): Engine {
  const secrets: string[] = [...(options.notify?.secrets ?? [])];
  const url = storeLocation(options.flags, options.io).url;
  if (url) {
    try {
      const password = decodeURIComponent(new URL(url).password);
      if (password) secrets.push(password);
    } catch {
      // an unparsable URL was already refused by openStore
    }
  }
  return new Engine({
    ...options.settings,
    store,
    runbooks,
    secrets,
    ...(options.confirm ? { confirm: options.confirm } : {}),
    ...(options.notify ? { notifier: options.notify.notifier } : {}),
  });
}
