import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import type { AutomationDocumentContent } from '../lib/automation-document';
import type { CommandDocumentContent } from '../lib/command-document';
import { runStepScript } from './support/automation-python';
import { type StepResult, simulateAutomation } from './support/automation-validator';
import {
  type RunResult,
  runCommandDocument,
  runScriptDirectly,
  synthesizeCommandDocument,
} from './support/command-document-runner';
import { LoopDeviceLab } from './support/loop-device';
import { isAValidAutomationDocument, loadSectionAutomation } from './support/section-automation';
import {
  canaryFile,
  expectEachStepFailureFailsAndIsNotified,
  FILLABLE_EXT4,
  rejectsBeforeAnyShellRuns,
  scriptRefusesTrailingNewline,
  sectionOnLoopDisk,
} from './support/section-bed';
import { freePort, type RunningStandin, startStandin } from './support/stemedb-standin';

/**
 * CompactDatabase (runbook §3): the synthesized Command document run like the SSM agent runs
 * it, against the StemeDB stand-in (whose compaction deletes the `*.obsolete` files in
 * `<data>/db` after `--compaction-ms`, exporting stemedb_compaction_progress meanwhile), with the
 * data on a real ext4 filesystem on a loop device; and the Automation document around it
 * (validated, walked, and its summarizing Python run on real command output).
 */

const MiB = 1024 * 1024;
/** What a compaction frees: three obsolete files of 2, 3 and 4 MiB. */
const OBSOLETE = [2, 3, 4].map((n) => [`old-${n}.obsolete`, n * MiB] as const);
const OBSOLETE_BYTES = OBSOLETE.reduce((sum, [, size]) => sum + size, 0);

let doc: CommandDocumentContent;
let mount: string;
let dbDir: string;
let standin: RunningStandin;
const lab = new LoopDeviceLab('compact-db-');

