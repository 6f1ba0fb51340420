/**
 * The Alertmanager configuration the router is fed by (lib/alertmanager-config.ts), checked with
 * Debian's real amtool 0.25: the configuration loads, the routing tree sends every StemeDB kind
 * (and anything else) to the router's SNS receiver grouped per node and kind, the subject stays
 * within SNS's 100 characters, and the message renders as the JSON the router parses. The AMP
 * definition wraps exactly the same configuration.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { EXAMPLE_ALERT_TOPIC } from '../bin/generate-rules';
import { ALERT_KINDS } from '../contracts/alarms';
import { RUNBOOK_THRESHOLDS } from '../contracts/thresholds';
import { parseSnsRecord } from '../lambda/shared/alertmanager-event';
import {
  type AlertmanagerConfigOptions,
  alertmanagerConfig,
  ROUTER_RECEIVER,
  renderAlertmanagerConfig,
  renderAmpAlertManagerDefinition,
  renderSelfManagedAlertmanagerExample,
} from '../lib/alertmanager-config';
import { prometheusRuleGroups } from '../lib/prometheus-rules';

const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:StemeDB-prometheus-alerts';
const OPTIONS: AlertmanagerConfigOptions = { topicArn: TOPIC, region: 'eu-west-1' };
const dir = mkdtempSync(join(tmpdir(), 'am-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeConfig(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

function amtool(args: readonly string[]): { status: number | null; output: string } {
  const r = spawnSync('amtool', args, { encoding: 'utf8' });
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** `amtool config routes test` of an alert with these labels, verifying it reaches the router receiver. */
function routesToRouter(file: string, labels: readonly string[]) {
  return amtool([
    'config',
    'routes',
    'test',
    `--config.file=${file}`,
    '--tree',
    `--verify.receivers=${ROUTER_RECEIVER}`,
    ...labels,
  ]);
}

interface SnsConfig {
  topic_arn: string;
  sigv4: { region: string };
  api_url?: string;
  subject: string;
  message: string;
  attributes: Record<string, string>;
  send_resolved: boolean;
}

function snsConfigOf(config: Record<string, unknown>): SnsConfig {
  const receivers = config.receivers as Array<{ name: string; sns_configs: SnsConfig[] }>;
  expect(receivers.map((r) => r.name)).toEqual([ROUTER_RECEIVER]);
  return receivers[0]?.sns_configs[0] as SnsConfig;
}

/** Renders `text` with amtool against Alertmanager notification data (template.Data). */
function renderWith(text: string, data: object): string {
  const dataFile = writeConfig(`data-${Math.random().toString(16).slice(2)}.json`, JSON.stringify(data));
  const empty = writeConfig('empty.tmpl', '');
  return execFileSync(
    'amtool',
    [
      'template',
      'render',
      `--template.glob=${empty}`,
      `--template.data=${dataFile}`,
      `--template.text=${text}`,
    ],
    { encoding: 'utf8' },
  );
}

function notificationData(labels: Record<string, string>, groupLabels: Record<string, string>) {
  return {
    receiver: ROUTER_RECEIVER,
    status: 'firing',
    alerts: [
      {
        status: 'firing',
        labels,
        annotations: {},
        startsAt: '2024-05-01T12:25:00.123Z',
        endsAt: '0001-01-01T00:00:00Z',
        generatorURL: 'http://prometheus:9090/graph',
        fingerprint: '9c1d2e3f4a5b6c7d',
      },
    ],
    groupLabels,
    commonLabels: labels,
    commonAnnotations: {},
    externalURL: 'http://alertmanager:9093',
  };
}

