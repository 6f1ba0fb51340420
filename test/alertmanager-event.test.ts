/**
 * The Alertmanager SNS message template, rendered by Debian's real amtool 0.25 (its sample
 * notification data), gives the JSON the router parses; the label names agree with the rules.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ALARM_KIND_LABEL,
  ALERTMANAGER_SNS_MESSAGE_TEMPLATE,
  NODE_LABEL,
  parseSnsRecord,
} from '../lambda/shared/alertmanager-event';
import * as rules from '../lib/prometheus-rules';

function render(): string {
  const dir = mkdtempSync(join(tmpdir(), 'am-template-'));
  try {
    writeFileSync(join(dir, 'stemedb.tmpl'), ALERTMANAGER_SNS_MESSAGE_TEMPLATE);
    return execFileSync(
      'amtool',
      [
        'template',
        'render',
        `--template.glob=${join(dir, 'stemedb.tmpl')}`,
        '--template.text={{ template "stemedb.sns.json" . }}',
      ],
      { encoding: 'utf8' },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('Alertmanager SNS message template', () => {
  it('renders, with the real amtool, JSON with status, alerts, labels, startsAt and fingerprint', () => {
    const json = JSON.parse(render()) as { alerts: Record<string, unknown>[] };
    expect(json.alerts.length).toBeGreaterThan(0);
    expect(json.alerts[0]).toEqual({
      status: expect.any(String),
      labels: expect.objectContaining({ instance: 'foo.bar:1234' }),
      startsAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$/),
      endsAt: expect.any(String),
      fingerprint: 'fingerprint1',
    });
  });

  it('is parsed by the router once the sample has an alertname and hex fingerprints, as Alertmanager gives them', () => {
    const message = render()
      .replace(/fingerprint\d/g, 'a1b2c3')
      .replaceAll('alertstatus', 'firing')
      .replaceAll('"labels":{', '"labels":{"alertname":"StemeDBDiskSpaceCritical",');
    const parsed = parseSnsRecord({
      EventSource: 'aws:sns',
      Sns: {
        TopicArn: 'arn:aws:sns:eu-west-1:123456789012:StemeDB-prometheus-alerts',
        Timestamp: '2024-05-01T12:00:00.000Z',
        Message: message,
      },
    });
    expect(parsed.ok && parsed.value.notification.alerts.map((a) => a.status)).toEqual(['firing', 'firing']);
  });

  it('reads the labels the rules carry', () => {
    expect(ALARM_KIND_LABEL).toBe(rules.ALARM_KIND_LABEL);
    expect(NODE_LABEL).toBe(rules.NODE_LABEL);
  });
});
