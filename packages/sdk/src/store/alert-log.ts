import type { Json } from '../core/json';
import type { SqlDriver } from './driver';

/** One occurrence of an alert in a notification group: Alertmanager's identity of "the same alert again". */
export interface AlertOccurrence {
  groupKey: string;
  fingerprint: string;
  startsAt: Date;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** An alert as recorded: when it came, what it started, and whether it is resolved. */
export interface AlertRecord extends AlertOccurrence {
  alertname: string | null;
  status: 'firing' | 'resolved';
  receivedAt: Date;
  resolvedAt: Date | null;
  /** The route that matched it; null when none did. */
  route: string | null;
  /** The run it started; its steps are the alert's diagnosis. */
  runId: string | null;
}

type Row = Record<string, unknown>;
const date = (v: unknown): Date | null => (v === null || v === undefined ? null : new Date(v as string));

function toRecord(r: Row): AlertRecord {
  return {
    groupKey: r.group_key as string,
    fingerprint: r.fingerprint as string,
    startsAt: date(r.starts_at) as Date,
    labels: r.labels as Record<string, string>,
    annotations: r.annotations as Record<string, string>,
    alertname: (r.alertname ?? null) as string | null,
    status: r.status as AlertRecord['status'],
    receivedAt: date(r.received_at) as Date,
    resolvedAt: date(r.resolved_at),
    route: (r.route ?? null) as string | null,
    runId: (r.run_id ?? null) as string | null,
  };
}

const INSERT = `INSERT INTO alerts (group_key, fingerprint, starts_at, alertname, status, labels, annotations, received_at, resolved_at, route, run_id)
  VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10, $11)
  ON CONFLICT (group_key, fingerprint, starts_at)`;

/**
 * The `alerts` table: one row per alert occurrence (group key, fingerprint, start), so that Alertmanager's
 * retries and repeat notifications find their row instead of adding one. Every write is a single statement,
 * so replicas receiving the same notification at once agree on which of them recorded it first.
 */
export class AlertLog {
  constructor(private readonly driver: SqlDriver) {}

  /**
   * Records a firing occurrence with the route and run it got. True when this call inserted it; false when
   * it was already recorded (a redelivery), which is then left as it is.
   */
  async recordFiring(
    alert: AlertOccurrence,
    route: string | null,
    runId: string | null,
    now: Date,
  ): Promise<boolean> {
    const rows = await this.driver.query(`${INSERT} DO NOTHING RETURNING 1 AS inserted`, [
      ...this.#params(alert, 'firing', now, null),
      route,
      runId,
    ]);
    return rows.length === 1;
  }

  /**
   * Marks an occurrence resolved at `resolvedAt`, inserting it when it was never seen firing. Returns the
   * row when this call changed its status, `undefined` when it was already resolved.
   */
  async recordResolved(
    alert: AlertOccurrence,
    resolvedAt: Date,
    now: Date,
  ): Promise<AlertRecord | undefined> {
    const rows = await this.driver.query(
      `${INSERT} DO UPDATE SET status = 'resolved', resolved_at = EXCLUDED.resolved_at
         WHERE alerts.status <> 'resolved' RETURNING *`,
      [...this.#params(alert, 'resolved', now, resolvedAt), null, null],
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /** The recorded row of one occurrence (group key, fingerprint, start), if any. */
  async get(
    alert: Pick<AlertOccurrence, 'groupKey' | 'fingerprint' | 'startsAt'>,
  ): Promise<AlertRecord | undefined> {
    const rows = await this.driver.query(
      'SELECT * FROM alerts WHERE group_key = $1 AND fingerprint = $2 AND starts_at = $3',
      [alert.groupKey, alert.fingerprint, alert.startsAt.toISOString()],
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /** Recorded alerts, newest first. */
  async list(filter: { limit: number; status?: AlertRecord['status'] }): Promise<AlertRecord[]> {
    const rows = await this.driver.query(
      `SELECT * FROM alerts WHERE ($1::text IS NULL OR status = $1)
        ORDER BY received_at DESC, group_key, fingerprint, starts_at DESC LIMIT $2`,
      [filter.status ?? null, filter.limit],
    );
    return rows.map(toRecord);
  }

  #params(alert: AlertOccurrence, status: AlertRecord['status'], now: Date, resolvedAt: Date | null) {
    return [
      alert.groupKey,
      alert.fingerprint,
      alert.startsAt.toISOString(),
      alert.labels.alertname ?? null,
      status,
      JSON.stringify(alert.labels as Json),
      JSON.stringify(alert.annotations as Json),
      now.toISOString(),
      resolvedAt ? resolvedAt.toISOString() : null,
    ];
  }
}
