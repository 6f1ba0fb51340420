import { readFileSync } from 'node:fs';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CommandDocumentContent } from '../lib/command-document';
import { DEFAULT_CONFIG, type PreventionConfig, resolveConfig, stackResourceCount } from '../lib/config';
import { PreventionDocuments, type PreventionDocumentsProps } from '../lib/prevention-documents';
import { ParameterValidationError, runCommandDocument } from './support/command-document-runner';
import { type SynthResult, synthStack, TWO_NODES_FILE } from './support/synth';

/**
 * lib/prevention-documents.ts: the runbook's "Prevention" documents and their opt-in State Manager
 * associations, in the synthesized template (the construct alone, and the whole stack once).
 */

const twoNodes = JSON.parse(readFileSync(TWO_NODES_FILE, 'utf8')) as Record<string, unknown>;
const INSTANCES = ['i-0123456789abcdef0', 'i-0fedcba9876543210'];

function construct(props: PreventionDocumentsProps = {}): Template {
  const stack = new Stack(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), 'PreventionTest');
  new PreventionDocuments(stack, 'Prevention', props);
  return Template.fromStack(stack);
}

function prevention(over: {
  journald?: Partial<PreventionConfig['journald']>;
  storage?: Partial<PreventionConfig['storage']>;
  scheduleDays?: number;
}): PreventionConfig {
  const d = DEFAULT_CONFIG.prevention;
  return {
    journald: { ...d.journald, ...over.journald },
    storage: { ...d.storage, ...over.storage },
    scheduleDays: over.scheduleDays ?? d.scheduleDays,
  };
}

function documentNamed(t: Template, name: string): CommandDocumentContent {
  const docs = Object.values(t.findResources('AWS::SSM::Document', { Properties: { Name: name } }));
  expect(docs, name).toHaveLength(1);
  return (docs[0] as { Properties: { Content: CommandDocumentContent } }).Properties.Content;
}

describe('the documents', () => {
  it('deploys <prefix>-Host-JournaldLimits and -StorageSettings as Command documents with the runbook defaults', () => {
    const t = construct({ prefix: 'Blue' });
    t.resourceCountIs('AWS::SSM::Document', 2);
    t.hasResourceProperties('AWS::SSM::Document', {
      Name: 'Blue-Host-JournaldLimits',
      DocumentType: 'Command',
      UpdateMethod: 'NewVersion',
    });
    const journald = documentNamed(t, 'Blue-Host-JournaldLimits').parameters ?? {};
    expect(journald.SystemMaxUse?.default).toBe('500M');
    expect(journald.MaxRetentionSec?.default).toBe('7day');
    expect(journald.DropInName).toMatchObject({
      default: 'Blue-limits.conf',
      allowedValues: ['Blue-limits.conf'],
    });
    expect(journald.DryRun?.default).toBe('true');
    const storage = documentNamed(t, 'Blue-Host-StorageSettings').parameters ?? {};
    expect(
      Object.fromEntries(
        [
          'CompactionEnabled',
          'CompactionIntervalHours',
          'CompactionThresholdMb',
          'BackupRetentionDays',
          'BackupCompressionEnabled',
          'RestartService',
          'DryRun',
        ].map((k) => [k, storage[k]?.default]),
      ),
    ).toEqual({
      CompactionEnabled: 'true',
      CompactionIntervalHours: '24',
      CompactionThresholdMb: '1000',
      BackupRetentionDays: '7',
      BackupCompressionEnabled: 'true',
      RestartService: 'false',
      DryRun: 'true',
    });
    t.resourceCountIs('AWS::SSM::Association', 0);
  });

  it('takes the configured values as defaults and accepts only this deployment’s file, unit, URL and drop-in', async () => {
    const t = construct({
      prefix: 'Green',
      configFile: '/opt/stemedb/stemedb.toml',
      serviceName: 'stemedb@green.service',
      healthUrl: 'http://127.0.0.1:28180/healthz',
      prevention: prevention({
        journald: { systemMaxUse: '2G', maxRetentionSec: '2week' },
        storage: { compactionIntervalHours: 12, backupRetentionDays: 14, backupCompressionEnabled: false },
      }),
    });
    const journald = documentNamed(t, 'Green-Host-JournaldLimits');
    expect(journald.parameters?.SystemMaxUse?.default).toBe('2G');
    expect(journald.parameters?.MaxRetentionSec?.default).toBe('2week');
    const storage = documentNamed(t, 'Green-Host-StorageSettings');
    expect(storage.parameters?.ConfigFile).toMatchObject({
      default: '/opt/stemedb/stemedb.toml',
      allowedValues: ['/opt/stemedb/stemedb.toml'],
    });
    expect(storage.parameters?.ServiceName?.allowedValues).toEqual(['stemedb@green.service']);
    expect(storage.parameters?.HealthUrl?.allowedValues).toEqual(['http://127.0.0.1:28180/healthz']);
    expect(storage.parameters?.CompactionIntervalHours?.default).toBe('12');
    expect(storage.parameters?.BackupRetentionDays?.default).toBe('14');
    expect(storage.parameters?.BackupCompressionEnabled?.default).toBe('false');
    // As SendCommand would check them: another file or drop-in is refused before anything runs.
    for (const [doc, name, value] of [
      [storage, 'ConfigFile', '/etc/passwd'],
      [storage, 'ServiceName', 'sshd'],
      [storage, 'HealthUrl', 'http://localhost:18180/v1/health'],
      [journald, 'DropInName', 'StemeDB-limits.conf'],
    ] as const) {
      const err = await runCommandDocument(doc, { [name]: value }).catch((e: unknown) => e);
      expect(err, name).toBeInstanceOf(ParameterValidationError);
      expect((err as ParameterValidationError).problems.join(' ')).toContain(name);
    }
  });
});

