import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { routeTable } from '../contracts/routing';
import {
  ALARM_ROUTING,
  AUTOMATION_DOCUMENTS,
  COMMAND_DOCUMENTS,
  PREVENTION,
  SECTION_LAMBDAS,
  SECTIONS,
} from '../contracts/sections';
import { routesFor } from '../lib/alarm-router-function';
import { resolveConfig } from '../lib/config';
import { stackArn } from './support/stack-arn';
import { type SynthResult, synthStack, TWO_NODES_FILE } from './support/synth';

const twoNodes = JSON.parse(readFileSync(TWO_NODES_FILE, 'utf8')) as Record<string, unknown>;

type Statement = {
  Sid?: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, unknown>;
};

/** Every statement of the inline policies attached to the role whose logical ID starts with `rolePrefix`. */
function statementsOf(r: SynthResult, rolePrefix: string): Statement[] {
  const policies = r.template.findResources('AWS::IAM::Policy');
  const out: Statement[] = [];
  for (const p of Object.values(policies) as Array<{
    Properties: { Roles: Array<{ Ref: string }>; PolicyDocument: { Statement: Statement[] } };
  }>) {
    if (p.Properties.Roles.some((ref) => ref.Ref.startsWith(rolePrefix)))
      out.push(...p.Properties.PolicyDocument.Statement);
  }
  return out;
}

function actionsOf(statements: Statement[]): string[] {
  return statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
}

