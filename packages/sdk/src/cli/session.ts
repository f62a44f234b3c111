import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import { isRunbookError } from '../core/errors';
import type { Runbook } from '../core/runbook';
import { Engine } from '../engine/engine';
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
  const url = flags.storeUrl ?? io.env.RUNBOOK_DATABASE_URL;
  const schema = flags.storeSchema ?? io.env.RUNBOOK_STORE_SCHEMA;
  const dataDir = resolve(io.cwd, flags.dataDir ?? io.env.RUNBOOK_DATA_DIR ?? '.runbook/store');
  return { ...(url ? { url } : {}), dataDir, ...(schema ? { schema } : {}) };
}

/** Opens the run store, runs `work`, and always closes the store. */
export async function withStore<T>(
  flags: StoreFlags,
  io: CliIo,
  work: (store: RunStore) => Promise<T>,
): Promise<T> {
  const location = storeLocation(flags, io);
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
function describeLocation(location: { url?: string; dataDir: string }): string {
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
  options: { flags: StoreFlags; io: CliIo; confirm?: ConfirmPlan },
): Engine {
  const secrets: string[] = [];
  const url = storeLocation(options.flags, options.io).url;
  if (url) {
    try {
      const password = decodeURIComponent(new URL(url).password);
      if (password) secrets.push(password);
    } catch {
      // an unparsable URL was already refused by openStore
    }
  }
  return new Engine({ store, runbooks, secrets, ...(options.confirm ? { confirm: options.confirm } : {}) });
}
