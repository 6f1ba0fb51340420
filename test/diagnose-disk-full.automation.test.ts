import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AutomationDocumentContent } from '../lib/automation-document';
import { type BotoCall, executeScriptStep, runStepScript, type ScriptRun } from './support/automation-python';
import { type Simulation, type StepResult, simulateAutomation } from './support/automation-validator';
import {
  type RunResult,
  runCommandDocument,
  synthesizeCommandDocument,
} from './support/command-document-runner';
import { dfBytes, LoopDeviceLab } from './support/loop-device';
import { isAValidAutomationDocument, loadSectionAutomation } from './support/section-automation';

/**
 * StemeDB-DiagnoseDiskFull (runbook Quick Diagnosis), end to end on this machine: for three real
 * ext4 filesystems on loop devices (about 30% used; about 90% used, mostly database; 100% used),
 * the document's own DiskReport step runs the synthesized `DiskReport` Command document with the
 * parameters the document resolves, and the document is walked step by step with that real
 * command output: its ReadDiagnosis Python runs in python3 with GetCommandInvocation stubbed to
 * return the real stdout, its branch is evaluated on what the Python returned, and its
 * FailExecution Python really raises. Also: every failure path notifies, and the document never
 * starts a remediation itself.
 */

const INSTANCE = 'i-0123456789abcdef0';
const COMMAND_ID = 'c-disk-report';

const lab = new LoopDeviceLab('diagnose-disk-full-');
afterAll(() => lab.cleanup());

/** A node's data disk: the document as deployed for it and the real DiskReport run on it. */
interface Node {
  readonly mount: string;
  readonly doc: AutomationDocumentContent;
  readonly report: RunResult;
}

/** The document with the deploy-time values of a node whose data filesystem is at `mount`. */
function automation(mount: string, prefix = 'StemeDB'): AutomationDocumentContent {
  return loadSectionAutomation('DiagnoseDiskFull', {
    Prefix: prefix,
    DataMount: mount,
    WalDir: join(mount, 'wal'),
    DbDir: join(mount, 'db'),
  });
}

/** The inputs of the first step, DiskReport, as Automation resolves them (a walk that stops there). */
function diskReportInputs(doc: AutomationDocumentContent): {
  DocumentName: string;
  Parameters: Record<string, string>;
} {
  const sim = simulateAutomation(doc, { InstanceId: INSTANCE }, () => ({ status: 'Failed' }));
  return sim.inputs.DiskReport as { DocumentName: string; Parameters: Record<string, string> };
}

/** Allocates `path` so that the filesystem at `mount` is about `percent` used (df's Use%). */
function fillTo(mount: string, percent: number, path: string): void {
  const df = dfBytes(mount);
  const want = Math.floor(((df.used + df.avail) * percent) / 100) - df.used;
  execFileSync('fallocate', ['-l', String(want), path]);
}

/** A 64 MiB ext4 with `wal/` (one small segment) and `db/`, shaped by `shape`, then reported on. */
async function node(shape: (mount: string) => void): Promise<Node> {
  // -m 0: no root reserve, so df's Use% is what the test fills; -b 4096: fill() reaches 100%.
  const disk = lab.createDisk({ sizeMiB: 64, fs: 'ext4', mkfsArgs: ['-m', '0', '-b', '4096'] });
  const mount = disk.mountPoint;
  if (mount === undefined) throw new Error('disk not mounted');
  mkdirSync(join(mount, 'wal'));
  mkdirSync(join(mount, 'db'));
  writeFileSync(join(mount, 'wal', 'wal-000001.log'), Buffer.alloc(256 * 1024, 1));
  shape(mount);
  const doc = automation(mount);
  const step = diskReportInputs(doc);
  expect(step.DocumentName).toBe('StemeDB-Host-DiskReport');
  const report = await runCommandDocument(synthesizeCommandDocument('DiskReport'), step.Parameters);
  return { mount, doc, report };
}

