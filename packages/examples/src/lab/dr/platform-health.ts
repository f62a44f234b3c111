/**
 * Whether the platform as a whole is up: the `system_health` metric (runbook 13's alert) and the lab
 * health checks a disaster recovery must turn green again.
 */
import type { LabParts } from '../lab-parts';
import { PLATFORM_DEPLOYMENTS, PLATFORM_STATEFULSETS } from '../platform/manifests';
import { type WorkloadStatus, workloadStatus } from '../platform/platform-status';

/** Every workload of the platform's manifests, as the cluster shows it (`undefined`: it does not exist). */
export function platformWorkloads(parts: LabParts): { name: string; status: WorkloadStatus | undefined }[] {
  return [...PLATFORM_STATEFULSETS, ...PLATFORM_DEPLOYMENTS].map((name) => ({
    name,
    status: workloadStatus(parts.simulator.store, parts.namespace, name),
  }));
}

const allReady = (s: WorkloadStatus | undefined) => s !== undefined && s.ready >= s.desired && s.desired > 0;

/** What the backend's health endpoint answers (`down` when it cannot reach its database), `null` without an answer. */
async function backendStatus(parts: LabParts, timeoutMs: number): Promise<string | null> {
  try {
    const response = await fetch(`${parts.backend.url}/api/v1/health`, {
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = (await response.json()) as { status?: unknown };
    return typeof body.status === 'string' ? body.status : null;
  } catch {
    return null;
  }
}

/**
 * `system_health`: 0 when the platform is down as a whole — no workload of the platform has a ready pod
 * and the API answers `down` (or nothing) — else 1. A single broken part (the database, an agent) leaves
 * it at 1: those have their own alerts and runbooks; this one is for complete failure only.
 */
export async function systemHealth(parts: LabParts, timeoutMs = 2000): Promise<0 | 1> {
  const anyReady = platformWorkloads(parts).some((w) => (w.status?.ready ?? 0) > 0);
  if (anyReady) return 1;
  const api = await backendStatus(parts, timeoutMs);
  return api === null || api === 'down' ? 0 : 1;
}

/** The lab health check `platform workloads`: every Deployment and StatefulSet exists with all pods ready. */
export function platformWorkloadsCheck(parts: LabParts): { name: string; ok: boolean; detail: string } {
  const workloads = platformWorkloads(parts);
  const missing = workloads.filter((w) => !w.status).map((w) => w.name);
  const notReady = workloads
    .filter((w) => w.status && !allReady(w.status))
    .map((w) => `${w.name} ${w.status?.ready}/${w.status?.desired}`);
  const ok = missing.length === 0 && notReady.length === 0;
  return {
    name: 'platform workloads',
    ok,
    detail: ok
      ? `all ${workloads.length} workloads ready`
      : [
          missing.length ? `missing: ${missing.join(', ')}` : '',
          notReady.length ? `not ready: ${notReady.join(', ')}` : '',
        ]
          .filter(Boolean)
          .join('; '),
  };
}

/** The lab health check `redis`: the platform's Redis answers PING. */
export async function redisCheck(
  parts: LabParts,
  timeoutMs = 2000,
): Promise<{ name: string; ok: boolean; detail: string }> {
  try {
    const answer = await Promise.race([
      parts.redis.ping(),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs),
      ),
    ]);
    return { name: 'redis', ok: answer === 'PONG', detail: `PING answers ${answer}` };
  } catch (e) {
    return { name: 'redis', ok: false, detail: `PING fails: ${(e as Error).message}` };
  }
}
