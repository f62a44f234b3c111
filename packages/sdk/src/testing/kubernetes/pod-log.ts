import { badRequest, StatusError } from './status-error';

/** One line a container wrote, with when it wrote it. */
export interface PodLogLine {
  time: Date;
  text: string;
}

/** Where the server reads container logs from (the cluster's kubelets); throws a `StatusError` for an unknown pod or container. */
export type PodLogSource = (
  namespace: string,
  pod: string,
  options: { container?: string; previous?: boolean },
) => PodLogLine[];

/** The `GET …/pods/{name}/log` query, decoded. */
export interface PodLogOptions {
  container?: string;
  previous: boolean;
  follow: boolean;
  timestamps: boolean;
  tailLines?: number;
  sinceSeconds?: number;
  sinceTime?: Date;
  limitBytes?: number;
}

/** Decodes and validates the log query the way the API server does (bad numbers 400, out-of-range values 422). */
export function parsePodLogOptions(query: URLSearchParams, pod: string): PodLogOptions {
  const problems: string[] = [];
  const int = (name: string, min: number): number | undefined => {
    const raw = query.get(name);
    if (raw === null || raw === '') return undefined;
    if (!/^-?\d+$/.test(raw))
      throw badRequest(`invalid value for ${name}: strconv.ParseInt: parsing "${raw}": invalid syntax`);
    const value = Number(raw);
    if (value < min)
      problems.push(`${name}: Invalid value: ${value}: must be greater than or equal to ${min}`);
    return value;
  };
  const options: PodLogOptions = {
    previous: bool(query.get('previous')),
    follow: bool(query.get('follow')),
    timestamps: bool(query.get('timestamps')),
  };
  const container = query.get('container');
  if (container) options.container = container;
  const tailLines = int('tailLines', 0);
  if (tailLines !== undefined) options.tailLines = tailLines;
  const sinceSeconds = int('sinceSeconds', 1);
  if (sinceSeconds !== undefined) options.sinceSeconds = sinceSeconds;
  const limitBytes = int('limitBytes', 1);
  if (limitBytes !== undefined) options.limitBytes = limitBytes;
  const sinceTime = query.get('sinceTime');
  if (sinceTime) {
    const time = new Date(sinceTime);
    if (Number.isNaN(time.getTime()))
      throw badRequest(`invalid value for sinceTime: "${sinceTime}" is not RFC 3339`);
    options.sinceTime = time;
  }
  if (options.sinceSeconds !== undefined && options.sinceTime) {
    problems.push('sinceSeconds: Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified');
  }
  if (problems.length > 0) {
    const summary = problems.length === 1 ? problems[0] : `[${problems.join(', ')}]`;
    throw new StatusError(422, 'Invalid', `PodLogOptions "${pod}" is invalid: ${summary}`, {
      name: pod,
      kind: 'PodLogOptions',
    });
  }
  return options;
}

function bool(value: string | null): boolean {
  return value === 'true' || value === '1';
}

/**
 * The log text as the kubelet serves it: lines since the cut-off, the last `tailLines` of them, each
 * prefixed by an RFC 3339 timestamp with nanoseconds when asked, cut at `limitBytes`.
 * `follow` is answered like a plain read (the stream ends with what was logged so far).
 */
export function renderPodLog(lines: readonly PodLogLine[], options: PodLogOptions, now = new Date()): Buffer {
  const since =
    options.sinceTime ??
    (options.sinceSeconds !== undefined ? new Date(now.getTime() - options.sinceSeconds * 1000) : undefined);
  let selected = since ? lines.filter((l) => l.time.getTime() >= since.getTime()) : [...lines];
  if (options.tailLines !== undefined)
    selected = options.tailLines === 0 ? [] : selected.slice(-options.tailLines);
  const text = selected
    .map((l) => `${options.timestamps ? `${nanoTimestamp(l.time)} ` : ''}${l.text.replace(/\n$/, '')}\n`)
    .join('');
  // Bytes, not characters: `limitBytes` may cut a multi-byte character, as it does on a real cluster.
  const bytes = Buffer.from(text, 'utf8');
  return options.limitBytes === undefined ? bytes : bytes.subarray(0, options.limitBytes);
}

/** The kubelet's fixed-width `2006-01-02T15:04:05.000000000Z07:00`. */
function nanoTimestamp(time: Date): string {
  return time.toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z');
}