beforeAll(async () => {
  ({ doc, mount } = sectionOnLoopDisk(lab, 'CompactDatabase', FILLABLE_EXT4));
  dbDir = join(mount, 'db');
  standin = await startStandin({ dataDir: mount, compactionMs: 1500 });
});
afterAll(async () => {
  await standin?.stop();
  lab.cleanup();
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

/** A fresh database directory: the obsolete files plus one live file. */
beforeEach(() => {
  rmSync(dbDir, { recursive: true, force: true });
  mkdirSync(dbDir);
  for (const [name, size] of OBSOLETE) execFileSync('fallocate', ['-l', String(size), join(dbDir, name)]);
  writeFileSync(join(dbDir, 'live.kv'), Buffer.alloc(100_000, 1));
});

function run(params: Record<string, string> = {}, base: RunningStandin = standin): Promise<RunResult> {
  return runCommandDocument(doc, { MountPoint: mount, BaseUrl: base.baseUrl, PollSeconds: '1', ...params });
}

function json(r: RunResult): Record<string, unknown> {
  if (r.lastJson === undefined) throw new Error(`no JSON line in: ${r.stdout}\n${r.stderr}`);
  return r.lastJson;
}

function compactCalls(s: RunningStandin = standin): number {
  return s
    .output()
    .split('\n')
    .filter((l) => l.startsWith('Compaction started')).length;
}

function dbFiles(): Record<string, number> {
  return Object.fromEntries(readdirSync(dbDir).map((n) => [n, statSync(join(dbDir, n)).size]));
}

/** Fills the filesystem to 100%; the fill files are removed after the test. */
function fillFull(): void {
  const { files } = lab.fill(mount);
  cleanups.push(() => {
    for (const f of files) rmSync(f, { force: true });
  });
}

async function metric(name: string, s: RunningStandin = standin): Promise<number> {
  const text = await (await fetch(`${s.baseUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1]);
}

describe('CompactDatabase on the host', () => {
  test('compacts through the admin API, follows the progress to 1 and reports the bytes freed', async () => {
    const calls = compactCalls();
    const r = await run();
    expect(r.exitCode, r.stderr).toBe(0);
    const out = json(r);
    expect(out).toMatchObject({
      status: 'compacted',
      dryRun: false,
      aggressive: false,
      alreadyRunning: false,
      progress: 1,
      dbBytesFreed: OBSOLETE_BYTES,
      serverBytesFreed: OBSOLETE_BYTES,
      nextSection: '',
      warnings: [],
    });
    expect((out.dbBytesBefore as number) - (out.dbBytesAfter as number)).toBe(OBSOLETE_BYTES);
    // df: the filesystem got the space back (block rounding aside).
    expect(out.fsBytesFreed as number).toBeGreaterThanOrEqual(OBSOLETE_BYTES);
    expect(out.availBytesAfter as number).toBe(
      (out.availBytesBefore as number) + (out.fsBytesFreed as number),
    );
    expect(out.usedPercentAfter as number).toBeLessThan(out.usedPercentBefore as number);
    const progress = [...r.stderr.matchAll(/compaction progress ([0-9.]+)/g)].map((m) => Number(m[1]));
    expect(progress.at(-1)).toBe(1);
    expect(progress.slice(0, -1).every((p) => p < 1)).toBe(true);
    expect(compactCalls()).toBe(calls + 1);
    expect(standin.output()).toContain('Compaction started (aggressive=false)');
    expect(Object.keys(dbFiles())).toEqual(['live.kv']);
  });

  test('sends {"aggressive": true} when Aggressive is true', async () => {
    const r = await run({ Aggressive: 'true' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(json(r).aggressive).toBe(true);
    expect(standin.output().trim().split('\n')).toContain('Compaction started (aggressive=true)');
  });

  test('refuses below MinFreePercent on a full disk and makes no compact call', async () => {
    fillFull();
    const calls = compactCalls();
    const before = dbFiles();
    const r = await run();
    expect(r.exitCode).toBe(4);
    expect(json(r)).toMatchObject({ status: 'refused', freePercentBefore: 0, minFreePercent: 5 });
    expect(r.stderr.trim().split('\n').pop()).toMatch(
      /^compact-database: refused: only 0(\.00)?% free on .* below MinFreePercent 5%: compaction needs headroom/,
    );
    expect(compactCalls()).toBe(calls);
    expect(dbFiles()).toEqual(before);
  });

  test('takes the headroom level from MinFreePercent', async () => {
    // About 83% of this filesystem is free: 90 refuses, the default 5 would not.
    const r = await run({ MinFreePercent: '90', DryRun: 'true' });
    expect(r.exitCode).toBe(4);
    expect(json(r).status).toBe('refused');
  });

  test('DryRun does every check and makes no compact call', async () => {
    const calls = compactCalls();
    const runs = await metric('stemedb_compaction_runs_total');
    const before = dbFiles();
    const r = await run({ DryRun: 'true' });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(json(r)).toMatchObject({
      status: 'dry-run',
      dryRun: true,
      dbBytesBefore: expect.any(Number),
      freePercentBefore: expect.any(Number),
      dbBytesFreed: null,
    });
    expect(json(r).reason).toMatch(
      /^dry run: would POST http:\/\/127\.0\.0\.1:\d+\/v1\/admin\/compact \{"aggressive": false\}/,
    );
    expect(compactCalls()).toBe(calls);
    expect(await metric('stemedb_compaction_runs_total')).toBe(runs);
    expect(await metric('stemedb_compaction_running')).toBe(0);
    expect(dbFiles()).toEqual(before);
  });

  test('watches a compaction that is already running instead of starting another', async () => {
    const started = await fetch(`${standin.baseUrl}/v1/admin/compact`, { method: 'POST', body: '{}' });
    expect(started.status).toBe(202);
    const r = await run();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(json(r)).toMatchObject({
      status: 'compacted',
      alreadyRunning: true,
      dbBytesFreed: OBSOLETE_BYTES,
    });
  });

  test('reports ExpandVolume next when the compaction frees nothing', async () => {
    for (const [name] of OBSOLETE) rmSync(join(dbDir, name));
    const r = await run();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(json(r)).toMatchObject({ status: 'compacted', dbBytesFreed: 0, nextSection: 'ExpandVolume' });
    expect(json(r).reason).toContain('database growth is legitimate');
  });

  test('stops watching after TimeoutSeconds, exit 7, saying the server may still be compacting', async () => {
    const slow = await startStandin({ dataDir: mount, compactionMs: 60_000 });
    cleanups.push(() => slow.stop());
    const r = await run({ TimeoutSeconds: '2' }, slow);
    expect(r.exitCode).toBe(7);
    expect(json(r)).toMatchObject({ status: 'timeout', durationSeconds: expect.any(Number) });
    expect(json(r).progress as number).toBeLessThan(1);
    expect(json(r).reason).toContain('the server may still be compacting');
  });

  test('fails without a compact call when the server does not answer health, exit 5', async () => {
    const port = await freePort();
    const r = await runCommandDocument(doc, { MountPoint: mount, BaseUrl: `http://127.0.0.1:${port}` });
    expect(r.exitCode).toBe(5);
    expect(json(r)).toMatchObject({ status: 'failed', dbBytesBefore: expect.any(Number) });
    expect(json(r).reason).toContain('StemeDB is not healthy');
  });

  test('fails, exit 3, when the database directory does not exist', async () => {
    const r = await run({ DbDir: join(mount, 'nowhere') });
    expect(r.exitCode).toBe(3);
    expect(json(r).reason).toMatch(/database directory .*nowhere does not exist/);
  });
});

describe('CompactDatabase parameters', () => {
  const canary = canaryFile('compact-db');

  rejectsBeforeAnyShellRuns(() => doc, canary, [
    ['MountPoint', '/data; rm -rf /'],
    ['MountPoint', `/data/$(touch ${canary})`],
    ['MountPoint', `/data/\`touch ${canary}\``],
    ['MountPoint', '/data\n/etc'],
    ['MountPoint', '/data/..'],
    ['DbDir', '/data/../etc'],
    ['DbDir', `/data/db; touch ${canary}`],
    ['DbDir', 'db'],
    ['BaseUrl', `http://localhost:18180/$(touch ${canary})`],
    ['BaseUrl', 'http://localhost:18180`id`'],
    ['BaseUrl', 'http://169.254.169.254'],
    ['BaseUrl', 'http://localhost:18180/v1/admin/compact'],
    ['Aggressive', 'true; rm -rf /'],
    ['Aggressive', '1'],
    ['MinFreePercent', '5$(id)'],
    ['MinFreePercent', '-1'],
    ['TimeoutSeconds', '0'],
    ['TimeoutSeconds', '7201'],
    ['PollSeconds', '0.1'],
    ['DryRun', 'yes'],
    ['DryRun', 'false\n'],
  ]);

  // The SSM service matches patterns in Java, where "$" also matches before a final newline;
  // the script checks every value again with bash's [[ =~ ]], where it does not.
  scriptRefusesTrailingNewline('compact-database.sh', [
    ['MountPoint', '/data\n'],
    ['DbDir', '/data/db\n'],
    ['BaseUrl', 'http://localhost:18180\n'],
    ['Aggressive', 'false\n'],
    ['MinFreePercent', '5\n'],
    ['TimeoutSeconds', '60\n'],
    ['PollSeconds', '5\n'],
    ['DryRun', 'true\n'],
  ]);

  test('the script itself refuses a value that bypassed the document, exit 2, calling nothing', () => {
    const r = runScriptDirectly('compact-database.sh', { MountPoint: '/data', DbDir: '/data/../etc' });
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ status: 'refused' });
    expect(r.stderr).toContain('invalid DbDir');
  });
});

