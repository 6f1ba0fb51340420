import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import type { Construct } from 'constructs';
import {
  AlarmRouterFunction,
  automationModeParameterName,
  ROUTER_MAX_EVENT_AGE,
  remediationLockTableName,
  routesFor,
} from './alarm-router-function';
import type { AutomationRole } from './automation-role';
import type { StemeDbConfig } from './config';

export interface AlarmRoutingProps {
  /** The validated configuration: the prefix, and the routes, schedule and mode of `remediation`. */
  readonly config: Pick<StemeDbConfig, 'prefix' | 'remediation'>;
  /** The Automation documents this stack deploys (`<prefix>-<Name>`): the routes may name only these. */
  readonly deployedAutomations: readonly string[];
  /** The role the started documents run as. */
  readonly automationRole: AutomationRole;
  /** Where the router notifies. */
  readonly topic: sns.ITopic;
}

/** The alarm router as deployed. */
export interface AlarmRouting {
  /** The kill switch `/<prefix>/automation-mode` (act, observe, off) the router reads. */
  readonly modeParameter: ssm.StringParameter;
  /** `<prefix>-remediation-locks`: the router's per-node locks and fleet-wide slots. */
  readonly lockTable: dynamodb.Table;
  readonly router: AlarmRouterFunction;
  /** Where alarm events EventBridge could not hand to the router land (an alarm watches it). */
  readonly deadLetterQueue: sqs.Queue;
  /** `<prefix>-…` alarms entering ALARM → the router. */
  readonly alarmStateChange: events.Rule;
  /** The re-check schedule → the router. */
  readonly recheck: events.Rule;
}

/**
 * Builds the alarm router in `scope`: its kill switch (`AutomationMode`), the Lambda
 * (`AlarmRouter`), its lock table (`RemediationLocks`), the dead-letter queue of its event rules (`RouterDeadLetters`) and the two rules
 * (`AlarmStateChange`, `Recheck`). They are direct children of `scope` under those IDs, so their
 * logical IDs and construct paths stay those of the deployed stack.
 */
export function buildAlarmRouting(scope: Construct, props: AlarmRoutingProps): AlarmRouting {
  const { prefix, remediation } = props.config;
  // The kill switch: the router reads it at each invocation (missing or invalid = observe).
  // CloudFormation sets it only when remediation.mode changes; `aws ssm put-parameter` flips it.
  const modeParameter = new ssm.StringParameter(scope, 'AutomationMode', {
    parameterName: automationModeParameterName(prefix),
    stringValue: remediation.mode,
    allowedPattern: '^(act|observe|off)$',
    description: `${prefix} disk automation: act (start documents), observe (notify what would run) or off`,
  });
  // Per-node locks and fleet-wide slots: small items, conditional writes, leases as TTL. Losing it
  // loses only leases (the router re-reads executions), so it is destroyed with the stack.
  const lockTable = new dynamodb.Table(scope, 'RemediationLocks', {
    tableName: remediationLockTableName(prefix),
    partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
    billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
    timeToLiveAttribute: 'expiresAt',
    encryption: dynamodb.TableEncryption.AWS_MANAGED,
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    removalPolicy: RemovalPolicy.DESTROY,
  });
  const router = new AlarmRouterFunction(scope, 'AlarmRouter', {
    lockTable,
    maxConcurrent: remediation.maxConcurrent,
    prefix,
    routes: routesFor(props.config),
    deployedAutomations: props.deployedAutomations,
    modeParameter,
    automationRole: props.automationRole,
    topic: props.topic,
  });

  // Alarm events EventBridge could not hand to the router land here (and raise an alarm).
  const deadLetterQueue = new sqs.Queue(scope, 'RouterDeadLetters', {
    queueName: `${prefix}-disk-router-dead-letters`,
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
  });
  Validations.of(deadLetterQueue).acknowledge({
    id: 'AwsSolutions-SQS3',
    reason: 'This queue is itself the dead-letter queue of the router rules; an alarm watches its depth.',
  });

  const alarmStateChange = new events.Rule(scope, 'AlarmStateChange', {
    ruleName: `${prefix}-disk-alarm-to-automation`,
    description: `${prefix} disk alarms entering ALARM start the configured runbook automation`,
    eventPattern: {
      source: ['aws.cloudwatch'],
      detailType: ['CloudWatch Alarm State Change'],
      detail: { alarmName: [{ prefix: `${prefix}-` }], state: { value: ['ALARM'] } },
    },
    targets: [
      new targets.LambdaFunction(router.function, {
        // Handing the event to Lambda: no later than the router would still take it.
        retryAttempts: 4,
        maxEventAge: ROUTER_MAX_EVENT_AGE,
        deadLetterQueue,
      }),
    ],
  });
  const recheck = new events.Rule(scope, 'Recheck', {
    ruleName: `${prefix}-disk-alarm-recheck`,
    description: `${prefix}: alarms that stay in ALARM get the next runbook step (alarm actions fire on state change only)`,
    schedule: events.Schedule.rate(Duration.minutes(remediation.recheckMinutes)),
    targets: [
      new targets.LambdaFunction(router.function, {
        retryAttempts: 2,
        maxEventAge: Duration.minutes(10),
        deadLetterQueue,
      }),
    ],
  });
  return { modeParameter, lockTable, router, deadLetterQueue, alarmStateChange, recheck };
}