let healthy: Node;
let mostlyDb: Node;
let full: Node;

beforeAll(async () => {
  healthy = await node((m) => fillTo(m, 30, join(m, 'db', 'data.kv')));
  mostlyDb = await node((m) => fillTo(m, 90, join(m, 'db', 'data.kv')));
  full = await node((m) => {
    writeFileSync(join(m, 'db', 'data.kv'), Buffer.alloc(1024 * 1024, 1));
    lab.fill(m);
  });
}, 60_000);

/** What GetCommandInvocation returns for a finished DiskReport run. */
function invocation(r: RunResult): Record<string, unknown> {
  return {
    CommandId: COMMAND_ID,
    InstanceId: INSTANCE,
    Status: r.exitCode === 0 ? 'Success' : 'Failed',
    ResponseCode: r.exitCode,
    StandardOutputContent: r.stdout,
    StandardErrorContent: r.stderr,
  };
}

interface Walk {
  readonly sim: Simulation;
  /** The boto3 calls of the embedded Python in this walk. */
  readonly calls: readonly BotoCall[];
}

/**
 * Walks the document for `n`'s report: DiskReport's result is the real run's (the command ID and
 * the first 2,500 characters of stdout as its Output), every aws:executeScript step runs its real
 * Python (ReadDiagnosis reads `stdout`, by default the real one), SNS publishes succeed, and the
 * steps in `failing` fail.
 */
function walk(n: Node, failing: readonly string[] = [], stdout: string = n.report.stdout): Walk {
  const calls: BotoCall[] = [];
  const responses = { get_command_invocation: [{ ...invocation(n.report), StandardOutputContent: stdout }] };
  const sim = simulateAutomation(
    n.doc,
    { InstanceId: INSTANCE, Reason: 'StemeDB-db-1-disk-critical ALARM at 2026-01-01T00:00:00Z' },
    (step, inputs): StepResult => {
      if (failing.includes(step)) return { status: 'Failed' };
      if (step === 'DiskReport')
        return {
          status: n.report.exitCode === 0 ? 'Success' : 'Failed',
          outputs: {
            CommandId: COMMAND_ID,
            Status: n.report.exitCode === 0 ? 'Success' : 'Failed',
            ResponseCode: String(n.report.exitCode),
            Output: stdout.slice(0, 2500),
          },
        };
      const action = n.doc.mainSteps.find((s) => s.name === step)?.action;
      if (action === 'aws:executeScript') {
        const result = executeScriptStep(n.doc, step, inputs, responses);
        calls.push(...result.calls);
        return result;
      }
      return { status: 'Success', outputs: { MessageId: `m-${step}` } };
    },
  );
  return { sim, calls };
}

interface Publish {
  TopicArn: string;
  Subject: string;
  Message: string;
}

function published(sim: Simulation, step: string): Publish {
  const inputs = sim.inputs[step] as (Publish & { Service: string; Api: string }) | undefined;
  if (inputs === undefined) throw new Error(`${step} did not run: ${sim.path.join(' → ')}`);
  expect([inputs.Service, inputs.Api]).toEqual(['sns', 'Publish']);
  return inputs;
}

describe('the real disk reports', () => {
  it('report ~30% used and recovered, ~90% used mostly DB, and 100% used', () => {
    const json = (n: Node) => {
      expect(n.report.exitCode, n.report.stderr).toBe(0);
      return n.report.lastJson ?? {};
    };
    expect(Number(json(healthy).usedPercent)).toBeGreaterThan(25);
    expect(Number(json(healthy).usedPercent)).toBeLessThan(35);
    expect(json(healthy).recovered).toBe(true);
    expect(Number(json(mostlyDb).usedPercent)).toBeGreaterThan(85);
    expect(Number(json(mostlyDb).usedPercent)).toBeLessThan(95);
    expect(json(mostlyDb).dbBytes as number).toBeGreaterThan(json(mostlyDb).walBytes as number);
    expect(json(mostlyDb).dbBytes as number).toBeGreaterThan(json(mostlyDb).otherBytes as number);
    expect(Number(json(full).usedPercent)).toBe(100);
    expect(json(full).availBytes).toBe(0);
  });
});

