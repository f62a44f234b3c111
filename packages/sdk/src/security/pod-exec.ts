import { Writable } from 'node:stream';
import { Exec, KubeConfig, type V1Status } from '@kubernetes/client-node';
import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../core/duration';
import { RunbookError } from '../core/errors';
import { parseOptions } from '../core/parse-options';
import { KubernetesCluster } from '../kubernetes/cluster';

/** Options of {@link connectPodExec}. */
export const PodExecOptions = z.object({
  /** The cluster (with its guard rails: expected context, namespaces actions may change). */
  cluster: z.instanceof(KubernetesCluster),
  /**
   * The kubeconfig the cluster was connected with: `Exec` opens its own WebSocket and needs the server and
   * credentials. Its current context must be the cluster's.
   */
  kubeConfig: z.instanceof(KubeConfig),
  /** Bound on one command, from connecting to its exit status. @default "30s" */
  timeout: Duration.default('30s'),
  /** Bytes of stdout kept per command; more fails the command (a listing that large is no listing). @default 1048576 */
  maxOutput: z.number().int().min(1_024).default(1_048_576),
});
export type PodExecOptions = z.output<typeof PodExecOptions>;
export type PodExecOptionsInput = z.input<typeof PodExecOptions>;

/** What a command printed and how it ended. */
export interface ExecResult {
  stdout: string;
  stderr: string;
  /** 0 on `Success`; the `ExitCode` cause of a `NonZeroExitCode` failure otherwise. */
  exitCode: number;
}

/** Runs commands in containers through the `pods/exec` API (what `kubectl exec` does), as argv, never a shell line. */
export class PodExec {
  readonly cluster: KubernetesCluster;
  readonly #exec: Exec;
  readonly #timeoutMs: number;
  readonly #maxOutput: number;

  /** @internal Use {@link connectPodExec}. */
  constructor(options: PodExecOptions) {
    this.cluster = options.cluster;
    this.#exec = new Exec(options.kubeConfig);
    this.#timeoutMs = toMillis(options.timeout);
    this.#maxOutput = options.maxOutput;
  }

  /**
   * Runs `argv` in `container` of `namespace/pod` and waits for its exit status. Fails with `K8S_EXEC` when the
   * connection fails or closes without a status, and on timeout or abort (the WebSocket is closed then).
   */
  async run(
    namespace: string,
    pod: string,
    container: string | undefined,
    argv: readonly string[],
    options: { signal?: AbortSignal } = {},
  ): Promise<ExecResult> {
    this.cluster.assertContext();
    options.signal?.throwIfAborted();
    const where = `${namespace}/${pod}${container ? ` (container ${container})` : ''}`;
    const what = `exec ${argv[0] ?? ''} in ${where}`;
    const stdout = collector(this.#maxOutput);
    const stderr = collector(64 * 1024);
    let socket: { close(): void } | undefined;
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    return new Promise<ExecResult>((resolve, reject) => {
      let settled = false;
      const settle = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        outcome();
      };
      const onAbort = () => {
        socket?.close();
        settle(() =>
          reject(
            options.signal?.aborted
              ? options.signal.reason
              : new RunbookError(
                  'K8S_EXEC',
                  `${what} did not finish within ${formatMillis(this.#timeoutMs)}.`,
                  {
                    retriable: true,
                  },
                ),
          ),
        );
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const onStatus = (status: V1Status) => {
        settle(() => {
          if (stdout.overflow) {
            reject(
              new RunbookError(
                'K8S_EXEC',
                `${what} printed more than ${this.#maxOutput} bytes; narrow it down.`,
                {
                  retriable: false,
                },
              ),
            );
            return;
          }
          const exitCode = exitCodeOf(status);
          if (exitCode === undefined) {
            reject(
              new RunbookError(
                'K8S_EXEC',
                `${what} failed: ${status.message ?? status.reason ?? 'unknown status'}.`,
                {
                  retriable: false,
                  details: { reason: status.reason ?? null },
                },
              ),
            );
            return;
          }
          resolve({ stdout: stdout.text(), stderr: stderr.text(), exitCode });
        });
      };
      this.#exec
        .exec(namespace, pod, container ?? '', [...argv], stdout.stream, stderr.stream, null, false, onStatus)
        .then((ws) => {
          socket = ws;
          if (settled) ws.close();
          ws.addEventListener?.('close', () =>
            settle(() =>
              reject(
                new RunbookError(
                  'K8S_EXEC',
                  `${what}: the connection closed before the command's exit status came.`,
                  {
                    retriable: true,
                  },
                ),
              ),
            ),
          );
        })
        .catch((e: unknown) =>
          settle(() =>
            reject(
              new RunbookError('K8S_EXEC', `${what} could not start: ${describeUpgradeError(e)}.`, {
                cause: e,
                retriable: false,
              }),
            ),
          ),
        );
    });
  }
}

/**
 * A {@link PodExec} for a cluster. Validates the options and that the kubeconfig's current context is the
 * cluster's (so exec never reaches a cluster the guard rails were not checked for).
 */
export function connectPodExec(options: PodExecOptionsInput): PodExec {
  const o = parseOptions('connectPodExec', PodExecOptions, options);
  if (o.kubeConfig.getCurrentContext() !== o.cluster.context) {
    throw new RunbookError(
      'INVALID_OPTIONS',
      `connectPodExec: the kubeconfig's current context "${o.kubeConfig.getCurrentContext()}" is not the cluster's "${o.cluster.context}". Pass the kubeconfig the cluster was connected with.`,
      { retriable: false },
    );
  }
  return new PodExec(o);
}

function exitCodeOf(status: V1Status): number | undefined {
  if (status.status === 'Success') return 0;
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  const code = Number(cause?.message);
  return cause && Number.isInteger(code) ? code : undefined;
}

function describeUpgradeError(e: unknown): string {
  const err = e as { message?: string; error?: { message?: string } };
  return err?.error?.message ?? err?.message ?? String(e);
}

function collector(limit: number) {
  const chunks: Buffer[] = [];
  let size = 0;
  let overflow = false;
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      if (size > limit) overflow = true;
      else chunks.push(Buffer.from(chunk));
      done();
    },
  });
  return {
    stream,
    get overflow() {
      return overflow;
    },
    text: () => Buffer.concat(chunks).toString('utf8'),
  };
}