describe('remediation machinery', () => {
  let r: SynthResult;
  beforeAll(() => {
    r = synthStack(twoNodes);
  });

  it('deploys every Command document as <prefix>-Host-<Name> with NewVersion updates', () => {
    for (const name of COMMAND_DOCUMENTS) {
      r.template.hasResourceProperties('AWS::SSM::Document', {
        Name: `StemeDB-Host-${name}`,
        DocumentType: 'Command',
        UpdateMethod: 'NewVersion',
        Content: Match.objectLike({ schemaVersion: '2.2' }),
      });
    }
  });

  it('deploys every runbook Automation as <prefix>-<Name>', () => {
    for (const name of AUTOMATION_DOCUMENTS) {
      r.template.hasResourceProperties('AWS::SSM::Document', {
        Name: `StemeDB-${name}`,
        DocumentType: 'Automation',
        UpdateMethod: 'NewVersion',
        Content: Match.objectLike({ schemaVersion: '0.3' }),
      });
    }
  });

  it('deploys every Command and Automation document in ssm-documents/, not only those a list names', () => {
    const deployed = new Set(
      Object.values(r.template.findResources('AWS::SSM::Document')).map(
        (d) => (d as { Properties: { Name: string } }).Properties.Name,
      ),
    );
    const pascal = (kebab: string) => kebab.replace(/(^|-)([a-z])/g, (_m, _d, c: string) => c.toUpperCase());
    for (const file of readdirSync(join(__dirname, '..', 'ssm-documents'))) {
      const command = /^(.+)\.command\.yml$/.exec(file);
      const automation = /^(.+)\.automation\.yml$/.exec(file);
      if (command?.[1] !== undefined) expect(deployed, file).toContain(`StemeDB-Host-${pascal(command[1])}`);
      if (automation?.[1] !== undefined) expect(deployed, file).toContain(`StemeDB-${pascal(automation[1])}`);
    }
  });

  it('deploys exactly the documents of the section registry, in its deployment order, then the prevention ones', () => {
    const docs = Object.values(r.template.findResources('AWS::SSM::Document')) as Array<{
      Properties: { Name: string; DocumentType: string };
    }>;
    const named = (type: string) =>
      docs.filter((d) => d.Properties.DocumentType === type).map((d) => d.Properties.Name);
    expect(named('Command')).toEqual(
      [...COMMAND_DOCUMENTS, ...PREVENTION.commands].map((n) => `StemeDB-Host-${n}`),
    );
    expect(named('Automation')).toEqual(AUTOMATION_DOCUMENTS.map((n) => `StemeDB-${n}`));
    expect(docs).toHaveLength(
      [...SECTIONS, PREVENTION].reduce((n, s) => n + s.commands.length + s.automations.length, 0),
    );
  });

  it("deploys exactly the registry's Lambdas, the sections' and the alarm router", () => {
    const names = Object.values(
      r.template.findResources('AWS::Lambda::Function', {
        Properties: { FunctionName: Match.stringLikeRegexp('^StemeDB-') },
      }),
    ).map((f) => (f as { Properties: { FunctionName: string } }).Properties.FunctionName);
    expect(names.sort()).toEqual(
      [...SECTION_LAMBDAS, ...ALARM_ROUTING.lambdas].map((n) => `StemeDB-${n}`).sort(),
    );
  });

  it("lets the automation role invoke each section's Lambdas, and the router function not at all", () => {
    const invoke = statementsOf(r, 'RemediationAutomationRole').filter((s) =>
      actionsOf([s]).includes('lambda:InvokeFunction'),
    );
    const resources = JSON.stringify(invoke.map((s) => s.Resource));
    for (const name of SECTION_LAMBDAS) {
      const [logicalId] = Object.keys(
        r.template.findResources('AWS::Lambda::Function', {
          Properties: { FunctionName: `StemeDB-${name}` },
        }),
      );
      expect(resources, name).toContain(`"${logicalId}"`);
    }
    expect(resources).not.toContain('AlarmRouter');
  });

  it('deploys every document that an Automation runs or starts', () => {
    const docs = Object.values(r.template.findResources('AWS::SSM::Document')) as Array<{
      Properties: {
        Name: string;
        DocumentType: string;
        Content: { mainSteps?: Array<{ action: string; inputs: Record<string, unknown> }> };
      };
    }>;
    const byName = new Map(docs.map((d) => [d.Properties.Name, d.Properties.DocumentType]));
    for (const d of docs.filter((x) => x.Properties.DocumentType === 'Automation')) {
      for (const step of d.Properties.Content.mainSteps ?? []) {
        if (step.action === 'aws:runCommand') {
          expect(
            byName.get(String(step.inputs.DocumentName)),
            `${d.Properties.Name} runs ${step.inputs.DocumentName}`,
          ).toBe('Command');
        }
        if (step.action === 'aws:executeAutomation') {
          expect(
            byName.get(String(step.inputs.DocumentName)),
            `${d.Properties.Name} starts ${step.inputs.DocumentName}`,
          ).toBe('Automation');
        }
      }
    }
  });

  it('lets the automation role do every step of every Automation document', () => {
    const allowed = statementsOf(r, 'RemediationAutomationRole').filter(
      (st) => (st as { Effect?: string }).Effect !== 'Deny',
    );
    const grants = (action: string, resourceText: string) =>
      allowed.some(
        (st) => actionsOf([st]).includes(action) && JSON.stringify(st.Resource).includes(resourceText),
      );
    const docs = Object.values(
      r.template.findResources('AWS::SSM::Document', { Properties: { DocumentType: 'Automation' } }),
    ) as Array<{
      Properties: {
        Name: string;
        Content: { mainSteps: Array<{ name: string; action: string; inputs: Record<string, unknown> }> };
      };
    }>;
    expect(docs.length).toBe(AUTOMATION_DOCUMENTS.length);
    for (const d of docs) {
      for (const step of d.Properties.Content.mainSteps) {
        const at = `${d.Properties.Name}.${step.name}`;
        if (step.action === 'aws:runCommand')
          expect(grants('ssm:SendCommand', `document/${step.inputs.DocumentName}`), at).toBe(true);
        if (step.action === 'aws:executeAutomation') {
          expect(
            grants('ssm:StartAutomationExecution', `automation-definition/${step.inputs.DocumentName}:`),
            at,
          ).toBe(true);
        }
        if (step.action === 'aws:invokeLambdaFunction') {
          expect(grants('lambda:InvokeFunction', (step.inputs.FunctionName as { Ref: string }).Ref), at).toBe(
            true,
          );
        }
        if (step.action === 'aws:executeAwsApi') {
          const action = `${String(step.inputs.Service).toLowerCase()}:${step.inputs.Api}`;
          expect(
            allowed.some((st) => actionsOf([st]).includes(action)),
            `${at} calls ${action}`,
          ).toBe(true);
        }
      }
    }
  });

  it('builds every Lambda for ARM64 on Node.js 24', () => {
    const fns = Object.values(
      r.template.findResources('AWS::Lambda::Function', {
        Properties: { FunctionName: Match.stringLikeRegexp('^StemeDB-') },
      }),
    );
    expect(fns.length).toBe(SECTION_LAMBDAS.length + ALARM_ROUTING.lambdas.length);
    for (const fn of fns as Array<{ Properties: Record<string, unknown> }>) {
      expect(fn.Properties.Architectures).toEqual(['arm64']);
      expect(fn.Properties.Runtime).toBe('nodejs24.x');
      expect(fn.Properties.LoggingConfig).toMatchObject({ LogFormat: 'JSON' });
    }
  });

  it('runs the router concurrently: one remediation per node and the fleet limit are conditional writes to its lock table', () => {
    const routers = r.template.findResources('AWS::Lambda::Function', {
      Properties: { FunctionName: 'StemeDB-alarm-router' },
    });
    const [router] = Object.values(routers) as { Properties: Record<string, unknown> }[];
    expect(router?.Properties.ReservedConcurrentExecutions).toBeUndefined();
    r.template.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: 'StemeDB-alarm-router',
      Environment: {
        Variables: Match.objectLike({
          PREFIX: 'StemeDB',
          ROUTES: JSON.stringify(routesFor(resolveConfig({}))),
          LOCK_TABLE: 'StemeDB-remediation-locks',
          MAX_CONCURRENT: '10',
        }),
      },
    });
    r.template.hasResourceProperties('AWS::DynamoDB::Table', {
      TableName: 'StemeDB-remediation-locks',
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
      TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
    });
  });

  it('routes each alarm kind to its runbook section and the next step, by default', () => {
    expect(routesFor(resolveConfig({}))).toEqual({
      critical: ['StemeDB-ExpandVolume', 'StemeDB-ArchiveWal'],
      warning: ['StemeDB-ArchiveWal'],
      'emergency-space': ['StemeDB-EmergencyCleanup', 'StemeDB-ExpandVolume'],
      'inode-warning': ['StemeDB-InodeCleanup'],
      'emergency-inodes': ['StemeDB-InodeCleanup'],
      'fills-soon': ['StemeDB-ArchiveWal'],
    });
  });

  it("sends only this stack's alarms entering ALARM to the router, and re-checks on a schedule", () => {
    r.template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.cloudwatch'],
        'detail-type': ['CloudWatch Alarm State Change'],
        detail: { alarmName: [{ prefix: 'StemeDB-' }], state: { value: ['ALARM'] } },
      },
      Targets: [
        Match.objectLike({ Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('AlarmRouterFunction'), 'Arn'] } }),
      ],
    });
    r.template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(15 minutes)' });
  });

  it('lets no router event act after 5 minutes: the async invoke config and the alarm rule target', () => {
    r.template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: Match.stringLikeRegexp('AlarmRouterFunction') },
      Qualifier: '$LATEST',
      MaximumEventAgeInSeconds: 300,
      MaximumRetryAttempts: 2,
    });
    r.template.resourceCountIs('AWS::Lambda::EventInvokeConfig', 1);
    r.template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({ source: ['aws.cloudwatch'] }),
      Targets: [
        Match.objectLike({ RetryPolicy: { MaximumEventAgeInSeconds: 300, MaximumRetryAttempts: 4 } }),
      ],
    });
  });

  it("tells the router the stack's account and region, and the routing table computed from the config", () => {
    r.template.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: 'StemeDB-alarm-router',
      Environment: {
        Variables: Match.objectLike({
          ACCOUNT_ID: { Ref: 'AWS::AccountId' },
          REGION: { Ref: 'AWS::Region' },
          ROUTES: JSON.stringify(routeTable(r.config.prefix, r.config.remediation)),
        }),
      },
    });
  });

  it('keeps alarm events the router could not take in a dead-letter queue, and alarms on it', () => {
    r.template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({ source: ['aws.cloudwatch'] }),
      Targets: [
        Match.objectLike({
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('RouterDeadLetters'), 'Arn'] } },
        }),
      ],
    });
    r.template.hasResourceProperties('AWS::SQS::Queue', {
      QueueName: 'StemeDB-disk-router-dead-letters',
      SqsManagedSseEnabled: true,
    });
    r.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'StemeDB-automation-undelivered-events',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Threshold: 1,
      AlarmActions: [{ Ref: Match.stringLikeRegexp('^NotificationsTopic') }],
    });
  });

  it('alarms when any remediation Lambda fails, so a failed fix wakes a human', () => {
    const names = [...ALARM_ROUTING.lambdas, ...SECTION_LAMBDAS];
    expect(names).toEqual([
      'alarm-router',
      'expand-volume',
      'wait-for-volume-modification',
      'verify-archive',
    ]);
    for (const name of names) {
      r.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: `StemeDB-automation-${name}-errors`,
        MetricName: 'Errors',
        Namespace: 'AWS/Lambda',
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [{ Ref: Match.stringLikeRegexp('^NotificationsTopic') }],
      });
    }
  });

  it('trusts the automation role only to SSM executions of this account', () => {
    r.template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [
          Match.objectLike({
            Principal: { Service: 'ssm.amazonaws.com' },
            Condition: {
              StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } },
              ArnLike: { 'aws:SourceArn': Match.anyValue() },
            },
          }),
        ],
      },
    });
  });

  it("lets expand-volume modify and snapshot only volumes tagged managed and of this deployment, and read this deployment's node registry", () => {
    const st = statementsOf(r, 'RemediationExpandVolumeRole');
    const modify = st.find((s) => s.Sid === 'ModifyAndSnapshotManagedVolumesOnly');
    expect([...actionsOf(modify ? [modify] : [])].sort()).toEqual(['ec2:CreateSnapshot', 'ec2:ModifyVolume']);
    expect(modify?.Condition).toEqual({
      StringEquals: {
        'aws:ResourceTag/stemedb:managed': 'true',
        'aws:ResourceTag/stemedb:deployment': 'StemeDB',
      },
    });
    expect(st.find((s) => s.Sid === 'CreateManagedSnapshotsOnly')?.Condition).toEqual({
      StringEquals: {
        'aws:RequestTag/stemedb:managed': 'true',
        'aws:RequestTag/stemedb:deployment': 'StemeDB',
      },
    });
    const registry = st.find((s) => s.Sid === 'ReadNodeRegistry');
    expect(registry?.Action).toBe('ssm:GetParameter');
    expect(JSON.stringify(registry?.Resource)).toContain(':parameter/StemeDB/nodes/*');
    expect(st.find((s) => s.Sid === 'TagSnapshotsAtCreation')?.Condition).toEqual({
      StringEquals: { 'ec2:CreateAction': 'CreateSnapshot' },
    });
    // the only unscoped statement is the read-only describe
    for (const s of st.filter((x) => x.Resource === '*')) {
      expect(actionsOf([s]).every((a) => a.startsWith('ec2:Describe'))).toBe(true);
    }
  });

  it("lets the automation role send commands only with this stack's documents and to managed instances of this deployment", () => {
    const st = statementsOf(r, 'RemediationAutomationRole');
    const docs = st.find((s) => s.Sid === 'RunThisStacksCommandDocuments');
    expect(JSON.stringify(docs?.Resource)).toContain('document/StemeDB-Host-ExpandVolume');
    expect(docs?.Resource).toHaveLength(COMMAND_DOCUMENTS.length);
    const instances = st.find((s) => s.Sid === 'RunCommandsOnManagedInstancesOnly');
    expect(instances?.Condition).toEqual({
      StringEquals: {
        'ssm:resourceTag/stemedb:managed': 'true',
        'ssm:resourceTag/stemedb:deployment': 'StemeDB',
      },
    });
    const pass = st.find((s) => s.Sid === 'PassAutomationRoleToSsmOnly');
    expect(pass?.Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'ssm.amazonaws.com' } });
  });

  it('lets the router start only the routed Automation documents and pass only the automation role to SSM', () => {
    const st = statementsOf(r, 'RemediationAlarmRouterRole');
    const start = st.find((s) => s.Sid === 'StartRoutedAutomationsOnly');
    const resources = JSON.stringify(start?.Resource);
    for (const name of ['ExpandVolume', 'ArchiveWal', 'EmergencyCleanup', 'InodeCleanup']) {
      expect(resources).toContain(`:document/StemeDB-${name}"`);
      expect(resources).toContain(`:automation-definition/StemeDB-${name}:*"`);
    }
    expect(resources).not.toContain('WalCleanup');
    expect(resources).not.toContain('CompactDatabase');
    const pass = st.find((s) => s.Sid === 'PassAutomationRoleToSsmOnly');
    expect(pass?.Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'ssm.amazonaws.com' } });
    expect(JSON.stringify(pass?.Resource)).toContain('AutomationRole');
  });

  /** The one statement `sid` of the role `rolePrefix`, as synthesized. */
  function statement(rolePrefix: string, sid: string): Statement & { Effect: string } {
    const found = statementsOf(r, rolePrefix).filter((s) => s.Sid === sid);
    expect(found, `${rolePrefix} ${sid}`).toHaveLength(1);
    return found[0] as Statement & { Effect: string };
  }

  /** The statement `sid` of `rolePrefix` allows exactly `action`, on * (the action has no resource types). */
  function expectOnAnyResource(rolePrefix: string, sid: string, action: string): void {
    expect(statement(rolePrefix, sid)).toEqual({ Sid: sid, Effect: 'Allow', Action: action, Resource: '*' });
  }

  const arn = (resource: string) => stackArn('ssm', resource);

  it("lets the automation role read the instance's node tag (ArchiveWal ResolveNode): DescribeTags has no resource types, so *", () => {
    expectOnAnyResource('RemediationAutomationRole', 'ReadInstanceNodeTag', 'ec2:DescribeTags');
  });

  it('lets the automation role read the disk metrics (ExpandVolume ReadDiskUsage) on *, where AWS evaluates GetMetricData', () => {
    expectOnAnyResource('RemediationAutomationRole', 'ReadDiskMetrics', 'cloudwatch:GetMetricData');
  });

  it('lets the automation role start only its child documents, on the document, every definition version and the new execution', () => {
    const start = statement('RemediationAutomationRole', 'StartThisStacksAutomations');
    expect(start.Action).toBe('ssm:StartAutomationExecution');
    expect(start.Condition).toBeUndefined();
    // Only the children some document starts (aws:executeAutomation), not every document.
    const resources = start.Resource as unknown[];
    // AddDataVolume: ExpandVolume's opt-in migration fallback (MigrateWhenRefused).
    for (const name of ['AddDataVolume', 'ArchiveWal', 'ExpandVolume']) {
      expect(resources).toContainEqual(arn(`:document/StemeDB-${name}`));
      expect(resources).toContainEqual(arn(`:automation-definition/StemeDB-${name}:*`));
    }
    expect(resources).toContainEqual(arn(':automation-execution/*'));
    expect(resources).toHaveLength(2 * 3 + 1);
  });

  it('lets the router start the routed documents on the document, every definition version and the new execution', () => {
    const start = statement('RemediationAlarmRouterRole', 'StartRoutedAutomationsOnly');
    expect(start.Action).toBe('ssm:StartAutomationExecution');
    const resources = start.Resource as unknown[];
    for (const name of ['ArchiveWal', 'EmergencyCleanup', 'ExpandVolume', 'InodeCleanup']) {
      expect(resources).toContainEqual(arn(`:document/StemeDB-${name}`));
      expect(resources).toContainEqual(arn(`:automation-definition/StemeDB-${name}:*`));
    }
    expect(resources).toContainEqual(arn(':automation-execution/*'));
    expect(resources).toHaveLength(2 * 4 + 1);
  });

  it('lets the router list alarms on * (composite alarms need it) and tag only its own alarms', () => {
    expectOnAnyResource('RemediationAlarmRouterRole', 'ListAlarmsInAlarm', 'cloudwatch:DescribeAlarms');
    const mark = statement('RemediationAlarmRouterRole', 'ReadAndMarkThisStacksAlarms');
    expect(mark.Action).toEqual(['cloudwatch:ListTagsForResource', 'cloudwatch:TagResource']);
    expect(JSON.stringify(mark.Resource)).toContain(':alarm:StemeDB-*');
  });

  it('lets only verify-archive write verified manifests, denied to every other principal by the bucket', () => {
    const st = statementsOf(r, 'RemediationVerifyArchiveRole');
    expect(JSON.stringify(st.find((s) => s.Sid === 'WriteVerifiedManifests')?.Resource)).toContain(
      '/wal/*/_manifest/verified.json',
    );
    expect(
      actionsOf(st)
        .filter((a) => a.startsWith('s3:'))
        .sort(),
    ).toEqual(['s3:GetObject', 's3:ListBucket', 's3:PutObject']);
    r.template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Sid: 'OnlyTheVerifierWritesVerifiedManifests',
            Effect: 'Deny',
            Principal: { AWS: '*' },
            Action: 's3:PutObject',
            Condition: {
              ArnNotEquals: {
                'aws:PrincipalArn': {
                  'Fn::GetAtt': [Match.stringLikeRegexp('^RemediationVerifyArchiveRole'), 'Arn'],
                },
              },
            },
          }),
        ]),
      },
    });
  });

  it('grants no wildcard action anywhere', () => {
    const all = [
      ...Object.values(r.template.findResources('AWS::IAM::Policy')),
      ...Object.values(r.template.findResources('AWS::IAM::ManagedPolicy')),
    ] as Array<{ Properties: { PolicyDocument: { Statement: Statement[] } } }>;
    for (const p of all) {
      for (const a of actionsOf(p.Properties.PolicyDocument.Statement)) {
        expect(a === '*' || /^[a-z0-9-]+:\*$/.test(a), a).toBe(false);
      }
    }
  });
});

describe('remediation routes from configuration', () => {
  it('starts nothing for an alarm whose remediation is ""', () => {
    expect(routesFor(resolveConfig({ remediation: { warning: '' } })).warning).toEqual([]);
  });
});