describe('renderAlertmanagerConfig', () => {
  it('is a configuration the real amtool accepts, with and without api_url', () => {
    for (const [name, text] of [
      ['plain.yml', renderAlertmanagerConfig(OPTIONS)],
      ['api-url.yml', renderAlertmanagerConfig({ ...OPTIONS, apiUrl: 'http://127.0.0.1:5000' })],
    ] as const) {
      const r = amtool(['check-config', writeConfig(name, text)]);
      expect(r.output).toContain('SUCCESS');
      expect(r.status, r.output).toBe(0);
    }
  });

  it('routes every kind the rules carry to the router receiver, grouped by node and kind', () => {
    const file = writeConfig('routes.yml', renderAlertmanagerConfig(OPTIONS));
    const ruleKinds = new Set(
      prometheusRuleGroups(RUNBOOK_THRESHOLDS, { dataMount: '/data' }).groups.flatMap((g) =>
        g.rules.map((r) => r.labels.stemedb_alarm_kind),
      ),
    );
    expect([...ruleKinds].sort()).toEqual([...ALERT_KINDS].sort());
    for (const kind of ALERT_KINDS) {
      const r = routesToRouter(file, [`stemedb_alarm_kind=${kind}`, 'stemedb_node=db-1']);
      expect(r.status, r.output).toBe(0);
      // The kind's route (under the root), not the catch-all root itself.
      expect(r.output).toMatch(
        /└── default-route\n\s+└── \{stemedb_alarm_kind=~"[^"]+"\}\s+receiver: stemedb-alarm-router/,
      );
    }
    const route = (alertmanagerConfig(OPTIONS).route as { routes: Array<Record<string, unknown>> }).routes[0];
    expect(route).toMatchObject({
      group_by: ['stemedb_node', 'stemedb_alarm_kind'],
      group_wait: '10s',
      group_interval: '5m',
      repeat_interval: '12h',
    });
  });

  it('sends an alert of another rule to the router too (it logs it as not routed), one alert per notification', () => {
    const file = writeConfig('foreign.yml', renderAlertmanagerConfig(OPTIONS));
    const r = routesToRouter(file, ['alertname=NodeDown', 'stemedb_alarm_kind=panic']);
    expect(r.status, r.output).toBe(0);
    expect(r.output).not.toMatch(/stemedb_alarm_kind=~/);
    expect((alertmanagerConfig(OPTIONS).route as { group_by: string[] }).group_by).toEqual(['...']);
  });

  it('publishes to the topic with SigV4 in its region, resolved alerts too, and AWS-valid attributes', () => {
    const sns = snsConfigOf(alertmanagerConfig(OPTIONS));
    expect(sns).toMatchObject({ topic_arn: TOPIC, sigv4: { region: 'eu-west-1' }, send_resolved: true });
    expect(sns.api_url).toBeUndefined();
    const data = notificationData(
      { alertname: 'StemeDBDiskSpaceCritical', stemedb_alarm_kind: 'critical', stemedb_node: 'db-1' },
      { stemedb_alarm_kind: 'critical', stemedb_node: 'db-1' },
    );
    expect(
      Object.fromEntries(Object.entries(sns.attributes).map(([k, v]) => [k, renderWith(v, data)])),
    ).toEqual({ stemedb_status: 'firing', stemedb_alarm_kind: 'critical', stemedb_node: 'db-1' });
    // SNS refuses an empty attribute value: an alert without the labels still has one.
    const bare = notificationData({ alertname: 'NodeDown' }, { alertname: 'NodeDown' });
    for (const v of Object.values(sns.attributes)) expect(renderWith(v, bare)).not.toBe('');
  });

  it('renders a subject SNS accepts (printable ASCII, one line, at most 100 characters) from any labels', () => {
    const sns = snsConfigOf(alertmanagerConfig({ ...OPTIONS, subjectPrefix: 'ABCDEFGHIJKLMNOPQRST' }));
    const ok = renderWith(
      sns.subject,
      notificationData({ alertname: 'X' }, { stemedb_alarm_kind: 'critical', stemedb_node: 'db-1' }),
    );
    expect(ok).toBe('ABCDEFGHIJKLMNOPQRST FIRING: critical on db-1');
    const hostile = renderWith(
      sns.subject,
      notificationData(
        { alertname: 'X' },
        {
          stemedb_alarm_kind: `emergency-inodes${'x'.repeat(200)}`,
          stemedb_node: `db-1\n${'é'.repeat(300)}"`,
        },
      ),
    );
    expect(hostile).toMatch(/^[ -~]{1,100}$/);
    expect(hostile.length).toBeLessThanOrEqual(100);
    const none = renderWith(sns.subject, notificationData({ alertname: 'X' }, {}));
    expect(none).toBe('ABCDEFGHIJKLMNOPQRST FIRING: other on no-node');
  });

  it('renders the message as the JSON the router parses (the alert, its labels, startsAt and fingerprint)', () => {
    const sns = snsConfigOf(alertmanagerConfig(OPTIONS));
    const labels = {
      alertname: 'StemeDBDiskFillsWithinHours',
      mountpoint: '/data',
      stemedb_alarm_kind: 'fills-soon',
      stemedb_node: 'db-1',
      quoted: 'a "b" \\ c',
    };
    const message = renderWith(sns.message, notificationData(labels, {}));
    const parsed = parseSnsRecord({
      EventSource: 'aws:sns',
      Sns: { TopicArn: TOPIC, Timestamp: '2024-05-01T12:25:02.000Z', Message: message },
    });
    expect(parsed.ok && parsed.value.notification.alerts).toEqual([
      {
        status: 'firing',
        alertname: 'StemeDBDiskFillsWithinHours',
        kind: 'fills-soon',
        kindLabel: 'fills-soon',
        node: 'db-1',
        fingerprint: '9c1d2e3f4a5b6c7d',
        transition: '2024-05-01T12:25:00Z',
      },
    ]);
    expect((JSON.parse(message) as { alerts: Array<{ labels: object }> }).alerts[0]?.labels).toEqual(labels);
  });

  it.each([
    [
      'topicArn',
      { topicArn: 'StemeDB-prometheus-alerts' },
      /topicArn is "StemeDB-prometheus-alerts"; expected an SNS topic ARN/,
    ],
    ['region', { region: 'Ireland' }, /region is "Ireland"; expected an AWS region/],
    ['subjectPrefix', { subjectPrefix: 'Steme DB' }, /subjectPrefix is "Steme DB"; expected a letter/],
    ['apiUrl', { apiUrl: 'ftp://sns' }, /apiUrl is "ftp:\/\/sns"; expected an http\(s\) URL/],
    ['groupWait', { groupWait: '10' }, /groupWait is "10"; expected an Alertmanager duration/],
    [
      'repeatInterval',
      { repeatInterval: '-1h' },
      /repeatInterval is "-1h"; expected an Alertmanager duration/,
    ],
  ])('refuses a bad %s, naming it', (_name, bad, message) => {
    expect(() => renderAlertmanagerConfig({ ...OPTIONS, ...bad })).toThrow(message);
  });
});