describe('the opt-in associations', () => {
  it('creates none unless the configuration opts in, and none without instances', () => {
    construct({ instanceIds: INSTANCES }).resourceCountIs('AWS::SSM::Association', 0);
    construct({
      prevention: prevention({ journald: { associate: true }, storage: { associate: true } }),
    }).resourceCountIs('AWS::SSM::Association', 0);
  });

  it('applies the journald limits on every node, for real (DryRun=false), daily', () => {
    const t = construct({
      instanceIds: INSTANCES,
      prevention: prevention({ journald: { associate: true, systemMaxUse: '1G' } }),
    });
    t.resourceCountIs('AWS::SSM::Association', 1);
    const docId = Object.keys(
      t.findResources('AWS::SSM::Document', { Properties: { Name: 'StemeDB-Host-JournaldLimits' } }),
    )[0];
    t.hasResourceProperties('AWS::SSM::Association', {
      Name: { Ref: docId },
      AssociationName: 'StemeDB-journald-limits-0',
      Targets: [{ Key: 'InstanceIds', Values: INSTANCES }],
      ScheduleExpression: 'rate(1 day)',
      Parameters: {
        SystemMaxUse: ['1G'],
        MaxRetentionSec: ['7day'],
        DropInName: ['StemeDB-limits.conf'],
        DryRun: ['false'],
      },
    });
  });

  it('applies the storage settings without ever restarting StemeDB, on the configured schedule', () => {
    const t = construct({
      instanceIds: INSTANCES,
      configFile: '/etc/stemedb/config.toml',
      prevention: prevention({ storage: { associate: true, compactionThresholdMb: 2000 }, scheduleDays: 7 }),
    });
    t.resourceCountIs('AWS::SSM::Association', 1);
    t.hasResourceProperties('AWS::SSM::Association', {
      AssociationName: 'StemeDB-storage-settings-0',
      ScheduleExpression: 'rate(7 days)',
      Parameters: {
        ConfigFile: ['/etc/stemedb/config.toml'],
        CompactionEnabled: ['true'],
        CompactionIntervalHours: ['24'],
        CompactionThresholdMb: ['2000'],
        BackupRetentionDays: ['7'],
        BackupCompressionEnabled: ['true'],
        RestartService: ['false'],
        ServiceName: ['stemedb-api'],
        HealthUrl: ['http://localhost:18180/v1/health'],
        DryRun: ['false'],
      },
    });
  });

  it('passes only values the document accepts (every association parameter against its pattern)', () => {
    const t = construct({
      instanceIds: INSTANCES,
      prevention: prevention({ journald: { associate: true }, storage: { associate: true } }),
    });
    const docs = Object.values(t.findResources('AWS::SSM::Document')) as Array<{
      Properties: { Name: string; Content: CommandDocumentContent };
    }>;
    const byLogicalId = Object.fromEntries(
      Object.entries(t.findResources('AWS::SSM::Document')).map(([id, r]) => [
        id,
        r as (typeof docs)[number],
      ]),
    );
    const associations = Object.values(t.findResources('AWS::SSM::Association')) as Array<{
      Properties: { Name: { Ref: string }; Parameters: Record<string, string[]> };
    }>;
    expect(associations).toHaveLength(2);
    for (const a of associations) {
      const doc = byLogicalId[a.Properties.Name.Ref]?.Properties.Content;
      expect(doc).toBeDefined();
      const declared = doc?.parameters ?? {};
      for (const [name, [value]] of Object.entries(a.Properties.Parameters)) {
        const spec = declared[name];
        expect(spec, name).toBeDefined();
        if (spec?.allowedPattern)
          expect(new RegExp(spec.allowedPattern).test(String(value)), name).toBe(true);
        if (spec?.allowedValues) expect(spec.allowedValues, name).toContain(value);
      }
    }
  });

  it('targets at most 50 instances per association', () => {
    const ids = Array.from({ length: 60 }, (_, i) => `i-${(i + 1).toString(16).padStart(17, '0')}`);
    const t = construct({ instanceIds: ids, prevention: prevention({ journald: { associate: true } }) });
    t.resourceCountIs('AWS::SSM::Association', 2);
    t.hasResourceProperties('AWS::SSM::Association', {
      AssociationName: 'StemeDB-journald-limits-1',
      Targets: [{ Key: 'InstanceIds', Values: ids.slice(50) }],
    });
  });
});

