/**
 * Every Automation document in the tree (`ssm-documents/*.automation.yml`, whoever adds it) is
 * validated against AWS's published Automation schema (corrected where stale) plus the reference,
 * step-name, target, order, flow and parameter checks; the validator itself is shown to catch each
 * kind of mistake; and the AutomationDocument construct is checked as synthesized.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import { App, Stack, Token } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as sns from 'aws-cdk-lib/aws-sns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { remediationReason } from '../lambda/alarm-router';
import {
  AutomationDocument,
  type AutomationDocumentContent,
  AutomationDocumentError,
  loadAutomationDocumentContent,
  placeholdersIn,
  REASON_PATTERN,
  SHARED_SUBSTITUTIONS,
  substitutePlaceholders,
} from '../lib/automation-document';
import { type CommandDocumentContent, isAnchoredPattern, REPO_ROOT } from '../lib/command-document';
import { DEFAULT_CONFIG } from '../lib/config';
import type { DiskRemediation } from '../lib/disk-remediation';
import {
  type AutomationCheck,
  publishedSchemaPath,
  schemaProblems,
  validateAutomationDocument,
} from './support/automation-validator';
import { acceptsValue, type OperatorParameter, valuesToRefuse } from './support/operator-parameters';
import { stackArn } from './support/stack-arn';
import { synthStack } from './support/synth';

const DOCUMENTS_DIR = join(REPO_ROOT, 'ssm-documents');

/** `expand-volume.automation.yml` → `ExpandVolume`. */
function documentNameOf(file: string): string {
  return file
    .replace(/\.automation\.yml$/, '')
    .split('-')
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join('');
}

/**
 * A plausible value for a placeholder: configuration keys from DEFAULT_CONFIG (`${DataMount}` →
 * dataMount, `${RetentionDays}` → wal.retentionDays), well-known deploy-time names, then a
 * value shaped by the name's suffix.
 */
function dummyValue(placeholder: string): string {
  const known: Record<string, string> = {
    Prefix: DEFAULT_CONFIG.prefix,
    AutomationRoleArn: 'arn:aws:iam::123456789012:role/StemeDB-Automation',
    TopicArn: 'arn:aws:sns:eu-west-1:123456789012:StemeDB-alerts',
    KeyArn: 'arn:aws:kms:eu-west-1:123456789012:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0',
    Bucket: 'stemedb-wal-archive-123456789012',
    BucketName: 'stemedb-wal-archive-123456789012',
  };
  if (known[placeholder] !== undefined) return known[placeholder];
  const camel = (s: string): string => s.charAt(0).toLowerCase() + s.slice(1);
  const lookups: [unknown, string][] = [[DEFAULT_CONFIG, camel(placeholder)]];
  for (const [section, values] of Object.entries(DEFAULT_CONFIG)) {
    const head = section.charAt(0).toUpperCase() + section.slice(1);
    if (typeof values === 'object' && values !== null && !Array.isArray(values)) {
      lookups.push([values, camel(placeholder)]);
      if (placeholder.startsWith(head)) lookups.push([values, camel(placeholder.slice(head.length))]);
    }
  }
  for (const [section, key] of lookups) {
    const value = (section as Record<string, unknown>)[key];
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
      return String(value);
  }
  if (placeholder.endsWith('FunctionName')) return `StemeDB-${placeholder.replace(/FunctionName$/, '')}`;
  if (placeholder.endsWith('FunctionArn'))
    return `arn:aws:lambda:eu-west-1:123456789012:function:StemeDB-${placeholder.replace(/FunctionArn$/, '')}`;
  if (placeholder.endsWith('RoleArn')) return 'arn:aws:iam::123456789012:role/StemeDB-Dummy';
  if (placeholder.endsWith('Arn')) return 'arn:aws:sns:eu-west-1:123456789012:StemeDB-dummy';
  if (/(Dir|Mount|Path)$/.test(placeholder)) return '/data/dummy';
  if (/(Days|Count|Seconds|Minutes|Percent|GiB|Mb)$/.test(placeholder)) return '1';
  if (placeholder.endsWith('Url')) return 'http://localhost:18180/v1/health';
  return 'dummy';
}

function loadWithDummies(file: string): unknown {
  const raw = parseYaml(readFileSync(join(DOCUMENTS_DIR, file), 'utf8'));
  const substitutions = Object.fromEntries(
    [...placeholdersIn(raw)]
      .filter((p) => !Object.hasOwn(SHARED_SUBSTITUTIONS, p))
      .map((p) => [p, dummyValue(p)]),
  );
  return loadAutomationDocumentContent(documentNameOf(file), {
    definitionFile: join('ssm-documents', file),
    substitutions,
  });
}

const automationFiles = readdirSync(DOCUMENTS_DIR)
  .filter((f) => f.endsWith('.automation.yml'))
  .sort();

