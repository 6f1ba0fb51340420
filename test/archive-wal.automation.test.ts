import { beforeAll, describe, expect, it } from 'vitest';
import { parseVerifyInput } from '../lambda/verify-archive';
import { type AutomationDocumentContent, loadAutomationDocumentContent } from '../lib/automation-document';
import { DEFAULT_CONFIG } from '../lib/config';
import { ARCHIVE_WAL_PATHS } from './support/archive-wal-paths';
import { runStepScript } from './support/automation-python';
import {
  type StepResult,
  simulateAutomation,
  validateAutomationDocument,
} from './support/automation-validator';
import { checkCommandParameters, synthesizeCommandDocument } from './support/command-document-runner';

/**
 * The StemeDB-ArchiveWal Automation: valid against AWS's schema and the repository's reference,
 * order and flow checks; the paths it takes (happy path, dry run, refusal, failures); the
 * contracts with the Command documents (names, parameters and their patterns), the Lambda's input
 * and the ExpandVolume fallback; and its embedded Python.
 */

const SUBSTITUTIONS = {
  Prefix: DEFAULT_CONFIG.prefix,
  VerifyArchiveFunctionName: 'StemeDB-VerifyArchive',
  TopicArn: 'arn:aws:sns:eu-west-1:123456789012:StemeDB-alerts',
  ArchiveBucket: 'stemedb-wal-archive-123456789012',
  WalDir: DEFAULT_CONFIG.walDir,
  DbDir: DEFAULT_CONFIG.dbDir,
  DataMount: DEFAULT_CONFIG.dataMount,
  ArchiveAfterDays: String(DEFAULT_CONFIG.wal.archiveAfterDays),
  AutomationRoleArn: 'arn:aws:iam::123456789012:role/StemeDB-Automation',
};
const INSTANCE = 'i-0123456789abcdef0';

let doc: AutomationDocumentContent;

beforeAll(() => {
  doc = loadAutomationDocumentContent('ArchiveWal', { substitutions: SUBSTITUTIONS });
});

type Outcomes = Record<string, StepResult>;

const VERIFIED: StepResult = {
  status: 'Success',
  outputs: { Status: 'verified', Reason: '', Verified: '3', Mismatched: '0', NotArchived: '0' },
};
const OK: StepResult = { status: 'Success', outputs: { Output: '{"status":"ok"}' } };

function simulate(parameters: Record<string, string>, outcomes: Outcomes = {}) {
  return simulateAutomation(doc, { InstanceId: INSTANCE, ...parameters }, (step) => {
    const given = outcomes[step];
    if (given !== undefined) return given;
    if (step === 'ResolveNode') return { status: 'Success', outputs: { Node: 'db-1', Prefix: 'wal/db-1/' } };
    if (step === 'VerifyArchive') return VERIFIED;
    if (step.startsWith('Fail')) return { status: 'Failed' };
    return OK;
  });
}

describe('ArchiveWal Automation document', () => {
  it('passes the schema, reference, order, flow and parameter checks', () => {
    expect(validateAutomationDocument(doc)).toEqual([]);
  });

  it('runs upload, verify, delete, disk report and notification in that order', () => {
    const sim = simulate({});
    expect(sim.path).toEqual(ARCHIVE_WAL_PATHS.verified);
    expect(sim.status).toBe('Success');
  });

  it('passes DryRun to every phase', () => {
    const sim = simulate({ DryRun: 'true' });
    const inputs = sim.inputs as Record<string, { Parameters?: Record<string, string>; Payload?: string }>;
    expect(inputs.UploadWal?.Parameters?.DryRun).toBe('true');
    expect(JSON.parse(inputs.VerifyArchive?.Payload ?? '{}')).toMatchObject({ dryRun: 'true' });
    expect(inputs.DeleteArchivedWal?.Parameters?.DryRun).toBe('true');
  });

  it('still runs the delete phase (which then only reports) when a dry run finds nothing to verify', () => {
    const refused = { status: 'Success' as const, outputs: { ...VERIFIED.outputs, Status: 'refused' } };
    const sim = simulate({ DryRun: 'true' }, { VerifyArchive: refused });
    expect(sim.path).toContain('DeleteArchivedWal');
    expect(sim.status).toBe('Success');
  });

  it('deletes nothing and ends Failed when the verification refuses in a real run', () => {
    const refused = { status: 'Success' as const, outputs: { ...VERIFIED.outputs, Status: 'refused' } };
    const sim = simulate({}, { VerifyArchive: refused });
    expect(sim.path).not.toContain('DeleteArchivedWal');
    expect(sim.path.slice(-2)).toEqual(['NotifyRefused', 'FailRefused']);
    expect(sim.status).toBe('Failed');
  });

  it.each(['ResolveNode', 'UploadWal', 'VerifyArchive', 'DeleteArchivedWal'])(
    'notifies and ends Failed when %s fails, running no later phase',
    (failing) => {
      const sim = simulate({}, { [failing]: { status: 'Failed' } });
      expect(sim.path.slice(-2)).toEqual(['NotifyFailure', 'FailExecution']);
      expect(sim.status).toBe('Failed');
      const phases = ['UploadWal', 'VerifyArchive', 'DeleteArchivedWal'];
      for (const later of phases.slice(phases.indexOf(failing) + 1)) expect(sim.path).not.toContain(later);
    },
  );

  it('still notifies success when only the disk report fails', () => {
    const sim = simulate({}, { DiskReport: { status: 'Failed' } });
    expect(sim.path.at(-1)).toBe('Notify');
    expect(sim.status).toBe('Success');
  });

  it('puts the upload and deletion results (bytes freed, files kept) in the notification', () => {
    const sim = simulate(
      {},
      { DeleteArchivedWal: { status: 'Success', outputs: { Output: '{"bytesFreed":42}' } } },
    );
    const notify = (sim.inputs as Record<string, { Message?: string }>).Notify;
    expect(notify?.Message).toContain('{"bytesFreed":42}');
    expect(notify?.Message).toContain('{"status":"ok"}');
  });

  it('accepts the runtime parameters the ExpandVolume fallback passes', () => {
    const fallback = {
      InstanceId: INSTANCE,
      AutomationAssumeRole: SUBSTITUTIONS.AutomationRoleArn,
      DryRun: 'false',
      Reason: 'expansion refused',
    };
    for (const name of Object.keys(fallback)) expect(doc.parameters).toHaveProperty(name);
    expect(simulate(fallback).status).toBe('Success');
  });

  it('defaults OlderThanDays to the configured archiveAfterDays', () => {
    expect(doc.parameters?.OlderThanDays?.default).toBe(String(DEFAULT_CONFIG.wal.archiveAfterDays));
  });
});

