import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ParameterValidationError, runCommandDocument } from './support/command-document-runner';
import {
  expectDeclaresWhatTheScriptReads,
  expectRejectedBeforeAnyShell,
  scriptNonRejections,
} from './support/hostile-parameters';
import {
  cleanupsAfterEach,
  expectSucceededWith,
  type ScriptHost,
  startedUnit,
  synthesizedBeforeAll,
} from './support/service-bed';

/**
 * <prefix>-Host-JournaldLimits (runbook "Prevention", journal limits), as synthesized, on a real
 * drop-in directory (a temp directory given through STEMEDB_JOURNALD_CONF_DIR, which no document
 * parameter can set) with systemd-journald as a unit of the fake systemd: each restart is a
 * "Starting systemd-journald.service..." line in its journal.
 */

const SCRIPT = join(__dirname, '..', 'ssm-documents', 'scripts', 'journald-limits.sh');
const UNIT = 'systemd-journald';
const NAME = 'StemeDB-limits.conf';

const doc = synthesizedBeforeAll('JournaldLimits');

const cleanups = cleanupsAfterEach();

interface Host extends ScriptHost {
  /** The drop-in directory (not created until a run needs it). */
  readonly confDir: string;
  readonly dropIn: string;
  restarts(): number;
}

/** A host whose systemd-journald is a running unit; `command` replaces its process. */
async function makeHost(opts: { command?: string[]; startCheckMs?: number } = {}): Promise<Host> {
  const root = mkdtempSync(join(tmpdir(), 'journald-limits-test-'));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  const confDir = join(root, 'etc', 'systemd', 'journald.conf.d');
  mkdirSync(join(root, 'etc', 'systemd'), { recursive: true });
  const systemd = await startedUnit(cleanups, UNIT, {
    command: opts.command ?? ['sleep', '600'],
    startCheckMs: opts.startCheckMs,
  });
  return {
    root,
    confDir,
    dropIn: join(confDir, NAME),
    systemd,
    run: (params = {}) =>
      runCommandDocument(
        doc(),
        { DryRun: 'false', ...params },
        { env: { ...systemd.env, STEMEDB_JOURNALD_CONF_DIR: confDir } },
      ),
    restarts: () =>
      systemd.journal(UNIT).filter((e) => e.message === `Starting ${UNIT}.service...`).length - 1,
    files: () => (existsSync(confDir) ? readdirSync(confDir).sort() : []),
  };
}

const content = (maxUse: string, retention: string): string =>
  [
    '# Managed by the StemeDB disk-full automation (runbook "Prevention": journal limits).',
    '# Rewritten by each JournaldLimits run: change prevention.journald in the stack configuration instead.',
    '[Journal]',
    `SystemMaxUse=${maxUse}`,
    `MaxRetentionSec=${retention}`,
    '',
  ].join('\n');