describe('every Automation document in ssm-documents/', () => {
  it('finds at least the ExpandVolume document', () => {
    expect(automationFiles).toContain('expand-volume.automation.yml');
  });

  it.each(automationFiles)(
    '%s passes the schema, reference, name, target, order, flow and parameter checks',
    (file) => {
      expect(validateAutomationDocument(loadWithDummies(file))).toEqual([]);
    },
  );
});

// ---------------------------------------------------------------------------------------------
// The validator catches each kind of mistake

/** A small valid document; each test breaks one thing. */
function baseDocument(): Record<string, unknown> {
  return {
    schemaVersion: '0.3',
    assumeRole: '{{ AutomationAssumeRole }}',
    parameters: {
      InstanceId: { type: 'String', allowedPattern: '^i-[0-9a-f]{8}([0-9a-f]{9})?$' },
      DryRun: { type: 'String', default: 'false', allowedValues: ['true', 'false'] },
      AutomationAssumeRole: {
        type: 'String',
        default: '',
        allowedPattern: '^(arn:aws:iam::[0-9]{12}:role/[A-Za-z0-9-]+)?$',
      },
    },
    mainSteps: [
      {
        name: 'Check',
        action: 'aws:invokeLambdaFunction',
        onFailure: 'step:Report',
        inputs: {
          FunctionName: 'check',
          Payload: '{"instanceId": "{{ InstanceId }}", "dryRun": "{{ DryRun }}"}',
        },
        outputs: [{ Name: 'Status', Selector: '$.Payload.status', Type: 'String' }],
      },
      {
        name: 'Decide',
        action: 'aws:branch',
        inputs: {
          Choices: [{ NextStep: 'Act', Variable: '{{ Check.Status }}', StringEquals: 'go' }],
          Default: 'Report',
        },
      },
      {
        name: 'Act',
        action: 'aws:runCommand',
        onFailure: 'step:Report',
        inputs: { DocumentName: 'StemeDB-Host-Act', InstanceIds: ['{{ InstanceId }}'] },
        nextStep: 'Report',
      },
      {
        name: 'Report',
        action: 'aws:executeAwsApi',
        inputs: {
          Service: 'sns',
          Api: 'Publish',
          TopicArn: 'arn:aws:sns:eu-west-1:123456789012:t',
          Message: 'done {{ InstanceId }} {{ automation:EXECUTION_ID }} {{ global:REGION }}',
        },
        isEnd: true,
      },
    ],
    outputs: ['Check.Status'],
  };
}

type Doc = ReturnType<typeof baseDocument>;

function steps(doc: Doc): Record<string, unknown>[] {
  return doc.mainSteps as Record<string, unknown>[];
}

function step(doc: Doc, name: string): Record<string, unknown> {
  const found = steps(doc).find((s) => s.name === name);
  if (found === undefined) throw new Error(`no step ${name}`);
  return found;
}

function checksFailed(doc: unknown): AutomationCheck[] {
  return [...new Set(validateAutomationDocument(doc).map((p) => p.check))];
}

function messages(doc: unknown): string {
  return validateAutomationDocument(doc)
    .map((p) => `${p.check}: ${p.message}`)
    .join('\n');
}

