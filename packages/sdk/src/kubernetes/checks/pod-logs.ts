import type { V1Pod } from '@kubernetes/client-node';
import { z } from 'zod';
import { Duration, toMillis } from '../../core/duration';
import { type Evidence, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import type { KubernetesCluster } from '../cluster';
import { isKubernetesApiError } from '../errors';
import { isPodReady } from './pod-view';
import { apiMessage, clip, isNotFound, listSome, plural } from './wording';

function isRegExp(source: string): boolean {
  try {
    new RegExp(source, 'i');
    return true;
  } catch {
    return false;
  }
}

/** Options of {@link podLogs}: exactly one of `pod` and `selector`. */
export const PodLogsOptions = z
  .object({
    /** Namespace of the pods. */
    namespace: z.string().min(1),
    /** One pod by name. @default none: give `selector` instead */
    pod: z.string().min(1).optional(),
    /** A label selector (`app=generation-agent`): reads up to `maxPods` of its pods. @default none: give `pod` instead */
    selector: z.string().min(1).optional(),
    /** The container. @default the pod's `kubectl.kubernetes.io/default-container`, else its first container */
    container: z.string().min(1).optional(),
    /** Lines to read from the end of each log, before `pattern` filters them (`kubectl logs --tail`). @default 100 */
    tailLines: z.number().int().min(1).max(10_000).default(100),
    /** Only lines newer than this (`kubectl logs --since`), e.g. `"15m"`. @default no limit */
    since: Duration.optional(),
    /** The previous, terminated run of the container (`kubectl logs --previous`): why a crash-looping container died. @default false */
    previous: z.boolean().default(false),
    /** Keep only lines matching this regular expression, case-insensitive (`| grep -i`). @default every line */
    pattern: z.string().min(1).refine(isRegExp, 'expected a valid regular expression').optional(),
    /** Most bytes of log lines kept over all pods; the oldest lines are dropped first. @default 65536 (64 KiB) */
    maxBytes: z
      .number()
      .int()
      .min(1024)
      .max(4 * 1024 * 1024)
      .default(64 * 1024),
    /** Most pods of a selector read (`kubectl logs --max-log-requests`); not-ready pods first. @default 5 */
    maxPods: z.number().int().min(1).max(20).default(5),
  })
  .refine((p) => (p.pod === undefined) !== (p.selector === undefined), {
    message: 'give exactly one of `pod` and `selector`',
    path: ['pod'],
  });
export type PodLogsOptions = z.output<typeof PodLogsOptions>;
export type PodLogsOptionsInput = z.input<typeof PodLogsOptions>;

/** The log of one container of one pod, as read. */
export type PodLog = {
  pod: string;
  container: string | null;
  /** The lines kept: matching `pattern` if one was given, newest last, within the size bound. */
  lines: string[];
  /** Lines the API returned (before filtering and truncation). */
  read: number;
  /** Lines matching `pattern`; `null` without a pattern. */
  matched: number | null;
  /** Older lines were dropped (or a line was cut) to stay within `maxBytes`. */
  truncated: boolean;
  /** Why the log could not be read (container not started, no previous run, …); `null` when it was. */
  error: string | null;
};

/** What {@link podLogs} read. */
export type PodLogsData = {
  namespace: string;
  pod: string | null;
  selector: string | null;
  pattern: string | null;
  previous: boolean;
  /** Pods the selector matched (1 for a named pod). */
  podsMatched: number;
  logs: PodLog[];
  /** Matching lines over all pods; `null` without a pattern. */
  matched: number | null;
  truncated: boolean;
};

/** The log of one container as {@link podLogs} read it, before `pattern` and `maxBytes` are applied. */
export type PodLogRead = {
  pod: string;
  container: string | null;
  /** Every line the API returned (`tailLines` at most), oldest first. */
  lines: string[];
  /** Why the log could not be read; `null` when it was. */
  error: string | null;
};

/**
 * What {@link podLogs} read: the log lines of each pod read, unfiltered. Replaying it with another
 * `pattern` (or `maxBytes`) filters the same lines again; the lines are what `tailLines` and `since`
 * fetched, so a replay cannot see further back than the recorded run.
 */
export type PodLogsObservation = {
  /** `false` when the named pod does not exist or the selector matched no pod. */
  found: boolean;
  /** Pods the selector matched (1 for a named pod). */
  podsMatched: number;
  /** The pods read (at most `maxPods`), not-ready ones first. */
  logs: PodLogRead[];
};

const KIND = 'k8s.pod-logs';

/**
 * Like `kubectl logs [--previous] --tail=N [--since=…] <pod | -l selector> | grep -i <pattern>`, bounded.
 *
 * - `ok` when the logs were read (and, with a `pattern`, nothing matched).
 * - `warn` when a `pattern` was given and lines matched it: a pattern is what the operator is looking for
 *   (`ERROR`, `attack`), so finding it is the signal.
 * - `fail` when the named pod does not exist or the selector matches no pod.
 * - `unknown` when no log could be read at all (containers not started yet, no previous run to show).
 *
 * Log lines are evidence as they are; the engine redacts secrets from findings before storing them.
 *
 * Replayable: `read` fetches the lines ({@link PodLogsObservation}), `judge` applies `pattern` and
 * `maxBytes`. The observation holds every line read, so a large `tailLines` makes a large recording.
 */
export function podLogs(
  cluster: KubernetesCluster,
  params: PodLogsOptionsInput,
): ReplayableCheck<PodLogsData, PodLogsObservation> {
  const p = parseOptions(KIND, PodLogsOptions, params);
  const pattern = p.pattern === undefined ? undefined : new RegExp(p.pattern, 'i');
  const patternText = p.pattern === undefined ? null : `/${p.pattern}/i`;
  return defineCheck({
    kind: KIND,
    description: `Logs of ${p.pod ? `pod ${p.pod}` : `pods ${p.selector}`} in ${p.namespace}${patternText ? ` matching ${patternText}` : ''}`,
    async read(ctx): Promise<PodLogsObservation> {
      cluster.assertContext();
      const none: PodLogsObservation = { found: false, podsMatched: 0, logs: [] };
      let pods: V1Pod[];
      if (p.pod !== undefined) {
        const name = p.pod;
        try {
          pods = [
            await cluster.call(
              `read pod ${name} in ${p.namespace}`,
              (options) => cluster.core.readNamespacedPod({ name, namespace: p.namespace }, options),
              { signal: ctx.signal },
            ),
          ];
        } catch (e) {
          if (isNotFound(e)) return none;
          throw e;
        }
      } else {
        const selector = p.selector ?? '';
        const list = await cluster.call(
          `list pods ${selector} in ${p.namespace}`,
          (options) =>
            cluster.core.listNamespacedPod({ namespace: p.namespace, labelSelector: selector }, options),
          { signal: ctx.signal },
        );
        if (list.items.length === 0) return none;
        // Not-ready pods first: at 3 a.m. the broken pod's log is the one wanted.
        pods = [...list.items].sort(
          (a, b) =>
            Number(isPodReady(a)) - Number(isPodReady(b)) ||
            (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''),
        );
      }
      const chosen = pods.slice(0, p.maxPods);
      const sinceSeconds =
        p.since === undefined ? undefined : Math.max(1, Math.ceil(toMillis(p.since) / 1000));

      const logs = await Promise.all(
        chosen.map(async (pod): Promise<PodLogRead> => {
          const name = pod.metadata?.name ?? '';
          const container = containerOf(pod, p.container);
          const entry = { pod: name, container: container.name, lines: [] };
          if (container.error) return { ...entry, error: container.error };
          let text: string;
          try {
            text = await cluster.call(
              `read log of ${name}/${container.name} in ${p.namespace}`,
              (options) =>
                cluster.core.readNamespacedPodLog(
                  {
                    name,
                    namespace: p.namespace,
                    container: container.name ?? undefined,
                    tailLines: p.tailLines,
                    previous: p.previous,
                    ...(sinceSeconds === undefined ? {} : { sinceSeconds }),
                  },
                  options,
                ),
              { signal: ctx.signal },
            );
          } catch (e) {
            // 400: the container has not started, or has no previous run; 404: the pod went away meanwhile.
            if (isKubernetesApiError(e) && (e.status === 400 || e.status === 404)) {
              return { ...entry, error: clip(apiMessage(e), 300) };
            }
            throw e;
          }
          return {
            ...entry,
            lines: splitLines(typeof text === 'string' ? text : String(text ?? '')),
            error: null,
          };
        }),
      );
      return { found: true, podsMatched: pods.length, logs };
    },
    judge(seen) {
      const base = {
        namespace: p.namespace,
        pod: p.pod ?? null,
        selector: p.selector ?? null,
        pattern: p.pattern ?? null,
        previous: p.previous,
      };
      if (!seen.found) {
        const empty = { ...base, podsMatched: 0, logs: [], matched: null, truncated: false };
        return p.pod !== undefined
          ? finding('fail', `Pod ${p.pod} not found in ${p.namespace}`, empty)
          : finding('fail', `No pods match ${p.selector ?? ''} in ${p.namespace}`, empty);
      }
      const { podsMatched } = seen;
      const share = Math.floor(p.maxBytes / seen.logs.length);
      const logs = seen.logs.map((read): PodLog => {
        const entry = { pod: read.pod, container: read.container };
        if (read.error !== null) {
          return { ...entry, lines: [], read: 0, matched: null, truncated: false, error: read.error };
        }
        const kept = pattern ? read.lines.filter((line) => pattern.test(line)) : read.lines;
        const bounded = newestWithin(kept, share);
        return {
          ...entry,
          lines: bounded.lines,
          read: read.lines.length,
          matched: pattern ? kept.length : null,
          truncated: bounded.truncated,
          error: null,
        };
      });

      const readable = logs.filter((l) => l.error === null);
      const matched = pattern ? readable.reduce((sum, l) => sum + (l.matched ?? 0), 0) : null;
      const truncated = logs.some((l) => l.truncated);
      const data: PodLogsData = { ...base, podsMatched, logs, matched, truncated };
      const which = p.pod
        ? `pod ${p.pod}`
        : `${plural(readable.length, 'pod')}${logs.length < podsMatched ? ` (of ${podsMatched} matching ${p.selector}; at most ${p.maxPods} are read)` : ` (${p.selector})`}`;
      const scope = `${p.previous ? 'previous ' : ''}logs of ${which} in ${p.namespace}, last ${p.tailLines} lines${p.since === undefined ? '' : ` within ${p.since}`}`;
      const notes: string[] = [];
      if (truncated) notes.push(`truncated to ${formatBytes(p.maxBytes)}, oldest lines dropped`);
      const unreadable = logs.filter((l) => l.error !== null);
      if (unreadable.length && readable.length) {
        notes.push(
          `unreadable: ${listSome(
            unreadable.map((l) => `${l.pod} (${l.error})`),
            2,
          )}`,
        );
      }
      const tail = notes.length ? `; ${notes.join('; ')}` : '';

      if (readable.length === 0) {
        return finding(
          'unknown',
          `Could not read ${p.previous ? 'previous ' : ''}logs of ${p.pod ? `pod ${p.pod}` : p.selector} in ${p.namespace}: ${
            p.pod
              ? unreadable[0]?.error
              : listSome(
                  unreadable.map((l) => `${l.pod}: ${l.error}`),
                  2,
                )
          }`,
          data,
          evidenceOf(logs, p.previous, patternText),
        );
      }
      if (pattern) {
        const status = matched ? 'warn' : 'ok';
        const head = matched
          ? `${plural(matched, 'line')} match ${patternText} in ${scope}`
          : `No lines match ${patternText} in ${scope}`;
        return finding(status, `${head}${tail}`, data, evidenceOf(logs, p.previous, patternText));
      }
      const lines = readable.reduce((sum, l) => sum + l.read, 0);
      return finding(
        'ok',
        `Read ${plural(lines, 'line')} from ${scope}${tail}`,
        data,
        evidenceOf(logs, p.previous, patternText),
      );
    },
  });
}

/** The container to read: the one asked for, else the pod's default container, else its first. */
function containerOf(pod: V1Pod, wanted: string | undefined): { name: string | null; error: string | null } {
  const names = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].map((c) => c.name);
  if (wanted !== undefined) {
    return names.includes(wanted)
      ? { name: wanted, error: null }
      : {
          name: wanted,
          error: `container "${wanted}" is not in this pod (it has: ${names.join(', ') || 'none'})`,
        };
  }
  const annotated = pod.metadata?.annotations?.['kubectl.kubernetes.io/default-container'];
  if (annotated && names.includes(annotated)) return { name: annotated, error: null };
  return { name: pod.spec?.containers?.[0]?.name ?? null, error: null };
}

