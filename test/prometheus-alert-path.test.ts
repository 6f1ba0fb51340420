/**
 * A Prometheus alert on real parts starts the right document (issue 12, "Done when").
 *
 * Real: a loop-device ext4 mounted under a temp dir and filled by the test; Debian's
 * node_exporter 1.5 reporting it; Prometheus 2.42 scraping it every second with the target label
 * `stemedb_node=db-1` and evaluating the rules `renderPrometheusRules` generates (thresholds with
 * second-long windows, see THRESHOLDS); Alertmanager 0.25 with the configuration
 * `renderAlertmanagerConfig` generates (group_wait 1s), whose SNS receiver signs with SigV4 and
 * publishes to moto_server's SNS (`api_url`); an SQS queue subscribed to the topic, which the test
 * drains; the router's own `handler` (lambda/alarm-router.ts, its environment as the stack sets
 * it) fed each message as the SNS → Lambda event. Stubbed: SSM (the node registry, the kill switch
 * and Automation, which moto does not have), by a fake that keeps executions as AWS does.
 *
 * The processes listen on 127.0.0.1 only (random free ports, Alertmanager's cluster listener off),
 * keep their files in temp dirs, and are killed in afterAll, also when a test failed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routeTable } from '../contracts/routing';
import { type DiskThresholds, RUNBOOK_THRESHOLDS } from '../contracts/thresholds';
import { handler, type RouterOutcome } from '../lambda/alarm-router';
import { renderAlertmanagerConfig } from '../lib/alertmanager-config';
import { DEFAULT_CONFIG } from '../lib/config';
import { renderPrometheusRules } from '../lib/prometheus-rules';
import { AutomationFake } from './support/automation-fake';
import { LockTableFake } from './support/lock-table-fake';
import { dfBytes, LoopDeviceLab, type LoopDisk, sh } from './support/loop-device';
import { type MotoServer, startMotoServer, TEST_REGION } from './support/moto-server';
import { freePort } from './support/stemedb-standin';

const ACCOUNT = '123456789012'; // moto's account
const NODE = 'db-1';
const INSTANCE = 'i-0123456789abcdef0';
const ROLE = `arn:aws:iam::${ACCOUNT}:role/StemeDB-disk-automation`;
const MiB = 1024 * 1024;

/**
 * The runbook's levels with windows of seconds, so the path runs in well under a minute: critical
 * and emergency hold 1 s, warning (and the prediction, which waits as long) 6 s, the prediction is
 * fitted over 30 s and looks 1 h ahead. The inode and no-data rules keep the runbook's values.
 */
const THRESHOLDS: DiskThresholds = {
  ...RUNBOOK_THRESHOLDS,
  warningMinutes: 6 / 60,
  criticalMinutes: 1 / 60,
  emergencyMinutes: 1 / 60,
  fillsWithinHours: 1,
  fillsLookbackHours: 30 / 3600,
};

/** A started daemon, its output kept (the last 20 kB) for the failure message. */
interface Daemon {
  readonly name: string;
  readonly proc: ChildProcess;
  output: string;
}

const daemons: Daemon[] = [];

function startDaemon(
  name: string,
  command: string,
  args: readonly string[],
  env?: NodeJS.ProcessEnv,
): Daemon {
  const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  const daemon: Daemon = { name, proc, output: '' };
  const keep = (d: Buffer) => {
    daemon.output = (daemon.output + d.toString()).slice(-20_000);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  daemons.push(daemon);
  return daemon;
}

async function stopDaemon(d: Daemon): Promise<void> {
  if (d.proc.exitCode !== null || d.proc.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => d.proc.kill('SIGKILL'), 5000);
    d.proc.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    d.proc.kill('SIGTERM');
  });
}

// A crashed run (no afterAll) must not leave daemons behind either.
process.once('exit', () => {
  for (const d of daemons) if (d.proc.exitCode === null) d.proc.kill('SIGKILL');
});

