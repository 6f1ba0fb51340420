import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { AutomationDocumentContent } from '../lib/automation-document';
import type { CommandDocumentContent } from '../lib/command-document';
import { runStepScript } from './support/automation-python';
import { type StepResult, simulateAutomation } from './support/automation-validator';
import { type RunResult, runCommandDocument, runScriptDirectly } from './support/command-document-runner';
import type { FakeSystemd } from './support/fake-systemd';
import { dfBytes, LoopDeviceLab } from './support/loop-device';
import {
  TEST_INSTANCE as INSTANCE,
  isAValidAutomationDocument,
  loadSectionAutomation,
  notificationOf,
} from './support/section-automation';
import {
  canaryFile,
  expectEachStepFailureFailsAndIsNotified,
  FILLABLE_EXT4,
  rejectsBeforeAnyShellRuns,
  scriptRefusesTrailingNewline,
  sectionOnLoopDisk,
} from './support/section-bed';
import { cleanupsAfterEach, STANDIN_UNIT, startedStandin } from './support/service-bed';

/**
 * ValidateDiskHealth (runbook Validation): the synthesized Command document run like the SSM
 * agent runs it, against the StemeDB stand-in as the `stemedb-api` unit of a fake systemd, on a
 * real ext4 filesystem on a loop device; and the Automation document around it (validated,
 * walked, and its result-reading Python run on real command output).
 */

const UNIT = STANDIN_UNIT;
const CHECKS = ['disk', 'inodes', 'service', 'write', 'journal'];

let doc: CommandDocumentContent;
let mount: string;
const lab = new LoopDeviceLab('validate-health-');

beforeAll(() => {
  ({ doc, mount } = sectionOnLoopDisk(lab, 'ValidateDiskHealth', FILLABLE_EXT4));
});
afterAll(() => lab.cleanup());

const cleanups = cleanupsAfterEach();

interface Node {
  readonly systemd: FakeSystemd;
  readonly baseUrl: string;
  run(params?: Record<string, string>): Promise<RunResult>;
}

/** The stand-in as the started `stemedb-api` unit of a new fake systemd, data on `dataDir`. */
async function startNode(dataDir = mount, mountPoint = mount): Promise<Node> {
  const { systemd, baseUrl } = await startedStandin(cleanups, { dataDir });
  return {
    systemd,
    baseUrl,
    run: (params = {}) =>
      runCommandDocument(
        doc,
        { MountPoint: mountPoint, ServiceName: UNIT, BaseUrl: baseUrl, ...params },
        { env: systemd.env },
      ),
  };
}

/** Allocates a file so that the filesystem is about `percent` used; removed after the test. */
function fillTo(percent: number): void {
  const df = dfBytes(mount);
  const want = Math.floor(((df.used + df.avail) * percent) / 100) - df.used;
  const file = join(mount, 'filler');
  execFileSync('fallocate', ['-l', String(want), file]);
  cleanups.push(() => rmSync(file, { force: true }));
}

/** Fills the filesystem to 100%; the fill files are removed after the test. */
function fillFull(): void {
  const { files } = lab.fill(mount);
  cleanups.push(() => {
    for (const f of files) rmSync(f, { force: true });
  });
}

function appendJournal(systemd: FakeSystemd, secondsAgo: number, message: string): void {
  const time = (Date.now() / 1000 - secondsAgo).toFixed(6);
  appendFileSync(systemd.journalFile, `${time}\t${UNIT}\t4242\t${message}\n`);
}

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

function checksOf(r: RunResult): Check[] {
  if (r.lastJson === undefined) throw new Error(`no JSON line in: ${r.stdout}\n${r.stderr}`);
  return r.lastJson.checks as Check[];
}

function failedOf(r: RunResult): string[] {
  return checksOf(r)
    .filter((c) => !c.ok)
    .map((c) => c.name);
}

function lastStderrLine(r: RunResult): string {
  return r.stderr.trim().split('\n').pop() ?? '';
}

