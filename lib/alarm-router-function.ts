import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as ssm from 'aws-cdk-lib/aws-ssm';
import type { Construct } from 'constructs';
import { type RouteTable, routeTable } from '../contracts/routing';
import type { AutomationRole } from './automation-role';
import type { StemeDbConfig } from './config';
import { acknowledgeWildcard } from './nag-acknowledgements';
import { readNodeRegistryStatement } from './node-registry-statement';
import { RemediationFunction } from './remediation-function';
import { acknowledgeStartAutomationVersions, startAutomationResources } from './start-automation-resources';
import { grantPublishThroughSns } from './topic-publish-grant';

export interface AlarmRouterFunctionProps {
  /** Name prefix (config `prefix`): the function is `<prefix>-alarm-router`; alarms it acts on are `<prefix>-…`. */
  readonly prefix: string;
  /** Alarm kind → documents to start ({@link routesFor}); the router's role may start only these. */
  readonly routes: RouteTable;
  /** The Automation documents this stack deploys (`<prefix>-<Name>`): every routed document must be one. */
  readonly deployedAutomations: readonly string[];
  /** The kill switch the router reads at each invocation. */
  readonly modeParameter: ssm.IStringParameter;
  /** The role the documents it starts run as (it passes the role to SSM). */
  readonly automationRole: AutomationRole;
  /** Where it notifies (observe mode, an exhausted chain, a refusal to act). */
  readonly topic: sns.ITopic;
  /** The lock table: per-node locks and the fleet-wide slots (partition key `pk`). */
  readonly lockTable: dynamodb.ITable;
  /** Remediations it starts that may run at once, fleet-wide (`remediation.maxConcurrent`, 1 to 100). */
  readonly maxConcurrent: number;
}

/** How late an event may reach the router (EventBridge delivery, then Lambda's async queue). */
export const ROUTER_MAX_EVENT_AGE = Duration.minutes(5);

/**
 * The `alarm-router` Lambda: starts, for an alarm's node, the first document of the alarm kind's
 * route, and on the re-check schedule the next one. Invocations run concurrently (a storm of
 * alarms is handled at once): at most one remediation per node and at most `maxConcurrent` in the
 * fleet are conditional writes to the lock table, not reserved concurrency 1. Its event age is
 * bounded; it may start only the routed documents, tag and read executions, read the node registry
 * and the kill switch, list alarms, tag this stack's alarms, notify, read and write the lock
 * table's items, and pass the automation role to SSM.
 */
export class AlarmRouterFunction extends RemediationFunction {
  constructor(scope: Construct, id: string, props: AlarmRouterFunctionProps) {
    const { prefix } = props;
    if (!Number.isInteger(props.maxConcurrent) || props.maxConcurrent < 1 || props.maxConcurrent > 100) {
      throw new Error(
        `AlarmRouterFunction maxConcurrent is ${props.maxConcurrent}; expected a whole number from 1 to 100`,
      );
    }
    const deployed = new Set(props.deployedAutomations);
    const routed = [...new Set(Object.values(props.routes).flat())];
    for (const name of routed) {
      if (!deployed.has(name))
        throw new Error(`AlarmRouterFunction routes name ${name}, which this stack does not deploy`);
    }
    super(scope, id, {
      entryName: 'alarm-router',
      prefix,
      description:
        'Starts the configured runbook Automation when a disk alarm fires; re-checks alarms that stay in ALARM',
      // The re-check walks every alarm in ALARM (hundreds in a fleet-wide incident), one by one.
      timeout: Duration.minutes(5),
      environment: {
        PREFIX: prefix,
        ROUTES: JSON.stringify(props.routes),
        MODE_PARAMETER: automationModeParameterName(prefix),
        AUTOMATION_ROLE_ARN: props.automationRole.role.roleArn,
        TOPIC_ARN: props.topic.topicArn,
        NODE_PARAMETER_PREFIX: `/${prefix}/nodes/`,
        // Events of another account or region start nothing (checked against these).
        ACCOUNT_ID: Stack.of(scope).account,
        REGION: Stack.of(scope).region,
        // The literal name (the table is `remediationLockTableName(prefix)`), not a reference.
        LOCK_TABLE: remediationLockTableName(prefix),
        MAX_CONCURRENT: String(props.maxConcurrent),
      },
    });
    // Lambda's async defaults keep an event up to 6 h and retry twice. An alarm event older than a
    // few minutes is superseded by the re-check (which starts the first document when an event was
    // missed), so it is dropped; retries stay: a retried event or re-check cannot start anything
    // twice (the alarm's state and the transition's tagged executions are read again, the node
    // must be idle, and each start's ClientToken is derived from alarm, transition and document),
    // and they recover transient faults within the event's age instead of a re-check later.
    this.function.configureAsyncInvoke({
      maxEventAge: ROUTER_MAX_EVENT_AGE,
      retryAttempts: 2,
    });
    this.grantRouting(props, routed);
  }