// ---------------------------------------------------------------------------------------------
// The Automation document

const automation = (): AutomationDocumentContent => loadSectionAutomation('CompactDatabase');

/** Every output the Summarize step declares ('' each), with Status set. */
function summarizeOutputs(status: string): Record<string, string> {
  const step = automation().mainSteps.find((s) => s.name === 'Summarize');
  const names = ((step?.outputs ?? []) as Array<{ Name: string }>).map((o) => o.Name);
  return { ...Object.fromEntries(names.map((n) => [n, ''])), Status: status };
}

function simulate(failing: readonly string[], status = 'compacted', params: Record<string, string> = {}) {
  const outputs = summarizeOutputs(status);
  return simulateAutomation(
    automation(),
    { InstanceId: 'i-0123456789abcdef0', ...params },
    (step): StepResult => {
      if (failing.includes(step)) return { status: 'Failed' };
      if (step === 'Summarize') return { status: 'Success', outputs };
      return { status: 'Success', outputs: { MessageId: 'm-1' } };
    },
  );
}

const EVENTS = {
  executionId: 'e-1',
  instanceId: 'i-0123456789abcdef0',
  prefix: 'StemeDB',
  compactStep: 'Compact',
  compactDocument: 'StemeDB-Host-CompactDatabase',
  reportStep: 'DiskReportAfter',
  reportDocument: 'StemeDB-Host-DiskReport',
};

/** GetAutomationExecution + GetCommandInvocation answers for the two commands' real output. */
function responsesFor(compact: RunResult, report: RunResult | undefined): Record<string, unknown[]> {
  const invocation = (r: RunResult) => ({
    Status: r.exitCode === 0 ? 'Success' : 'Failed',
    ResponseCode: r.exitCode,
    StandardOutputContent: r.stdout,
    StandardErrorContent: r.stderr,
  });
  return {
    get_automation_execution: [
      {
        AutomationExecution: {
          StepExecutions: [
            { StepName: 'Compact', Outputs: { CommandId: ['c-compact'] } },
            { StepName: 'DiskReportAfter', Outputs: report === undefined ? {} : { CommandId: ['c-report'] } },
          ],
        },
      },
    ],
    list_commands: [{ Commands: [] }],
    get_command_invocation:
      report === undefined ? [invocation(compact)] : [invocation(compact), invocation(report)],
  };
}