describe('ValidateDiskHealth on the host', () => {
  test('passes all five checks on a healthy node and writes one assertion', async () => {
    const node = await startNode();
    const before = existsSync(join(mount, 'db')) ? readdirSync(join(mount, 'db')).length : 0;
    const r = await node.run();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(checksOf(r).map((c) => c.name)).toEqual(CHECKS);
    expect(checksOf(r).every((c) => c.ok)).toBe(true);
    expect(r.lastJson).toMatchObject({ healthy: true, failed: [], assertUrl: `${node.baseUrl}/v1/assert` });
    expect(readdirSync(join(mount, 'db'))).toHaveLength(before + 1);
  });

  test('is unhealthy naming the disk check when the filesystem is above 80% used', async () => {
    const node = await startNode();
    fillTo(85);
    const r = await node.run();
    expect(r.exitCode).toBe(1);
    expect(r.lastJson?.healthy).toBe(false);
    expect(failedOf(r)).toEqual(['disk']);
    expect(checksOf(r)[0]?.detail).toMatch(/^used 8[4-6]\.\d\d% is not below 80%/);
    expect(lastStderrLine(r)).toMatch(/^validate-disk-health: unhealthy: disk failed \(disk: used /);
  });

  test('takes the disk level from RecoveredUsedPercent', async () => {
    const node = await startNode();
    fillTo(85);
    const r = await node.run({ RecoveredUsedPercent: '90' });
    expect(r.exitCode, r.stderr).toBe(0);
  });

  test('is unhealthy naming the service when the service is stopped', async () => {
    const node = await startNode();
    await node.systemd.systemctl('stop', UNIT);
    const r = await node.run();
    expect(r.exitCode).toBe(1);
    // A stopped server cannot take the test write either.
    expect(failedOf(r)).toEqual(['service', 'write']);
    expect(checksOf(r)[2]?.detail).toBe('stemedb-api is inactive, not active (systemctl is-active)');
    expect(lastStderrLine(r)).toContain('unhealthy: service, write failed');
  });

  test('is unhealthy when the test write fails with ENOSPC on a 100% full filesystem', async () => {
    const node = await startNode();
    fillFull();
    const r = await node.run();
    expect(r.exitCode).toBe(1);
    // The server logs the failed write, so the journal check sees it too.
    expect(failedOf(r)).toEqual(['disk', 'write', 'journal']);
    const write = checksOf(r)[3];
    expect(write?.detail).toMatch(/returned 507, not 201: .*No space left on device/);
    expect(checksOf(r)[4]?.detail).toContain('ERROR: write failed: No space left on device');
  });

  test('is unhealthy when the journal says "No space left on device" in the last minutes', async () => {
    const node = await startNode();
    appendJournal(node.systemd, 60, 'ERROR: compaction failed: No space left on device (os error 28)');
    const r = await node.run();
    expect(r.exitCode).toBe(1);
    expect(failedOf(r)).toEqual(['journal']);
    expect(checksOf(r)[4]?.detail).toMatch(
      /^1 journal lines of stemedb-api in the last 15 minutes say "no space"; last: .*os error 28/,
    );
  });

  test('ignores "no space" lines older than SinceMinutes', async () => {
    const node = await startNode();
    appendJournal(node.systemd, 2 * 3600, 'ERROR: write failed: No space left on device');
    const r = await node.run({ SinceMinutes: '60' });
    expect(r.exitCode, r.stderr).toBe(0);
  });

  test('is unhealthy naming the inode check when the inodes are exhausted', async () => {
    const small = lab.createDisk({ sizeMiB: 16, fs: 'ext4', mkfsArgs: ['-m', '0', '-N', '128'] });
    const mp = small.mountPoint ?? '';
    mkdirSync(join(mp, 'db'));
    const node = await startNode(mp, mp);
    for (let i = 0; i < 100_000; i++) {
      try {
        writeFileSync(join(mp, `tiny-${i}.tmp`), '');
      } catch {
        break; // ENOSPC: no inode left
      }
    }
    const r = await node.run();
    expect(r.exitCode).toBe(1);
    expect(failedOf(r)).toContain('inodes');
    expect(checksOf(r)[1]?.detail).toMatch(/^0\.00% of inodes free \(0 of \d+\) is not above 10%/);
  });

  test('fails the disk and inode checks when MountPoint is not a mount point', async () => {
    const node = await startNode();
    const r = await node.run({ MountPoint: join(mount, 'db') });
    expect(r.exitCode).toBe(1);
    expect(failedOf(r)).toEqual(['disk', 'inodes']);
  });
});

describe('ValidateDiskHealth parameters', () => {
  const canary = canaryFile('validate-health');

  rejectsBeforeAnyShellRuns(() => doc, canary, [
    ['MountPoint', '/data; rm -rf /'],
    ['MountPoint', `/data/$(touch ${canary})`],
    ['MountPoint', `/data/\`touch ${canary}\``],
    ['MountPoint', '/data\n/etc'],
    ['MountPoint', '/data/../etc'],
    ['MountPoint', 'data'],
    ['ServiceName', 'stemedb-api; rm -rf /'],
    ['ServiceName', `$(touch ${canary})`],
    ['ServiceName', '-H evil'],
    ['BaseUrl', `http://localhost:18180/$(touch ${canary})`],
    ['BaseUrl', 'http://localhost:18180`id`'],
    ['BaseUrl', 'http://169.254.169.254'],
    ['BaseUrl', 'http://localhost:18180/../admin'],
    ['BaseUrl', 'http://localhost:18180\n'],
    ['RecoveredUsedPercent', '80; rm -rf /'],
    ['RecoveredUsedPercent', '101'],
    ['RecoveredInodesFreePercent', '$(id)'],
    ['SinceMinutes', '15 minutes ago; rm -rf /'],
    ['SinceMinutes', '0'],
  ]);

  // The SSM service matches patterns in Java, where "$" also matches before a final newline;
  // the script checks every value again with bash's [[ =~ ]], where it does not.
  scriptRefusesTrailingNewline('validate-disk-health.sh', [
    ['MountPoint', '/data\n'],
    ['ServiceName', 'stemedb-api\n'],
    ['BaseUrl', 'http://localhost:18180\n'],
    ['RecoveredUsedPercent', '80\n'],
    ['RecoveredInodesFreePercent', '10\n'],
    ['SinceMinutes', '15\n'],
  ]);

  test('the script itself refuses a value that bypassed the document, exit 2, checking nothing', () => {
    const r = runScriptDirectly('validate-disk-health.sh', {
      MountPoint: '/data',
      BaseUrl: 'http://localhost:1/$(id)',
    });
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ status: 'refused', healthy: false });
    expect(r.stderr).toContain('invalid BaseUrl');
  });
});

