/**
 * Alertmanager notifications as the alarm router receives them: an SNS → Lambda event
 * (`Records[].Sns`) whose `Message` is Alertmanager's notification data as JSON, rendered by the
 * `sns_configs` message template {@link ALERTMANAGER_SNS_MESSAGE_TEMPLATE} (Alertmanager's own
 * default SNS message is plain text: `.CommonAnnotations` and a text list of alerts).
 *
 * The JSON keeps the webhook payload's names: `version`, `status`, `receiver`, `groupKey`, and
 * `alerts[]` with `status` (`firing` | `resolved`), `labels`, `startsAt`, `endsAt` and
 * `fingerprint`. Which disk an alert is about comes from two labels the rules carry
 * (lib/prometheus-rules.ts): `stemedb_alarm_kind` (which route) and `stemedb_node` (which node;
 * a target label the scrape configuration sets, kept by every rule). Parsing never throws.
 */

import { ALERT_KINDS, type AlertKind } from '../../contracts/alarms';
import { normalizeTransition, type Parsed, shown } from './alarm-event';

/** lib/prometheus-rules.ts ALARM_KIND_LABEL and NODE_LABEL (a test pins them equal; values here keep lib/ out of the bundle). */
export const ALARM_KIND_LABEL = 'stemedb_alarm_kind';
export const NODE_LABEL = 'stemedb_node';

/** One alert of a notification, as the router needs it. */
export interface PrometheusAlert {
  readonly status: 'firing' | 'resolved';
  readonly alertname: string;
  /** `stemedb_alarm_kind`, when it is a kind routes may name. */
  readonly kind: AlertKind | undefined;
  /** The raw `stemedb_alarm_kind` value (for the log when it is not a known kind). */
  readonly kindLabel: string | undefined;
  /** `stemedb_node` as given (validated by the router against the node name pattern). */
  readonly node: string | undefined;
  /** Alertmanager's fingerprint of the alert's labels (hex). */
  readonly fingerprint: string;
  /** `startsAt` to the second, ISO 8601 UTC: the alert's transition into firing. */
  readonly transition: string;
}

/** One SNS record carrying one Alertmanager notification (a group of alerts). */
export interface AlertmanagerNotification {
  readonly type: 'alertmanager-notification';
  /** The SNS envelope's TopicArn: must be this stack's Prometheus alert topic. */
  readonly topicArn: string;
  /** The SNS envelope's Timestamp (when SNS accepted the publish), ISO 8601 UTC to the second. */
  readonly publishedAt: string;
  readonly messageId: string;
  readonly alerts: readonly PrometheusAlert[];
}

/** An alert that could not be read: logged as malformed, the others of the group still count. */
export interface UnreadableAlert {
  readonly index: number;
  readonly reason: string;
}

export interface ParsedNotification {
  readonly notification: AlertmanagerNotification;
  readonly unreadable: readonly UnreadableAlert[];
}

const TOPIC_ARN = /^arn:aws[a-z-]{0,20}:sns:[a-z0-9-]{1,30}:\d{12}:[A-Za-z0-9_-]{1,256}$/;
const ALERT_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const FINGERPRINT = /^[0-9a-f]{1,32}$/;
/** Most alerts one notification may carry; Alertmanager groups stay far below this. */
const MAX_ALERTS = 100;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Whether the Lambda event is an SNS delivery (`Records[].EventSource == "aws:sns"`). */
export function isSnsEvent(raw: unknown): raw is { Records: unknown[] } {
  return (
    isRecord(raw) &&
    Array.isArray(raw.Records) &&
    raw.Records.length > 0 &&
    raw.Records.every((r) => isRecord(r) && r.EventSource === 'aws:sns')
  );
}