  private grantRouting(props: AlarmRouterFunctionProps, routed: readonly string[]): void {
    const stack = Stack.of(this);
    const role = this.role;
    const { prefix } = props;
    if (routed.length > 0) {
      role.addToPolicy(
        new iam.PolicyStatement({
          sid: 'StartRoutedAutomationsOnly',
          actions: ['ssm:StartAutomationExecution'],
          resources: startAutomationResources(stack, routed),
        }),
      );
      acknowledgeStartAutomationVersions(role, routed);
    }
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'TagAndReadExecutions',
        actions: ['ssm:AddTagsToResource', 'ssm:ListTagsForResource', 'ssm:GetAutomationExecution'],
        resources: [stack.formatArn({ service: 'ssm', resource: 'automation-execution', resourceName: '*' })],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ListRunningExecutions',
        actions: ['ssm:DescribeAutomationExecutions'],
        resources: ['*'],
      }),
    );
    role.addToPolicy(readNodeRegistryStatement(stack, prefix));
    const alarms = stack.formatArn({
      service: 'cloudwatch',
      resource: 'alarm',
      resourceName: `${prefix}-*`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadAndMarkThisStacksAlarms',
        actions: ['cloudwatch:ListTagsForResource', 'cloudwatch:TagResource'],
        resources: [alarms],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        // The re-check lists `<prefix>-` alarms in ALARM with AlarmTypes [MetricAlarm,
        // CompositeAlarm]. The CloudWatch API reference (DescribeAlarms): returning composite alarms
        // needs cloudwatch:DescribeAlarms scoped to *; with a narrower scope the call cannot return
        // them. The prefix filter is in the request, not in the policy.
        sid: 'ListAlarmsInAlarm',
        actions: ['cloudwatch:DescribeAlarms'],
        resources: ['*'],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadAutomationMode',
        actions: ['ssm:GetParameter'],
        resources: [props.modeParameter.parameterArn],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        // Locks and slots: read in one BatchGetItem, taken and released by conditional writes.
        sid: 'LockTableItems',
        actions: ['dynamodb:BatchGetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
        resources: [props.lockTable.tableArn],
      }),
    );
    grantPublishThroughSns(props.topic, role);
    props.automationRole.grantPassToSsm(role);
    acknowledgeWildcard(
      role,
      'Resource::*',
      'ssm:DescribeAutomationExecutions has no resource-level permissions, and cloudwatch:DescribeAlarms must be scoped to * to return composite alarms (CloudWatch API reference); both only read.',
    );
    acknowledgeWildcard(
      role,
      'Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:automation-execution/*',
      "Execution IDs are only known at run time: StartAutomationExecution is authorized on the new execution's ARN (with the routed documents only); the router tags the executions it starts and reads their tags and status.",
    );
    acknowledgeWildcard(
      role,
      `Resource::arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/${prefix}/nodes/*`,
      'The node registry: one parameter per node, named by the node; the router reads only this prefix.',
    );
    acknowledgeWildcard(
      role,
      `Resource::arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:${prefix}-*`,
      "Only this stack's alarms (named <prefix>-<node>-disk-<kind>); nodes are added without changing the router.",
    );
  }
}

/**
 * The router's chains, alarm kind → documents, passed to it as `ROUTES`: the one routing table
 * ({@link routeTable} in lambda/shared/alarm-event.ts, which the router's tests run with).
 */
export function routesFor(config: Pick<StemeDbConfig, 'prefix' | 'remediation'>): RouteTable {
  return routeTable(config.prefix, config.remediation);
}

/** The kill switch's SSM parameter: `/<prefix>/automation-mode`. */
export function automationModeParameterName(prefix: string): string {
  return `/${prefix}/automation-mode`;
}

/** The router's lock table: `<prefix>-remediation-locks`. */
export function remediationLockTableName(prefix: string): string {
  return `${prefix}-remediation-locks`;
}