describe('JournaldLimits Command document on a real drop-in directory', () => {
  test('creates the drop-in directory and file (mode 0644) with the runbook defaults and restarts journald once', async () => {
    const host = await makeHost();
    const r = await host.run();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(host.dropIn, 'utf8')).toBe(content('500M', '7day'));
    expect(statSync(host.dropIn).mode & 0o777).toBe(0o644);
    expect(statSync(host.confDir).mode & 0o777).toBe(0o755);
    expect(host.restarts()).toBe(1);
    expect(host.files()).toEqual([NAME]);
    expect(r.lastJson).toEqual({
      dropInFile: host.dropIn,
      dryRun: false,
      wouldChange: true,
      changed: true,
      created: true,
      restarted: true,
      journaldActive: true,
      rolledBack: false,
      reason: null,
      before: { SystemMaxUse: null, MaxRetentionSec: null },
      requested: { SystemMaxUse: '500M', MaxRetentionSec: '7day' },
    });
  });

  test('a second run with the same values writes nothing and does not restart journald', async () => {
    const host = await makeHost();
    const first = await host.run({ SystemMaxUse: '2G', MaxRetentionSec: '2week' });
    expect(first.exitCode, first.stderr).toBe(0);
    const before = statSync(host.dropIn);
    const second = await host.run({ SystemMaxUse: '2G', MaxRetentionSec: '2week' });
    expectSucceededWith(second, {
      wouldChange: false,
      changed: false,
      created: false,
      restarted: false,
      journaldActive: true,
      before: { SystemMaxUse: '2G', MaxRetentionSec: '2week' },
    });
    expect(second.stderr).toContain('nothing to change, not restarting systemd-journald');
    const after = statSync(host.dropIn);
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
    expect(host.restarts()).toBe(1);
  });

  test('replaces a drop-in with other values atomically (a new inode), reports the old values, restarts once', async () => {
    const host = await makeHost();
    mkdirSync(host.confDir);
    writeFileSync(host.dropIn, '[Journal]\r\nSystemMaxUse = 4G \r\nMaxRetentionSec=1month\r\n');
    chmodSync(host.dropIn, 0o600);
    const inode = statSync(host.dropIn).ino;
    const r = await host.run({ SystemMaxUse: '1G', MaxRetentionSec: '14day' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(host.dropIn, 'utf8')).toBe(content('1G', '14day'));
    expect(statSync(host.dropIn).ino).not.toBe(inode);
    expect(statSync(host.dropIn).mode & 0o777).toBe(0o644);
    expect(r.lastJson).toMatchObject({
      changed: true,
      created: false,
      restarted: true,
      before: { SystemMaxUse: '4G', MaxRetentionSec: '1month' },
    });
    expect(host.restarts()).toBe(1);
    expect(host.files()).toEqual([NAME]);
  });

  test('leaves the other drop-ins of the directory alone', async () => {
    const host = await makeHost();
    mkdirSync(host.confDir);
    writeFileSync(join(host.confDir, 'vacuum.conf'), '[Journal]\nSystemMaxUse=500M\n');
    const r = await host.run();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(join(host.confDir, 'vacuum.conf'), 'utf8')).toBe('[Journal]\nSystemMaxUse=500M\n');
    expect(host.files()).toEqual([NAME, 'vacuum.conf']);
  });

  test('DryRun prints the diff and changes nothing: no directory, no file, no restart', async () => {
    const host = await makeHost();
    const r = await host.run({ DryRun: 'true', SystemMaxUse: '750M' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain('+SystemMaxUse=750M');
    expect(r.stderr).toContain('+MaxRetentionSec=7day');
    expect(r.lastJson).toMatchObject({ dryRun: true, wouldChange: true, changed: false, restarted: false });
    expect(existsSync(host.confDir)).toBe(false);
    expect(host.restarts()).toBe(0);
  });

  test('DryRun on an existing drop-in shows the lines that change and leaves it byte for byte', async () => {
    const host = await makeHost();
    await host.run();
    const bytes = readFileSync(host.dropIn);
    const r = await host.run({ DryRun: 'true', MaxRetentionSec: '3day' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toContain('-MaxRetentionSec=7day');
    expect(r.stderr).toContain('+MaxRetentionSec=3day');
    expect(readFileSync(host.dropIn).equals(bytes)).toBe(true);
    expect(host.restarts()).toBe(1);
  });

  test('is a dry run when run by hand without DryRun (the document default)', async () => {
    const host = await makeHost();
    const r = await runCommandDocument(
      doc(),
      {},
      { env: { ...host.systemd.env, STEMEDB_JOURNALD_CONF_DIR: host.confDir } },
    );
    expectSucceededWith(r, { dryRun: true, wouldChange: true, changed: false });
    expect(existsSync(host.confDir)).toBe(false);
  });

  test('restores the old drop-in byte for byte when journald does not come back with the new one', async () => {
    const root = mkdtempSync(join(tmpdir(), 'journald-limits-conf-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    const dropIn = join(root, NAME);
    // A journald that refuses to start with SystemMaxUse=16M.
    const host = await makeHost({
      command: [
        'sh',
        '-c',
        `if grep -q '^SystemMaxUse=16M$' '${dropIn}' 2>/dev/null; then exit 1; fi; exec sleep 600`,
      ],
      startCheckMs: 600,
    });
    const old = '[Journal]\nSystemMaxUse=1G\n';
    writeFileSync(dropIn, old);
    const r = await runCommandDocument(
      doc(),
      { DryRun: 'false', SystemMaxUse: '16M' },
      { env: { ...host.systemd.env, STEMEDB_JOURNALD_CONF_DIR: root } },
    );
    expect(r.exitCode).toBe(1);
    expect(readFileSync(dropIn, 'utf8')).toBe(old);
    expect(readdirSync(root)).toEqual([NAME]);
    expect(r.lastJson).toMatchObject({
      changed: false,
      restarted: true,
      rolledBack: true,
      journaldActive: true,
    });
    expect(r.stderr.trim().split('\n').pop()).toMatch(/rolled back .* active again with the old settings/);
    expect(host.systemd.mainPid(UNIT)).toBeDefined();
  });

  test('removes a drop-in it created when journald does not come back, and says when journald stays down', async () => {
    const host = await makeHost();
    host.systemd.defineUnit(UNIT, { command: ['sh', '-c', 'exit 1'], startCheckMs: 300 });
    const r = await host.run();
    expect(r.exitCode).toBe(1);
    expect(existsSync(host.dropIn)).toBe(false);
    expect(host.files()).toEqual([]);
    expect(r.lastJson).toMatchObject({
      changed: false,
      created: false,
      rolledBack: true,
      journaldActive: false,
    });
    expect(r.stderr.trim().split('\n').pop()).toMatch(/STILL NOT active/);
  });

  test('refuses a drop-in that is a symlink and a directory that is a symlink, changing nothing', async () => {
    const host = await makeHost();
    mkdirSync(host.confDir);
    const victim = join(host.root, 'victim.conf');
    writeFileSync(victim, 'untouched');
    symlinkSync(victim, host.dropIn);
    const r = await host.run();
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('is a symlink');
    expect(readFileSync(victim, 'utf8')).toBe('untouched');

    const elsewhere = mkdtempSync(join(tmpdir(), 'journald-limits-elsewhere-'));
    cleanups.push(() => rmSync(elsewhere, { recursive: true, force: true }));
    const linkedDir = join(host.root, 'linked.conf.d');
    symlinkSync(elsewhere, linkedDir);
    const viaLink = await runCommandDocument(
      doc(),
      { DryRun: 'false' },
      { env: { ...host.systemd.env, STEMEDB_JOURNALD_CONF_DIR: linkedDir } },
    );
    expect(viaLink.exitCode).toBe(1);
    expect(viaLink.stderr).toContain('is a symlink');
    expect(readdirSync(elsewhere)).toEqual([]);
    expect(host.restarts()).toBe(0);
  });

  test('writes to /etc/systemd/journald.conf.d when no directory is given (dry run: nothing written)', async () => {
    const host = await makeHost();
    const r = await runCommandDocument(doc(), { DryRun: 'true' }, { env: host.systemd.env });
    expect(r.lastJson?.dropInFile).toBe(`/etc/systemd/journald.conf.d/${NAME}`);
  });
});

// Hostile values: each must fail the document's parameter check (SendCommand rejects it and no
// shell runs), and the script's own check (exit 2) when it is run by itself.
const HOSTILE: Record<string, string[]> = {
  SystemMaxUse: [
    '',
    '0M',
    '500',
    '500MB',
    '500m',
    '15M',
    '17T',
    '1P',
    '-1G',
    '500M ',
    '500M\n',
    '$(reboot)',
    '1e3M',
  ],
  MaxRetentionSec: [
    '',
    '7',
    '7days',
    '7 day',
    '0day',
    '59min',
    '11year',
    '7d',
    'day',
    '7day;reboot',
    '7day\n',
  ],
  DropInName: [
    '',
    'limits',
    'limits.conf.bak',
    '../journald.conf',
    '/etc/passwd.conf',
    '.hidden.conf',
    'a b.conf',
    'x.conf\n',
    '$(reboot).conf',
  ],
  DryRun: ['yes', 'TRUE', '', 'true; reboot'],
};

/** Rejected by the script only: the document's pattern cannot express the size and time ranges. */
const OUT_OF_RANGE: Record<string, string[]> = {
  SystemMaxUse: ['15M', '17T', '16383K'],
  MaxRetentionSec: ['59min', '3599s', '11year', '522week'],
};

describe('JournaldLimits parameters', () => {
  const valid: Record<string, string> = {
    SystemMaxUse: '500M',
    MaxRetentionSec: '7day',
    DropInName: NAME,
    DryRun: 'true',
  };

  test('the document declares exactly the parameters the script reads', () => {
    expectDeclaresWhatTheScriptReads(doc(), SCRIPT, HOSTILE);
  });

  test('no document parameter sets the drop-in directory', async () => {
    const err = await runCommandDocument(doc(), { ...valid, ConfDir: '/tmp' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ParameterValidationError);
    expect(Object.keys(doc().parameters ?? {}).some((p) => /dir/i.test(p))).toBe(false);
  });

  const outOfRange = new Set(Object.entries(OUT_OF_RANGE).flatMap(([n, vs]) => vs.map((v) => `${n}=${v}`)));
  test.each(
    Object.entries(HOSTILE).flatMap(([name, values]) =>
      values.filter((v) => !outOfRange.has(`${name}=${v}`)).map((v) => [name, v] as const),
    ),
  )('rejects %s = %j before any shell runs', async (name, value) => {
    const confDir = mkdtempSync(join(tmpdir(), 'journald-limits-rejected-'));
    cleanups.push(() => rmSync(confDir, { recursive: true, force: true }));
    await expectRejectedBeforeAnyShell(doc(), valid, name, value, { STEMEDB_JOURNALD_CONF_DIR: confDir });
    expect(readdirSync(confDir)).toEqual([]);
  });

  test('the script rejects every hostile and out-of-range value by itself (exit 2, nothing written)', async () => {
    const confDir = mkdtempSync(join(tmpdir(), 'journald-limits-direct-'));
    cleanups.push(() => rmSync(confDir, { recursive: true, force: true }));
    const env = { STEMEDB_JOURNALD_CONF_DIR: confDir };
    const base = { ...valid, DryRun: 'false' };
    const hostile = { ...HOSTILE };
    for (const [name, values] of Object.entries(OUT_OF_RANGE))
      hostile[name] = [...(hostile[name] ?? []), ...values];
    const wrong = await scriptNonRejections(SCRIPT, base, hostile, env);
    for (const dir of ['relative/dir', '/etc/../tmp', '/a dir']) {
      wrong.push(
        ...(
          await scriptNonRejections(SCRIPT, base, { DryRun: ['false'] }, { STEMEDB_JOURNALD_CONF_DIR: dir })
        ).map((w) => `STEMEDB_JOURNALD_CONF_DIR=${dir}: ${w}`),
      );
    }
    expect(wrong).toEqual([]);
    expect(readdirSync(confDir)).toEqual([]);
  });

  test('the range limits pass the script and one step past them does not', async () => {
    const host = await makeHost();
    for (const [param, value, ok] of [
      ['SystemMaxUse', '16M', true],
      ['SystemMaxUse', '16T', true],
      ['SystemMaxUse', '16383K', false],
      ['MaxRetentionSec', '1h', true],
      ['MaxRetentionSec', '10year', true],
      ['MaxRetentionSec', '3599s', false],
      ['MaxRetentionSec', '11year', false],
    ] as const) {
      const r = await host.run({ DryRun: 'true', [param]: value });
      expect(r.exitCode, `${param}=${value}: ${r.stderr}`).toBe(ok ? 0 : 2);
    }
  });
});
