import { PanelPlugin } from '@grafana/data';
import { ActionsEditor } from './components/ActionsEditor';
import { RunbookActionsPanel } from './components/RunbookActionsPanel';
import type { RunbookActionsOptions } from './options';

export type { ActionConfig, InputMapping, RunbookActionsOptions } from './options';

/**
 * The "Runbook actions" panel, nested in the runbooks app (it reaches the runbook service through the
 * app's plugin-proxy routes, so the app must be enabled and configured).
 */
export const plugin = new PanelPlugin<RunbookActionsOptions>(RunbookActionsPanel).setPanelOptions((builder) =>
  builder.addCustomEditor({
    id: 'actions',
    path: 'actions',
    name: 'Actions',
    description:
      'One button per action. Input values may use dashboard variables ($agent), read when the button is clicked.',
    editor: ActionsEditor,
    defaultValue: [],
  }),
);
