/**
 * Host output is data (issue 8 item 9), for every Automation document as synthesized with the
 * longest prefix the configuration accepts (20 characters): each document is walked through its
 * paths with host commands whose output is hostile (format and SSM syntax, `%s`, newlines, control
 * characters, non-ASCII, very long values), its embedded Python run for real in python3, and every
 * SNS Publish it reaches must have a Subject SNS accepts: printable ASCII on one line, at most 100
 * characters, starting with a letter, digit or punctuation mark.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { AUTOMATION_DOCUMENTS } from '../contracts/sections';
import type { AutomationDocumentContent } from '../lib/automation-document';
import type { DiskRemediation } from '../lib/disk-remediation';
import { executeScriptStep } from './support/automation-python';
import { type StepResult, simulateAutomation } from './support/automation-validator';
import { synthStack } from './support/synth';

const PREFIX = 'Abcdefghij0123456789';
const INSTANCE = 'i-0123456789abcdef0';
/** The parameters without a default (the rest take their defaults, the configured values). */
const REQUIRED = { InstanceId: INSTANCE, VolumeId: 'vol-0123456789abcdef0' };

/** Format and SSM syntax, a newline, a carriage return, a tab, NUL, U+2028 and non-ASCII letters. */
const HOSTILE =
  'x {} {0} {doc} }{ %s %(x)s %% {{ InstanceId }}\nline two\r\tna\u00efve \u2713\u2028\u0000end';
const LONG = `${'9'.repeat(40)}.${'9'.repeat(40)}`;

/** One JSON result line as every host script could print it, with `value` in every field. */
function report(value: unknown, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const leaf = {
    usedPercent: value,
    freePercent: value,
    inodesFreePercent: value,
    availBytes: value,
    sizeBytes: value,
    bytesFreed: value,
  };
  return {
    status: value,
    reason: value,
    suggestedSection: value,
    recovered: value,
    healthy: value,
    ...leaf,
    inodesFree: value,
    inodesTotal: value,
    walBytes: value,
    walSegments: value,
    oldestWalAgeDays: value,
    dbBytes: value,
    otherBytes: value,
    dbBytesBefore: value,
    dbBytesAfter: value,
    dbBytesFreed: value,
    availBytesBefore: value,
    availBytesAfter: value,
    fsBytesFreed: value,
    usedPercentBefore: value,
    usedPercentAfter: value,
    durationSeconds: value,
    filesDeleted: value,
    inodesFreed: value,
    availBytesFreed: value,
    reasons: [value, value],
    warnings: [value],
    problems: [value],
    failed: [value, value, value, value, value, value],
    checks: ['disk', 'inodes', 'service', 'write', 'journal'].map((name) => ({
      name: value,
      ok: false,
      detail: `${name} ${String(value)}`,
    })),
    before: leaf,
    after: leaf,
    steps: {
      backups: { dir: value, status: value },
      journal: { command: value, status: value },
      coreDumps: { dir: value },
    },
    service: { name: value, action: value, healthy: value },
    allowedDirs: [{ dir: value, status: value, deleted: value, skippedOpen: value, skippedRecent: value }],
    busiestDirs: [{ dir: value, entries: value }],
    ...overrides,
  };
}

/** The host reports each document is walked with: hostile text, huge numbers, and known words with hostile figures. */
const REPORTS: ReadonlyArray<
  readonly [string, Record<string, unknown>, Readonly<Record<string, Record<string, string>>>?]
> = [
  ['hostile text everywhere', report(HOSTILE)],
  ['an 81-character number everywhere', report(LONG)],
  ['a number with a newline', report('97.5\n')],
  [
    'unhealthy, every check failed',
    report(HOSTILE, { healthy: false, failed: ['disk', 'inodes', 'service', 'write', 'journal'] }),
  ],
  [
    'not recovered, known sections',
    report(HOSTILE, {
      recovered: false,
      healthy: false,
      suggestedSection: 'EmergencyCleanup',
      status: 'refused',
    }),
  ],
  [
    'compacted, recovered',
    report(HOSTILE, { recovered: true, status: 'compacted', suggestedSection: 'CompactDatabase' }),
  ],
  ['an 18-character status', report(HOSTILE, { status: 'a-status-of-18-ch' })],
  ['a known section, not recovered', report(HOSTILE, { recovered: false, suggestedSection: 'WalCleanup' })],
  ['recovered figures', report('42.5', { recovered: true, healthy: true, failed: [] })],
  ['still full figures', report('99.5', { recovered: false })],
  [
    'the expansion refused',
    report('99.5'),
    { ExpandVolume: { Status: 'refused', VolumeId: 'vol-0123456789abcdef0', Reason: 'at the 4096 GiB cap' } },
  ],
];

/** What the Lambdas return (not host text: their own code's words), so the walks go past them. */
const LAMBDA_OUTPUTS: Readonly<Record<string, Record<string, string>>> = {
  ExpandVolume: {
    Status: 'started',
    VolumeId: 'vol-0123456789abcdef0',
    CurrentSizeGiB: '100',
    TargetSizeGiB: '150',
    SnapshotId: 'snap-0123456789abcdef0',
    Reason: 'grown by 50%',
    RetryAfter: '',
  },
  WaitForOptimizing: { Status: 'ready', State: 'optimizing' },
  WaitForOptimizingAgain: { Status: 'ready' },
  VerifyArchive: { Status: 'verified', Reason: '', Verified: '3', Mismatched: '0', NotArchived: '0' },
};