describe('props validation', () => {
  it.each([
    [
      { prevention: prevention({ journald: { systemMaxUse: '1K' } }) },
      /prevention\.journald\.systemMaxUse is "1K"/,
    ],
    [
      { prevention: prevention({ journald: { maxRetentionSec: '7days' } }) },
      /prevention\.journald\.maxRetentionSec/,
    ],
    [
      { prevention: prevention({ storage: { backupRetentionDays: 0 } }) },
      /prevention\.storage\.backupRetentionDays is 0/,
    ],
    [{ prevention: prevention({ scheduleDays: 31 }) }, /prevention\.scheduleDays is 31/],
    [{ instanceIds: ['i-123'] }, /instanceIds\[0\] is "i-123"/],
    [
      { configFile: '/etc/stemedb/my config.toml' },
      /PreventionDocuments configFile gives StemeDB-Host-StorageSettings ConfigFile/,
    ],
    [{ healthUrl: 'https://example.com/' }, /PreventionDocuments healthUrl gives/],
  ] as ReadonlyArray<[PreventionDocumentsProps, RegExp]>)('refuses %j naming the prop', (props, message) => {
    expect(() => construct(props)).toThrow(message);
  });
});

describe('in the stack', () => {
  let r: SynthResult;
  beforeAll(() => {
    r = synthStack({
      ...twoNodes,
      prevention: { journald: { associate: true }, storage: { associate: true, backupRetentionDays: 14 } },
    });
  }, 120_000);

  it('targets the configured nodes and counts in the resource budget', () => {
    r.template.hasResourceProperties('AWS::SSM::Association', {
      AssociationName: 'StemeDB-storage-settings-0',
      Targets: [{ Key: 'InstanceIds', Values: INSTANCES }],
      Parameters: Match.objectLike({ BackupRetentionDays: ['14'] }),
    });
    r.template.hasResourceProperties('AWS::SSM::Association', {
      AssociationName: 'StemeDB-journald-limits-0',
    });
    expect(Object.keys(r.template.toJSON().Resources ?? {})).toHaveLength(stackResourceCount(r.config));
  });

  it('config merges prevention.journald and prevention.storage key by key', () => {
    expect(r.config.prevention.storage).toMatchObject({
      backupRetentionDays: 14,
      compactionIntervalHours: 24,
    });
    expect(r.config.prevention.journald).toMatchObject({ associate: true, systemMaxUse: '500M' });
    expect(resolveConfig({}).prevention.journald.associate).toBe(false);
  });
});