describe('ArchiveWal Automation contracts', () => {
  const runCommands: Array<[string, string]> = [
    ['UploadWal', 'ArchiveWal'],
    ['DeleteArchivedWal', 'DeleteArchivedWal'],
    ['DiskReport', 'DiskReport'],
  ];

  it.each(runCommands)('%s runs <Prefix>-Host-%s with parameters its patterns accept', (step, command) => {
    const sim = simulate({ DryRun: 'true' });
    const inputs = (
      sim.inputs as Record<string, { DocumentName?: string; Parameters?: Record<string, string> }>
    )[step];
    expect(inputs?.DocumentName).toBe(`StemeDB-Host-${command}`);
    expect(inputs?.Parameters).toBeDefined();
    const check = checkCommandParameters(synthesizeCommandDocument(command), inputs?.Parameters ?? {});
    expect(check.ok ? [] : check.problems).toEqual([]);
  });

  it('sends the Lambda an input it accepts, for the resolved node and its prefix', () => {
    const sim = simulate({});
    const payload = JSON.parse(
      (sim.inputs as Record<string, { Payload?: string }>).VerifyArchive?.Payload ?? '',
    );
    expect(parseVerifyInput(payload)).toEqual({
      bucket: SUBSTITUTIONS.ArchiveBucket,
      manifestKey: 'wal/db-1/_manifest/upload.json',
      expectedPrefix: 'wal/db-1/',
      node: 'db-1',
      dryRun: false,
    });
  });
});

describe('ArchiveWal Automation embedded Python (python3 with a stub boto3)', () => {
  /** Runs the step's handler; the stub EC2 DescribeTags answers `tags`. */
  function runStep(step: string, events: Record<string, string>, tags: unknown[] = []) {
    return runStepScript<Record<string, string>>(doc, step, events, { describe_tags: [{ Tags: tags }] });
  }

  it('uses the Node parameter when it is given', () => {
    expect(runStep('ResolveNode', { node: 'db-7', instanceId: INSTANCE }).result).toEqual({
      node: 'db-7',
      prefix: 'wal/db-7/',
    });
  });

  it("reads the node from the instance's stemedb:node tag when Node is empty", () => {
    const r = runStep('ResolveNode', { node: '', instanceId: INSTANCE }, [
      { Key: 'stemedb:node', Value: 'db-3' },
    ]);
    expect(r.result).toEqual({ node: 'db-3', prefix: 'wal/db-3/' });
    expect(r.calls.map((c) => c.service)).toEqual(['ec2']);
  });

  it('fails when the instance has no node tag, or the tag is not a node name', () => {
    expect(() => runStep('ResolveNode', { node: '', instanceId: INSTANCE })).toThrow(/no stemedb:node tag/);
    expect(() =>
      runStep('ResolveNode', { node: '', instanceId: INSTANCE }, [{ Key: 'stemedb:node', Value: '../x' }]),
    ).toThrow(/is not valid/);
  });

  it('FailRefused and FailExecution end the execution with the reason', () => {
    expect(() => runStep('FailRefused', { reason: 'manifest not found' })).toThrow(
      /verification refused, nothing deleted: manifest not found/,
    );
    expect(() => runStep('FailExecution', { execution: 'abc' })).toThrow(/ArchiveWal failed.*abc/);
  });
});
