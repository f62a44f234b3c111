import { resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { EngineSettings } from '../../engine/engine';
import { type NotifyWiring, notifierFromConfig } from '../../notify/service-config';
import { checkRunbookRoles } from '../../server/access';
import { checkRoutedRunbooks } from '../../server/alert-routing';
import { DEFAULT_POLL_INTERVAL_MS, DEFAULT_SHUTDOWN_GRACE_MS, serve } from '../../server/serve';
import { readServiceConfig, type ServiceConfig, ServiceConfigError } from '../../server/service-config';
import { readTokensFile, TokensFileError } from '../../server/tokens-file';
import { ExitCode, UsageError } from '../exit-codes';
import type { CliIo } from '../io';
import { loadRunbooks, runbookSpecs } from '../load-runbooks';
import { addRunbooksOption, addStoreOptions, type CommandContext, type CommonFlags } from '../options';
import { createEngine, describeLocation, storeLocation, withStore } from '../session';

interface ServeFlags extends CommonFlags {
  host: string;
  port: number;
  tokensFile?: string;
  config?: string;
  /** Milliseconds, parsed from a duration. */
  leaseTtl: number;
  pollInterval: number;
  shutdownGrace: number;
}

const HOUR_MS = 3_600_000;
/** The engine's own default lease, so that `serve` and the library agree. */
const DEFAULT_LEASE_TTL_MS = toMillis(EngineSettings.shape.leaseTtl.parse(undefined));

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new InvalidArgumentError('expected a port number from 0 to 65535 (0 picks a free port).');
  }
  return n;
}

/** A commander parser for a duration flag from `minMs` to `maxMs`, in milliseconds (commander names the flag). */
function duration(minMs: number, maxMs: number) {
  return (value: string): number => {
    const parsed = Duration.safeParse(value.trim());
    if (!parsed.success) {
      throw new InvalidArgumentError('expected a duration such as "500ms", "30s", "5m" or "1h".');
    }
    const ms = toMillis(parsed.data);
    if (ms < minMs || ms > maxMs) {
      throw new InvalidArgumentError(
        `expected a duration from ${formatMillis(minMs)} to ${formatMillis(maxMs)}.`,
      );
    }
    return ms;
  };
}

export function registerServeCommand(program: Command, ctx: CommandContext): void {
  const command = program
    .command('serve')
    .description(
      'run the runbook service: the HTTP API (bearer tokens required) and a worker executing queued runs',
    )
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0 picks a free one)', port, 8080)
    .option(
      '--tokens-file <path>',
      'JSON file {"tokens":[{"name","sha256","role","grafana"?,"alertmanager"?}]} of accepted bearer tokens, hashed with `printf %s "$TOKEN" | sha256sum`; "grafana": true marks the Grafana app\'s token, valid only with X-Grafana-Context; "alertmanager": true marks Alertmanager\'s token, valid only on the webhook, which takes no other (env RUNBOOK_TOKENS_FILE)',
    )
    .option(
      '--config <file>',
      'service config (YAML or JSON): per-runbook roles and Alertmanager alert routing (env RUNBOOK_SERVICE_CONFIG)',
    )
    .addOption(
      new Option(
        '--lease-ttl <duration>',
        "how long a run's lease lasts without a heartbeat: a replica that dies holding a run is resumed elsewhere after it (1s to 1h; the same on every replica)",
      )
        .argParser(duration(1_000, HOUR_MS))
        .default(DEFAULT_LEASE_TTL_MS, formatMillis(DEFAULT_LEASE_TTL_MS)),
    )
    .addOption(
      new Option(
        '--poll-interval <duration>',
        'how long the worker waits between looks for queued runs (10ms to 1h)',
      )
        .argParser(duration(10, HOUR_MS))
        .default(DEFAULT_POLL_INTERVAL_MS, formatMillis(DEFAULT_POLL_INTERVAL_MS)),
    )
    .addOption(
      new Option(
        '--shutdown-grace <duration>',
        'on SIGTERM, how long the run being executed may finish before it is handed over to another replica (0s to 1h; keep it below the kill timeout)',
      )
        .argParser(duration(0, HOUR_MS))
        .default(DEFAULT_SHUTDOWN_GRACE_MS, formatMillis(DEFAULT_SHUTDOWN_GRACE_MS)),
    )
    .option('--json', 'log one JSON object per line (pino) instead of one readable line per request');
  addStoreOptions(addRunbooksOption(command)).action(async (flags: ServeFlags) => {
    await runServe(flags, ctx);
    ctx.exit(ExitCode.Ok);
  });
}