/** SNS Publish: printable ASCII, no line break or control character, at most 100 characters. */
function subjectProblem(subject: unknown): string | undefined {
  if (typeof subject !== 'string') return `not a string: ${JSON.stringify(subject)}`;
  if (!/^[ -~]{1,100}$/.test(subject))
    return `not 1-100 printable ASCII characters: ${JSON.stringify(subject)}`;
  if (!/^[A-Za-z0-9\p{P}]/u.test(subject))
    return `does not start with a letter, digit or punctuation: ${subject}`;
  return undefined;
}

interface Published {
  readonly step: string;
  readonly subject: unknown;
  readonly where: string;
}

/** Walks `doc` with every host command printing `stdout`; `failing` steps fail. Returns what was published. */
function walk(
  doc: AutomationDocumentContent,
  stdout: string,
  failing: readonly string[],
  label: string,
  lambdas: Readonly<Record<string, Record<string, string>>> = {},
): { published: Published[]; path: readonly string[] } {
  const ran: string[] = [];
  const published: Published[] = [];
  const sim = simulateAutomation(doc, REQUIRED, (step, inputs): StepResult => {
    ran.push(step);
    const action = doc.mainSteps.find((s) => s.name === step)?.action;
    if (action === 'aws:executeAwsApi') {
      const { Service, Api, Subject } = inputs as { Service: string; Api: string; Subject?: unknown };
      if (Service === 'sns' && Api === 'Publish') published.push({ step, subject: Subject, where: '' });
    }
    if (failing.includes(step)) return { status: 'Failed' };
    switch (action) {
      case 'aws:runCommand':
        return {
          status: 'Success',
          outputs: {
            CommandId: `c-${step}`,
            Status: 'Success',
            ResponseCode: '0',
            Output: stdout.slice(0, 2500),
          },
        };
      case 'aws:executeScript': {
        const executions = ran.map((name) => ({
          StepName: name,
          StepStatus: 'Success',
          Outputs: { CommandId: [`c-${name}`], Status: ['Success'] },
        }));
        return executeScriptStep(doc, step, inputs, {
          get_automation_execution: [{ AutomationExecution: { StepExecutions: executions } }],
          get_command_invocation: [
            {
              Status: 'Success',
              ResponseCode: 0,
              StandardOutputContent: stdout,
              StandardErrorContent: HOSTILE,
            },
          ],
          list_commands: [{ Commands: [] }],
          describe_tags: [{ Tags: [{ Key: 'stemedb:node', Value: 'db-1' }] }],
          get_metric_data: [{ MetricDataResults: [] }],
        });
      }
      case 'aws:invokeLambdaFunction': {
        // Every declared output (empty unless given), so a Lambda this table does not know still lets the walk go on.
        const declared = (doc.mainSteps.find((s) => s.name === step)?.outputs ?? []) as Array<{
          Name: string;
        }>;
        const empty = Object.fromEntries(declared.map((o) => [o.Name, '']));
        return { status: 'Success', outputs: { ...empty, ...LAMBDA_OUTPUTS[step], ...lambdas[step] } };
      }
      case 'aws:executeAutomation':
        return { status: 'Success', outputs: { ExecutionId: 'e-1', Status: 'Success' } };
      default:
        return { status: 'Success', outputs: { MessageId: `m-${step}` } };
    }
  });
  const where = `${label}${failing.length > 0 ? `, ${failing.join(', ')} failing` : ''}: ${sim.path.join(' → ')}`;
  return { published: published.map((p) => ({ ...p, where })), path: sim.path };
}

let documents: Record<string, AutomationDocumentContent>;

beforeAll(() => {
  const { stack } = synthStack({ prefix: PREFIX });
  const remediation = stack.node.findChild('Remediation') as DiskRemediation;
  documents = Object.fromEntries(
    Object.entries(remediation.automationDocuments).map(([name, d]) => [name, d.content]),
  );
}, 120_000);

/** Publish steps whose Subject holds a step output (the rest hold only the prefix, the instance and fixed text). */
function dynamicSubjectSteps(doc: AutomationDocumentContent): string[] {
  return doc.mainSteps
    .filter((s) => s.action === 'aws:executeAwsApi')
    .filter((s) =>
      /\{\{ ?[A-Za-z0-9]+\.[A-Za-z0-9]+ ?\}\}/.test(String((s.inputs as { Subject?: unknown }).Subject)),
    )
    .map((s) => String(s.name));
}

describe('every SNS Subject of every Automation stays valid whatever the host prints', () => {
  const names = [...AUTOMATION_DOCUMENTS].sort();

  it('covers every Automation document of the stack', () => {
    expect(Object.keys(documents).sort()).toEqual(names);
    expect(names.length).toBeGreaterThanOrEqual(8);
  });

  it.each(names)(
    '%s',
    (name) => {
      const doc = documents[name] as AutomationDocumentContent;
      const published: Published[] = [];
      for (const [label, json, lambdas] of REPORTS) {
        const stdout = `${HOSTILE}\n${JSON.stringify(json)}\n`;
        const happy = walk(doc, stdout, [], label, lambdas);
        published.push(...happy.published);
        // Each step of the path failing in turn reaches the failure notifications too.
        if (label === REPORTS[0]?.[0]) {
          // (A failing notification goes on to NotifyFailure, reached here anyway.)
          for (const step of happy.path.filter((s) => !/^(Branch|Notify|Fail)/.test(s)))
            published.push(...walk(doc, stdout, [step], label).published);
        }
      }
      const problems = published
        .map((p) => [p, subjectProblem(p.subject)] as const)
        .filter(([, problem]) => problem !== undefined)
        .map(([p, problem]) => `${p.step} (${p.where}): ${problem}`);
      expect(problems).toEqual([]);
      const reached = new Set(published.map((p) => p.step));
      expect(dynamicSubjectSteps(doc).filter((s) => !reached.has(s))).toEqual([]);
    },
    120_000,
  );
});
