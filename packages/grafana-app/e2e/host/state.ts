/** What the host page publishes on `window.__host` for the browser test to read. */
export interface HostState {
  /** `ready`: a dashboard page (`/d/<uid>`) waiting for the test to render something through `dashboard`. */
  phase: 'loading' | 'ready' | 'rendered' | 'failed';
  /** Why loading or rendering the plugin failed (message and stack). */
  error?: string;
  /** `performance.now()` when the host started importing module.js (everything before is the host's own start-up). */
  importStartedAt?: number;
  /** Calls the host's BackendSrv, for the test to check the proxy path on its own. */
  fetchJson?: (url: string) => Promise<{ status: number; data: unknown }>;
  /** Colours of Grafana's light or dark theme, made afresh with createTheme. */
  themeColors?: (mode: 'light' | 'dark') => {
    canvas: string;
    text: string;
    primary: string;
    error: string;
    /** The colours of a hovered or focused primary or destructive Button. */
    primaryShade: string;
    errorShade: string;
  };
  /** On a dashboard page: what Grafana's dashboard does with a panel plugin and with the panel menu. */
  dashboard?: HostDashboard;
}

/** A dashboard variable and its current value(s). */
export interface HostVariable {
  name: string;
  value: string | string[];
}

/** A panel of the nested panel plugin, as a dashboard's JSON and its time picker give it. */
export interface PanelSpec {
  id: number;
  title: string;
  /** The panel's `options`, as saved in the dashboard JSON. */
  options: unknown;
  /** The dashboard's variables (the host's TemplateSrv). */
  variables: HostVariable[];
  /** The dashboard's absolute time range (ISO times). */
  timeRange: { from: string; to: string };
}

/** One series of a panel's query result: its fields' names, values and labels. */
export interface SeriesSpec {
  name?: string;
  fields: Array<{ name: string; values: unknown[]; labels?: Record<string, string> }>;
}

/** A panel as the panel menu's extension links see it (Grafana's PluginExtensionPanelContext). */
export interface PanelMenuSpec {
  id: number;
  title: string;
  dashboard: { uid: string; title: string; tags: string[] };
  targets: Array<{ refId: string; expr?: string; query?: string }>;
  /** The query results; the host makes data frames of them. */
  series: SeriesSpec[];
  /** The time picker's raw range (`now-1h` … `now`) and the absolute range of the results (ISO times). */
  timeRange: { raw: { from: string; to: string }; from: string; to: string };
  variables: HostVariable[];
}

/** What the test drives on a dashboard page. */
export interface HostDashboard {
  /** Imports the nested panel plugin's module.js (once) and renders the panel; rejects if it is not a PanelPlugin. */
  renderPanel(spec: PanelSpec): Promise<void>;
  /**
   * Opens the panel menu: calls `configure` of each link the app adds to the panel menu and lists the ones
   * it does not hide, as menu items; clicking one calls its `onClick` with the context and `openModal`.
   * Resolves to the titles shown.
   */
  showPanelMenu(spec: PanelMenuSpec): Promise<string[]>;
}

declare global {
  interface Window {
    __host: HostState;
  }
}