describe('the Automation validator', () => {
  it('accepts the valid base document', () => {
    expect(validateAutomationDocument(baseDocument())).toEqual([]);
  });

  /** The `inputs` of the base document's step `name`. */
  const inputsOf = (doc: Doc, name: string) => step(doc, name).inputs as Record<string, unknown>;
  /** The first choice of the base document's branch. */
  const firstChoice = (doc: Doc) =>
    (inputsOf(doc, 'Decide') as { Choices: Record<string, unknown>[] }).Choices[0] as Record<string, unknown>;

  // [the test's name, the one thing changed in the base document, the checks that fail (all of
  // them, or expect.arrayContaining for "at least"), and a text the messages hold]
  it.each<[string, (doc: Doc) => unknown, unknown, string?]>([
    [
      'fails the targets check for a nextStep that names no step',
      (doc) => Object.assign(step(doc, 'Act'), { nextStep: 'Reprot' }),
      ['targets'],
      'Act.nextStep names step "Reprot"',
    ],
    [
      'fails the targets check for an onFailure step that does not exist',
      (doc) => Object.assign(step(doc, 'Act'), { onFailure: 'step:Rollback' }),
      expect.arrayContaining(['targets']),
      'Act.onFailure names step "Rollback"',
    ],
    [
      'fails the references check for an unknown parameter',
      (doc) => Object.assign(inputsOf(doc, 'Act'), { InstanceIds: ['{{ InstanceID }}'] }),
      ['references'],
      '{{ InstanceID }}',
    ],
    [
      'fails the references check for an output the step does not have',
      (doc) => Object.assign(inputsOf(doc, 'Report'), { Message: '{{ Check.Result }}' }),
      expect.arrayContaining(['references']),
      'step Check has no output Result',
    ],
    [
      'fails the references check for an unknown system variable',
      (doc) => Object.assign(inputsOf(doc, 'Report'), { Message: '{{ automation:NODE }}' }),
      ['references'],
    ],
    [
      'accepts the predefined outputs of an action without an outputs section',
      (doc) => Object.assign(inputsOf(doc, 'Act'), { Comment: '{{ Check.Payload }} {{ Check.StatusCode }}' }),
      [],
    ],
    [
      'fails the references check for a document output of a missing step',
      (doc) => Object.assign(doc, { outputs: ['Missing.Status'] }),
      ['references'],
    ],
    [
      'fails the step-names check for a duplicate step name',
      (doc) => Object.assign(step(doc, 'Act'), { name: 'Check' }),
      expect.arrayContaining(['step-names']),
      'step name Check is used more than once',
    ],
    [
      'fails the order check for a step that reads an output on a path where its step failed',
      (doc) => Object.assign(inputsOf(doc, 'Report'), { Message: 'status {{ Check.Status }}' }),
      ['order'],
      'step Report reads {{ Check.Status }}, but can run without step Check',
    ],
    [
      'fails the order check when the producing step continues on failure',
      (doc) => Object.assign(step(doc, 'Check'), { onFailure: 'Continue' }),
      ['order'],
    ],
    [
      'fails the flow check for a step no path reaches',
      (doc) => steps(doc).push({ name: 'Orphan', action: 'aws:sleep', inputs: { Duration: 'PT1S' } }),
      ['flow'],
    ],
    [
      'fails the schema check for an unknown action',
      (doc) => Object.assign(step(doc, 'Act'), { action: 'aws:runShellScript' }),
      expect.arrayContaining(['schema']),
    ],
    [
      'fails the schema check for a step property the schema does not know',
      (doc) => Object.assign(step(doc, 'Act'), { onError: 'Abort' }),
      ['schema'],
    ],
    [
      'fails the schema check for a missing required input',
      (doc) => Object.assign(inputsOf(doc, 'Act'), { DocumentName: undefined }),
      ['schema'],
    ],
    [
      'fails the schema check for a branch choice with two operators (extension 5)',
      (doc) => Object.assign(firstChoice(doc), { StartsWith: 'g' }),
      ['schema'],
    ],
    [
      'fails the schema check for a branch choice without NextStep (extension 5)',
      (doc) => Object.assign(firstChoice(doc), { NextStep: undefined }),
      expect.arrayContaining(['schema']),
    ],
    [
      'accepts nested And/Or/Not branch conditions (extension 5)',
      (doc) =>
        Object.assign(inputsOf(doc, 'Decide'), {
          Choices: [
            {
              NextStep: 'Act',
              And: [
                { Variable: '{{ Check.Status }}', StringEquals: 'go' },
                { Not: { Variable: '{{ DryRun }}', StringEquals: 'true' } },
              ],
            },
          ],
        }),
      [],
    ],
    [
      'accepts onCancel, which the published schema rejects (extension 2)',
      (doc) => Object.assign(step(doc, 'Act'), { onCancel: 'step:Report' }),
      [],
    ],
    [
      'fails the schema check for a step output without a Selector (extension 8)',
      (doc) =>
        Object.assign(step(doc, 'Check'), { outputs: [{ Name: 'Status', Selecter: '$.Payload.status' }] }),
      expect.arrayContaining(['schema']),
    ],
    [
      'fails the parameters check for a String parameter with neither pattern nor values',
      (doc) => Object.assign(doc.parameters as object, { InstanceId: { type: 'String' } }),
      ['parameters'],
    ],
    [
      'fails the parameters check for a pattern that is not anchored',
      (doc) =>
        Object.assign(doc.parameters as object, {
          InstanceId: { type: 'String', allowedPattern: '^i-[0-9a-f]+|x$' },
        }),
      ['parameters'],
    ],
    [
      'fails the parameters check for a default outside the allowed values',
      (doc) =>
        Object.assign(doc.parameters as object, {
          DryRun: { type: 'String', default: 'yes', allowedValues: ['true', 'false'] },
        }),
      ['parameters'],
    ],
  ])('%s', (_name, change, fails, says) => {
    const doc = baseDocument();
    change(doc);
    expect(checksFailed(doc)).toEqual(fails);
    if (says !== undefined) expect(messages(doc)).toContain(says);
  });

  it('fails the targets check for a branch NextStep or Default that does not exist', () => {
    const doc = baseDocument();
    const inputs = step(doc, 'Decide').inputs as { Choices: { NextStep: string }[]; Default: string };
    (inputs.Choices[0] as { NextStep: string }).NextStep = 'Nowhere';
    inputs.Default = 'Elsewhere';
    expect(messages(doc)).toContain('Decide.inputs.Choices[0].NextStep names step "Nowhere"');
    expect(messages(doc)).toContain('Decide.inputs.Default names step "Elsewhere"');
  });

  it('fails the schema check for a Python runtime AWS no longer accepts (extension 4)', () => {
    const doc = baseDocument();
    steps(doc).splice(3, 0, {
      name: 'Script',
      action: 'aws:executeScript',
      inputs: { Runtime: 'python3.7', Handler: 'h', Script: 'def h(e, c):\n  return {}' },
    });
    step(doc, 'Act').nextStep = 'Script';
    expect(checksFailed(doc)).toEqual(['schema']);
    (step(doc, 'Script').inputs as Record<string, unknown>).Runtime = 'python3.11';
    expect(validateAutomationDocument(doc)).toEqual([]);
  });

  it('needs the extensions: the published schema alone rejects onCancel and python3.11', () => {
    const published = JSON.parse(readFileSync(publishedSchemaPath(), 'utf8')) as object;
    const validate = new Ajv({ strict: false, unicodeRegExp: false }).compile(published);
    const withOnCancel = baseDocument();
    step(withOnCancel, 'Act').onCancel = 'Abort';
    expect(validate(withOnCancel)).toBe(false);
    expect(schemaProblems(withOnCancel)).toEqual([]);
    const withPython311 = baseDocument();
    step(withPython311, 'Report').isEnd = false;
    steps(withPython311).push({
      name: 'Script',
      action: 'aws:executeScript',
      inputs: { Runtime: 'python3.11', Handler: 'h', Script: 'def h(e, c):\n  return {}' },
    });
    expect(validate(withPython311)).toBe(false);
    expect(schemaProblems(withPython311)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// The construct

describe('AutomationDocument', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'automation-document-'));
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function writeDefinition(name: string, doc: unknown): string {
    const file = join(dir, `${name}.automation.yml`);
    writeFileSync(file, stringify(doc));
    return file;
  }

  function expandVolumeSubstitutions(stack: Stack): Record<string, string> {
    const topic = new sns.Topic(stack, 'Topic');
    const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('ssm.amazonaws.com') });
    return {
      Prefix: 'StemeDB',
      DataMount: '/data',
      WalDir: '/data/wal',
      DbDir: '/data/db',
      AutomationRoleArn: role.roleArn,
      TopicArn: topic.topicArn,
      ExpandVolumeFunctionName: 'StemeDB-expand-volume',
      WaitForModificationFunctionName: 'StemeDB-wait-for-modification',
      MigrateWhenRefused: 'false',
    };
  }

  /** The ExpandVolume document built by the construct in a fresh stack, with its substitutions. */
  function expandVolumeDocument(): { stack: Stack; doc: AutomationDocument } {
    const stack = new Stack(new App(), 'Test');
    const doc = new AutomationDocument(stack, 'ExpandVolume', {
      prefix: 'StemeDB',
      name: 'ExpandVolume',
      substitutions: expandVolumeSubstitutions(stack),
    });
    return { stack, doc };
  }

  it('synthesizes an Automation CfnDocument named <prefix>-<name>, updated as a new version', () => {
    const { stack } = expandVolumeDocument();
    Template.fromStack(stack).hasResourceProperties('AWS::SSM::Document', {
      Name: 'StemeDB-ExpandVolume',
      DocumentType: 'Automation',
      DocumentFormat: 'JSON',
      UpdateMethod: 'NewVersion',
      Content: Match.objectLike({ schemaVersion: '0.3', assumeRole: '{{ AutomationAssumeRole }}' }),
    });
  });

  it('puts CDK tokens where the placeholders were (topic Ref, role GetAtt, names)', () => {
    const { stack, doc } = expandVolumeDocument();
    const content = stack.resolve(doc.resource.content) as {
      parameters: Record<string, { default?: unknown }>;
      mainSteps: { name: string; inputs: Record<string, unknown> }[];
    };
    const byName = (n: string) => content.mainSteps.find((s) => s.name === n)?.inputs;
    expect(byName('Notify')?.TopicArn).toEqual({ Ref: 'TopicBFC7AF6E' });
    expect(content.parameters.AutomationAssumeRole?.default).toEqual({
      'Fn::GetAtt': ['Role1ABCC5F0', 'Arn'],
    });
    expect(byName('ExpandVolume')?.FunctionName).toBe('StemeDB-expand-volume');
    expect(byName('GrowFilesystem')?.DocumentName).toBe('StemeDB-Host-ExpandVolume');
    expect(content.parameters.MountPoint?.default).toBe('/data');
    expect(JSON.stringify(content)).not.toMatch(/\$\{[A-Za-z]/);
  });

  it('exposes the document ARN and the automation-definition ARN for StartAutomationExecution', () => {
    const { stack, doc } = expandVolumeDocument();
    const arnOf = (v: string) => stack.resolve(v) as { 'Fn::Join': [string, unknown[]] };
    expect(arnOf(doc.automationDefinitionArn)).toEqual(
      stackArn('ssm', ':automation-definition/StemeDB-ExpandVolume:$DEFAULT'),
    );
    expect(arnOf(doc.documentArn)['Fn::Join'][1]).toContain(':document/StemeDB-ExpandVolume');
    expect(doc.documentName).toBe('StemeDB-ExpandVolume');
  });

  it('throws naming a placeholder that has no substitution', () => {
    const file = writeDefinition('unknown', {
      ...baseDocument(),
      description: `for \${Nope} and \${Prefix}`,
    });
    expect(
      () =>
        new AutomationDocument(new Stack(), 'D', {
          prefix: 'StemeDB',
          name: 'Unknown',
          definitionFile: file,
          substitutions: { Prefix: 'S' },
        }),
    ).toThrow(/placeholder \$\{Nope\} has no substitution/);
  });

  it('throws naming a substitution that no placeholder uses', () => {
    const file = writeDefinition('unused', baseDocument());
    expect(() =>
      loadAutomationDocumentContent('Unused', { definitionFile: file, substitutions: { TopicArn: 'arn:x' } }),
    ).toThrow(/substitution TopicArn is not used/);
  });

  it('lists every placeholder problem at once', () => {
    const file = writeDefinition('several', { ...baseDocument(), description: `\${A} \${B}` });
    try {
      loadAutomationDocumentContent('Several', { definitionFile: file, substitutions: { C: 'c' } });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(AutomationDocumentError);
      expect((err as AutomationDocumentError).problems).toHaveLength(3);
    }
  });

  it('keeps a doubled dollar placeholder as a literal placeholder', () => {
    expect(substitutePlaceholders({ a: [`$\${Keep} \${Put}`] }, { Put: 'x' })).toEqual({ a: [`\${Keep} x`] });
  });

  it('substitutes a value once, never re-reading placeholders inside it', () => {
    expect(substitutePlaceholders(`\${A}`, { A: `\${B}` })).toBe(`\${B}`);
  });

  it('throws naming the parameter when a known default breaks its own pattern', () => {
    const doc = baseDocument();
    (doc.parameters as Record<string, unknown>).Dir = {
      type: 'String',
      default: `\${DataMount}`,
      allowedPattern: '^(/[a-z]+)+$',
    };
    const file = writeDefinition('bad-default', doc);
    expect(() =>
      loadAutomationDocumentContent('BadDefault', {
        definitionFile: file,
        substitutions: { DataMount: '/data/' },
      }),
    ).toThrow(/parameters\.Dir\.default "\/data\/" does not match its allowedPattern/);
  });

  it('substitutes placeholders in allowedValues, and checks the default against them', () => {
    const doc = baseDocument();
    (doc.parameters as Record<string, unknown>).Dir = {
      type: 'String',
      default: `\${DataMount}`,
      allowedValues: [`\${DataMount}`, `\${DataMount}/tmp`],
    };
    const file = writeDefinition('values', doc);
    const content = loadAutomationDocumentContent('Values', {
      definitionFile: file,
      substitutions: { DataMount: '/srv/d.b' },
    });
    expect(content.parameters?.Dir?.allowedValues).toEqual(['/srv/d.b', '/srv/d.b/tmp']);
    (doc.parameters as Record<string, Record<string, unknown>>).Dir = {
      type: 'String',
      default: '/data',
      allowedValues: [`\${DataMount}`],
    };
    const bad = writeDefinition('bad-values', doc);
    expect(() =>
      loadAutomationDocumentContent('BadValues', {
        definitionFile: bad,
        substitutions: { DataMount: '/srv' },
      }),
    ).toThrow(/parameters\.Dir\.default "\/data" is not one of its allowedValues/);
  });

  it('substitutes a built-in placeholder without the caller passing it, and refuses it from the caller', () => {
    const doc = baseDocument();
    (doc.parameters as Record<string, unknown>).Reason = {
      type: 'String',
      default: '',
      allowedPattern: `\${ReasonPattern}`,
      maxChars: 256,
    };
    const file = writeDefinition('reason', doc);
    const content = loadAutomationDocumentContent('Reason', { definitionFile: file });
    expect(content.parameters?.Reason?.allowedPattern).toBe(REASON_PATTERN);
    expect(() =>
      loadAutomationDocumentContent('Reason', {
        definitionFile: file,
        substitutions: { ReasonPattern: '^.*$' },
      }),
    ).toThrow(/substitutions ReasonPattern are built in \(SHARED_SUBSTITUTIONS\) and cannot be passed/);
  });

  it('throws for a schemaVersion other than 0.3', () => {
    const file = writeDefinition('old', { ...baseDocument(), schemaVersion: '0.2' });
    expect(() => loadAutomationDocumentContent('Old', { definitionFile: file })).toThrow(
      /schemaVersion must be the string '0.3'/,
    );
  });

  it.each([
    [{ prefix: 'AWSStemeDB', name: 'ExpandVolume' }, /prefix/],
    [{ prefix: 'StemeDB', name: 'expand-volume' }, /name/],
  ])('refuses %j', (props, message) => {
    expect(() => new AutomationDocument(new Stack(), 'D', props)).toThrow(message);
  });
});

// ---------------------------------------------------------------------------------------------
// Reason: the one free-text parameter (issue 8 item 8)

/** Every alarm kind the router names, for the longest prefix (20) and node name (32). */
const ROUTER_REASONS = [
  'warning',
  'critical',
  'emergency-space',
  'inode-warning',
  'emergency-inodes',
  'no-data',
].flatMap((kind) => [
  remediationReason(`StemeDB-db-1-disk-${kind}`, '2024-05-01T12:00:00Z'),
  remediationReason(`Abcdefghij0123456789-${'n'.repeat(31)}9-disk-${kind}`, '2099-12-31T23:59:59Z'),
]);

const PLAIN_REASONS = [
  '',
  'manual run',
  'Disk filled by a bulk import, cleaning by hand.',
  'Ticket OPS-1234: WAL growth after the v2.3.1 upgrade. Second try.',
  'db-1 at 97 percent used since 03:00, paged by on-call',
];

/** Path traversal, shell, format and SSM metacharacters, control characters, non-ASCII, length. */
const HOSTILE_REASONS = [
  '..',
  'a..b',
  'end..',
  '../../etc/passwd',
  '.hidden',
  './run',
  'see /etc/shadow',
  'x/y',
  '$(id)',
  `\${HOME}`,
  '`id`',
  'a;b',
  'a|b',
  'a&b',
  'a>b',
  'a<b',
  "it's",
  'say "hi"',
  'a\\b',
  'glob*',
  'what?',
  'now!',
  '#42',
  '~root',
  'a=b',
  'a+b',
  '{{ InstanceId }}',
  '{{ssm:/x}}',
  '{0}',
  '{doc}',
  '}',
  '%s',
  '%(prefix)s',
  '100%',
  'ops@example.com',
  '(ticket 42)',
  'a_b',
  'a\nb',
  'line\n',
  'a\tb',
  'a\rb',
  '\u0000',
  'x\u001by',
  'café',
  'x\u2028y',
  'ＡＢＣ',
  ' leading',
  'trailing ',
  'double  space',
  ' ',
  '-rf',
  'a'.repeat(257),
  'ab '.repeat(90).trim(),
];

describe('Reason, the one free-text parameter of every document', () => {
  const withReason = automationFiles.filter((file) => {
    const raw = parseYaml(readFileSync(join(DOCUMENTS_DIR, file), 'utf8')) as {
      parameters?: Record<string, unknown>;
    };
    return raw.parameters?.Reason !== undefined;
  });

  it('is declared in at least the seven documents the router or an operator may start with one', () => {
    expect(withReason.length).toBeGreaterThanOrEqual(7);
  });

  it.each(withReason)(
    '%s takes it as the built-in ReasonPattern placeholder, at most 256 characters, empty by default',
    (file) => {
      const raw = parseYaml(readFileSync(join(DOCUMENTS_DIR, file), 'utf8')) as {
        parameters: Record<string, Record<string, unknown>>;
      };
      expect(raw.parameters.Reason).toMatchObject({
        type: 'String',
        default: '',
        allowedPattern: `\${ReasonPattern}`,
        maxChars: 256,
      });
      expect(raw.parameters.Reason?.allowedValues).toBeUndefined();
      const content = loadWithDummies(file) as { parameters: Record<string, OperatorParameter> };
      expect(content.parameters.Reason?.allowedPattern).toBe(REASON_PATTERN);
    },
  );

  it('is anchored and uses only the regex subset the SSM service, the agent and the runner share', () => {
    expect(isAnchoredPattern(REASON_PATTERN)).toBe(true);
    expect(REASON_PATTERN).not.toMatch(/\(\?[=!<>]|\\[1-9]|[*+?}]\+/);
  });

  it.each(withReason)(
    '%s admits the alarm router’s text for every alarm kind and plain sentences',
    (file) => {
      const reason = (loadWithDummies(file) as { parameters: Record<string, OperatorParameter> }).parameters
        .Reason;
      for (const value of [...ROUTER_REASONS, ...PLAIN_REASONS])
        expect(acceptsValue(reason, value), JSON.stringify(value)).toBe(true);
    },
  );

  it.each(withReason)('%s refuses path traversal, shell, format and SSM metacharacters', (file) => {
    const reason = (loadWithDummies(file) as { parameters: Record<string, OperatorParameter> }).parameters
      .Reason;
    expect(HOSTILE_REASONS.filter((value) => acceptsValue(reason, value))).toEqual([]);
  });

  it('passes a child document the parent’s Reason, which the child’s pattern is the same as', () => {
    for (const file of automationFiles) {
      const content = loadWithDummies(file) as { mainSteps: Array<Record<string, unknown>> };
      for (const step of content.mainSteps.filter((s) => s.action === 'aws:executeAutomation')) {
        const runtime =
          (step.inputs as { RuntimeParameters?: Record<string, unknown> }).RuntimeParameters ?? {};
        if (runtime.Reason !== undefined)
          expect(runtime.Reason, `${file} ${String(step.name)}`).toEqual(['{{ Reason }}']);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Operator parameters that reach a root script (issue 8 item 7)

/** A deployment whose paths hold regex metacharacters ('.', '@'), so "only the configured value" is tested for real. */
const RESTRICTED_CONFIG = {
  prefix: 'Blue',
  dataMount: '/srv/stemedb.data',
  walDir: '/srv/stemedb.data/wal',
  dbDir: '/srv/stemedb.data/db.d',
  backupDir: '/srv/backups',
  configFile: '/opt/stemedb/conf.d/config.toml',
  serviceName: 'stemedb@blue.service',
  healthUrl: 'http://127.0.0.1:28180/v1/health',
};
const C = RESTRICTED_CONFIG;

type Kind = 'path' | 'dirs' | 'unit' | 'url';

/** [document, parameter, kind, the values it must take (the first is its default)]. */
const OPERATOR_PARAMETERS: ReadonlyArray<readonly [string, string, Kind, readonly string[]]> = [
  ['WalCleanup', 'ConfigFile', 'path', [C.configFile]],
  ['WalCleanup', 'ServiceName', 'unit', [C.serviceName]],
  ['WalCleanup', 'HealthUrl', 'url', [C.healthUrl]],
  ['InodeCleanup', 'MountPoint', 'path', [C.dataMount]],
  ['InodeCleanup', 'AllowedDirs', 'dirs', [`${C.dbDir}:${C.dataMount}/tmp`, C.dbDir, `${C.dataMount}/tmp`]],
  ['CompactDatabase', 'MountPoint', 'path', [C.dataMount]],
  ['DiagnoseDiskFull', 'MountPoint', 'path', [C.dataMount]],
  ['EmergencyCleanup', 'MountPoint', 'path', [C.dataMount]],
  ['ExpandVolume', 'MountPoint', 'path', [C.dataMount]],
  ['ValidateDiskHealth', 'MountPoint', 'path', [C.dataMount]],
];

/** Another deployment's values (the defaults): never this one's. */
const OTHER_DEPLOYMENT = [
  DEFAULT_CONFIG.dataMount,
  DEFAULT_CONFIG.dbDir,
  DEFAULT_CONFIG.walDir,
  `${DEFAULT_CONFIG.dbDir}:${DEFAULT_CONFIG.dataMount}/tmp`,
  DEFAULT_CONFIG.configFile,
  DEFAULT_CONFIG.serviceName,
  DEFAULT_CONFIG.healthUrl,
];

function hostileFor(kind: Kind, allowed: readonly string[]): string[] {
  const dirs = [C.walDir, C.dataMount, `${C.dbDir}:${C.walDir}`, `${C.dbDir}:/etc`, `/etc:${C.dbDir}`];
  return valuesToRefuse(kind === 'dirs' ? 'path' : kind, allowed, [
    ...(kind === 'dirs' ? dirs : []),
    ...OTHER_DEPLOYMENT,
    C.walDir,
    C.backupDir,
  ]);
}

/** Hostile values the table below tries, in all (for the issue note). */
const OPERATOR_HOSTILE_COUNT = OPERATOR_PARAMETERS.reduce(
  (n, [, , kind, allowed]) => n + hostileFor(kind, allowed).length,
  0,
);

/** Command document parameters a root script uses as a path, unit, URL, bucket or key prefix. */
const HOST_SENSITIVE = new Set([
  'MountPoint',
  'WalDir',
  'DbDir',
  'BackupDir',
  'CoreDumpDir',
  'AllowedDirs',
  'ConfigFile',
  'ServiceName',
  'HealthUrl',
  'BaseUrl',
  'EndpointUrl',
  'Bucket',
  'Prefix',
]);

/** Values that only a path, device, unit, URL, bucket or key prefix parameter admits. */
const SENSITIVE_PROBES = ['/etc', '/etc/shadow', '/dev/sda', 'sshd', 'etc/', 'http://localhost:22/'];

/** Named above, or admitting a path, device, unit or URL: a new parameter of that kind is checked without being listed. */
function isHostSensitive(name: string, spec: OperatorParameter): boolean {
  return HOST_SENSITIVE.has(name) || SENSITIVE_PROBES.some((v) => acceptsValue(spec, v));
}

/**
 * Step outputs an Automation may send as a sensitive parameter, and why each is safe: ArchiveWal's
 * ResolveNode builds `wal/<node>/` from a node name it validates (and the node's instance role
 * can only read and write its own prefix).
 */
const DERIVED_VALUES: Readonly<Record<string, readonly string[]>> = {
  'ArchiveWal Prefix': ['{{ ResolveNode.Prefix }}'],
};

describe('operator parameters that a root script acts on take only this deployment’s values', () => {
  let automations: Record<string, { content: AutomationDocumentContent; documentName: string }>;
  let commands: Record<string, { content: CommandDocumentContent; documentName: string }>;

  beforeAll(() => {
    const r = synthStack(RESTRICTED_CONFIG);
    const remediation = r.stack.node.findChild('Remediation') as DiskRemediation;
    automations = remediation.automationDocuments;
    commands = remediation.commandDocuments;
  }, 120_000);

  const param = (doc: string, name: string): OperatorParameter | undefined =>
    (automations[doc]?.content.parameters as Record<string, OperatorParameter> | undefined)?.[name];

  it.each(OPERATOR_PARAMETERS)(
    '%s %s takes only the configured value(s), its default first',
    (doc, name, _kind, allowed) => {
      const spec = param(doc, name);
      expect(spec, `${doc}.${name}`).toBeDefined();
      expect(spec?.default).toBe(allowed[0]);
      for (const v of allowed) expect(acceptsValue(spec, v), v).toBe(true);
    },
  );

  it.each(OPERATOR_PARAMETERS)('%s %s refuses every other path, unit or URL', (doc, name, kind, allowed) => {
    const spec = param(doc, name);
    expect(hostileFor(kind, allowed).filter((v) => acceptsValue(spec, v))).toEqual([]);
  });

  it('tries more than 500 hostile values on these parameters', () => {
    expect(OPERATOR_HOSTILE_COUNT).toBeGreaterThan(500);
  });

  it('sends a host command a sensitive value only as a configured value or a restricted parameter', () => {
    const configured = new Set([
      C.dataMount,
      C.walDir,
      C.dbDir,
      C.backupDir,
      C.configFile,
      C.serviceName,
      C.healthUrl,
      new URL(C.healthUrl).origin,
    ]);
    const dirs = new Set([C.dbDir, `${C.dataMount}/tmp`]);
    const isConfigured = (name: string, v: string): boolean =>
      configured.has(v) ||
      (name === 'AllowedDirs' && v.split(':').every((d) => dirs.has(d))) ||
      (name === 'Bucket' && Token.isUnresolved(v));
    const byCommand = new Map(Object.values(commands).map((c) => [c.documentName, c.content]));
    let checked = 0;
    for (const [docName, { content }] of Object.entries(automations)) {
      for (const step of content.mainSteps) {
        if (step.action !== 'aws:runCommand') continue;
        const inputs = step.inputs as { DocumentName: string; Parameters?: Record<string, unknown> };
        const command = byCommand.get(inputs.DocumentName);
        expect(command, `${docName} ${String(step.name)} sends ${inputs.DocumentName}`).toBeDefined();
        for (const [name, spec] of Object.entries(command?.parameters ?? {})) {
          if (!isHostSensitive(name, spec as OperatorParameter)) continue;
          const where = `${docName} ${String(step.name)} → ${inputs.DocumentName} ${name}`;
          const passed = inputs.Parameters?.[name];
          if (passed === undefined) {
            // The Command document's own fixed default: nothing an operator can change.
            expect(spec.default, where).toBeDefined();
            continue;
          }
          const value = String(Array.isArray(passed) ? passed[0] : passed);
          checked++;
          const ref = /^\{\{ ?([A-Za-z0-9]+) ?\}\}$/.exec(value)?.[1];
          if (ref !== undefined) {
            const own = param(docName, ref);
            expect(
              own?.allowedValues,
              `${where}: {{ ${ref} }} must be restricted by allowedValues`,
            ).toBeDefined();
            for (const v of own?.allowedValues ?? [])
              expect(isConfigured(name, String(v)), `${where}: ${String(v)}`).toBe(true);
          } else if (value.includes('{{')) {
            expect(DERIVED_VALUES[`${docName} ${name}`] ?? [], where).toContain(value);
          } else {
            expect(isConfigured(name, value), `${where} = ${value}`).toBe(true);
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(30);
  });

  it('starts a child document only with parameters the child restricts itself', () => {
    for (const [docName, { content }] of Object.entries(automations)) {
      for (const step of content.mainSteps) {
        if (step.action !== 'aws:executeAutomation') continue;
        const inputs = step.inputs as { DocumentName: string; RuntimeParameters?: Record<string, unknown> };
        const child = Object.values(automations).find((a) => a.documentName === inputs.DocumentName);
        expect(child, inputs.DocumentName).toBeDefined();
        for (const name of Object.keys(inputs.RuntimeParameters ?? {})) {
          const spec = (child?.content.parameters as Record<string, OperatorParameter> | undefined)?.[name];
          const where = `${docName} ${String(step.name)} → ${inputs.DocumentName} ${name}`;
          expect(spec?.allowedPattern ?? spec?.allowedValues, where).toBeDefined();
          if (HOST_SENSITIVE.has(name)) expect(spec?.allowedValues, where).toBeDefined();
        }
      }
    }
  });

  it('reaches a host only through aws:runCommand steps: no Python or API step sends a command or starts a document', () => {
    for (const [docName, { content }] of Object.entries(automations)) {
      for (const step of content.mainSteps) {
        const inputs = (step.inputs ?? {}) as Record<string, unknown>;
        const where = `${docName} ${String(step.name)}`;
        if (step.action === 'aws:executeScript')
          expect(String(inputs.Script), where).not.toMatch(
            /\b(send_command|start_automation_execution|start_session|send_automation_signal|invoke|client\(\s*'lambda')/,
          );
        if (step.action === 'aws:executeAwsApi')
          expect([inputs.Service, inputs.Api], where).toEqual(['sns', 'Publish']);
        expect(
          [
            'aws:runCommand',
            'aws:executeScript',
            'aws:executeAwsApi',
            'aws:branch',
            'aws:invokeLambdaFunction',
            'aws:executeAutomation',
          ],
          where,
        ).toContain(step.action);
      }
    }
  });
});
