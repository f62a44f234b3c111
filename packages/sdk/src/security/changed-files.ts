import { posix } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../core/duration';
import { NonRetriableError, RunbookError } from '../core/errors';
import { type Evidence, finding } from '../core/finding';
import { parseOptions } from '../core/parse-options';
import { type Action, defineAction, defineCheck, type ReplayableCheck, type StepContext } from '../core/step';
import { listSome, plural } from '../core/wording';
import { k8sRef } from '../kubernetes/cluster';
import { NamespaceName, ObjectName } from '../kubernetes/options';
import type { PodExec } from './pod-exec';

/**
 * True when a path holds a control character (a newline, an escape…): such a name is not passed on to `rm`, and
 * is shown JSON-escaped, so that no one reading a plan, a log or a terminal can take it for something else (a
 * `\n` in a name would read as two paths).
 */
function hasControlCharacter(path: string): boolean {
  return [...path].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);
}

/**
 * An absolute path passed as one argv element (never a shell line, so quotes and `$` mean nothing): starting with
 * `/` it can never be taken for an option; no `..` segment, no control characters, not `/` itself.
 */
const AbsolutePath = z
  .string()
  .min(2)
  .max(4_096)
  .refine((p) => p.startsWith('/'), 'expected an absolute path such as "/app"')
  .refine((p) => !hasControlCharacter(p), 'control characters are not allowed in a path')
  .refine((p) => !p.split('/').includes('..'), '".." is not allowed in a path')
  .transform((p) => posix.normalize(p));

const Container = z.string().min(1).max(63);

/** Options of {@link changedFilesScan}. */
export const ChangedFilesScanOptions = z
  .object({
    /** Namespace of the pods. */
    namespace: NamespaceName,
    /** One pod by name. Give this or `selector`. */
    pod: ObjectName.optional(),
    /** A label selector (`app=backend`): every running pod it matches is scanned. */
    selector: z.string().min(1).optional(),
    /** The container to run `find` in. @default the pod's first */
    container: Container.optional(),
    /** The directory to scan. @default "/app" (the manual's) */
    dir: AbsolutePath.default('/app'),
    /** Files modified less than this long ago are listed. @default "24h" (the manual's `-mtime -1`) */
    within: Duration.default('24h'),
    /** Paths (exact, or a directory prefix ending in `/`) expected to change and left out, e.g. `"/app/logs/"`. @default [] */
    ignore: z.array(z.string().startsWith('/')).default([]),
  })
  .refine((o) => (o.pod === undefined) !== (o.selector === undefined), {
    message: 'give exactly one of pod or selector',
    path: ['pod'],
  });
export type ChangedFilesScanOptionsInput = z.input<typeof ChangedFilesScanOptions>;

/** A file found changed. */
export type ChangedFile = { pod: string; path: string };

/** What {@link changedFilesScan} found. */
export type ChangedFilesData = {
  namespace: string;
  dir: string;
  withinMs: number;
  pods: string[];
  /** The changed files, each a path `removeFiles` takes. */
  files: ChangedFile[];
  /**
   * Changed files whose name holds a control character (a newline, an escape): suspicious in themselves, not
   * passed to `removeFiles`, for a person to remove by hand. Shown JSON-escaped in the summary and evidence.
   */
  unrepresentable: ChangedFile[];
};

/**
 * What {@link changedFilesScan} read: the pods scanned and every file `find` listed in them, before
 * `ignore`. Replaying it with another `ignore` judges the same listing again (`within` is `find`'s own).
 */
export type ChangedFilesObservation = { pods: string[]; files: ChangedFile[] };

/**
 * Runbook 12's "check for backdoors or persistence": `kubectl exec <pod> -- find /app -type f -mmin -<N>` in each
 * pod, through the `pods/exec` API. Listing only: it changes nothing. `warn` when files changed (they are for a
 * person to judge, then `removeFiles`), `ok` when none, `unknown` when no running pod was found.
 *
 * Replayable: `read` lists the files ({@link ChangedFilesObservation}), `judge` applies `ignore`.
 */