/** The path of a run whose report suggests a section the document does not know. */
const UNKNOWN_SECTION_PATH = [
  'DiskReport',
  'ReadDiagnosis',
  'BranchOnDiagnosis',
  'NotifyUnknown',
  'FailExecution',
];

describe('DiagnoseDiskFull automation', () => {
  isAValidAutomationDocument(() => healthy.doc);

  it('runs the host DiskReport with the mount point and the deploy-time directories and levels', () => {
    expect(diskReportInputs(mostlyDb.doc).Parameters).toEqual({
      MountPoint: mostlyDb.mount,
      WalDir: join(mostlyDb.mount, 'wal'),
      DbDir: join(mostlyDb.mount, 'db'),
      RecoveredUsedPercent: '80',
      RecoveredInodesFreePercent: '10',
    });
  });

  it('reads the full report through GetCommandInvocation with the command and instance IDs', () => {
    const { calls } = walk(mostlyDb);
    expect(calls).toEqual([
      {
        service: 'ssm',
        op: 'get_command_invocation',
        args: { CommandId: COMMAND_ID, InstanceId: INSTANCE },
      },
    ]);
  });

  it('notifies "disk healthy" for the ~30% used filesystem and succeeds', () => {
    const { sim } = walk(healthy);
    expect(sim.path).toEqual(['DiskReport', 'ReadDiagnosis', 'BranchOnDiagnosis', 'NotifyHealthy']);
    expect(sim.status).toBe('Success');
    const notify = published(sim, 'NotifyHealthy');
    expect(notify.TopicArn).toBe('arn:aws:sns:eu-west-1:123456789012:StemeDB-disk');
    expect(notify.Subject).toBe(`StemeDB-DiagnoseDiskFull on ${INSTANCE}: disk healthy`);
    expect(notify.Message).toContain(
      `the data filesystem at ${healthy.mount} meets the runbook's Validation levels`,
    );
    expect(notify.Message).toMatch(/Figures: used [23]\d\.\d\d% of \d+ bytes \(\d+ available\)/);
  });

  it('names StemeDB-CompactDatabase for the ~90% used filesystem that is mostly database', () => {
    const { sim } = walk(mostlyDb);
    expect(sim.path).toEqual(['DiskReport', 'ReadDiagnosis', 'BranchOnDiagnosis', 'NotifyDiagnosis']);
    expect(sim.status).toBe('Success');
    const notify = published(sim, 'NotifyDiagnosis');
    expect(notify.Subject).toBe(`StemeDB-DiagnoseDiskFull on ${INSTANCE}: run StemeDB-CompactDatabase`);
    expect(notify.Message).toContain('Diagnosis: CompactDatabase (used ');
    expect(notify.Message).toContain('the DB uses the most space');
    expect(notify.Message).toContain('Next: Runbook §3 Compaction');
    expect(notify.Message).toContain(
      `Document to run: StemeDB-CompactDatabase with InstanceId ${INSTANCE} (this diagnosis started nothing).`,
    );
    expect(notify.Message).toContain(`DB ${String(mostlyDb.report.lastJson?.dbBytes)} bytes`);
    expect(notify.Subject.length).toBeLessThanOrEqual(100);
  });

  it('names StemeDB-EmergencyCleanup, marked URGENT, for the 100% used filesystem', () => {
    const { sim } = walk(full);
    expect(sim.path).toEqual(['DiskReport', 'ReadDiagnosis', 'BranchOnDiagnosis', 'NotifyEmergency']);
    expect(sim.status).toBe('Success');
    const notify = published(sim, 'NotifyEmergency');
    expect(notify.Subject).toBe(
      `URGENT StemeDB-DiagnoseDiskFull on ${INSTANCE}: run StemeDB-EmergencyCleanup`,
    );
    expect(notify.Message).toContain(`EMERGENCY, the data filesystem at ${full.mount} is 100.00% used`);
    expect(notify.Message).toContain('Diagnosis: EmergencyCleanup (used 100');
    expect(notify.Message).toContain('run StemeDB-ExpandVolume at once');
    expect(notify.Message).toContain('(this diagnosis started nothing)');
    expect(notify.Subject.length).toBeLessThanOrEqual(100);
  });

  it('notifies and ends Failed when the disk report fails on the host (not a mount point)', async () => {
    const notMounted: Node = {
      ...mostlyDb,
      report: await runCommandDocument(synthesizeCommandDocument('DiskReport'), {
        MountPoint: join(mostlyDb.mount, 'db'),
      }),
    };
    expect(notMounted.report.exitCode).toBe(3);
    const { sim } = walk(notMounted);
    expect(sim.path).toEqual(['DiskReport', 'NotifyFailure', 'FailExecution']);
    expect(sim.status).toBe('Failed');
    expect(published(sim, 'NotifyFailure').Subject).toBe(`StemeDB-DiagnoseDiskFull FAILED on ${INSTANCE}`);
  });

  it('notifies and ends Failed when the report has no JSON result line', () => {
    const cut = mostlyDb.report.stdout.trim().split('\n').slice(0, -1).join('\n');
    const { sim } = walk(mostlyDb, [], cut);
    expect(sim.path).toEqual(['DiskReport', 'ReadDiagnosis', 'NotifyFailure', 'FailExecution']);
    expect(sim.status).toBe('Failed');
    expect(() => readDiagnosis(cut)).toThrow(
      'Exception: the disk report has no JSON result line with suggestedSection (command status Success)',
    );
  });

  it('notifies and ends Failed on a section it does not know', () => {
    const json = { ...mostlyDb.report.lastJson, suggestedSection: 'DefragmentDisk' };
    const stdout = `${mostlyDb.report.stdout.trim().split('\n').slice(0, -1).join('\n')}\n${JSON.stringify(json)}\n`;
    const { sim } = walk(mostlyDb, [], stdout);
    expect(sim.path).toEqual(UNKNOWN_SECTION_PATH);
    expect(sim.status).toBe('Failed');
    expect(published(sim, 'NotifyUnknown').Message).toContain('the disk report suggested "DefragmentDisk"');
  });

  it('notifies on every failure path', () => {
    const lines = (n: Node) => n.report.stdout.trim().split('\n').slice(0, -1).join('\n');
    const unknown = `${lines(mostlyDb)}\n${JSON.stringify({ ...mostlyDb.report.lastJson, suggestedSection: 'X' })}\n`;
    const scenarios: Array<[string, Node, string]> = [
      ['healthy', healthy, healthy.report.stdout],
      ['CompactDatabase', mostlyDb, mostlyDb.report.stdout],
      ['EmergencyCleanup', full, full.report.stdout],
      ['unknown section', mostlyDb, unknown],
      ['no JSON line', mostlyDb, lines(mostlyDb)],
    ];
    for (const [name, n, stdout] of scenarios) {
      for (const step of walk(n, [], stdout).sim.path) {
        if (step.startsWith('Branch') || step.startsWith('Fail')) continue;
        const { sim } = walk(n, [step], stdout);
        const where = `${step} failing (${name}): ${sim.path.join(' → ')}`;
        expect(sim.status, where).toBe('Failed');
        expect(sim.path.at(-1), where).toBe('FailExecution');
        // A failed notification ends the execution Failed; any other failure is notified first.
        const after = sim.path.slice(sim.path.indexOf(step) + 1);
        if (!step.startsWith('Notify')) expect(after, where).toEqual(['NotifyFailure', 'FailExecution']);
      }
    }
  });

  it('never starts a remediation: it runs only the disk report, its own Python and SNS Publish', () => {
    for (const step of healthy.doc.mainSteps) {
      const inputs = (step.inputs ?? {}) as Record<string, unknown>;
      const where = `step ${String(step.name)} (${String(step.action)})`;
      expect(['aws:runCommand', 'aws:executeScript', 'aws:branch', 'aws:executeAwsApi'], where).toContain(
        step.action,
      );
      if (step.action === 'aws:runCommand')
        expect(inputs.DocumentName, where).toBe('StemeDB-Host-DiskReport');
      if (step.action === 'aws:executeAwsApi')
        expect([inputs.Service, inputs.Api], where).toEqual(['sns', 'Publish']);
      if (step.action === 'aws:executeScript') {
        const clients = [...String(inputs.Script).matchAll(/boto3\.client\(([^)]*)\)/g)].map((m) => m[1]);
        expect(
          clients.filter((c) => c !== "'ssm'"),
          where,
        ).toEqual([]);
      }
    }
    for (const n of [healthy, mostlyDb, full]) {
      const { sim, calls } = walk(n);
      // The embedded Python's only AWS call: reading the disk report's result.
      expect(calls.map((c) => `${c.service}.${c.op}`)).toEqual(['ssm.get_command_invocation']);
      const documents = sim.path.map(
        (s) => (sim.inputs[s] as { DocumentName?: string } | undefined)?.DocumentName,
      );
      expect(documents.filter((d) => d !== undefined)).toEqual(['StemeDB-Host-DiskReport']);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Host output is data (issue 8 item 9)

/** Text a host (or whoever controls its disk) may put in the report: format and SSM syntax, a newline, non-ASCII. */
const HOSTILE_TEXT =
  'x {} {0} {doc} {prefix!r:>99} }{ %s %(x)s %d %% {{ InstanceId }}\nline two\r\tnaïve ✓ \u2028end';

/** SNS Publish: printable ASCII, no line break or control character, at most 100 characters. */
function isValidSubject(subject: string): boolean {
  return /^[ -~]{1,100}$/.test(subject) && /^[A-Za-z0-9\p{P}]/u.test(subject);
}

/** The real report of `n` with its JSON result line changed by `change`. */
function withReport(n: Node, change: Record<string, unknown>): string {
  const lines = n.report.stdout.trim().split('\n');
  const json = { ...n.report.lastJson, ...change };
  return `${[...lines.slice(0, -1), HOSTILE_TEXT, JSON.stringify(json)].join('\n')}\n`;
}

/** Runs ReadDiagnosis (mostlyDb's document) on a command invocation whose output is `stdout`. */
function readDiagnosis(stdout: string): ScriptRun<Record<string, string>> {
  return runStepScript(
    mostlyDb.doc,
    'ReadDiagnosis',
    { commandId: COMMAND_ID, instanceId: INSTANCE, prefix: 'StemeDB' },
    { get_command_invocation: [{ ...invocation(mostlyDb.report), StandardOutputContent: stdout }] },
  );
}

describe('DiagnoseDiskFull treats host output as data', () => {
  it('reports a section name with {, }, %s, a newline and non-ASCII as unknown, instead of failing to format it', () => {
    const { sim } = walk(mostlyDb, [], withReport(mostlyDb, { suggestedSection: HOSTILE_TEXT }));
    expect(sim.path).toEqual(UNKNOWN_SECTION_PATH);
    const notify = published(sim, 'NotifyUnknown');
    // One line of printable ASCII (newline, tab and U+2028 a space, non-ASCII '?'), 64 characters at most.
    expect(notify.Message).toContain(
      'the disk report suggested "x {} {0} {doc} {prefix!r:>99} }{ %s %(x)s %d %% {{ InstanceId }}", which',
    );
    const short = readDiagnosis(withReport(mostlyDb, { suggestedSection: 'a{\n}\tnaïve ✓\u2028%s' }));
    expect(short.result.suggestedSection).toBe('a{ } na?ve ? %s');
    expect(isValidSubject(notify.Subject)).toBe(true);
  });

  it('keeps {, }, % and non-ASCII in every other host field as they are, in the message only', () => {
    const hostile = {
      usedPercent: '{u}',
      sizeBytes: '%s',
      availBytes: '{0}',
      dbBytes: '%(db)s',
      walBytes: '{}',
      reasons: [HOSTILE_TEXT],
      warnings: ['{', '}'],
    };
    const { sim } = walk(mostlyDb, [], withReport(mostlyDb, hostile));
    expect(sim.path).toEqual(['DiskReport', 'ReadDiagnosis', 'BranchOnDiagnosis', 'NotifyDiagnosis']);
    const notify = published(sim, 'NotifyDiagnosis');
    expect(notify.Subject).toBe(`StemeDB-DiagnoseDiskFull on ${INSTANCE}: run StemeDB-CompactDatabase`);
    expect(notify.Message).toContain('Figures: used {u}% of %s bytes ({0} available);');
    expect(notify.Message).toContain('WAL {} bytes in');
    expect(notify.Message).toContain('DB %(db)s bytes');
    expect(notify.Message).toContain(`(${HOSTILE_TEXT})`);
    expect(notify.Message).toContain('Warnings: {; }');
  });

  it('fills the advice only from its own templates: a section that looks like a placeholder is not expanded', () => {
    const run = readDiagnosis(withReport(mostlyDb, { suggestedSection: '{doc}{prefix}' }));
    expect(run.result.advice).toBe('Unknown section {doc}{prefix}.');
    expect(run.result.nextDocument).toBe('StemeDB-{doc}{prefix}');
  });

  it('never builds the script text from a template with host text in it: no str.format, %-format or f-string', () => {
    for (const step of mostlyDb.doc.mainSteps.filter((s) => s.action === 'aws:executeScript')) {
      const script = String((step.inputs as { Script: string }).Script);
      expect(script, String(step.name)).not.toMatch(/\.format(_map)?\(|['"]\s*%\s*[(\w]|\bf['"]/);
    }
  });

  it('keeps every diagnosis Subject valid for SNS with the longest prefix, whatever the host wrote', () => {
    const long = { ...mostlyDb, doc: automation(mostlyDb.mount, 'Abcdefghij0123456789') };
    const reports = [
      ...['EmergencyCleanup', 'WalCleanup', 'CompactDatabase', 'InodeCleanup', 'ExpandVolume'].map(
        (section) => withReport(long, { suggestedSection: section, recovered: false }),
      ),
      withReport(long, { suggestedSection: HOSTILE_TEXT }),
      withReport(long, { suggestedSection: 'x'.repeat(500) }),
      withReport(long, { suggestedSection: 'EmergencyCleanup', recovered: true }),
      withReport(long, { suggestedSection: `EmergencyCleanup\u0000\n` }),
    ];
    const subjects: string[] = [];
    for (const stdout of reports) {
      const { sim } = walk(long, [], stdout);
      for (const step of sim.path) {
        const subject = (sim.inputs[step] as { Subject?: string } | undefined)?.Subject;
        if (subject !== undefined) subjects.push(subject);
      }
    }
    expect(subjects.length).toBeGreaterThanOrEqual(reports.length);
    expect(subjects.filter((s) => !isValidSubject(s))).toEqual([]);
    // 110 characters with the document name: the section name stands in for it.
    expect(subjects).toContain(
      `URGENT Abcdefghij0123456789-DiagnoseDiskFull on ${INSTANCE}: run EmergencyCleanup`,
    );
    expect(subjects).toContain(
      `Abcdefghij0123456789-DiagnoseDiskFull on ${INSTANCE}: run Abcdefghij0123456789-WalCleanup`,
    );
    expect(subjects).toContain(`Abcdefghij0123456789-DiagnoseDiskFull on ${INSTANCE}: run CompactDatabase`);
  });
});