// ---------------------------------------------------------------------------------------------
// The Automation document

const automation = (): AutomationDocumentContent => loadSectionAutomation('ValidateDiskHealth');

const READ_OUTPUTS = {
  Healthy: 'true',
  FailedChecks: '',
  Summary: 'OK   disk: ...',
  Note: 'command Success',
};

function simulate(failing: readonly string[], readOutputs: Record<string, string> = READ_OUTPUTS) {
  return simulateAutomation(automation(), { InstanceId: INSTANCE }, (step): StepResult => {
    if (failing.includes(step)) return { status: 'Failed' };
    if (step === 'ReadResult') return { status: 'Success', outputs: readOutputs };
    return { status: 'Success', outputs: { MessageId: 'm-1' } };
  });
}

describe('ValidateDiskHealth automation', () => {
  const EVENTS = {
    executionId: 'e-1',
    stepName: 'Validate',
    instanceId: INSTANCE,
    documentName: 'StemeDB-Host-ValidateDiskHealth',
  };

  isAValidAutomationDocument(() => automation());

  test('runs the host document with the deploy-time service, API and thresholds', () => {
    const sim = simulate([]);
    expect(sim.inputs.Validate).toMatchObject({
      DocumentName: 'StemeDB-Host-ValidateDiskHealth',
      InstanceIds: [INSTANCE],
      Parameters: {
        MountPoint: '/data',
        ServiceName: 'stemedb-api',
        BaseUrl: 'http://localhost:18180',
        RecoveredUsedPercent: '80',
        RecoveredInodesFreePercent: '10',
        SinceMinutes: '15',
      },
    });
  });

  test('notifies healthy and succeeds on a healthy node', () => {
    const sim = simulate([]);
    expect(sim.path).toEqual(['Validate', 'ReadResult', 'BranchOnHealth', 'NotifyHealthy']);
    expect(sim.status).toBe('Success');
  });

  test('notifies the failed checks and ends Failed on an unhealthy node', () => {
    const sim = simulate(['Validate'], { ...READ_OUTPUTS, Healthy: 'false', FailedChecks: 'disk, write' });
    expect(sim.path).toEqual([
      'Validate',
      'ReadResult',
      'BranchOnHealth',
      'NotifyUnhealthy',
      'FailUnhealthy',
    ]);
    expect(sim.status).toBe('Failed');
    expect(notificationOf(sim, 'NotifyUnhealthy').Subject).toBe(
      'StemeDB-ValidateDiskHealth on i-0123456789abcdef0: UNHEALTHY (disk, write)',
    );
  });

  test('notifies and ends Failed when there is no result to read', () => {
    const sim = simulate(['Validate'], { ...READ_OUTPUTS, Healthy: 'unknown' });
    expect(sim.path.slice(-2)).toEqual(['NotifyUnknown', 'FailExecution']);
    expect(sim.status).toBe('Failed');
  });

  test('notifies on every failure path', () => {
    const scenarios: Array<[string[], string]> = [
      [[], 'true'],
      [['Validate'], 'false'],
      [['Validate'], 'unknown'],
    ];
    for (const [failing, healthy] of scenarios) {
      const outputs = { ...READ_OUTPUTS, Healthy: healthy };
      // A failed notification ends the execution Failed; any other failure is notified first.
      expectEachStepFailureFailsAndIsNotified((f) => simulate(f, outputs), failing, `Healthy=${healthy}`);
    }
  });

  test('reads the checks from a real unhealthy run through GetCommandInvocation', async () => {
    const node = await startNode();
    await node.systemd.systemctl('stop', UNIT);
    const run = await node.run();
    expect(run.exitCode).toBe(1);
    const { result, calls } = runStepScript(automation(), 'ReadResult', EVENTS, {
      get_automation_execution: [
        {
          AutomationExecution: {
            StepExecutions: [{ StepName: 'Validate', Outputs: { CommandId: ['c-1'] } }],
          },
        },
      ],
      get_command_invocation: [
        {
          Status: 'Failed',
          ResponseCode: 1,
          StandardOutputContent: run.stdout,
          StandardErrorContent: run.stderr,
        },
      ],
    });
    expect(result).toMatchObject({
      healthy: 'false',
      failed: 'service, write',
      note: 'command Failed, exit code 1',
    });
    expect((result.summary ?? '').split('\n')).toEqual([
      expect.stringMatching(/^OK {3}disk: used /),
      expect.stringMatching(/^OK {3}inodes: /),
      'FAIL service: stemedb-api is inactive, not active (systemctl is-active)',
      expect.stringMatching(/^FAIL write: POST http:\/\/127\.0\.0\.1:\d+\/v1\/assert failed: curl exit 7/),
      expect.stringMatching(/^OK {3}journal: /),
    ]);
    expect(calls.map((c) => c.op)).toEqual(['get_automation_execution', 'get_command_invocation']);
    expect(calls[1]?.args).toEqual({ CommandId: 'c-1', InstanceId: INSTANCE });
  });

  test('finds the command with ListCommands when the failed step recorded no CommandId', () => {
    const stdout = `${JSON.stringify({ checks: [{ name: 'disk', ok: true, detail: 'd' }], failed: [], healthy: true })}\n`;
    const { result, calls } = runStepScript(automation(), 'ReadResult', EVENTS, {
      get_automation_execution: [
        { AutomationExecution: { StepExecutions: [{ StepName: 'Validate', Outputs: {} }] } },
      ],
      list_commands: [
        {
          Commands: [
            { CommandId: 'c-old', RequestedDateTime: '2026-01-01T00:00:00' },
            { CommandId: 'c-new', RequestedDateTime: '2026-01-01T00:05:00' },
          ],
        },
      ],
      // Right after a command ends its invocation may not be visible yet.
      get_command_invocation: [
        { error: 'InvocationDoesNotExist' },
        { Status: 'Success', ResponseCode: 0, StandardOutputContent: stdout },
      ],
    });
    expect(result.healthy).toBe('true');
    expect(calls.find((c) => c.op === 'list_commands')?.args).toEqual({
      InstanceId: INSTANCE,
      Filters: [{ key: 'DocumentName', value: 'StemeDB-Host-ValidateDiskHealth' }],
    });
    expect(calls.filter((c) => c.op === 'get_command_invocation').map((c) => c.args.CommandId)).toEqual([
      'c-new',
      'c-new',
    ]);
  });

  test('returns healthy=unknown with a note when the command never ran', () => {
    const { result } = runStepScript(automation(), 'ReadResult', EVENTS, {
      get_automation_execution: [{ AutomationExecution: { StepExecutions: [{ StepName: 'Validate' }] } }],
      list_commands: [{ Commands: [] }],
    });
    expect(result).toMatchObject({ healthy: 'unknown', note: expect.stringContaining('sent no command') });
  });
});
