/**
 * The critical alarm's path, end to end as far as this machine allows, read from the
 * synthesized template rather than from the source: the node's critical alarm → the EventBridge
 * rule → the real router logic (SSM mocked: moto has no Automation API) → StartAutomationExecution
 * of a document that the template deploys, with parameters that document accepts → the Lambdas
 * and Command documents that document calls, which the template also deploys, and which the
 * automation role may call. Each piece has its own tests; this one proves they fit together.
 */

import { readFileSync } from 'node:fs';
import { CloudWatchClient, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DescribeAutomationExecutionsCommand,
  GetParameterCommand,
  SSMClient,
  StartAutomationExecutionCommand,
} from '@aws-sdk/client-ssm';
import { Match } from 'aws-cdk-lib/assertions';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, describe, expect, it } from 'vitest';
import { routeTable } from '../contracts/routing';
import { loadRouterConfig, routeEvent } from '../lambda/alarm-router';
import { LockTableFake } from './support/lock-table-fake';
import { type SynthResult, synthStack, TWO_NODES_FILE } from './support/synth';

type Json = Record<string, unknown>;
type Resource = { Type: string; Properties: Json };

const ROLE_ARN = 'arn:aws:iam::123456789012:role/StemeDB-disk-automation-eu-west-1';
const TOPIC_ARN = 'arn:aws:sns:eu-west-1:123456789012:StemeDB-disk-notifications';
const VOLUME_ID = 'vol-0aaaabbbbccccdddd';

function resources(r: SynthResult, type: string): Array<[string, Resource]> {
  return Object.entries(r.template.toJSON().Resources as Record<string, Resource>).filter(
    ([, v]) => v.Type === type,
  );
}

function documentNamed(r: SynthResult, name: string): Json {
  const found = resources(r, 'AWS::SSM::Document').find(([, v]) => v.Properties.Name === name);
  expect(found, `document ${name} is in the template`).toBeDefined();
  return (found as [string, Resource])[1].Properties;
}

/** EventBridge pattern matching for the operators this stack uses: value lists and `prefix`. */
function matches(pattern: unknown, event: unknown): boolean {
  if (Array.isArray(pattern)) {
    return pattern.some((p) =>
      typeof p === 'object' && p !== null && 'prefix' in p
        ? typeof event === 'string' && event.startsWith(String((p as { prefix: string }).prefix))
        : p === event,
    );
  }
  if (typeof pattern === 'object' && pattern !== null) {
    if (typeof event !== 'object' || event === null) return false;
    return Object.entries(pattern).every(([k, v]) => matches(v, (event as Json)[k]));
  }
  return pattern === event;
}

function alarmEvent(alarmName: string, state: string, previous: string): Json {
  return {
    version: '0',
    id: 'c4c1c1c9-6542-e61b-6ef0-8c4d36933a92',
    'detail-type': 'CloudWatch Alarm State Change',
    source: 'aws.cloudwatch',
    account: '123456789012',
    time: '2026-11-28T03:00:00Z',
    region: 'eu-west-1',
    resources: [`arn:aws:cloudwatch:eu-west-1:123456789012:alarm:${alarmName}`],
    detail: {
      alarmName,
      state: { value: state, reason: 'Threshold Crossed', timestamp: '2026-11-28T03:00:00.000+0000' },
      previousState: {
        value: previous,
        reason: 'Threshold Crossed',
        timestamp: '2026-11-28T02:00:00.000+0000',
      },
      configuration: { description: 'critical' },
    },
  };
}

