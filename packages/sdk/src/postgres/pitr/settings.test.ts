import { describe, expect, it } from 'vitest';
import { autoConf, confQuote, restoreSettings } from './settings';

const settings = () =>
  restoreSettings({
    target: { kind: 'name', value: 'after-a' },
    restoreCommand: "cp '/archive/%f' '%p'",
    timeline: 'latest',
    inclusive: true,
    port: 5499,
    socketDir: '/tmp/restore',
    extra: {},
  });

describe('restore settings', () => {
  it('blank the commands and files a backup carries over that would act on the original', () => {
    // A backup of a standby that cleaned the shared archive, with its own log collector and pid file.
    const fromBackup = [
      "archive_cleanup_command = 'pg_archivecleanup /archive %r'",
      "recovery_end_command = 'notify-primary'",
      "external_pid_file = '/var/run/postgresql/main.pid'",
      'logging_collector = on',
      "recovery_target_time = '2026-01-01 00:00:00+00'",
      "work_mem = '64MB'",
    ].join('\n');
    const conf = autoConf(fromBackup, settings(), 'r1');
    expect(conf).not.toContain('pg_archivecleanup');
    expect(conf).not.toContain('notify-primary');
    expect(conf).not.toContain('main.pid');
    expect(conf).not.toMatch(/^recovery_target_time\b/m);
    expect(conf).toContain("work_mem = '64MB'"); // unrelated settings stay
    expect(conf).toContain("archive_cleanup_command = ''");
    expect(conf).toContain('logging_collector = off');
    // Exactly one target: the restore's own.
    expect(conf.match(/^recovery_target\w*/gm)).toEqual([
      'recovery_target_name',
      'recovery_target_action',
      'recovery_target_timeline',
    ]);
    expect(conf).toContain("recovery_target_name = 'after-a'");
  });

  it('refuse a value with a line break, which would start another setting', () => {
    expect(() => confQuote("after-a'\nrestore_command = 'rm -rf /")).toThrow(/line breaks/);
    expect(confQuote("it's")).toBe("'it''s'");
  });
});
