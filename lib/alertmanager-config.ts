/**
 * The Alertmanager configuration that turns the disk rules' alerts into the alarm router's SNS
 * notifications: one route for the StemeDB kinds (grouped per node and kind), one SNS receiver
 * whose message is the JSON the router parses (`ALERTMANAGER_SNS_MESSAGE_TEMPLATE`).
 *
 * One renderer for every Alertmanager that feeds the router: the stack uploads
 * {@link renderAmpAlertManagerDefinition} to Amazon Managed Service for Prometheus, a self-managed
 * Alertmanager uses {@link renderAlertmanagerConfig} (`prometheus/alertmanager-sns.yml`, README
 * "Prometheus alerts", docs/prometheus-alertmanager.md), and the tests run the same text in Debian's Alertmanager 0.25.
 * Pure: no file or AWS access.
 */
import { Token } from 'aws-cdk-lib';
import { stringify } from 'yaml';
import { ALERT_KINDS } from '../contracts/alarms';
import { ALERTMANAGER_SNS_MESSAGE_TEMPLATE } from '../contracts/alertmanager';
import { DEFAULT_PREFIX, PREFIX_PATTERN } from '../contracts/deployment';
import { ALARM_KIND_LABEL, NODE_LABEL } from './prometheus-rules';

/** Name of the receiver that publishes to the router's topic. */
export const ROUTER_RECEIVER = 'stemedb-alarm-router';

export interface AlertmanagerConfigOptions {
  /** The SNS topic the router subscribes to (a token in the stack, a literal ARN elsewhere). */
  readonly topicArn: string;
  /** The topic's region, for SigV4 (AMP requires it). */
  readonly region: string;
  /** First word of the SNS subject, e.g. the stack prefix. @default 'StemeDB' */
  readonly subjectPrefix?: string;
  /**
   * SNS endpoint URL, for a self-managed Alertmanager that must not use the public endpoint
   * (a VPC endpoint, a local test server). AMP refuses the field. @default the region's public SNS endpoint
   */
  readonly apiUrl?: string;
  /**
   * How long a new group waits for more alerts before its first notification. Short: the router
   * should act on a disk soon after the rule's own `for:` window. @default '10s'
   */
  readonly groupWait?: string;
  /** How long a group waits before notifying a change (an alert resolved or added). @default '5m' */
  readonly groupInterval?: string;
  /**
   * How often a group that stays firing is sent again. Long: a repeat has the same `startsAt`,
   * which the router reads as the transition it already acted on (one start per transition);
   * the repeat only costs the router a look-up. @default '12h'
   */
  readonly repeatInterval?: string;
}

/** A Prometheus/Alertmanager duration: a number and a unit (`10s`, `5m`, `12h`, `1d`). */
const DURATION = /^[1-9][0-9]{0,5}(?:ms|s|m|h|d|w)$/;
const TOPIC_ARN = /^arn:aws[a-z-]{0,20}:sns:[a-z0-9-]{1,30}:\d{12}:[A-Za-z0-9_-]{1,256}$/;
const REGION = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;
const API_URL = /^https?:\/\/[A-Za-z0-9.-]+(?::\d{1,5})?\/?$/;

/**
 * The SNS Subject: SNS takes at most 100 printable ASCII characters on one line, so label values
 * are reduced to `[A-Za-z0-9._-]` and cut (20 + 1 + 8 + 2 + 16 + 4 + 32 = 83 at most). Alerts of
 * the catch-all route may lack the labels: they read `other` and `no node`.
 */
function subjectTemplate(prefix: string): string {
  const clean = (label: string, fallback: string, max: number): string =>
    `{{ or (.GroupLabels.${label} | reReplaceAll "[^A-Za-z0-9._-]" "" | reReplaceAll "^(.{0,${max}}).*$" "$1") "${fallback}" }}`;
  return `${prefix} {{ .Status | toUpper }}: ${clean(ALARM_KIND_LABEL, 'other', 16)} on ${clean(NODE_LABEL, 'no-node', 32)}`;
}

function checkOptions(o: AlertmanagerConfigOptions): void {
  if (!Token.isUnresolved(o.topicArn) && !TOPIC_ARN.test(o.topicArn)) {
    throw new Error(
      `renderAlertmanagerConfig: topicArn is ${JSON.stringify(o.topicArn)}; expected an SNS topic ARN such as arn:aws:sns:eu-west-1:111122223333:StemeDB-prometheus-alerts`,
    );
  }
  if (!Token.isUnresolved(o.region) && !REGION.test(o.region)) {
    throw new Error(
      `renderAlertmanagerConfig: region is ${JSON.stringify(o.region)}; expected an AWS region such as eu-west-1`,
    );
  }
  if (o.subjectPrefix !== undefined && !PREFIX_PATTERN.test(o.subjectPrefix)) {
    throw new Error(
      `renderAlertmanagerConfig: subjectPrefix is ${JSON.stringify(o.subjectPrefix)}; expected a letter and up to 19 letters or digits`,
    );
  }
  if (o.apiUrl !== undefined && !API_URL.test(o.apiUrl)) {
    throw new Error(
      `renderAlertmanagerConfig: apiUrl is ${JSON.stringify(o.apiUrl)}; expected an http(s) URL of a host and port, e.g. https://sns.eu-west-1.amazonaws.com`,
    );
  }
  for (const key of ['groupWait', 'groupInterval', 'repeatInterval'] as const) {
    const value = o[key];
    if (value !== undefined && !DURATION.test(value)) {
      throw new Error(
        `renderAlertmanagerConfig: ${key} is ${JSON.stringify(value)}; expected an Alertmanager duration such as 10s, 5m or 12h`,
      );
    }
  }
}