function parseAlert(raw: unknown): Parsed<PrometheusAlert> {
  if (!isRecord(raw)) return { ok: false, reason: 'the alert is not an object' };
  const { status, labels, startsAt, fingerprint } = raw;
  if (status !== 'firing' && status !== 'resolved') {
    return { ok: false, reason: `status is ${shown(status)}; expected firing or resolved` };
  }
  if (!isRecord(labels)) return { ok: false, reason: 'labels is missing or not an object' };
  const alertname = labels.alertname;
  if (typeof alertname !== 'string' || !ALERT_NAME.test(alertname)) {
    return { ok: false, reason: `labels.alertname is ${shown(alertname)}; expected a Prometheus alert name` };
  }
  if (typeof fingerprint !== 'string' || !FINGERPRINT.test(fingerprint)) {
    return {
      ok: false,
      reason: `fingerprint is ${shown(fingerprint)}; expected Alertmanager's hex fingerprint`,
    };
  }
  const transition = normalizeTransition(startsAt);
  if (transition === undefined) {
    return { ok: false, reason: `startsAt is ${shown(startsAt)}; expected an RFC 3339 time` };
  }
  const kindLabel =
    typeof labels[ALARM_KIND_LABEL] === 'string' ? (labels[ALARM_KIND_LABEL] as string) : undefined;
  const kind = (ALERT_KINDS as readonly string[]).includes(kindLabel ?? '')
    ? (kindLabel as AlertKind)
    : undefined;
  const node = typeof labels[NODE_LABEL] === 'string' ? (labels[NODE_LABEL] as string) : undefined;
  return { ok: true, value: { status, alertname, kind, kindLabel, node, fingerprint, transition } };
}

/** Parses one SNS record: the envelope, then the Alertmanager JSON in `Message`. */
export function parseSnsRecord(record: unknown): Parsed<ParsedNotification> {
  if (!isRecord(record) || !isRecord(record.Sns))
    return { ok: false, reason: 'the record has no Sns object' };
  const sns = record.Sns;
  const topicArn = sns.TopicArn;
  if (typeof topicArn !== 'string' || !TOPIC_ARN.test(topicArn)) {
    return { ok: false, reason: `Sns.TopicArn is ${shown(topicArn)}; expected an SNS topic ARN` };
  }
  const publishedAt = normalizeTransition(sns.Timestamp);
  if (publishedAt === undefined) {
    return { ok: false, reason: `Sns.Timestamp is ${shown(sns.Timestamp)}; expected an ISO 8601 time` };
  }
  const messageId = typeof sns.MessageId === 'string' ? sns.MessageId : '';
  let body: unknown;
  try {
    body = typeof sns.Message === 'string' ? JSON.parse(sns.Message) : undefined;
  } catch {
    body = undefined;
  }
  if (!isRecord(body)) {
    return {
      ok: false,
      reason:
        'Sns.Message is not a JSON object: the Alertmanager receiver must use the stack\'s message template (README "Prometheus alerts")',
    };
  }
  if (!Array.isArray(body.alerts) || body.alerts.length === 0 || body.alerts.length > MAX_ALERTS) {
    return {
      ok: false,
      reason: `Sns.Message.alerts is ${shown(body.alerts)}; expected 1 to ${MAX_ALERTS} alerts`,
    };
  }
  const alerts: PrometheusAlert[] = [];
  const unreadable: UnreadableAlert[] = [];
  body.alerts.forEach((a: unknown, index: number) => {
    const parsed = parseAlert(a);
    if (parsed.ok) alerts.push(parsed.value);
    else unreadable.push({ index, reason: `alerts[${index}]: ${parsed.reason}` });
  });
  return {
    ok: true,
    value: {
      notification: { type: 'alertmanager-notification', topicArn, publishedAt, messageId, alerts },
      unreadable,
    },
  };
}

/**
 * The `sns_configs[].message` template that makes Alertmanager's SNS message the JSON above.
 * Alertmanager 0.25 templates have no JSON escaping: label values are passed through
 * `reReplaceAll` to escape `\` and `"`; a value with a control character makes the message
 * invalid JSON, which the router logs as malformed and acts on nothing (fail safe).
 */
export const ALERTMANAGER_SNS_MESSAGE_TEMPLATE = [
  '{{ define "stemedb.sns.json" }}{"version":"4","status":"{{ .Status }}","receiver":"{{ .Receiver }}","alerts":[',
  '{{- range $i, $a := .Alerts }}{{ if $i }},{{ end }}{"status":"{{ $a.Status }}","labels":{ ',
  '{{- range $j, $l := $a.Labels.SortedPairs }}{{ if $j }},{{ end }}"{{ $l.Name }}":"{{ reReplaceAll "([\\"\\\\\\\\])" "\\\\$1" $l.Value }}"{{ end -}}',
  '},"startsAt":"{{ $a.StartsAt.Format "2006-01-02T15:04:05Z07:00" }}","endsAt":"{{ $a.EndsAt.Format "2006-01-02T15:04:05Z07:00" }}","fingerprint":"{{ $a.Fingerprint }}"}',
  '{{- end }}]}{{ end }}',
].join('');
