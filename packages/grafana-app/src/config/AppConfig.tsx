import { css } from '@emotion/css';
import type { AppPluginMeta, GrafanaTheme2, PluginConfigPageProps } from '@grafana/data';
import { getBackendSrv } from '@grafana/runtime';
import { Alert, Button, Field, FieldSet, Input, SecretInput, Stack, useStyles2 } from '@grafana/ui';
import React, { useState } from 'react';
import { api, type ServiceError, toServiceError } from '../api/client';
import type { RunbooksAppSettings } from '../settings';

/**
 * What is wrong with a service URL, or undefined when it is a usable base URL: http(s), a host, and no
 * credentials, query or fragment (the proxy appends the API path to it).
 */
export function serviceUrlProblem(value: string): string | undefined {
  const example = 'e.g. http://runbooks:8080';
  if (value.trim() === '') return `Enter the runbook service's URL, ${example}.`;
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    return `Not a URL: enter the service's base URL with http:// or https://, ${example}.`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return `The URL must start with http:// or https://, ${example}.`;
  }
  if (url.username || url.password)
    return 'Leave credentials out of the URL: the token goes in the field below.';
  if (url.search || url.hash) return `Enter the base URL only, without ?query or #fragment, ${example}.`;
  return undefined;
}

type Outcome = { kind: 'ok'; text: string } | { kind: 'error'; title: string; error: ServiceError };

/**
 * The app's configuration page: the runbook service's URL (`jsonData.serviceUrl`), its token
 * (`secureJsonData.serviceToken`, which Grafana encrypts and only its proxy reads: it is never shown or
 * sent back), Save, and a connection test that goes through the proxy like every page of the app.
 */
export function AppConfig({ plugin }: PluginConfigPageProps<AppPluginMeta<RunbooksAppSettings>>) {
  const styles = useStyles2(getStyles);
  const meta = plugin.meta;
  const [serviceUrl, setServiceUrl] = useState(meta.jsonData?.serviceUrl ?? '');
  const [urlTouched, setUrlTouched] = useState(false);
  const [token, setToken] = useState('');
  const [tokenConfigured, setTokenConfigured] = useState(Boolean(meta.secureJsonFields?.serviceToken));
  const [saving, setSaving] = useState(false);
  const [testing, setTesting] = useState(false);
  const [saveOutcome, setSaveOutcome] = useState<Outcome>();
  const [testOutcome, setTestOutcome] = useState<Outcome>();

  const urlProblem = serviceUrlProblem(serviceUrl);
  const tokenMissing = !tokenConfigured && token === '';
  const canSave = !saving && urlProblem === undefined && !tokenMissing;

  const save = async () => {
    setSaving(true);
    setSaveOutcome(undefined);
    setTestOutcome(undefined);
    try {
      // Only a new token is sent: Grafana merges secureJsonData key by key, so a stored secret whose key
      // is not sent stays. (A reset token must be replaced before Save is allowed: nothing sends it empty.)
      // enabled and pinned are plain bools in Grafana's command: one left out would be stored false.
      await getBackendSrv().post(
        `/api/plugins/${meta.id}/settings`,
        {
          enabled: true,
          pinned: meta.pinned ?? false,
          jsonData: { ...meta.jsonData, serviceUrl: serviceUrl.trim() },
          ...(token !== '' ? { secureJsonData: { serviceToken: token } } : {}),
        },
        { showErrorAlert: false, showSuccessAlert: false },
      );
      if (token !== '') setTokenConfigured(true);
      setToken('');
      setSaveOutcome({ kind: 'ok', text: 'Settings saved.' });
    } catch (e) {
      setSaveOutcome({ kind: 'error', title: 'The settings were not saved', error: toServiceError(e) });
    } finally {
      setSaving(false);
    }
  };

  const testConnection = async () => {
    setTesting(true);
    setTestOutcome(undefined);
    try {
      const runbooks = await api.listRunbooks();
      setTestOutcome({
        kind: 'ok',
        text: `Connected: ${runbooks.length} runbook${runbooks.length === 1 ? '' : 's'}`,
      });
    } catch (e) {
      setTestOutcome({ kind: 'error', title: 'Connection failed', error: toServiceError(e) });
    } finally {
      setTesting(false);
    }
  };

  return (
    <div className={styles.page}>
      <FieldSet label="Runbook service">
        <Field
          label="Service URL"
          description="Where Grafana's server reaches the runbook service (runbook serve). Browsers never call it directly."
          invalid={urlTouched && urlProblem !== undefined}
          error={urlTouched ? urlProblem : undefined}
          required
        >
          <Input
            id="runbooks-service-url"
            value={serviceUrl}
            placeholder="http://runbooks:8080"
            onChange={(e) => setServiceUrl(e.currentTarget.value)}
            onBlur={() => setUrlTouched(true)}
            width={60}
          />
        </Field>
        <Field
          label="Service token"
          description='A token of the service granted "grafana": true. Grafana stores it encrypted and adds it to proxied requests only.'
          invalid={urlTouched && tokenMissing}
          error={urlTouched && tokenMissing ? 'Enter the token the service granted to Grafana.' : undefined}
          required
        >
          <SecretInput
            id="runbooks-service-token"
            isConfigured={tokenConfigured}
            value={token}
            placeholder="Token"
            autoComplete="off"
            onChange={(e) => setToken(e.currentTarget.value)}
            onReset={() => {
              setTokenConfigured(false);
              setToken('');
            }}
            width={60}
          />
        </Field>
        <Stack gap={1}>
          <Button
            onClick={() => {
              setUrlTouched(true);
              if (canSave) void save();
            }}
            disabled={saving}
            icon={saving ? 'spinner' : undefined}
          >
            {saving ? 'Saving…' : 'Save settings'}
          </Button>
          <Button
            variant="secondary"
            onClick={() => void testConnection()}
            disabled={testing}
            icon={testing ? 'spinner' : undefined}
            tooltip="Calls the service through Grafana's proxy with the saved settings"
          >
            {testing ? 'Testing…' : 'Test connection'}
          </Button>
        </Stack>
      </FieldSet>
      <OutcomeAlert outcome={saveOutcome} />
      <OutcomeAlert outcome={testOutcome} />
    </div>
  );
}

function OutcomeAlert({ outcome }: { outcome: Outcome | undefined }) {
  if (!outcome) return null;
  if (outcome.kind === 'ok') return <Alert severity="success" title={outcome.text} />;
  return (
    <Alert severity="error" title={outcome.title}>
      <code>{outcome.error.code}</code>: {outcome.error.message}
    </Alert>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  page: css({
    maxWidth: theme.breakpoints.values.md,
    display: 'flex',
    flexDirection: 'column',
    gap: theme.spacing(2),
  }),
});
