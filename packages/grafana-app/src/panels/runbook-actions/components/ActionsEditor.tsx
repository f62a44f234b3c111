import { css } from '@emotion/css';
import type { GrafanaTheme2, SelectableValue, StandardEditorProps } from '@grafana/data';
import {
  Alert,
  Button,
  Combobox,
  Field,
  IconButton,
  Input,
  RadioButtonGroup,
  Stack,
  Text,
  useStyles2,
} from '@grafana/ui';
import React, { useEffect, useState } from 'react';
import { api, ServiceError } from '../../../api/client';
import type { RunbookView } from '../../../api/types';
import { type ActionConfig, type ActionMode, editableActions, type InputMapping } from '../options';
import { fieldType, schemaFields } from '../variables';

type Catalog =
  | { state: 'loading' }
  | { state: 'ok'; runbooks: RunbookView[] }
  | { state: 'error'; error: ServiceError };

const MODES: Array<SelectableValue<ActionMode>> = [
  { label: 'Diagnose', value: 'diagnose', description: 'Run the checks only' },
  { label: 'Plan', value: 'plan', description: 'Show what would change; apply nothing' },
  { label: 'Execute', value: 'execute', description: 'Plan, show the plan for confirmation, then apply' },
];

const NEW_ACTION: ActionConfig = { label: '', runbookId: '', mode: 'diagnose', inputs: [] };

/**
 * The panel editor's "Actions" option: a list of actions, each with a label, a runbook picked from the
 * service's catalog (a text field when the service cannot be reached, so the panel stays editable), a
 * mode, and one value per runbook input field (a literal or dashboard variables such as `$agent`).
 */
export function ActionsEditor({ value, onChange, id }: StandardEditorProps<ActionConfig[]>) {
  const styles = useStyles2(getStyles);
  // The saved value may be anything (hand-edited JSON); actions being written are kept as they are.
  const actions = editableActions(value);
  const [catalog, setCatalog] = useState<Catalog>({ state: 'loading' });

  useEffect(() => {
    let live = true;
    api.listRunbooks().then(
      (runbooks) => live && setCatalog({ state: 'ok', runbooks }),
      (e: unknown) =>
        live &&
        setCatalog({
          state: 'error',
          error: e instanceof ServiceError ? e : new ServiceError(0, 'CLIENT_ERROR', String(e)),
        }),
    );
    return () => {
      live = false;
    };
  }, []);

  const update = (index: number, patch: Partial<ActionConfig>) =>
    onChange(actions.map((a, i) => (i === index ? { ...a, ...patch } : a)));
  const remove = (index: number) => onChange(actions.filter((_, i) => i !== index));

  return (
    <Stack direction="column" gap={2}>
      {catalog.state === 'error' && (
        <Alert severity="warning" title="Runbooks could not be listed">
          {catalog.error.code} ({catalog.error.status || 'no answer'}): {catalog.error.message} Type the
          runbook ids and input field names instead.
        </Alert>
      )}
      {actions.map((action, index) => {
        const runbook =
          catalog.state === 'ok' ? catalog.runbooks.find((r) => r.id === action.runbookId) : undefined;
        const prefix = `${id ?? 'actions'}-${index}`;
        return (
          <fieldset key={prefix} className={styles.action} aria-label={`Action ${index + 1}`}>
            <Stack direction="row" justifyContent="space-between" alignItems="center">
              <Text weight="medium">Action {index + 1}</Text>
              <IconButton
                name="trash-alt"
                tooltip={`Remove action ${index + 1}`}
                onClick={() => remove(index)}
              />
            </Stack>
            <Field label="Label" description="The button's text">
              <Input
                id={`${prefix}-label`}
                value={action.label}
                placeholder={action.runbookId || 'Scale the agent'}
                onChange={(e) => update(index, { label: e.currentTarget.value })}
              />
            </Field>
            <Field label="Runbook" htmlFor={`${prefix}-runbook`}>
              {catalog.state === 'ok' ? (
                <Combobox
                  id={`${prefix}-runbook`}
                  options={catalog.runbooks.map((r) => ({ label: r.title, value: r.id, description: r.id }))}
                  value={action.runbookId || null}
                  onChange={(v) => update(index, { runbookId: v.value, inputs: [] })}
                  placeholder="Choose a runbook"
                />
              ) : (
                <Input
                  id={`${prefix}-runbook`}
                  value={action.runbookId}
                  placeholder={catalog.state === 'loading' ? 'Loading the runbooks…' : 'runbook id'}
                  onChange={(e) => update(index, { runbookId: e.currentTarget.value.trim() })}
                />
              )}
            </Field>
            <Field label="Mode">
              <RadioButtonGroup<ActionMode>
                options={MODES}
                value={action.mode}
                onChange={(mode) => update(index, { mode })}
              />
            </Field>
            <InputMappings
              prefix={prefix}
              runbook={runbook}
              mappings={action.inputs}
              onChange={(inputs) => update(index, { inputs })}
            />
          </fieldset>
        );
      })}
      <div>
        <Button icon="plus" variant="secondary" size="sm" onClick={() => onChange([...actions, NEW_ACTION])}>
          Add action
        </Button>
      </div>
    </Stack>
  );
}