describe('CompactDatabase automation', () => {
  isAValidAutomationDocument(() => automation());

  test('runs the host compaction with the runtime and deploy-time parameters, then the disk report', () => {
    const sim = simulate([], 'dry-run', { DryRun: 'true', Aggressive: 'true', MinFreePercent: '10' });
    expect(sim.inputs.Compact).toMatchObject({
      DocumentName: 'StemeDB-Host-CompactDatabase',
      Parameters: {
        MountPoint: '/data',
        DbDir: '/data/db',
        BaseUrl: 'http://localhost:18180',
        Aggressive: 'true',
        MinFreePercent: '10',
        TimeoutSeconds: '3600',
        DryRun: 'true',
      },
    });
    expect(sim.inputs.DiskReportAfter).toMatchObject({
      DocumentName: 'StemeDB-Host-DiskReport',
      Parameters: { MountPoint: '/data', WalDir: '/data/wal', DbDir: '/data/db' },
    });
    expect(sim.path).toEqual(['Compact', 'DiskReportAfter', 'Summarize', 'BranchOnCompaction', 'Notify']);
    expect(sim.status).toBe('Success');
  });

  test('notifies the reason and ends Failed when the host refused to compact', () => {
    const sim = simulate(['Compact'], 'refused');
    expect(sim.path).toEqual([
      'Compact',
      'DiskReportAfter',
      'Summarize',
      'BranchOnCompaction',
      'NotifyNotCompacted',
      'FailNotCompacted',
    ]);
    expect(sim.status).toBe('Failed');
  });

  test('still summarizes and notifies when the disk report after fails', () => {
    const sim = simulate(['DiskReportAfter']);
    expect(sim.path.slice(-2)).toEqual(['BranchOnCompaction', 'Notify']);
    expect(sim.status).toBe('Success');
  });

  test('notifies on every failure path', () => {
    for (const [failing, status] of [
      [[], 'compacted'],
      [['Compact'], 'refused'],
      [['Compact'], 'unknown'],
    ] as Array<[string[], string]>) {
      // DiskReportAfter is best effort: its failure is not the execution's.
      expectEachStepFailureFailsAndIsNotified((f) => simulate(f, status), failing, `Status=${status}`, [
        'DiskReportAfter',
      ]);
    }
  });

  test('summarizes a real compaction and disk report: bytes freed, next document', async () => {
    const compact = await run();
    expect(compact.exitCode, compact.stderr).toBe(0);
    const report = await runCommandDocument(synthesizeCommandDocument('DiskReport'), { MountPoint: mount });
    expect(report.exitCode, report.stderr).toBe(0);
    const { result, calls } = runStepScript(automation(), 'Summarize', EVENTS, responsesFor(compact, report));
    expect(result).toMatchObject({
      status: 'compacted',
      dbBytesFreed: String(OBSOLETE_BYTES),
      recovered: 'true',
      nextDocument: 'StemeDB-ValidateDiskHealth',
      note: 'command Success, exit code 0; disk report: command Success, exit code 0',
    });
    expect(Number(result.fsBytesFreed)).toBeGreaterThanOrEqual(OBSOLETE_BYTES);
    expect(calls.filter((c) => c.op === 'get_command_invocation').map((c) => c.args.CommandId)).toEqual([
      'c-compact',
      'c-report',
    ]);
  });

  test('summarizes a real refusal on a full disk: the reason, and the diagnosis to run first', async () => {
    fillFull();
    const compact = await run();
    expect(compact.exitCode).toBe(4);
    const report = await runCommandDocument(synthesizeCommandDocument('DiskReport'), { MountPoint: mount });
    const { result } = runStepScript(automation(), 'Summarize', EVENTS, responsesFor(compact, report));
    expect(result).toMatchObject({
      status: 'refused',
      reason: expect.stringContaining('below MinFreePercent 5%'),
      suggestedSection: 'EmergencyCleanup',
      nextDocument: 'StemeDB-EmergencyCleanup',
    });
  });

  test('names ExpandVolume when a real compaction freed nothing, without a disk report', async () => {
    for (const [name] of OBSOLETE) rmSync(join(dbDir, name));
    const compact = await run();
    const { result } = runStepScript(automation(), 'Summarize', EVENTS, responsesFor(compact, undefined));
    expect(result).toMatchObject({
      status: 'compacted',
      dbBytesFreed: '0',
      nextDocument: 'StemeDB-ExpandVolume',
    });
    expect(result.note).toContain('disk report: step DiskReportAfter sent no command');
  });
});