/** Polls `probe` until it returns a value, or fails naming what it waited for (with daemon output). */
async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const d of daemons) {
      if (d.proc.exitCode !== null) throw new Error(`${d.name} exited (${d.proc.exitCode}):\n${d.output}`);
    }
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 250));
  }
  const logs = daemons.map((d) => `--- ${d.name}\n${d.output.slice(-3000)}`).join('\n');
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${logs}`);
}

async function getJson(url: string): Promise<unknown> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

// ---------------------------------------------------------------------------------------------
// SSM as the router sees it: the node registry, the kill switch, and Automation as AWS keeps it.

const automation = new AutomationFake();
const executions = automation.executions;
const ssmMock = mockClient(SSMClient);
// The router's lock table (per-node lock, fleet-wide slots) in memory, with its exact conditions.
const ddbMock = mockClient(DynamoDBClient);
new LockTableFake('StemeDB-remediation-locks').install(ddbMock);

function fakeSsm(): void {
  const registry = JSON.stringify({
    name: NODE,
    instanceId: INSTANCE,
    availabilityZone: 'eu-west-1a',
    volumeId: 'vol-0123456789abcdef0',
    dataMount: '/data',
  });
  ssmMock
    .on(GetParameterCommand, { Name: `/StemeDB/nodes/${NODE}` })
    .resolves({ Parameter: { Value: registry } });
  ssmMock
    .on(GetParameterCommand, { Name: '/StemeDB/automation-mode' })
    .resolves({ Parameter: { Value: 'act' } });
  automation.install(ssmMock);
}

// ---------------------------------------------------------------------------------------------
// SNS (moto) → SQS → the router handler

interface SnsEnvelope {
  Type: string;
  MessageId: string;
  TopicArn: string;
  Subject?: string;
  Message: string;
  Timestamp: string;
  SignatureVersion?: string;
  Signature?: string;
  SigningCertURL?: string;
  UnsubscribeURL?: string;
  MessageAttributes?: Record<string, { Type: string; Value: string }>;
}

interface Delivered {
  readonly envelope: SnsEnvelope;
  readonly alerts: ReadonlyArray<{
    status: string;
    labels: Record<string, string>;
    fingerprint: string;
    startsAt: string;
  }>;
  readonly outcomes: readonly RouterOutcome[];
}

/** The SNS → Lambda event for one SNS message, as Lambda builds it from the topic's delivery. */
function lambdaSnsEvent(e: SnsEnvelope, subscriptionArn: string): unknown {
  return {
    Records: [
      {
        EventSource: 'aws:sns',
        EventVersion: '1.0',
        EventSubscriptionArn: subscriptionArn,
        Sns: {
          Type: e.Type,
          MessageId: e.MessageId,
          TopicArn: e.TopicArn,
          Subject: e.Subject ?? null,
          Message: e.Message,
          Timestamp: e.Timestamp,
          SignatureVersion: e.SignatureVersion,
          Signature: e.Signature,
          SigningCertUrl: e.SigningCertURL,
          UnsubscribeUrl: e.UnsubscribeURL,
          MessageAttributes: e.MessageAttributes ?? {},
        },
      },
    ],
  };
}

describe('a Prometheus alert on real Prometheus, Alertmanager and node_exporter starts the right document', () => {
  const lab = new LoopDeviceLab('prom-alert-path-');
  const work = mkdtempSync(join(tmpdir(), 'prom-alert-path-'));
  const savedEnv = { ...process.env };
  let moto: MotoServer;
  let disk: LoopDisk;
  let mount: string;
  let sqs: SQSClient;
  let queueUrl: string;
  let topicArn: string;
  let subscriptionArn: string;
  let prometheusUrl: string;
  const delivered: Delivered[] = [];

  /** Drains the queue into `delivered`, handing each message to the router as Lambda would. */
  async function drain(): Promise<void> {
    const out = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }),
    );
    for (const m of out.Messages ?? []) {
      const envelope = JSON.parse(m.Body ?? '{}') as SnsEnvelope;
      const { outcomes } = await handler(lambdaSnsEvent(envelope, subscriptionArn));
      const alerts = (JSON.parse(envelope.Message) as { alerts: Delivered['alerts'] }).alerts;
      delivered.push({ envelope, alerts, outcomes });
      await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle }));
    }
  }

  /** Waits until a delivered notification has a `status` alert of `kind`; returns it. */
  function delivery(kind: string, status: 'firing' | 'resolved', timeoutMs: number): Promise<Delivered> {
    return waitFor(`Alertmanager's SNS notification of a ${status} ${kind} alert`, timeoutMs, async () => {
      await drain();
      return delivered.find((d) =>
        d.alerts.some((a) => a.status === status && a.labels.stemedb_alarm_kind === kind),
      );
    });
  }

  beforeAll(async () => {
    // The disk: 64 MiB ext4 without reserved blocks (avail = free), mounted under the lab root.
    disk = lab.createDisk({ sizeMiB: 64, fs: 'ext4', mkfsArgs: ['-m', '0'] });
    mount = disk.mountPoint as string;

    // moto: the topic, and a queue subscribed to it that the test drains.
    moto = await startMotoServer();
    const aws = {
      region: TEST_REGION,
      endpoint: moto.endpoint,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    };
    const sns = new SNSClient(aws);
    sqs = new SQSClient(aws);
    topicArn = (await sns.send(new CreateTopicCommand({ Name: 'StemeDB-prometheus-alerts' })))
      .TopicArn as string;
    queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'router-inbox' }))).QueueUrl as string;
    const queueArn = (
      await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }))
    ).Attributes?.QueueArn as string;
    subscriptionArn = (
      await sns.send(new SubscribeCommand({ TopicArn: topicArn, Protocol: 'sqs', Endpoint: queueArn }))
    ).SubscriptionArn as string;

    const [exporterPort, prometheusPort, alertmanagerPort] = [
      await freePort(),
      await freePort(),
      await freePort(),
    ];

    startDaemon('node_exporter', 'prometheus-node-exporter', [
      `--web.listen-address=127.0.0.1:${exporterPort}`,
      '--collector.disable-defaults',
      '--collector.filesystem',
      // The default also leaves /tmp in; this says so: only the kernel's own trees are out.
      '--collector.filesystem.mount-points-exclude=^/(dev|proc|run|sys)($|/)',
    ]);

    const alertmanagerConfig = join(work, 'alertmanager.yml');
    writeFileSync(
      alertmanagerConfig,
      renderAlertmanagerConfig({
        topicArn,
        region: TEST_REGION,
        apiUrl: moto.endpoint,
        groupWait: '1s',
        groupInterval: '1s',
        repeatInterval: '1h',
      }),
    );
    startDaemon(
      'alertmanager',
      'prometheus-alertmanager',
      [
        `--config.file=${alertmanagerConfig}`,
        `--storage.path=${join(work, 'alertmanager-data')}`,
        `--web.listen-address=127.0.0.1:${alertmanagerPort}`,
        '--cluster.listen-address=',
        '--log.level=debug',
      ],
      // SigV4 from the default credential chain: static test credentials, never a real account.
      {
        PATH: process.env.PATH,
        AWS_ACCESS_KEY_ID: 'testing',
        AWS_SECRET_ACCESS_KEY: 'testing',
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_CONFIG_FILE: '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      },
    );

    const rules = join(work, 'stemedb-disk-rules.yml');
    writeFileSync(rules, renderPrometheusRules(THRESHOLDS, { dataMount: mount }));
    const prometheusConfig = join(work, 'prometheus.yml');
    writeFileSync(
      prometheusConfig,
      JSON.stringify({
        global: { scrape_interval: '1s', evaluation_interval: '1s' },
        rule_files: [rules],
        alerting: { alertmanagers: [{ static_configs: [{ targets: [`127.0.0.1:${alertmanagerPort}`] }] }] },
        scrape_configs: [
          {
            job_name: 'node',
            static_configs: [{ targets: [`127.0.0.1:${exporterPort}`], labels: { stemedb_node: NODE } }],
          },
        ],
      }),
    );
    prometheusUrl = `http://127.0.0.1:${prometheusPort}`;
    startDaemon('prometheus', 'prometheus', [
      `--config.file=${prometheusConfig}`,
      `--storage.tsdb.path=${join(work, 'prometheus-data')}`,
      `--web.listen-address=127.0.0.1:${prometheusPort}`,
    ]);

    // The router as the stack deploys it (its environment, read at its first event), over the fake SSM.
    fakeSsm();
    Object.assign(process.env, {
      PREFIX: 'StemeDB',
      ROUTES: JSON.stringify(routeTable('StemeDB', DEFAULT_CONFIG.remediation)),
      AUTOMATION_ROLE_ARN: ROLE,
      TOPIC_ARN: `arn:aws:sns:${TEST_REGION}:${ACCOUNT}:StemeDB-disk-notifications`,
      PROMETHEUS_TOPIC_ARN: topicArn,
      ACCOUNT_ID: ACCOUNT,
      REGION: TEST_REGION,
      NODE_PARAMETER_PREFIX: '/StemeDB/nodes/',
      MODE_PARAMETER: '/StemeDB/automation-mode',
      LOCK_TABLE: 'StemeDB-remediation-locks',
      MAX_CONCURRENT: String(DEFAULT_CONFIG.remediation.maxConcurrent),
      AWS_REGION: TEST_REGION,
      POWERTOOLS_METRICS_NAMESPACE: 'StemeDB/DiskAutomation',
      POWERTOOLS_SERVICE_NAME: 'StemeDB-alarm-router',
    });

    // Prometheus scrapes the data mount of the node.
    await waitFor('Prometheus to see the loop mount of db-1', 20_000, async () => {
      const q = encodeURIComponent(
        `node_filesystem_avail_bytes{mountpoint="${mount}",stemedb_node="${NODE}"}`,
      );
      const r = (await getJson(`${prometheusUrl}/api/v1/query?query=${q}`)) as {
        data: { result: unknown[] };
      };
      return r.data.result.length === 1 ? true : undefined;
    });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(daemons.map(stopDaemon));
    await moto?.stop();
    ssmMock.restore();
    process.env = savedEnv;
    try {
      lab.cleanup();
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 30_000);

  it('a disk filling fast (still above the warning level) fires the prediction: the router starts ArchiveWal for the node', async () => {
    // About 1 MiB/s: full within a minute at this rate, far inside the 1 h horizon.
    let written = 0;
    const writer = setInterval(() => {
      written++;
      sh('fallocate', ['-l', `${MiB / 4}`, join(mount, `segment-${written}.wal`)]);
    }, 250);
    let fillsSoon: Delivered;
    try {
      fillsSoon = await delivery('fills-soon', 'firing', 30_000);
    } finally {
      clearInterval(writer);
    }
    const used = dfBytes(mount);
    expect(used.avail / used.size, 'still above the warning level').toBeGreaterThan(0.2);

    // What Alertmanager published (through SigV4 to moto's SNS API): subject, attributes, JSON.
    expect(fillsSoon.envelope.TopicArn).toBe(topicArn);
    expect(fillsSoon.envelope.Subject).toBe('StemeDB FIRING: fills-soon on db-1');
    expect(fillsSoon.envelope.MessageAttributes).toMatchObject({
      stemedb_alarm_kind: { Type: 'String', Value: 'fills-soon' },
      stemedb_node: { Type: 'String', Value: NODE },
      stemedb_status: { Type: 'String', Value: 'firing' },
    });
    const alert = fillsSoon.alerts[0];
    expect(fillsSoon.alerts).toHaveLength(1);
    expect(alert?.labels).toMatchObject({
      alertname: 'StemeDBDiskFillsWithinHours',
      mountpoint: mount,
      stemedb_node: NODE,
      stemedb_alarm_kind: 'fills-soon',
    });

    // The router started remediation.fillsSoon for the node's instance, tagged with the transition.
    expect(fillsSoon.outcomes).toMatchObject([
      { decision: 'started', kind: 'fills-soon', node: NODE, document: 'StemeDB-ArchiveWal' },
    ]);
    const transition = fillsSoon.outcomes[0]?.transition as string;
    expect(Date.parse(transition)).toBeCloseTo(Date.parse(alert?.startsAt as string), -4);
    expect(executions.map((e) => e.input)).toEqual([
      expect.objectContaining({
        DocumentName: 'StemeDB-ArchiveWal',
        Parameters: {
          InstanceId: [INSTANCE],
          AutomationAssumeRole: [ROLE],
          Reason: [
            `prometheus:StemeDBDiskFillsWithinHours:${alert?.fingerprint} in ALARM since ${transition}`,
          ],
        },
        Tags: [
          { Key: 'stemedb:node', Value: NODE },
          { Key: 'stemedb:alarm', Value: `prometheus:StemeDBDiskFillsWithinHours:${alert?.fingerprint}` },
          { Key: 'stemedb:transition', Value: transition },
          { Key: `stemedb:node:${NODE}`, Value: 'remediation' },
        ],
      }),
    ]);
    // ArchiveWal finishes; the next test starts from an idle node.
    for (const e of executions) {
      e.status = 'Success';
      e.end = new Date();
    }
  }, 45_000);

  it('the disk crossing the critical level starts ExpandVolume; the warning that follows finds the node busy', async () => {
    // Free space to 7%: below critical (10%), above emergency (5%).
    const now = dfBytes(mount);
    const fill = Math.floor((now.avail - 0.07 * now.size) / 4096) * 4096;
    sh('fallocate', ['-l', String(fill), join(mount, 'backup.tar')]);
    const free = dfBytes(mount);
    expect(free.avail / free.size).toBeGreaterThan(0.05);
    expect(free.avail / free.size).toBeLessThan(0.1);

    const critical = await delivery('critical', 'firing', 20_000);
    expect(critical.envelope.Subject).toBe('StemeDB FIRING: critical on db-1');
    expect(critical.outcomes).toMatchObject([
      { decision: 'started', kind: 'critical', node: NODE, document: 'StemeDB-ExpandVolume' },
    ]);
    const expand = executions.at(-1);
    expect(expand?.input).toMatchObject({
      DocumentName: 'StemeDB-ExpandVolume',
      Parameters: { InstanceId: [INSTANCE], AutomationAssumeRole: [ROLE] },
    });

    // The warning (its window is longer) fires while ExpandVolume runs: one remediation per node.
    const warning = await delivery('warning', 'firing', 20_000);
    expect(warning.outcomes).toMatchObject([
      {
        decision: 'node-busy',
        kind: 'warning',
        node: NODE,
        // The node's lock names the ExpandVolume execution that holds it.
        reason: expect.stringContaining(String(expand?.id)),
        executionId: expand?.id,
      },
    ]);
    expect(executions.map((e) => e.input?.DocumentName)).toEqual([
      'StemeDB-ArchiveWal',
      'StemeDB-ExpandVolume',
    ]);
    // Nothing else started: every other decision was a resolved alert (ignored) or the busy node.
    const decisions = delivered.flatMap((d) => d.outcomes.map((o) => o.decision));
    expect(decisions.filter((d) => d === 'started')).toHaveLength(2);
    for (const d of decisions) expect(['started', 'node-busy', 'ignored-state']).toContain(d);
  }, 45_000);
});