function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split(/\r?\n/);
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** The newest lines whose UTF-8 size (with newlines) fits in `budget`; a single too-long line is cut. */
function newestWithin(lines: string[], budget: number): { lines: string[]; truncated: boolean } {
  const kept: string[] = [];
  let used = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i] ?? '';
    const size = Buffer.byteLength(line, 'utf8') + 1;
    if (used + size > budget) {
      if (kept.length === 0 && budget > 1) {
        kept.unshift(`${cutToBytes(line, budget - 4)}…`);
      }
      return { lines: kept, truncated: true };
    }
    kept.unshift(line);
    used += size;
  }
  return { lines: kept, truncated: false };
}

function cutToBytes(text: string, bytes: number): string {
  const buffer = Buffer.from(text, 'utf8').subarray(0, Math.max(bytes, 0));
  // Drop a partial multi-byte character at the end.
  return buffer.toString('utf8').replace(/\uFFFD$/, '');
}

function formatBytes(bytes: number): string {
  return bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} bytes`;
}

function evidenceOf(logs: PodLog[], previous: boolean, patternText: string | null): Evidence[] {
  return logs.map((l): Evidence => {
    const title = `${l.pod}${l.container ? `/${l.container}` : ''}${previous ? ' (previous)' : ''}${patternText ? ` matching ${patternText}` : ''}`;
    if (l.error !== null) return { kind: 'text', title, text: `Log not readable: ${l.error}` };
    return { kind: 'log', title: l.truncated ? `${title} (truncated)` : title, lines: l.lines };
  });
}