describe('renderAmpAlertManagerDefinition', () => {
  it('is the same configuration under alertmanager_config, which amtool accepts', () => {
    const definition = parse(renderAmpAlertManagerDefinition(OPTIONS)) as Record<string, unknown>;
    expect(Object.keys(definition)).toEqual(['alertmanager_config']);
    const text = definition.alertmanager_config as string;
    expect(text).toBe(renderAlertmanagerConfig(OPTIONS));
    const r = amtool(['check-config', writeConfig('amp.yml', text)]);
    expect(r.status, r.output).toBe(0);
  });

  it('refuses api_url, which AMP sets itself', () => {
    expect(() => renderAmpAlertManagerDefinition({ ...OPTIONS, apiUrl: 'http://127.0.0.1:5000' })).toThrow(
      /apiUrl is "http:\/\/127.0.0.1:5000"; Amazon Managed Service for Prometheus sets the SNS endpoint itself/,
    );
  });
});

describe('the committed self-managed example (prometheus/alertmanager-sns.yml)', () => {
  const committed = readFileSync(join(__dirname, '..', 'prometheus', 'alertmanager-sns.yml'), 'utf8');

  it('equals the renderer output for the example topic, and amtool accepts it', () => {
    expect(committed).toBe(renderSelfManagedAlertmanagerExample(EXAMPLE_ALERT_TOPIC));
    const r = amtool(['check-config', join(__dirname, '..', 'prometheus', 'alertmanager-sns.yml')]);
    expect(r.status, r.output).toBe(0);
  });

  it('is the configuration docs/prometheus-alertmanager.md shows', () => {
    const doc = readFileSync(join(__dirname, '..', 'docs', 'prometheus-alertmanager.md'), 'utf8');
    const block =
      /<!-- alertmanager-sns:begin -->\n```yaml\n([\s\S]*?)```\n<!-- alertmanager-sns:end -->/.exec(doc);
    expect(block, 'the doc has the generated Alertmanager block').not.toBeNull();
    expect(block?.[1]).toBe(renderAlertmanagerConfig(EXAMPLE_ALERT_TOPIC));
  });
});
