/** What the host page publishes on `window.__host` for the browser test to read. */
export interface HostState {
  phase: 'loading' | 'rendered' | 'failed';
  /** Why loading or rendering the plugin failed (message and stack). */
  error?: string;
  /** `performance.now()` when the host started importing module.js (everything before is the host's own start-up). */
  importStartedAt?: number;
  /** Calls the host's BackendSrv, for the test to check the proxy path on its own. */
  fetchJson?: (url: string) => Promise<{ status: number; data: unknown }>;
}

declare global {
  interface Window {
    __host: HostState;
  }
}
