import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runForked, stopForkServer } from './support/python-forkserver';

afterAll(() => stopForkServer());

const BASE_ENV = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

describe('the Python fork server (the local Automation runner starts its steps with it)', () => {
  it('gives each program its own stdin, stdout, stderr, fd 3, environment, directory and exit status', async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'pyfork-test-')));
    try {
      const code = [
        'import os, sys',
        'data = sys.stdin.read()',
        'print("out", data)',
        'print("err", os.environ.get("ONLY_HERE"), file=sys.stderr)',
        'os.fdopen(3, "w").write(os.getcwd())',
        'sys.exit(7)',
      ].join('\n');
      const [a, b] = await Promise.all([
        runForked(code, 'first', { ...BASE_ENV, ONLY_HERE: 'a' }, undefined, dir),
        runForked(code, 'second', { ...BASE_ENV }, undefined, tmpdir()),
      ]);
      expect(a).toMatchObject({
        stdout: 'out first\n',
        stderr: 'err a\n',
        fd3: dir,
        exitCode: 7,
        signal: null,
      });
      expect(b).toMatchObject({ stdout: 'out second\n', stderr: 'err None\n', exitCode: 7 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('creates boto3 sessions from the program environment, as a new python3 would', async () => {
    const code = [
      'import boto3',
      'c = boto3.client("ssm").meta',
      'creds = boto3.DEFAULT_SESSION.get_credentials()',
      'print(c.region_name, creds.access_key, c.endpoint_url)',
    ].join('\n');
    const env = (key: string, region: string) => ({
      ...BASE_ENV,
      AWS_ACCESS_KEY_ID: key,
      AWS_SECRET_ACCESS_KEY: 'secret',
      AWS_DEFAULT_REGION: region,
      AWS_ENDPOINT_URL: 'http://127.0.0.1:1',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    });
    const [a, b] = await Promise.all([
      runForked(code, '', env('AKIDFIRST', 'eu-west-1')),
      runForked(code, '', env('AKIDSECOND', 'us-east-2')),
    ]);
    expect(a.stdout).toBe('eu-west-1 AKIDFIRST http://127.0.0.1:1\n');
    expect(b.stdout).toBe('us-east-2 AKIDSECOND http://127.0.0.1:1\n');
  });

  it('reports an uncaught exception on stderr with exit status 1', async () => {
    const r = await runForked('raise ValueError("bad input")', '', BASE_ENV);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('ValueError: bad input');
  });

  it('kills the program and what it started when the signal aborts', async () => {
    const abort = new AbortController();
    const code = [
      'import subprocess, sys, time',
      'child = subprocess.Popen(["sleep", "30"])',
      'print(child.pid, flush=True)',
      'time.sleep(30)',
    ].join('\n');
    const started = performance.now();
    const run = runForked(code, '', BASE_ENV, abort.signal);
    setTimeout(() => abort.abort(), 500);
    const r = await run;
    expect(r).toMatchObject({ exitCode: null, signal: 'SIGKILL' });
    expect(performance.now() - started).toBeLessThan(10_000);
    const sleeper = Number(r.stdout.trim());
    expect(sleeper).toBeGreaterThan(1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Gone, or a zombie waiting for its new parent (PID 1) to reap it: either way not running.
    const state = (() => {
      try {
        return readFileSync(`/proc/${sleeper}/stat`, 'utf8').split(') ')[1]?.[0];
      } catch {
        return 'gone';
      }
    })();
    expect(['gone', 'Z', 'X']).toContain(state);
  });
});