export function changedFilesScan(
  exec: PodExec,
  options: ChangedFilesScanOptionsInput,
): ReplayableCheck<ChangedFilesData, ChangedFilesObservation> {
  const o = parseOptions('security.changed-files', ChangedFilesScanOptions, options);
  const withinMs = toMillis(o.within);
  const minutes = Math.max(1, Math.ceil(withinMs / 60_000));
  const within = formatMillis(withinMs);
  const ignored = (path: string) => o.ignore.some((i) => (i.endsWith('/') ? path.startsWith(i) : path === i));
  return defineCheck({
    kind: 'security.changed-files',
    description: `Files under ${o.dir} changed in the last ${within}`,
    async read(ctx): Promise<ChangedFilesObservation> {
      const pods = await podsToScan(exec, o, ctx);
      const files: ChangedFile[] = [];
      for (const pod of pods) {
        const argv = ['find', o.dir, '-type', 'f', '-mmin', `-${minutes}`, '-print0'];
        const result = await exec.run(o.namespace, pod, o.container, argv, { signal: ctx.signal });
        if (result.exitCode !== 0) {
          throw new RunbookError(
            'SECURITY_SCAN_FAILED',
            `find in ${o.namespace}/${pod} exited ${result.exitCode}: ${result.stderr.trim().slice(0, 300) || 'no message'}`,
            { retriable: false },
          );
        }
        for (const path of parseListing(result.stdout)) files.push({ pod, path });
      }
      return { pods, files };
    },
    judge({ pods, files }) {
      const data: ChangedFilesData = {
        namespace: o.namespace,
        dir: o.dir,
        withinMs,
        pods,
        files: [],
        unrepresentable: [],
      };
      if (pods.length === 0) {
        return finding(
          'unknown',
          `No running pod ${o.pod ?? `matching ${o.selector}`} in ${o.namespace} to scan`,
          data,
        );
      }
      for (const file of files) {
        if (ignored(file.path)) continue;
        (hasControlCharacter(file.path) ? data.unrepresentable : data.files).push(file);
      }
      const evidence: Evidence[] = [
        {
          kind: 'table',
          title: `Files under ${o.dir} modified in the last ${within}`,
          columns: ['pod', 'path'],
          rows: data.files.map((f) => [f.pod, f.path]),
        },
      ];
      const odd = data.unrepresentable.map((f) => `${f.pod}:${JSON.stringify(f.path)}`);
      if (odd.length > 0) {
        evidence.push({
          kind: 'table',
          title: 'Changed files whose name holds control characters (JSON-escaped; remove them by hand)',
          columns: ['pod', 'path'],
          rows: data.unrepresentable.map((f) => [f.pod, JSON.stringify(f.path)]),
        });
      }
      const oddNote =
        odd.length === 0
          ? ''
          : `; ${plural(odd.length, 'more file')} with control characters in the name, to remove by hand: ${listSome(odd)}`;
      if (data.files.length + odd.length === 0) {
        return finding(
          'ok',
          `No file under ${o.dir} changed in the last ${within} (${plural(pods.length, 'pod')})`,
          data,
          evidence,
        );
      }
      return finding(
        'warn',
        `${plural(data.files.length, 'file')} under ${o.dir} changed in the last ${within}${data.files.length ? `: ${listSome(data.files.map((f) => f.path))}` : ''}${oddNote}`,
        data,
        evidence,
      );
    },
  });
}

/** Options of {@link removeFiles}. */
export const RemoveFilesOptions = z.object({
  namespace: NamespaceName,
  /** The pod, by name (a removal is planned for exact pods and paths). */
  pod: ObjectName,
  /** @default the pod's first container */
  container: Container.optional(),
  /** Exact absolute paths; no globs (they are argv elements, never expanded). */
  paths: z.array(AbsolutePath).min(1, 'give at least one path').max(10_000),
  /**
   * Paths per command (`find`, `rm`): the command travels in the exec request's URL, which API servers bound, so
   * many paths take several commands. @default 100
   */
  batchSize: z.number().int().min(1).max(100).default(100),
});
export type RemoveFilesOptionsInput = z.input<typeof RemoveFilesOptions>;

/** What a removal plan fixes. */
export type RemoveFilesParams = { namespace: string; pod: string; container: string | null; paths: string[] };

/**
 * Runbook 12's "remove backdoors": `kubectl exec <pod> -- rm -f -- <paths>`, as argv (never a shell line), one
 * command per `batchSize` paths.
 *
 * - **plan** lists the exact paths that exist now (`find <paths> -type f`); paths already gone are left out.
 * - **verify** lists them again: none may remain.
 * - no revert: the file is gone. Destructive (needs approval by default), risk `high`. The pod's image still
 *   holds whatever was built into it: replace the pod too when the backdoor came with the image.
 */