/**
 * The input values of one action: one field per property of the runbook's input schema when the runbook is
 * known, otherwise free field-name / value rows.
 */
function InputMappings({
  prefix,
  runbook,
  mappings,
  onChange,
}: {
  prefix: string;
  runbook: RunbookView | undefined;
  mappings: InputMapping[];
  onChange: (mappings: InputMapping[]) => void;
}) {
  const currentValue = (field: string) => mappings.find((m) => m.field === field)?.value ?? '';
  const setValue = (field: string, value: string) => {
    const others = mappings.filter((m) => m.field !== field);
    onChange(value === '' ? others : [...others, { field, value }]);
  };

  if (runbook) {
    const fields = schemaFields(runbook.input);
    if (fields.length === 0) return <Text color="secondary">This runbook takes no input.</Text>;
    return (
      <Stack direction="column" gap={0}>
        {fields.map((field) => (
          <Field
            key={field}
            label={`Input: ${field}`}
            description={`${fieldType(runbook.input, field) ?? 'any'}; a value or a dashboard variable like $${field}; empty uses the runbook's default`}
          >
            <Input
              id={`${prefix}-input-${field}`}
              value={currentValue(field)}
              placeholder={`$${field}`}
              onChange={(e) => setValue(field, e.currentTarget.value)}
            />
          </Field>
        ))}
      </Stack>
    );
  }

  return (
    <Stack direction="column" gap={1}>
      <Text color="secondary">Inputs (field name and value or $variable)</Text>
      {mappings.map((m, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: rows are positional (a field name may be empty or being typed)
        <Stack key={`${prefix}-row-${i}`} direction="row" gap={1} alignItems="center">
          <Input
            aria-label={`Input field name ${i + 1}`}
            value={m.field}
            placeholder="field"
            onChange={(e) =>
              onChange(mappings.map((x, j) => (j === i ? { ...x, field: e.currentTarget.value.trim() } : x)))
            }
          />
          <Input
            aria-label={`Input value ${i + 1}`}
            value={m.value}
            placeholder="$variable or value"
            onChange={(e) =>
              onChange(mappings.map((x, j) => (j === i ? { ...x, value: e.currentTarget.value } : x)))
            }
          />
          <IconButton
            name="times"
            tooltip={`Remove input ${i + 1}`}
            onClick={() => onChange(mappings.filter((_, j) => j !== i))}
          />
        </Stack>
      ))}
      <div>
        <Button
          icon="plus"
          variant="secondary"
          fill="text"
          size="sm"
          onClick={() => onChange([...mappings, { field: '', value: '' }])}
        >
          Add input
        </Button>
      </div>
    </Stack>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  action: css({
    border: `1px solid ${theme.colors.border.weak}`,
    borderRadius: theme.shape.radius.default,
    padding: theme.spacing(1),
    margin: 0,
  }),
});