/** The Alertmanager configuration as an object (the YAML of {@link renderAlertmanagerConfig}). */
export function alertmanagerConfig(o: AlertmanagerConfigOptions): Record<string, unknown> {
  checkOptions(o);
  const snsConfig: Record<string, unknown> = {
    topic_arn: o.topicArn,
    sigv4: { region: o.region },
    ...(o.apiUrl === undefined ? {} : { api_url: o.apiUrl }),
    subject: subjectTemplate(o.subjectPrefix ?? DEFAULT_PREFIX),
    // The template defines itself and then renders: one self-contained field, no template file.
    message: `${ALERTMANAGER_SNS_MESSAGE_TEMPLATE}{{ template "stemedb.sns.json" . }}`,
    // For SNS subscription filter policies; SNS refuses empty attribute values.
    attributes: {
      stemedb_status: '{{ .Status }}',
      [ALARM_KIND_LABEL]: `{{ or .GroupLabels.${ALARM_KIND_LABEL} "other" }}`,
      [NODE_LABEL]: `{{ or .GroupLabels.${NODE_LABEL} "none" }}`,
    },
    // The router starts nothing for a resolved alert, but logs it: the transition is visible.
    send_resolved: true,
  };
  return {
    route: {
      // Alerts of other rules (no stemedb_alarm_kind) still reach the router, one per
      // notification, which logs them as not routed: nothing is dropped silently.
      receiver: ROUTER_RECEIVER,
      group_by: ['...'],
      routes: [
        {
          receiver: ROUTER_RECEIVER,
          matchers: [`${ALARM_KIND_LABEL}=~"${ALERT_KINDS.join('|')}"`],
          // One group per disk and kind: the router handles each (node, kind) transition once.
          group_by: [NODE_LABEL, ALARM_KIND_LABEL],
          group_wait: o.groupWait ?? '10s',
          group_interval: o.groupInterval ?? '5m',
          repeat_interval: o.repeatInterval ?? '12h',
        },
      ],
    },
    receivers: [{ name: ROUTER_RECEIVER, sns_configs: [snsConfig] }],
  };
}

/** The Alertmanager configuration file (`alertmanager.yml`) text. */
export function renderAlertmanagerConfig(o: AlertmanagerConfigOptions): string {
  return stringify(alertmanagerConfig(o), { lineWidth: 0 });
}

/**
 * The alert manager definition Amazon Managed Service for Prometheus takes
 * (CreateAlertManagerDefinition / PutAlertManagerDefinition `data`): the configuration under
 * `alertmanager_config`. AMP sets the SNS endpoint itself and refuses `api_url`.
 */
export function renderAmpAlertManagerDefinition(o: AlertmanagerConfigOptions): string {
  if (o.apiUrl !== undefined) {
    throw new Error(
      `renderAmpAlertManagerDefinition: apiUrl is ${JSON.stringify(o.apiUrl)}; Amazon Managed Service for Prometheus sets the SNS endpoint itself and refuses api_url: leave it out`,
    );
  }
  return stringify({ alertmanager_config: renderAlertmanagerConfig(o) }, { lineWidth: 0 });
}

/** The committed self-managed example (`npm run rules`): a generated-file header, then the configuration. */
export function renderSelfManagedAlertmanagerExample(o: AlertmanagerConfigOptions): string {
  const header = [
    '# GENERATED FILE: do not edit by hand.',
    '# Source: lib/alertmanager-config.ts (renderAlertmanagerConfig); regenerate with `npm run rules`.',
    '# A self-managed Alertmanager that feeds the StemeDB alarm router (docs/prometheus-alertmanager.md):',
    "# set topic_arn and sigv4.region to the stack's <prefix>-prometheus-alerts topic; the Alertmanager",
    "# needs the stack's <prefix>-prometheus-alertmanager-publish policy (sns:Publish on the topic, the",
    '# topic key through SNS). Check: amtool check-config prometheus/alertmanager-sns.yml',
    '',
  ].join('\n');
  return header + renderAlertmanagerConfig(o);
}
