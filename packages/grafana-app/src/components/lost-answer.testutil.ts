import { type BackendSrv, type BackendSrvRequest, type FetchError, setBackendSrv } from '@grafana/runtime';
import { Observable } from 'rxjs';

/** Which requests lose their answer, and how many of them. */
export interface LostAnswers {
  /** The requests whose answer is replaced. */
  match: (request: BackendSrvRequest) => boolean;
  /** What Grafana answers instead. @default 504 (its proxy timed out) */
  status?: number;
  /** How many matching requests lose their answer; later ones get theirs. @default 1 */
  count?: number;
}

/** `POST …/runs` with `mode: "execute"`. */
export const isExecute = (r: BackendSrvRequest): boolean =>
  r.method === 'POST' &&
  r.url.endsWith('/runs') &&
  (r.data as { mode?: unknown } | undefined)?.mode === 'execute';

/** `GET …/runs/<id>` (reading one run). */
export const isRunRead = (r: BackendSrvRequest): boolean =>
  (r.method ?? 'GET') === 'GET' && /\/runs\/run_[^/?]+$/.test(r.url);

/**
 * For tests: installs a BackendSrv that passes every request to `real` (the harness's: real HTTP through the
 * Grafana proxy double) and waits for the service's answer, but replaces the answer of matching requests by a
 * gateway error, as a Grafana proxy that timed out after the service had acted answers. The request itself
 * reaches the service and takes effect. Returns the function that installs `real` again.
 */
export function loseAnswers(real: BackendSrv, { match, status = 504, count = 1 }: LostAnswers): () => void {
  let left = count;
  const lossy: BackendSrv = Object.create(real);
  lossy.fetch = <T>(options: BackendSrvRequest) => {
    if (!match(options) || left <= 0) return real.fetch<T>(options);
    left--;
    return new Observable<never>((subscriber) => {
      const lost: FetchError = { status, statusText: 'Gateway Timeout', data: {}, config: options };
      const inner = real.fetch<T>(options).subscribe({
        error: (e: unknown) => subscriber.error(e),
        complete: () => subscriber.error(lost),
      });
      return () => inner.unsubscribe();
    });
  };
  setBackendSrv(lossy);
  return () => setBackendSrv(real);
}