describe('alarm → router → Automation, in the synthesized template', () => {
  let r: SynthResult;
  let ruleDetailPattern: Json;
  let routerEnv: Record<string, string>;
  let routerVars: Json;

  beforeAll(() => {
    r = synthStack(JSON.parse(readFileSync(TWO_NODES_FILE, 'utf8')) as Json);
    const rule = resources(r, 'AWS::Events::Rule').find(([, v]) => v.Properties.EventPattern !== undefined);
    ruleDetailPattern = (rule as [string, Resource])[1].Properties.EventPattern as Json;
    const router = resources(r, 'AWS::Lambda::Function').find(
      ([, v]) => v.Properties.FunctionName === 'StemeDB-alarm-router',
    );
    const vars = ((router as [string, Resource])[1].Properties.Environment as { Variables: Json }).Variables;
    routerVars = vars;
    // The role and topic ARNs, account and region are CloudFormation references; give them the
    // values a deploy would.
    routerEnv = {
      ...Object.fromEntries(Object.entries(vars).filter(([, v]) => typeof v === 'string')),
      AUTOMATION_ROLE_ARN: ROLE_ARN,
      TOPIC_ARN: TOPIC_ARN,
      ACCOUNT_ID: '123456789012',
      REGION: 'eu-west-1',
    } as Record<string, string>;
  });

  it('gives the router, as ROUTES, the routing table the router tests run with', () => {
    expect(JSON.parse(routerEnv.ROUTES as string)).toEqual(routeTable(r.config.prefix, r.config.remediation));
    expect(loadRouterConfig(routerEnv).routes).toEqual({
      'no-data': [],
      ...routeTable(r.config.prefix, r.config.remediation),
    });
  });

  it("gives the router the stack's own account and region", () => {
    expect(routerVars.ACCOUNT_ID).toEqual({ Ref: 'AWS::AccountId' });
    expect(routerVars.REGION).toEqual({ Ref: 'AWS::Region' });
  });

  it('has the critical alarm of node db-1 in the template', () => {
    r.template.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmName: 'StemeDB-db-1-disk-critical' });
  });

  it('sends its transition into ALARM to the router, and not its return to OK', () => {
    expect(matches(ruleDetailPattern, alarmEvent('StemeDB-db-1-disk-critical', 'ALARM', 'OK'))).toBe(true);
    expect(matches(ruleDetailPattern, alarmEvent('StemeDB-db-1-disk-critical', 'OK', 'ALARM'))).toBe(false);
    expect(matches(ruleDetailPattern, alarmEvent('Other-app-disk-critical', 'ALARM', 'OK'))).toBe(false);
  });

  const starts: ReadonlyArray<[string, string]> = [
    ['critical', 'StemeDB-ExpandVolume'],
    ['warning', 'StemeDB-ArchiveWal'],
    ['emergency-space', 'StemeDB-EmergencyCleanup'],
    ['inode-warning', 'StemeDB-InodeCleanup'],
    ['emergency-inodes', 'StemeDB-InodeCleanup'],
  ];
  it.each(starts)(
    'makes the router start, for the %s alarm, the deployed %s document with parameters it accepts',
    async (kind, documentName) => {
      const registry = resources(r, 'AWS::SSM::Parameter').find(
        ([, v]) => v.Properties.Name === '/StemeDB/nodes/db-1',
      );
      const value = (registry as [string, Resource])[1].Properties.Value;
      // The registry value is JSON with the created volume's Ref inside; resolve it as CloudFormation would.
      const registryJson = JSON.stringify(value).includes('Fn::Join')
        ? ((value as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1] as unknown[])
            .map((part) => (typeof part === 'string' ? part : VOLUME_ID))
            .join('')
        : String(value);
      expect(JSON.parse(registryJson)).toMatchObject({
        name: 'db-1',
        instanceId: 'i-0123456789abcdef0',
        volumeId: VOLUME_ID,
      });

      const ssm = mockClient(SSMClient);
      // The kill switch as deployed: act (remediation.mode's default).
      ssm
        .on(GetParameterCommand, { Name: routerEnv.MODE_PARAMETER })
        .resolves({ Parameter: { Value: r.config.remediation.mode } });
      ssm
        .on(GetParameterCommand, { Name: '/StemeDB/nodes/db-1' })
        .resolves({ Parameter: { Name: '/StemeDB/nodes/db-1', Value: registryJson } });
      ssm.on(DescribeAutomationExecutionsCommand).resolves({ AutomationExecutionMetadataList: [] });
      ssm.on(StartAutomationExecutionCommand).resolves({ AutomationExecutionId: 'exec-1' });
      // The router re-reads the alarm: still in ALARM since the event's transition.
      const alarmName = `StemeDB-db-1-disk-${kind}`;
      const cloudwatch = mockClient(CloudWatchClient);
      const dynamodb = mockClient(DynamoDBClient);
      new LockTableFake(routerEnv.LOCK_TABLE as string).install(dynamodb);
      cloudwatch.on(DescribeAlarmsCommand, { AlarmNames: [alarmName] }).resolves({
        MetricAlarms: [
          {
            AlarmName: alarmName,
            AlarmArn: `arn:aws:cloudwatch:eu-west-1:123456789012:alarm:${alarmName}`,
            StateValue: 'ALARM',
            StateTransitionedTimestamp: new Date('2026-11-28T03:00:00.000Z'),
          },
        ],
      });
      try {
        const outcomes = await routeEvent(
          alarmEvent(`StemeDB-db-1-disk-${kind}`, 'ALARM', 'OK'),
          loadRouterConfig(routerEnv),
          {
            ssm: new SSMClient({ region: 'eu-west-1' }),
            cloudwatch: new CloudWatchClient({ region: 'eu-west-1' }),
            dynamodb: new DynamoDBClient({ region: 'eu-west-1' }),
            notify: async () => {},
          },
        );
        expect(outcomes.map((o) => o.decision)).toEqual(['started']);

        const starts = ssm.commandCalls(StartAutomationExecutionCommand);
        expect(starts).toHaveLength(1);
        const input = starts[0]?.args[0].input;
        expect(input?.DocumentName).toBe(documentName);
        const doc = documentNamed(r, documentName);
        expect(doc.DocumentType).toBe('Automation');
        const declared = (
          doc.Content as { parameters: Record<string, { allowedPattern?: string; allowedValues?: string[] }> }
        ).parameters;
        for (const [name, values] of Object.entries(input?.Parameters ?? {})) {
          const param = declared[name];
          expect(param, `${documentName} declares ${name}`).toBeDefined();
          for (const v of values) {
            if (param?.allowedPattern !== undefined) expect(v).toMatch(new RegExp(param.allowedPattern));
            if (param?.allowedValues !== undefined) expect(param.allowedValues).toContain(v);
          }
        }
        expect(input?.Parameters?.InstanceId).toEqual(['i-0123456789abcdef0']);
        expect(input?.Parameters?.AutomationAssumeRole).toEqual([ROLE_ARN]);
      } finally {
        ssm.restore();
        cloudwatch.restore();
        dynamodb.restore();
      }
    },
  );

  it('has ExpandVolume call Lambdas and Command documents that the template deploys and the automation role may use', () => {
    const content = documentNamed(r, 'StemeDB-ExpandVolume').Content as {
      mainSteps: Array<{ name: string; action: string; inputs: Json }>;
    };
    const functions = new Map(
      resources(r, 'AWS::Lambda::Function').map(([id, v]) => [id, v.Properties.FunctionName]),
    );
    const roleStatements = resources(r, 'AWS::IAM::Policy')
      .filter(([, v]) => JSON.stringify(v.Properties.Roles).includes('RemediationAutomationRole'))
      .flatMap(([, v]) => (v.Properties.PolicyDocument as { Statement: Json[] }).Statement);
    const allowed = (action: string) =>
      JSON.stringify(roleStatements.filter((s) => JSON.stringify(s.Action).includes(action)));

    const invoked = content.mainSteps.filter((s) => s.action === 'aws:invokeLambdaFunction');
    expect(invoked.map((s) => s.name)).toEqual(expect.arrayContaining(['ExpandVolume', 'WaitForOptimizing']));
    for (const step of invoked) {
      const ref = (step.inputs.FunctionName as { Ref: string }).Ref;
      expect(functions.get(ref), `${step.name} calls a function of this stack`).toMatch(/^StemeDB-/);
      expect(allowed('lambda:InvokeFunction')).toContain(ref);
    }

    const commands = content.mainSteps
      .filter((s) => s.action === 'aws:runCommand')
      .map((s) => String(s.inputs.DocumentName));
    expect(commands).toEqual(
      expect.arrayContaining(['StemeDB-Host-ExpandVolume', 'StemeDB-Host-DiskReport']),
    );
    for (const name of commands) {
      expect(documentNamed(r, name).DocumentType).toBe('Command');
      expect(allowed('ssm:SendCommand')).toContain(`document/${name}`);
    }

    const fallback = content.mainSteps.find((s) => s.action === 'aws:executeAutomation');
    expect(fallback?.inputs.DocumentName).toBe('StemeDB-ArchiveWal');
    expect(documentNamed(r, 'StemeDB-ArchiveWal').DocumentType).toBe('Automation');
    expect(allowed('ssm:StartAutomationExecution')).toContain('automation-definition/StemeDB-ArchiveWal');
  });

  it('gives expand-volume the sizing policy of the configuration', () => {
    r.template.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: 'StemeDB-expand-volume',
      Environment: {
        Variables: Match.objectLike({
          GROW_PERCENT: '50',
          MIN_GROW_GIB: '10',
          MAX_SIZE_GIB: '4096',
          WARNING_FREE_PERCENT: '20',
        }),
      },
    });
  });
});
