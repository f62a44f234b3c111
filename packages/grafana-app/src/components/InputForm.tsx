import { css } from '@emotion/css';
import type { GrafanaTheme2 } from '@grafana/data';
import {
  Alert,
  Button,
  Combobox,
  Field,
  FieldSet,
  Input,
  RadioButtonGroup,
  Stack,
  Switch,
  TagsInput,
  TextArea,
  useStyles2,
} from '@grafana/ui';
import React, { useEffect, useMemo, useState } from 'react';
import type { ServiceError } from '../api/client';
import {
  type FieldValue,
  type FormErrors,
  type FormField,
  type FormValues,
  initialValues,
  schemaToFields,
  serviceIssuesToErrors,
  toInput,
} from './json-schema-form';

/** Codes whose `details` list field problems (`[{ path, message }]`). */
const FIELD_ERROR_CODES = new Set(['INVALID_INPUT', 'INVALID_REQUEST']);
/** Up to this many choices show as buttons (one click, all visible); more as a searchable combobox. */
const MAX_RADIO_OPTIONS = 4;

/** Props of {@link InputForm}. */
export interface InputFormProps {
  /** The runbook's input JSON Schema (`RunbookView.input`). */
  schema: unknown;
  /** The submit button's text, e.g. "Diagnose". */
  submitLabel: string;
  /** The submit button's variant. @default 'primary' */
  submitVariant?: 'primary' | 'secondary' | 'destructive';
  /** Called with the input built from the form, once it passes the schema's checks. */
  onSubmit: (input: Record<string, unknown>) => void;
  /** Shown instead of the cancel button when absent. */
  onCancel?: () => void;
  /** While the request runs: the submit button shows it and is disabled. @default false */
  busy?: boolean;
  /** The service's answer to the last submit; INVALID_INPUT / INVALID_REQUEST are put on their fields. */
  error?: ServiceError | null;
  /** Makes the fields' ids unique on the page. @default 'runbook-input' */
  idPrefix?: string;
}

/**
 * A form generated from a runbook's input schema: one field per property, checked on the client against what
 * the schema says, with the service's own field errors shown on the fields they name.
 */
export function InputForm({
  schema,
  submitLabel,
  submitVariant = 'primary',
  onSubmit,
  onCancel,
  busy = false,
  error = null,
  idPrefix = 'runbook-input',
}: InputFormProps) {
  const styles = useStyles2(getStyles);
  const fields = useMemo(() => schemaToFields(schema), [schema]);
  const [values, setValues] = useState<FormValues>(() => initialValues(fields));
  const [errors, setErrors] = useState<FormErrors>({});

  useEffect(() => {
    setErrors(error && FIELD_ERROR_CODES.has(error.code) ? serviceIssuesToErrors(fields, error.details) : {});
  }, [error, fields]);

  const setValue = (name: string, value: FieldValue) => {
    setValues((v) => ({ ...v, [name]: value }));
    setErrors((e) => {
      if (!(name in e)) return e;
      const { [name]: _fixed, ...rest } = e;
      return rest;
    });
  };

  const submit = (event: React.FormEvent) => {
    event.preventDefault();
    const built = toInput(fields, values);
    setErrors(built.errors);
    if (Object.keys(built.errors).length === 0) onSubmit(built.input);
  };

  const render = (field: FormField): React.ReactNode => {
    const id = `${idPrefix}-${field.name}`;
    const value = values[field.name];
    if (field.kind === 'object') {
      return (
        <FieldSet key={field.name} label={field.label} className={styles.fieldset}>
          {field.description && <p className={styles.note}>{field.description}</p>}
          {field.fields.map(render)}
        </FieldSet>
      );
    }
    const note = field.kind === 'union' || field.kind === 'json' ? field.note : undefined;
    const description = [field.description, note].filter(Boolean).join(' ') || undefined;
    const fieldError = errors[field.name];
    return (
      <Field
        key={field.name}
        label={field.label}
        description={description}
        required={field.required}
        invalid={fieldError !== undefined}
        error={fieldError}
      >
        {control(field, id, value, (v) => setValue(field.name, v))}
      </Field>
    );
  };

  const formError = errors[''];
  return (
    <form onSubmit={submit} noValidate aria-label={`${submitLabel} input`}>
      {fields.length === 0 && <p className={styles.note}>This runbook takes no input.</p>}
      {fields.map(render)}
      {error && (
        <Alert severity="error" title={`${error.code} (${error.status || 'no answer'})`}>
          {error.message}
        </Alert>
      )}
      {formError && !error && (
        <Alert severity="error" title="Input">
          {formError}
        </Alert>
      )}
      <Stack gap={1}>
        <Button type="submit" variant={submitVariant} disabled={busy} icon={busy ? 'spinner' : undefined}>
          {submitLabel}
        </Button>
        {onCancel && (
          <Button type="button" variant="secondary" fill="outline" onClick={onCancel}>
            Cancel
          </Button>
        )}
      </Stack>
    </form>
  );
}

function control(field: FormField, id: string, value: FieldValue, set: (v: FieldValue) => void) {
  switch (field.kind) {
    case 'boolean':
      return <Switch id={id} value={value === true} onChange={(e) => set(e.currentTarget.checked)} />;
    case 'enum': {
      const options = field.options.map((o) => ({ label: String(o), value: o }));
      if (options.length <= MAX_RADIO_OPTIONS && options.every((o) => typeof o.value !== 'boolean')) {
        return (
          <RadioButtonGroup<string | number | boolean>
            id={id}
            options={options}
            value={value as string | number | undefined}
            onChange={(v) => set(v as FieldValue)}
          />
        );
      }
      const comboOptions = options.map((o) => ({ label: o.label, value: String(o.value) }));
      const comboValue = value === undefined ? null : String(value);
      const pickOption = (o: { value: string } | null) =>
        set(o ? (field.options.find((v) => String(v) === o.value) as FieldValue) : undefined);
      // Clearable only when the field may be left out.
      return field.required ? (
        <Combobox id={id} options={comboOptions} value={comboValue} onChange={pickOption} />
      ) : (
        <Combobox id={id} options={comboOptions} value={comboValue} onChange={pickOption} isClearable />
      );
    }
    case 'tags':
      return <TagsInput id={id} tags={(value as string[]) ?? []} onChange={(tags) => set(tags)} />;
    case 'json':
      return (
        <TextArea id={id} rows={3} value={String(value ?? '')} onChange={(e) => set(e.currentTarget.value)} />
      );
    case 'number':
    case 'integer':
      return (
        <Input
          id={id}
          type="text"
          inputMode={field.kind === 'integer' ? 'numeric' : 'decimal'}
          value={String(value ?? '')}
          onChange={(e) => set(e.currentTarget.value)}
        />
      );
    default:
      return <Input id={id} value={String(value ?? '')} onChange={(e) => set(e.currentTarget.value)} />;
  }
}

const getStyles = (theme: GrafanaTheme2) => ({
  fieldset: css({ marginBottom: theme.spacing(2) }),
  note: css({ color: theme.colors.text.secondary, marginBottom: theme.spacing(1) }),
});
