/**
 * The Alertmanager SNS message the alarm router reads, shared by the stack (lib/alertmanager-config.ts
 * renders it into every Alertmanager configuration it makes) and the router
 * (lambda/shared/alertmanager-event.ts parses what it renders).
 */

/**
 * The `sns_configs[].message` template that makes Alertmanager's SNS message the JSON the router parses
 * (the webhook payload's names: `version`, `status`, `receiver`, `alerts[]` with `status`, `labels`,
 * `startsAt`, `endsAt`, `fingerprint`).
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
