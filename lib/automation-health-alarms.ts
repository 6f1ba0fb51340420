import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DEFAULT_PREFIX } from '../contracts/deployment';

export interface AutomationHealthAlarmsProps {
  /** Name prefix of the alarms. @default 'StemeDB' */
  readonly prefix?: string;
  /** The remediation functions, by a short name used in the alarm name. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  /** Where EventBridge puts alarm events it could not deliver to the router. */
  readonly deadLetterQueue: sqs.IQueue;
  /** Topic notified when the automation itself is failing. */
  readonly topic: sns.ITopic;
}

/**
 * Alarms on the automation itself: a remediation that cannot run must wake a human rather than
 * fail silently at 3 a.m. One alarm per function on errors, one on undelivered alarm events.
 */
export class AutomationHealthAlarms extends Construct {
  public readonly alarms: readonly cloudwatch.Alarm[];

  constructor(scope: Construct, id: string, props: AutomationHealthAlarmsProps) {
    super(scope, id);
    const prefix = props.prefix ?? DEFAULT_PREFIX;
    const names = Object.keys(props.functions);
    if (names.length === 0)
      throw new Error('AutomationHealthAlarms functions is empty; expected at least one function');
    const notify = new actions.SnsAction(props.topic);
    const alarms: cloudwatch.Alarm[] = [];
    for (const name of names) {
      if (!/^[a-z][a-z0-9-]{0,40}$/.test(name)) {
        throw new Error(
          `AutomationHealthAlarms functions key ${JSON.stringify(name)}; expected lower-case letters, digits and "-"`,
        );
      }
      const fn = props.functions[name] as lambda.IFunction;
      alarms.push(
        new cloudwatch.Alarm(this, `Errors-${name}`, {
          alarmName: `${prefix}-automation-${name}-errors`,
          alarmDescription: `The ${name} Lambda of the ${prefix} disk automation failed: remediation may not have run. See its log group.`,
          metric: fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
          threshold: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          evaluationPeriods: 1,
          // No invocations means no errors.
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    }
    alarms.push(
      new cloudwatch.Alarm(this, 'UndeliveredAlarmEvents', {
        alarmName: `${prefix}-automation-undelivered-events`,
        alarmDescription: `EventBridge could not deliver ${prefix} disk alarm events to the router: those alarms started no remediation. Messages are in the dead-letter queue.`,
        metric: props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
          period: Duration.minutes(5),
          statistic: 'Maximum',
        }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
    for (const alarm of alarms) {
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
    }
    this.alarms = alarms;
  }
}