export function removeFiles(
  exec: PodExec,
  options: RemoveFilesOptionsInput,
): Action<RemoveFilesParams, { removed: number }> {
  const o = parseOptions('security.remove-files', RemoveFilesOptions, options);
  const target = k8sRef(o.namespace, 'pod', o.pod);
  const where = `${o.namespace}/${o.pod}`;
  const existing = async (paths: string[], ctx: StepContext) => {
    const listed = new Set<string>();
    for (const batch of batches(paths, o.batchSize)) {
      const argv = ['find', ...batch, '-type', 'f', '-print0'];
      const result = await exec.run(o.namespace, o.pod, o.container, argv, { signal: ctx.signal });
      // find exits 1 when a start path is missing, and still lists the rest.
      if (result.exitCode !== 0 && result.exitCode !== 1) {
        throw new RunbookError(
          'SECURITY_SCAN_FAILED',
          `find in ${where} exited ${result.exitCode}: ${result.stderr.trim().slice(0, 300)}`,
          { retriable: false },
        );
      }
      for (const path of parseListing(result.stdout)) listed.add(path);
    }
    return paths.filter((p) => listed.has(p));
  };
  return defineAction<RemoveFilesParams, { removed: number }>({
    kind: 'security.remove-files',
    target,
    risk: 'high',
    destructive: true,
    description: `Remove ${listSome(o.paths)} from pod ${where}`,

    async plan(ctx) {
      exec.cluster.assertMayChange(o.namespace);
      const present = await existing(o.paths, ctx);
      const gone = o.paths.filter((p) => !present.includes(p));
      return {
        summary:
          present.length === 0
            ? `Nothing to remove in ${where}: ${listSome(o.paths)} ${o.paths.length === 1 ? 'is' : 'are'} not there`
            : `Remove ${plural(present.length, 'file')} from ${where}: ${listSome(present)}${gone.length ? ` (${plural(gone.length, 'path')} already gone)` : ''}`,
        changes: present.map((path) => ({ target, field: `file:${path}`, before: 'present', after: null })),
        params: { namespace: o.namespace, pod: o.pod, container: o.container ?? null, paths: present },
      };
    },

    async apply(ctx, plan) {
      const p = plan.params;
      exec.cluster.assertMayChange(p.namespace);
      let removed = 0;
      for (const batch of batches(p.paths, o.batchSize)) {
        const argv = ['rm', '-f', '--', ...batch];
        const result = await exec.run(p.namespace, p.pod, p.container ?? undefined, argv, {
          signal: ctx.signal,
        });
        if (result.exitCode !== 0) {
          throw new NonRetriableError(
            `rm in ${where} exited ${result.exitCode} (${removed} of ${p.paths.length} files removed before): ${result.stderr.trim().slice(0, 300) || 'no message'}`,
            { code: 'SECURITY_REMOVE_FAILED' },
          );
        }
        removed += batch.length;
      }
      ctx.log(`removed ${p.paths.length} file(s) from ${where}`);
      return { removed: p.paths.length };
    },

    async verify(ctx, applied) {
      const left = await existing(applied.plan.params.paths, ctx);
      return left.length === 0
        ? finding('ok', `${plural(applied.plan.params.paths.length, 'file')} gone from ${where}`, { left })
        : finding('fail', `Still present in ${where}: ${listSome(left)}`, { left });
    },
  });
}

async function podsToScan(
  exec: PodExec,
  o: z.output<typeof ChangedFilesScanOptions>,
  ctx: StepContext,
): Promise<string[]> {
  const cluster = exec.cluster;
  cluster.assertContext();
  let pods: V1Pod[];
  if (o.pod !== undefined) {
    const name = o.pod;
    try {
      pods = [
        await cluster.call(
          `read pod ${o.namespace}/${name}`,
          (opts) => cluster.core.readNamespacedPod({ name, namespace: o.namespace }, opts),
          { signal: ctx.signal },
        ),
      ];
    } catch (e) {
      if (e instanceof RunbookError && e.code === 'K8S_NOT_FOUND') return [];
      throw e;
    }
  } else {
    const list = await cluster.call(
      `list pods ${o.selector} in ${o.namespace}`,
      (opts) => cluster.core.listNamespacedPod({ namespace: o.namespace, labelSelector: o.selector }, opts),
      { signal: ctx.signal },
    );
    pods = list.items;
  }
  return pods
    .filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp)
    .map((p) => p.metadata?.name ?? '')
    .filter(Boolean)
    .sort();
}

/**
 * `find -print0`'s output: paths ended by NUL, the one byte no file name holds (a newline may be in a name, and
 * splitting on it would let a file named `"x\n/app/server.py"` put `/app/server.py` in a removal plan).
 */
function parseListing(stdout: string): string[] {
  return stdout.split('\0').filter((p) => p.startsWith('/'));
}

function batches<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
