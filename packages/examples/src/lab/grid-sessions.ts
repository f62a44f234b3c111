import { randomUUID } from 'node:crypto';
import type { Browser } from './platform/manifests';
import type { SeleniumGridDouble } from './platform/selenium-grid';

/**
 * Sessions on the Grid double that their owner can end one by one. The double ends sessions oldest first
 * only, so ending one in the middle releases it and the older ones and starts those again: they get new
 * Grid ids (and may land on another node, as a retried session would), which this ledger follows, so every
 * owner (the activity's executions, a chaos scenario's external sessions) keeps a stable handle.
 */
export interface GridSessions {
  /** Starts a session of `browser` (any when omitted) on a free slot; `undefined` when there is none. */
  start(browser?: Browser): string | undefined;
  /** Whether the session is still on the Grid (false once its node pod is gone or the hub lost it). */
  alive(handle: string): boolean;
  /** Ends the session; one the hub cannot see right now is ended as soon as it shows up again. */
  end(handle: string): void;
}

/** Grid ids of sessions whose owner ended them while the hub could not see them, at most this many kept. */
const MAX_PENDING = 1000;

const ledgers = new WeakMap<SeleniumGridDouble, GridSessions>();

/** The one ledger of `grid` (shared by everyone who starts sessions on it). */
export function gridSessions(grid: SeleniumGridDouble): GridSessions {
  let ledger = ledgers.get(grid);
  if (!ledger) {
    ledger = createLedger(grid);
    ledgers.set(grid, ledger);
  }
  return ledger;
}

function createLedger(grid: SeleniumGridDouble): GridSessions {
  /** Handle → current Grid session id. */
  const owned = new Map<string, string>();
  const pending = new Set<string>();

  /** Occupies one slot and returns the new session's Grid id. */
  const occupyOne = (browser?: Browser): string | undefined => {
    const before = new Set(grid.sessions().map((s) => s.sessionId));
    if (grid.occupy(1, browser) === 0) return undefined;
    return grid.sessions().find((s) => !before.has(s.sessionId))?.sessionId;
  };

  const releaseExactly = (sessionId: string): boolean => {
    const sessions = grid.sessions();
    const index = sessions.findIndex((s) => s.sessionId === sessionId);
    if (index < 0) return false;
    const older = sessions.slice(0, index);
    grid.release(index + 1);
    for (const s of older) {
      const renewed = occupyOne(s.browser);
      for (const [handle, id] of owned) {
        if (id !== s.sessionId) continue;
        if (renewed) owned.set(handle, renewed);
        else owned.delete(handle);
      }
    }
    return true;
  };

  const sweep = () => {
    for (const id of [...pending]) if (releaseExactly(id)) pending.delete(id);
  };

  return {
    start(browser) {
      sweep();
      const id = occupyOne(browser);
      if (!id) return undefined;
      const handle = randomUUID();
      owned.set(handle, id);
      return handle;
    },
    alive(handle) {
      const id = owned.get(handle);
      return id !== undefined && grid.sessions().some((s) => s.sessionId === id);
    },
    end(handle) {
      const id = owned.get(handle);
      owned.delete(handle);
      if (id === undefined) return;
      if (!releaseExactly(id)) {
        pending.add(id);
        if (pending.size > MAX_PENDING) pending.delete(pending.values().next().value as string);
      }
      sweep();
    },
  };
}