async function runServe(flags: ServeFlags, ctx: CommandContext): Promise<void> {
  const { io } = ctx;
  const tokensPath = flags.tokensFile ?? io.env.RUNBOOK_TOKENS_FILE;
  if (!tokensPath?.trim()) {
    throw new UsageError(
      'No tokens: the service never runs without authentication. Pass --tokens-file <path> (or set RUNBOOK_TOKENS_FILE) naming a JSON file {"tokens":[{"name":"ci","sha256":"<printf %s "$TOKEN" | sha256sum>","role":"viewer|editor|admin"}]}; add "grafana": true to the Grafana app\'s token (valid only with an X-Grafana-Context header) and "alertmanager": true to Alertmanager\'s token (valid only on POST /api/v1/alerts/alertmanager, which takes no other token).',
    );
  }
  let tokens: ReturnType<typeof readTokensFile>;
  try {
    tokens = readTokensFile(resolve(io.cwd, tokensPath));
  } catch (e) {
    if (e instanceof TokensFileError) throw new UsageError(e.message);
    throw e;
  }
  const configPath = flags.config ?? io.env.RUNBOOK_SERVICE_CONFIG;
  let config: ServiceConfig = {};
  if (configPath?.trim()) {
    try {
      config = readServiceConfig(resolve(io.cwd, configPath));
    } catch (e) {
      if (e instanceof ServiceConfigError) throw new UsageError(e.message);
      throw e;
    }
  }
  const runbooks = await loadRunbooks(runbookSpecs(flags.runbooks, io.env), io.cwd);
  // Checked here too (the server checks them again) so that a route or a role naming a missing runbook
  // opens no store.
  checkRoutedRunbooks(
    config.alerts,
    runbooks.map((r) => r.id),
  );
  checkRunbookRoles(config.runbookRoles, runbooks);
  const { notify: notifyConfig, ...serverConfig } = config;
  let notify: NotifyWiring | undefined;
  try {
    notify = notifyConfig ? notifierFromConfig(notifyConfig, io.env) : undefined;
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
  const where = describeLocation(storeLocation(flags, io));
  const shutdown = new AbortController();
  const handOverNow = new AbortController();
  // main.ts turns the first SIGINT/SIGTERM into io.signal, and leaves a later one to a command listening
  // for it. The second one hands the run being executed over at once instead of waiting out the grace
  // period; a third exits at once (an apply that never reaches a safe point), leaving the run to its lease.
  const again = (signal: NodeJS.Signals) => {
    if (!handOverNow.signal.aborted) {
      io.stderr.write(`${signal} again: handing the run being executed over now (once more exits at once)\n`);
      handOverNow.abort();
      return;
    }
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  const onAbort = () => {
    process.on('SIGTERM', again);
    process.on('SIGINT', again);
    shutdown.abort();
  };
  if (io.signal?.aborted) onAbort();
  io.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await withStore(flags, io, async (store) => {
      const engine = createEngine(store, runbooks, {
        flags,
        io,
        settings: { leaseTtl: flags.leaseTtl },
        ...(notify ? { notify } : {}),
      });
      // The on-call escalator pages the next levels of escalated runs while the service runs.
      notify?.escalator?.start();
      // A run that succeeds resolves its direct pages (they would ring on, or stay open, otherwise).
      const notifier = notify?.notifier;
      if (notifier) {
        engine.onRunEnd((run) => {
          notifier.runEnded(run).catch((e: unknown) => {
            io.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
          });
        });
      }
      await serve({
        engine,
        tokens,
        host: flags.host,
        port: flags.port,
        logger: flags.json ? { level: 'info', stream: io.stdout } : { level: 'info', stream: prettyLog(io) },
        signal: shutdown.signal,
        handOverNow: handOverNow.signal,
        pollIntervalMs: flags.pollInterval,
        shutdownGraceMs: flags.shutdownGrace,
        server: notify?.escalator ? { ...serverConfig, escalator: notify.escalator } : serverConfig,
        onListening: () => {
          if (!flags.json) {
            io.stderr.write(
              `runbooks: ${runbooks.map((r) => r.id).join(', ')}; store: ${where}; tokens: ${tokens.length}; lease ${formatMillis(flags.leaseTtl)}, shutdown grace ${formatMillis(flags.shutdownGrace)}; Ctrl-C or SIGTERM stops gracefully, a second one hands the run over at once\n`,
            );
          }
        },
      });
    });
  } finally {
    notify?.escalator?.stop();
    io.signal?.removeEventListener('abort', onAbort);
    process.removeListener('SIGTERM', again);
    process.removeListener('SIGINT', again);
  }
}

const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

/** A pino destination printing one readable line per log entry, and one per request (not two). */
function prettyLog(io: CliIo): { write(line: string): void } {
  const pending = new Map<string, string>();
  return {
    write(line: string) {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        io.stdout.write(line.endsWith('\n') ? line : `${line}\n`);
        return;
      }
      const time = new Date(Number(entry.time ?? Date.now())).toISOString();
      const level = LEVELS[Number(entry.level)] ?? String(entry.level);
      const reqId = entry.reqId === undefined ? undefined : String(entry.reqId);
      const req = entry.req as { method?: string; url?: string } | undefined;
      const res = entry.res as { statusCode?: number } | undefined;
      if (entry.msg === 'incoming request' && reqId && req) {
        pending.set(reqId, `${req.method} ${req.url}`);
        return;
      }
      let text: string;
      if (entry.msg === 'request completed' && reqId) {
        const request = pending.get(reqId) ?? '';
        pending.delete(reqId);
        const ms = typeof entry.responseTime === 'number' ? `${entry.responseTime.toFixed(1)}ms` : '';
        text = `${request} ${res?.statusCode ?? ''} ${ms} (${reqId})`;
      } else {
        const err = entry.err as { message?: string } | undefined;
        const extra = ['runId', 'runbookId', 'status']
          .filter((k) => entry[k] !== undefined)
          .map((k) => `${k}=${String(entry[k])}`);
        text = [entry.msg, ...extra, err?.message ? `: ${err.message}` : '', reqId ? `(${reqId})` : '']
          .filter((s) => s)
          .join(' ');
      }
      io.stdout.write(`${time} ${level.padEnd(5)} ${text}\n`);
    },
  };
}
