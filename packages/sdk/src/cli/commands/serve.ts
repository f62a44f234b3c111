import { resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { checkRoutedRunbooks } from '../../server/alert-routing';
import { serve } from '../../server/serve';
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
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new InvalidArgumentError('expected a port number from 0 to 65535 (0 picks a free port).');
  }
  return n;
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
      'JSON file {"tokens":[{"name","sha256","role"}]} of accepted bearer tokens, hashed with `printf %s "$TOKEN" | sha256sum` (env RUNBOOK_TOKENS_FILE)',
    )
    .option(
      '--config <file>',
      'service config (YAML or JSON): per-runbook roles and Alertmanager alert routing (env RUNBOOK_SERVICE_CONFIG)',
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
      'No tokens: the service never runs without authentication. Pass --tokens-file <path> (or set RUNBOOK_TOKENS_FILE) naming a JSON file {"tokens":[{"name":"ci","sha256":"<printf %s "$TOKEN" | sha256sum>","role":"viewer|editor|admin"}]}.',
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
  // Checked here too (the server checks it again) so that a route naming a missing runbook opens no store.
  checkRoutedRunbooks(
    config.alerts,
    runbooks.map((r) => r.id),
  );
  const where = describeLocation(storeLocation(flags, io));
  const shutdown = new AbortController();
  const stopOnSignal = () => shutdown.abort();
  // In the real process (main.ts) the first SIGINT/SIGTERM aborts io.signal; a second one exits at once,
  // leaving a run being executed to its lease (another replica resumes it).
  const exitAtOnce = (signal: NodeJS.Signals) => process.exit(signal === 'SIGINT' ? 130 : 143);
  const onAbort = () => {
    process.once('SIGTERM', exitAtOnce);
    process.once('SIGINT', exitAtOnce);
    stopOnSignal();
  };
  if (io.signal?.aborted) onAbort();
  io.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await withStore(flags, io, async (store) => {
      const engine = createEngine(store, runbooks, { flags, io });
      await serve({
        engine,
        tokens,
        host: flags.host,
        port: flags.port,
        logger: flags.json ? { level: 'info', stream: io.stdout } : { level: 'info', stream: prettyLog(io) },
        signal: shutdown.signal,
        server: config,
        onListening: () => {
          if (!flags.json) {
            io.stderr.write(
              `runbooks: ${runbooks.map((r) => r.id).join(', ')}; store: ${where}; tokens: ${tokens.length}; Ctrl-C or SIGTERM stops gracefully\n`,
            );
          }
        },
      });
    });
  } finally {
    io.signal?.removeEventListener('abort', onAbort);
    process.removeListener('SIGTERM', exitAtOnce);
    process.removeListener('SIGINT', exitAtOnce);
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
