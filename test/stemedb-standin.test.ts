import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { createFakeSystemd } from './support/fake-systemd';
import {
  freePort,
  type RunningStandin,
  StandinExitedError,
  standinCommand,
  startStandin,
} from './support/stemedb-standin';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'standin-test-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function start(opts: Parameters<typeof startStandin>[0]): Promise<RunningStandin> {
  const s = await startStandin(opts);
  cleanups.push(() => s.stop());
  return s;
}

function ageFile(path: string, days: number): void {
  const t = Date.now() / 1000 - days * 86_400;
  utimesSync(path, t, t);
}

describe('StemeDB stand-in', () => {
  test('answers health, stores an assertion and serves valid Prometheus metrics', async () => {
    const dir = tempDir();
    const s = await start({ dataDir: dir });
    const health = await fetch(s.healthUrl);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const res = await fetch(`${s.baseUrl}/v1/assert`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ concept_path: 'test/disk', predicate: 'space_ok', value: true }),
    });
    expect(res.status).toBe(201);
    expect(readdirSync(join(dir, 'db'))).toHaveLength(1);
    const metrics = await (await fetch(`${s.baseUrl}/metrics`)).text();
    expect(metrics).toContain('stemedb_assertions_total 1');
    expect(metrics).toContain('stemedb_compaction_progress 0');
    const check = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
    expect(check.status, check.stdout + check.stderr).toBe(0);
  });

  test('removes WAL segments older than retention_days at start and logs the cleanup line', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'wal'));
    for (const [name, days] of [
      ['segment-1.log', 30],
      ['segment-2.log', 8],
      ['segment-3.log', 1],
      ['notes.txt', 30],
    ] as const) {
      writeFileSync(join(dir, 'wal', name), 'x');
      ageFile(join(dir, 'wal', name), days);
    }
    writeFileSync(
      join(dir, 'config.toml'),
      '[wal]\nretention_days = 7 # a week\n\n[backup]\nretention_days = 1\n',
    );
    const s = await start({ dataDir: dir, configFile: join(dir, 'config.toml') });
    expect(s.output()).toContain('WAL cleanup: removed 2 segments older than 7 days');
    expect(readdirSync(join(dir, 'wal')).sort()).toEqual(['notes.txt', 'segment-3.log']);
  });

  test.each([
    ['segment_size_mb above the build limit', '[wal]\nsegment_size_mb = 2048\n', 'segment_size_mb'],
    ['retention_days of 0', '[wal]\nretention_days = 0\n', 'retention_days'],
    ['a line that is not TOML', '[wal]\nretention_days 7\n', 'cannot parse'],
    ['a [wal] table defined twice', '[wal]\nmax_segments = 1\n[wal]\nretention_days = 7\n', 'defined twice'],
    ['a key defined twice', '[wal]\nretention_days = 7\nretention_days = 8\n', 'defined twice'],
  ])('refuses to start with %s', async (_what, config, message) => {
    const dir = tempDir();
    writeFileSync(join(dir, 'config.toml'), config);
    const err = await startStandin({ dataDir: dir, configFile: join(dir, 'config.toml') }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StandinExitedError);
    const exited = err as StandinExitedError;
    expect(exited.exitCode).toBe(1);
    expect(exited.output).toContain('ERROR: invalid configuration');
    expect(exited.output).toContain(message);
  });

  test('answers 507 and logs "No space left on device" when the data disk is full', async () => {
    const dir = tempDir();
    const mnt = join(dir, 'data');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=128k', 'tmpfs', mnt]);
    cleanups.push(() => {
      execFileSync('umount', [mnt]);
    });
    mkdirSync(join(mnt, 'db'));
    spawnSync('sh', ['-c', `cat /dev/zero > ${join(mnt, 'fill')}`]);
    const s = await start({ dataDir: mnt });
    const res = await fetch(`${s.baseUrl}/v1/assert`, { method: 'POST', body: '{"value": true}' });
    expect(res.status).toBe(507);
    // The line is logged before the answer is sent, but reaches this process through a pipe that
    // may be read after the HTTP answer arrived: wait for it instead of racing it.
    await vi.waitFor(() => expect(s.output()).toMatch(/ERROR: write failed: No space left on device/), {
      timeout: 5000,
    });
    expect(readdirSync(join(mnt, 'db'))).toEqual([]);
  });

  test('a compaction reports progress and frees the obsolete files', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'db'));
    writeFileSync(join(dir, 'db', 'a.kv'), 'keep');
    writeFileSync(join(dir, 'db', 'b.kv.obsolete'), Buffer.alloc(4096));
    const s = await start({ dataDir: dir, compactionMs: 300 });
    const res = await fetch(`${s.baseUrl}/v1/admin/compact`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"aggressive": false}',
    });
    expect(res.status).toBe(202);
    expect((await fetch(`${s.baseUrl}/v1/admin/compact`, { method: 'POST' })).status).toBe(409);
    let metrics = '';
    for (let i = 0; i < 100 && !metrics.includes('stemedb_compaction_runs_total 1'); i++) {
      await new Promise((r) => setTimeout(r, 50));
      metrics = await (await fetch(`${s.baseUrl}/metrics`)).text();
    }
    expect(metrics).toContain('stemedb_compaction_progress 1');
    expect(metrics).toContain('stemedb_compaction_bytes_freed_total 4096');
    expect(readdirSync(join(dir, 'db'))).toEqual(['a.kv']);
  });

  test('runs under the fake systemctl and its log lines reach the fake journalctl', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'config.toml'), '[wal]\nretention_days = 3\n');
    const port = await freePort();
    const systemd = createFakeSystemd({
      'stemedb-api': standinCommand({ port, dataDir: dir, configFile: join(dir, 'config.toml') }),
    });
    cleanups.push(() => systemd.cleanup());
    expect((await systemd.systemctl('is-active', 'stemedb-api')).stdout.trim()).toBe('inactive');
    expect((await systemd.systemctl('start', 'stemedb-api.service')).code).toBe(0);
    let healthy = false;
    for (let i = 0; i < 200 && !healthy; i++) {
      healthy = await fetch(`http://127.0.0.1:${port}/v1/health`).then(
        (r) => r.ok,
        () => false,
      );
      if (!healthy) await new Promise((r) => setTimeout(r, 50));
    }
    expect(healthy).toBe(true);
    expect((await systemd.systemctl('is-active', 'stemedb-api')).stdout.trim()).toBe('active');
    const journal = await systemd.journalctl('-u', 'stemedb-api', '-o', 'cat', '--no-pager');
    expect(journal.stdout).toContain('WAL cleanup: removed 0 segments older than 3 days');
    expect((await systemd.systemctl('stop', 'stemedb-api')).code).toBe(0);
    expect((await systemd.systemctl('is-active', 'stemedb-api')).stdout.trim()).toBe('inactive');
    expect(systemd.journal('stemedb-api').map((e) => e.message)).toContain('Stopped stemedb-api.service.');
  });

  test('the fake systemctl marks a unit failed when its process exits with an error', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'config.toml'), '[wal]\nretention_days = 0\n');
    const port = await freePort();
    const systemd = createFakeSystemd({
      'stemedb-api': {
        ...standinCommand({ port, dataDir: dir, configFile: join(dir, 'config.toml') }),
        startCheckMs: 2000,
      },
    });
    cleanups.push(() => systemd.cleanup());
    const started = await systemd.systemctl('start', 'stemedb-api');
    expect(started.code).toBe(1);
    expect(started.stderr).toContain('Job for stemedb-api.service failed');
    const state = await systemd.systemctl('is-active', 'stemedb-api');
    expect([state.code, state.stdout.trim()]).toEqual([3, 'failed']);
    const since = await systemd.journalctl(
      '-u',
      'stemedb-api',
      '--since',
      '2000-01-01 00:00:00',
      '-o',
      'cat',
    );
    expect(since.stdout).toContain('ERROR: invalid configuration');
    const future = await systemd.journalctl('-u', 'stemedb-api', '--since', '@4102444800');
    expect(future.stdout.trim()).toBe('-- No entries --');
  });

  test('the fake journalctl --vacuum-time drops entries older than the time and says what it freed', async () => {
    const systemd = createFakeSystemd({});
    cleanups.push(() => systemd.cleanup());
    const now = Date.now() / 1000;
    writeFileSync(
      systemd.journalFile,
      [`${now - 10 * 86_400}\tstemedb-api\t1\told line`, `${now - 60}\tstemedb-api\t1\tnew line`, ''].join(
        '\n',
      ),
    );
    const vacuum = await systemd.journalctl('--vacuum-time=7d');
    expect(vacuum.code).toBe(0);
    expect(vacuum.stdout).toMatch(/^Vacuuming done, freed [1-9][0-9]*B of archived journals/);
    const left = await systemd.journalctl('-u', 'stemedb-api', '-o', 'cat');
    expect(left.stdout.trim()).toBe('new line');
    expect((await systemd.journalctl('--vacuum-time=soon')).code).toBe(1);
  });
});
