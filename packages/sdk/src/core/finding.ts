import type { Json } from './json';

/** How a check judged what it read. `unknown` means it could not tell (the source was unreachable). */
export type FindingStatus = 'ok' | 'warn' | 'fail' | 'unknown';

/** A cell in a table of evidence. */
export type Cell = string | number | boolean | null;

/** Evidence a check collected, typed so the CLI and Grafana can render it. */
export type Evidence =
  | { kind: 'table'; title: string; columns: string[]; rows: Cell[][] }
  | { kind: 'log'; title: string; lines: string[] }
  | { kind: 'series'; title: string; unit?: string; points: [timestampMs: number, value: number][] }
  | { kind: 'text'; title: string; text: string }
  | { kind: 'link'; title: string; url: string };

/** The result of a check: a judgement, a one-line summary, the evidence, and typed data for later steps. */
export interface Finding<T = Json> {
  status: FindingStatus;
  summary: string;
  evidence: Evidence[];
  data: T;
}

/** Builds a {@link Finding}; evidence defaults to none. */
export function finding<T>(
  status: FindingStatus,
  summary: string,
  data: T,
  evidence: Evidence[] = [],
): Finding<T> {
  return { status, summary, evidence, data };
}

const SEVERITY: Record<FindingStatus, number> = { ok: 0, unknown: 1, warn: 2, fail: 3 };

/** The worst of several statuses (`fail` > `warn` > `unknown` > `ok`); `ok` for none. */
export function worstStatus(statuses: Iterable<FindingStatus>): FindingStatus {
  let worst: FindingStatus = 'ok';
  for (const s of statuses) if (SEVERITY[s] > SEVERITY[worst]) worst = s;
  return worst;
}
