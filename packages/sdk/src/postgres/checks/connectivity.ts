import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { type Evidence, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import { isPostgresError, type PostgresDatabase } from '../database';
import { errorText, formatDuration } from './wording';

/** Options of {@link connectivity}. */
export const ConnectivityOptions = z.object({
  /** Bound on the whole probe (connect, `SELECT 1`, version); no answer in time is a `fail`. @default "5s" */
  timeout: Duration.default('5s'),
  /** Connect plus `SELECT 1` slower than this is a `warn`. @default "200ms" */
  slowAfter: Duration.default('200ms'),
  /**
   * The role the server must have: `primary` fails on a server in recovery (a standby, or a restore still
   * replaying WAL), `standby` fails on a primary. @default "any"
   */
  expect: z.enum(['any', 'primary', 'standby']).default('any'),
});
export type ConnectivityOptions = z.output<typeof ConnectivityOptions>;
export type ConnectivityOptionsInput = z.input<typeof ConnectivityOptions>;

/** What {@link connectivity} found. */
export type ConnectivityData = {
  /** `user@host:port/database`. */
  server: string;
  reachable: boolean;
  /** Time to open a new connection (TCP, TLS, authentication, startup). */
  connectMs: number | null;
  /** Round trip of `SELECT 1` on it. */
  queryMs: number | null;
  /** `connectMs + queryMs`, what `slowAfter` judges. */
  latencyMs: number | null;
  /** `server_version`, e.g. `15.8 (Debian 15.8-0+deb12u1)`. */
  version: string | null;
  versionNum: number | null;
  /** `pg_is_in_recovery()`: a standby, or a server still restoring. */
  inRecovery: boolean | null;
  /** Why it could not connect or answer. */
  error: string | null;
  sqlstate: string | null;
};

/**
 * What {@link connectivity} measured: the probe as in {@link ConnectivityData}. Replaying it with another
 * `slowAfter` or `expect` judges the recorded timings and role again.
 */
export type ConnectivityObservation = ConnectivityData;

const KIND = 'pg.connectivity';

/**
 * The manual's connection-loss probe (`psql … -c "SELECT 1;"`, Runbook 4): opens a *new* connection (a pooled
 * one would hide a server that refuses new sessions) and times it, runs `SELECT 1`, and reads the server
 * version and `pg_is_in_recovery()`.
 *
 * - `fail` when it cannot connect (refused, DNS, authentication, "too many clients" — the error says which),
 *   when there is no answer within `timeout`, or when the role differs from `expect`.
 * - `warn` when connect + `SELECT 1` take longer than `slowAfter`.
 * - `ok` otherwise.
 *
 * It never throws for an unreachable server — reporting that is its job; it throws only when the step is
 * cancelled.
 *
 * Replayable: `read` probes ({@link ConnectivityObservation}), `judge` applies `slowAfter` and `expect`.
 */
export function connectivity(
  db: PostgresDatabase,
  options: ConnectivityOptionsInput = {},
): ReplayableCheck<ConnectivityData, ConnectivityObservation> {
  const p = parseOptions(KIND, ConnectivityOptions, options);
  const timeoutMs = toMillis(p.timeout);
  const slowMs = toMillis(p.slowAfter);
  return defineCheck({
    kind: KIND,
    description: `Connect to ${db.display}, SELECT 1, server version and recovery state`,
    async read(ctx): Promise<ConnectivityObservation> {
      const data: ConnectivityData = {
        server: db.display,
        reachable: false,
        connectMs: null,
        queryMs: null,
        latencyMs: null,
        version: null,
        versionNum: null,
        inRecovery: null,
        error: null,
        sqlstate: null,
      };
      const deadline = new AbortController();
      const timer = setTimeout(
        () => deadline.abort(new Error(`no answer within ${formatDuration(timeoutMs)}`)),
        timeoutMs,
      );
      const signal = AbortSignal.any([ctx.signal, deadline.signal]);
      const started = performance.now();
      const probe = db.dedicated(
        async (session) => {
          data.connectMs = round(performance.now() - started);
          signal.throwIfAborted();
          const t = performance.now();
          await session.query('SELECT 1', [], { signal });
          data.queryMs = round(performance.now() - t);
          data.latencyMs = round(data.connectMs + data.queryMs);
          data.reachable = true;
          const { rows } = await session.query<{ version: string; num: number; recovery: boolean }>(
            `SELECT current_setting('server_version') AS version,
                    current_setting('server_version_num')::int AS num,
                    pg_is_in_recovery() AS recovery`,
            [],
            { signal },
          );
          const row = rows[0];
          data.version = row?.version ?? null;
          data.versionNum = row?.num ?? null;
          data.inRecovery = row?.recovery ?? null;
        },
        // The deadline too: a connection that opens after it is closed at once, never left open.
        { signal },
      );
      // The probe may outlive the race (a connect that hangs until the pool's connectTimeout); its late
      // rejection is expected and must not become an unhandled one.
      probe.catch(() => {});
      try {
        await Promise.race([probe, aborted(signal)]);
      } catch (e) {
        ctx.signal.throwIfAborted();
        data.error = deadline.signal.aborted
          ? `no answer within ${formatDuration(timeoutMs)}${data.reachable ? ' (connected, then stalled)' : ''}`
          : errorText(e);
        data.sqlstate = isPostgresError(e) ? e.sqlstate : null;
      } finally {
        clearTimeout(timer);
      }
      return data;
    },
    judge: (data) => judgeProbe(data, p.expect, slowMs),
  });
}

function judgeProbe(data: ConnectivityData, expect: ConnectivityOptions['expect'], slowMs: number) {
  const evidence: Evidence[] = [
    {
      kind: 'table',
      title: 'Connection probe',
      columns: ['SERVER', 'REACHABLE', 'CONNECT', 'SELECT 1', 'VERSION', 'IN RECOVERY', 'ERROR'],
      rows: [
        [
          data.server,
          data.reachable,
          data.connectMs === null ? null : formatDuration(data.connectMs),
          data.queryMs === null ? null : formatDuration(data.queryMs),
          data.version,
          data.inRecovery,
          data.error,
        ],
      ],
    },
  ];
  if (data.error !== null || data.latencyMs === null) {
    const state = data.sqlstate ? ` (SQLSTATE ${data.sqlstate})` : '';
    return finding('fail', `PostgreSQL ${data.server} unreachable: ${data.error}${state}`, data, evidence);
  }
  const role = data.inRecovery ? 'standby (in recovery)' : 'primary';
  const version = data.version ? `PostgreSQL ${data.version.split(' ')[0]}` : 'PostgreSQL';
  const timing = `connect ${formatDuration(data.connectMs ?? 0)} + SELECT 1 ${formatDuration(data.queryMs ?? 0)}`;
  const head = `${version} ${role} at ${data.server}: ${timing}`;
  if ((expect === 'primary' && data.inRecovery) || (expect === 'standby' && data.inRecovery === false)) {
    return finding('fail', `${head}, but a ${expect} was expected`, data, evidence);
  }
  if (data.latencyMs >= slowMs) {
    return finding('warn', `${head}, slow (at or above ${formatDuration(slowMs)})`, data, evidence);
  }
  return finding('ok', head, data, evidence);
}

function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
