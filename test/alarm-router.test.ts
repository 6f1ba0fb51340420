/**
 * alarm-router: client mocks for SSM Automation (moto 5.2 has no StartAutomationExecution,
 * DescribeAutomationExecutions, GetAutomationExecution or automation tags: checked in
 * moto/ssm/models.py), plus tests on moto_server for everything moto does support: the node
 * registry (SSM GetParameter), the alarms (CloudWatch DescribeAlarms, SetAlarmState, tags) and
 * the SNS Publish of the "human needed" message.
 */
import {
  CloudWatchClient,
  DescribeAlarmsCommand,
  ListTagsForResourceCommand as ListAlarmTagsCommand,
  PutMetricAlarmCommand,
  SetAlarmStateCommand,
  TagResourceCommand,
} from '@aws-sdk/client-cloudwatch';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateTopicCommand, SNSClient } from '@aws-sdk/client-sns';
import {
  DescribeAutomationExecutionsCommand,
  GetAutomationExecutionCommand,
  GetParameterCommand,
  ListTagsForResourceCommand,
  ParameterNotFound,
  PutParameterCommand,
  SSMClient,
  StartAutomationExecutionCommand,
  type StartAutomationExecutionCommandInput,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { routeTable } from '../contracts/routing';
import {
  clientToken,
  handler,
  loadRouterConfig,
  nodeTagKey,
  type RouterConfig,
  type RouterDeps,
  type RouterOutcome,
  recordOutcomes,
  remediationReason,
  routeEvent,
  runRouter,
  snsNotifier,
  startToken,
} from '../lambda/alarm-router';
import { normalizeTransition, parseAlarmName, parseRouterEvent } from '../lambda/shared/alarm-event';
import { metrics } from '../lambda/shared/powertools';
import { resolveConfig } from '../lib/config';
import { AutomationFake } from './support/automation-fake';
import { LockTableFake } from './support/lock-table-fake';
import { type MotoServer, startMotoServer, TEST_REGION } from './support/moto-server';

const ACCOUNT = '123456789012';
const INSTANCE = 'i-0123456789abcdef0';
const OTHER_INSTANCE = 'i-0fedcba9876543210';
const ROLE = `arn:aws:iam::${ACCOUNT}:role/StemeDB-Automation`;
const TOPIC = `arn:aws:sns:${TEST_REGION}:${ACCOUNT}:StemeDB-alerts`;
const CRITICAL = 'StemeDB-db-1-disk-critical';
const WARNING = 'StemeDB-db-1-disk-warning';
const TRANSITION_RAW = '2024-05-01T12:00:00.985+0000';
const TRANSITION = '2024-05-01T12:00:00Z';
const NOW = new Date('2024-05-01T12:30:00Z');
const credentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };
const MODE_PARAMETER = '/StemeDB/automation-mode';

/** The default configuration: the router runs with the routing table the stack deploys for it. */
const DEPLOYED = resolveConfig({});
const routerEnv = {
  PREFIX: 'StemeDB',
  ROUTES: JSON.stringify(routeTable(DEPLOYED.prefix, DEPLOYED.remediation)),
  AUTOMATION_ROLE_ARN: ROLE,
  TOPIC_ARN: TOPIC,
  ACCOUNT_ID: ACCOUNT,
  REGION: TEST_REGION,
  LOCK_TABLE: 'StemeDB-remediation-locks',
  MAX_CONCURRENT: '10',
};
const config: RouterConfig = loadRouterConfig(routerEnv);

function alarmArn(name: string, region = TEST_REGION, account = ACCOUNT): string {
  return `arn:aws:cloudwatch:${region}:${account}:alarm:${name}`;
}

function alarmEvent(
  overrides: { name?: string; state?: string; previous?: string; timestamp?: string } = {},
): Record<string, unknown> {
  const name = overrides.name ?? CRITICAL;
  return {
    version: '0',
    id: 'c4c1c1c9-6542-e61b-6ef0-8c4d36933a92',
    'detail-type': 'CloudWatch Alarm State Change',
    source: 'aws.cloudwatch',
    account: ACCOUNT,
    time: '2024-05-01T12:00:01Z',
    region: TEST_REGION,
    resources: [alarmArn(name)],
    detail: {
      alarmName: name,
      configuration: { metrics: [] },
      previousState: { value: overrides.previous ?? 'OK', timestamp: '2024-04-30T10:00:00.000+0000' },
      state: {
        value: overrides.state ?? 'ALARM',
        reason: 'Threshold Crossed',
        timestamp: overrides.timestamp ?? TRANSITION_RAW,
      },
    },
  };
}

const scheduledEvent = {
  version: '0',
  id: '53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa',
  'detail-type': 'Scheduled Event',
  source: 'aws.events',
  account: ACCOUNT,
  time: '2024-05-01T12:30:00Z',
  region: TEST_REGION,
  resources: [`arn:aws:events:${TEST_REGION}:${ACCOUNT}:rule/StemeDB-recheck`],
  detail: {},
};

const registryValue = JSON.stringify({
  name: 'db-1',
  instanceId: INSTANCE,
  availabilityZone: 'eu-west-1a',
  volumeId: 'vol-0123456789abcdef0',
  dataMount: '/data',
});

const ssm = new SSMClient({ region: TEST_REGION, credentials });
const cloudwatch = new CloudWatchClient({ region: TEST_REGION, credentials });
const ssmMock = mockClient(ssm);
const cwMock = mockClient(cloudwatch);
const dynamodb = new DynamoDBClient({ region: TEST_REGION, credentials });
const ddbMock = mockClient(dynamodb);
let locks = new LockTableFake('StemeDB-remediation-locks');
const notify = vi.fn(async (_subject: string, _message: string) => {});
const deps: RouterDeps = {
  ssm,
  cloudwatch,
  dynamodb,
  notify,
  now: () => NOW,
  retry: { sleep: async () => {}, random: () => 0 },
};

interface FakeExecution {
  readonly id: string;
  readonly document: string;
  readonly status: string;
  readonly instanceId?: string;
  readonly tags?: Record<string, string>;
  readonly start?: Date;
  readonly end?: Date;
  readonly parent?: string;
}

/**
 * Serves DescribeAutomationExecutions / GetAutomationExecution / ListTagsForResource from a list
 * (test/support/automation-fake.ts, filters as AWS applies them); StartAutomationExecution stays
 * each test's. An execution tagged `stemedb:node` also carries the node's tag key, as the router
 * tags its starts.
 */
function givenExecutions(executions: readonly FakeExecution[]): void {
  const automation = new AutomationFake();
  automation.add(
    ...executions.map((e) => {
      const node = e.tags?.['stemedb:node'];
      return {
        id: e.id,
        document: e.document,
        status: e.status,
        parameters: { InstanceId: [e.instanceId ?? INSTANCE] },
        tags: node === undefined ? (e.tags ?? {}) : { ...e.tags, [nodeTagKey(node)]: 'remediation' },
        ...(e.start === undefined ? {} : { start: e.start }),
        end: e.end,
        parent: e.parent,
      };
    }),
  );
  automation.install(ssmMock, { starts: false });
}

function tagsOf(alarm: string, transition = TRANSITION): Record<string, string> {
  return { 'stemedb:node': 'db-1', 'stemedb:alarm': alarm, 'stemedb:transition': transition };
}

/** An execution the router started for CRITICAL's transition: `document`, `status`, ended at `end` (if it did). */
function ran(id: string, document: string, status: string, end?: Date): FakeExecution {
  return { id, document, status, tags: tagsOf(CRITICAL), ...(end === undefined ? {} : { end }) };
}

/** 12:mm on the day of TRANSITION (UTC). */
const at = (minute: number): Date => new Date(Date.UTC(2024, 4, 1, 12, minute));

/** A case of a table over the executions on record: what the router decides and which documents it starts. */
interface ExecutionsCase {
  readonly name: string;
  readonly executions: readonly FakeExecution[];
  readonly outcome: Partial<RouterOutcome>;
  readonly started: readonly string[];
}

function registryReads(): unknown[] {
  return ssmMock.commandCalls(GetParameterCommand).filter((c) => c.args[0].input.Name !== MODE_PARAMETER);
}

function starts(): StartAutomationExecutionCommandInput[] {
  return ssmMock.commandCalls(StartAutomationExecutionCommand).map((c) => c.args[0].input);
}

/** The router refuses `event` as malformed, saying why, and makes no AWS call. */
async function expectMalformedAndNothingRead(event: unknown): Promise<void> {
  const outcomes = await routeEvent(event, config, deps);
  expect(outcomes.map((o) => o.decision)).toEqual(['malformed-event']);
  expect(outcomes[0]?.reason.length).toBeGreaterThan(0);
  expect(ssmMock.calls()).toHaveLength(0);
  expect(cwMock.calls()).toHaveLength(0);
}

/** The filters of every DescribeAutomationExecutions call the router made. */
function executionFilters(): unknown[] {
  return ssmMock.commandCalls(DescribeAutomationExecutionsCommand).map((c) => c.args[0].input.Filters ?? []);
}

/**
 * Runs `body` with the router's metrics spied (publishing stubbed) and returns what it recorded:
 * each datapoint as "<dimension> <value> <metric> <unit> <count>" (an addDimension call and the
 * addMetric call after it), in order, and how many times it flushed.
 */
async function withMetricsSpied(body: () => unknown): Promise<{ datapoints: string[]; flushes: number }> {
  const add = vi.spyOn(metrics, 'addMetric');
  const dims = vi.spyOn(metrics, 'addDimension');
  const flush = vi.spyOn(metrics, 'publishStoredMetrics').mockImplementation(() => metrics);
  try {
    await body();
    expect(add.mock.calls).toHaveLength(dims.mock.calls.length);
    const datapoints = dims.mock.calls.map((d, i) => [...d, ...(add.mock.calls[i] ?? [])].join(' '));
    return { datapoints, flushes: flush.mock.calls.length };
  } finally {
    add.mockRestore();
    dims.mockRestore();
    flush.mockRestore();
  }
}

/** The time CloudWatch reports for TRANSITION (DescribeAlarms' StateTransitionedTimestamp). */
const TRANSITION_DATE = new Date('2024-05-01T12:00:00.985Z');

interface FakeAlarm {
  readonly name: string;
  /** @default 'ALARM' */
  readonly state?: 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';
  /** @default TRANSITION_DATE; null for none */
  readonly transitioned?: Date | null;
  readonly updated?: Date;
}

/** Serves DescribeAlarms (AlarmNames, AlarmNamePrefix and StateValue filters) from a list. */
function givenAlarms(alarms: readonly FakeAlarm[]): void {
  cwMock.on(DescribeAlarmsCommand).callsFake((input) => ({
    MetricAlarms: alarms
      .filter((a) => input.AlarmNames === undefined || input.AlarmNames.includes(a.name))
      .filter((a) => input.AlarmNamePrefix === undefined || a.name.startsWith(input.AlarmNamePrefix))
      .filter((a) => input.StateValue === undefined || (a.state ?? 'ALARM') === input.StateValue)
      .map((a) => ({
        AlarmName: a.name,
        AlarmArn: alarmArn(a.name),
        StateValue: a.state ?? 'ALARM',
        StateTransitionedTimestamp: a.transitioned === null ? undefined : (a.transitioned ?? TRANSITION_DATE),
        StateUpdatedTimestamp: a.updated,
      })),
  }));
}

function givenCriticalInAlarm(alarmTags: Record<string, string> = {}): void {
  givenAlarms([{ name: CRITICAL }]);
  cwMock.on(ListAlarmTagsCommand).resolves({
    Tags: Object.entries(alarmTags).map(([Key, Value]) => ({ Key, Value })),
  });
  cwMock.on(TagResourceCommand).resolves({});
}

beforeEach(() => {
  ssmMock.reset();
  cwMock.reset();
  ddbMock.reset();
  locks = new LockTableFake('StemeDB-remediation-locks');
  locks.install(ddbMock);
  notify.mockClear();
  // The kill switch says act unless a test says otherwise.
  ssmMock.on(GetParameterCommand, { Name: MODE_PARAMETER }).resolves({ Parameter: { Value: 'act' } });
  ssmMock.on(GetParameterCommand, { Name: '/StemeDB/nodes/db-1' }).resolves({
    Parameter: { Name: '/StemeDB/nodes/db-1', Value: registryValue },
  });
  ssmMock.on(StartAutomationExecutionCommand).resolves({ AutomationExecutionId: 'exec-new' });
  givenExecutions([]);
  // Every alarm an event below names is still in ALARM since TRANSITION, unless a test says otherwise.
  givenAlarms(
    ['critical', 'warning', 'emergency-space', 'inode-warning', 'emergency-inodes', 'no-data'].map(
      (kind) => ({
        name: `StemeDB-db-1-disk-${kind}`,
      }),
    ),
  );
});

describe('malformed events', () => {
  const cases: ReadonlyArray<readonly [string, unknown]> = [
    ['not an object', 'CloudWatch Alarm State Change'],
    ['null', null],
    ['an array', [alarmEvent()]],
    ['missing detail', { ...alarmEvent(), detail: undefined }],
    ['wrong source', { ...alarmEvent(), source: 'custom.attacker' }],
    ['wrong detail-type', { ...alarmEvent(), 'detail-type': 'EC2 Instance State-change Notification' }],
    ['an alarm of another stack', alarmEvent({ name: 'Other-db-1-disk-critical' })],
    ['an alarm that is not a disk alarm', alarmEvent({ name: 'StemeDB-db-1-cpu-high' })],
    ['an unknown alarm kind', alarmEvent({ name: 'StemeDB-db-1-disk-apocalypse' })],
    ['a command substitution in the node name', alarmEvent({ name: 'StemeDB-$(reboot)-disk-critical' })],
    ['a shell separator in the node name', alarmEvent({ name: 'StemeDB-db; rm -rf /-disk-critical' })],
    ['backticks in the node name', alarmEvent({ name: 'StemeDB-`reboot`-disk-critical' })],
    ['a newline in the node name', alarmEvent({ name: 'StemeDB-db-1\n-disk-critical' })],
    ['a path in the node name', alarmEvent({ name: 'StemeDB-../../x-disk-critical' })],
    ['an upper-case node name', alarmEvent({ name: 'StemeDB-DB1-disk-critical' })],
    ['an unknown state', alarmEvent({ state: 'ON_FIRE' })],
    ['an unparseable timestamp', alarmEvent({ timestamp: 'yesterday' })],
    [
      'a resource ARN for another alarm',
      { ...alarmEvent(), resources: [alarmArn('StemeDB-db-2-disk-critical')] },
    ],
    ['a detail that is a string', { ...alarmEvent(), detail: '{"alarmName":"x"}' }],
  ];

  it.each(cases)('starts nothing and reads nothing for %s', async (_label, event) => {
    await expectMalformedAndNothingRead(event);
  });

  it('says why in a reason that quotes the hostile value safely', async () => {
    const [outcome] = await routeEvent(alarmEvent({ name: 'StemeDB-db\n$(x)-disk-critical' }), config, deps);
    expect(outcome?.reason).toContain('"StemeDB-db\\n$(x)-disk-critical"');
    expect(outcome?.reason).not.toContain('\n');
  });
});

/** A field of the event replaced (undefined deletes it). */
function withField(field: string, value: unknown): Record<string, unknown> {
  const e = { ...alarmEvent() };
  if (value === undefined) delete e[field];
  else e[field] = value;
  return e;
}

const OTHER_ACCOUNT = '210987654321';
const OTHER_REGION = 'us-east-1';

describe('events from elsewhere', () => {
  const foreign: ReadonlyArray<readonly [string, unknown]> = [
    [
      'an alarm of another account',
      {
        ...alarmEvent(),
        account: OTHER_ACCOUNT,
        resources: [alarmArn(CRITICAL, TEST_REGION, OTHER_ACCOUNT)],
      },
    ],
    [
      'an alarm of another region',
      { ...alarmEvent(), region: OTHER_REGION, resources: [alarmArn(CRITICAL, OTHER_REGION)] },
    ],
    ['a re-check of another account', { ...scheduledEvent, account: OTHER_ACCOUNT }],
    ['a re-check of another region', { ...scheduledEvent, region: OTHER_REGION }],
  ];

  it.each(foreign)('starts nothing and reads nothing for %s (foreign-event)', async (_label, event) => {
    const outcomes = await routeEvent(event, config, deps);
    expect(outcomes.map((o) => o.decision)).toEqual(['foreign-event']);
    expect(outcomes[0]?.reason).toMatch(/account|region/);
    expect(ssmMock.calls()).toHaveLength(0);
    expect(cwMock.calls()).toHaveLength(0);
  });

  const malformed: ReadonlyArray<readonly [string, unknown]> = [
    ['resources missing', withField('resources', undefined)],
    ['resources null', withField('resources', null)],
    ['resources a string', withField('resources', alarmArn(CRITICAL))],
    ['resources an object', withField('resources', { 0: alarmArn(CRITICAL) })],
    ['resources empty', withField('resources', [])],
    ['resources with a second ARN', withField('resources', [alarmArn(CRITICAL), alarmArn(WARNING)])],
    ['resources holding a number', withField('resources', [42])],
    [
      'an alarm ARN of another account than the event',
      withField('resources', [alarmArn(CRITICAL, TEST_REGION, OTHER_ACCOUNT)]),
    ],
    [
      'an alarm ARN of another region than the event',
      withField('resources', [alarmArn(CRITICAL, OTHER_REGION)]),
    ],
    [
      'an alarm ARN of another service',
      withField('resources', [`arn:aws:sns:${TEST_REGION}:${ACCOUNT}:alarm:${CRITICAL}`]),
    ],
    ['account missing', withField('account', undefined)],
    ['account not 12 digits', withField('account', '12345')],
    ['region missing', withField('region', undefined)],
    ['region not a region', withField('region', 'eu-west-1; rm -rf /')],
    ['a re-check without account', { ...scheduledEvent, account: undefined }],
  ];

  it.each(malformed)('starts nothing and reads nothing for %s (malformed-event)', async (_label, event) => {
    await expectMalformedAndNothingRead(event);
  });
});

describe('stale events: the alarm is re-read before anything starts', () => {
  const stale: ReadonlyArray<readonly [string, readonly FakeAlarm[], RegExp]> = [
    ['back in OK', [{ name: CRITICAL, state: 'OK', transitioned: new Date('2024-05-01T12:10:00Z') }], /OK/],
    [
      'in INSUFFICIENT_DATA',
      [{ name: CRITICAL, state: 'INSUFFICIENT_DATA', transitioned: new Date('2024-05-01T12:10:00Z') }],
      /INSUFFICIENT_DATA/,
    ],
    ['deleted', [], /no longer exists/],
    [
      'in ALARM again, since a later transition',
      [{ name: CRITICAL, transitioned: new Date('2024-05-01T12:20:00.100Z') }],
      /2024-05-01T12:20:00Z/,
    ],
    ['in ALARM with no state timestamp to compare', [{ name: CRITICAL, transitioned: null }], /timestamp/],
  ];

  it.each(stale)(
    'starts nothing for an ALARM event whose alarm is now %s (stale-event)',
    async (_l, alarms, why) => {
      givenAlarms(alarms);
      const outcomes = await routeEvent(alarmEvent(), config, deps);
      expect(outcomes).toMatchObject([
        { decision: 'stale-event', alarmName: CRITICAL, transition: TRANSITION },
      ]);
      expect(outcomes[0]?.reason).toMatch(why);
      expect(starts()).toHaveLength(0);
      expect(cwMock.commandCalls(DescribeAlarmsCommand).map((c) => c.args[0].input.AlarmNames)).toEqual([
        [CRITICAL],
      ]);
    },
  );

  it('re-reads the alarm by name before it starts anything', async () => {
    const order: string[] = [];
    cwMock.on(DescribeAlarmsCommand).callsFake(() => {
      order.push('DescribeAlarms');
      return {
        MetricAlarms: [
          {
            AlarmName: CRITICAL,
            AlarmArn: alarmArn(CRITICAL),
            StateValue: 'ALARM',
            StateTransitionedTimestamp: TRANSITION_DATE,
          },
        ],
      };
    });
    ssmMock.on(StartAutomationExecutionCommand).callsFake(() => {
      order.push('StartAutomationExecution');
      return { AutomationExecutionId: 'exec-new' };
    });
    const outcomes = await routeEvent(alarmEvent(), config, deps);
    expect(outcomes.map((o) => o.decision)).toEqual(['started']);
    expect(order).toEqual(['DescribeAlarms', 'StartAutomationExecution']);
    expect(cwMock.commandCalls(DescribeAlarmsCommand)[0]?.args[0].input).toMatchObject({
      AlarmNames: [CRITICAL],
    });
  });

  it('accepts the transition from StateUpdatedTimestamp when StateTransitionedTimestamp is absent', async () => {
    givenAlarms([{ name: CRITICAL, transitioned: null, updated: TRANSITION_DATE }]);
    const outcomes = await routeEvent(alarmEvent(), config, deps);
    expect(outcomes.map((o) => o.decision)).toEqual(['started']);
  });

  it('retries a throttled DescribeAlarms and then starts once', async () => {
    const throttled = (): Error => Object.assign(new Error('Rate exceeded'), { name: 'Throttling' });
    cwMock
      .on(DescribeAlarmsCommand)
      .rejectsOnce(throttled())
      .rejectsOnce(throttled())
      .resolves({
        MetricAlarms: [
          {
            AlarmName: CRITICAL,
            AlarmArn: alarmArn(CRITICAL),
            StateValue: 'ALARM',
            StateTransitionedTimestamp: TRANSITION_DATE,
          },
        ],
      });
    const outcomes = await routeEvent(alarmEvent(), config, deps);
    expect(outcomes.map((o) => o.decision)).toEqual(['started']);
    expect(cwMock.commandCalls(DescribeAlarmsCommand)).toHaveLength(3);
    expect(starts()).toHaveLength(1);
  });

  it('fails the invocation and starts nothing when DescribeAlarms stays throttled', async () => {
    cwMock
      .on(DescribeAlarmsCommand)
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'Throttling' }));
    await expect(routeEvent(alarmEvent(), config, deps)).rejects.toThrow('Rate exceeded');
    expect(cwMock.commandCalls(DescribeAlarmsCommand)).toHaveLength(5);
    expect(starts()).toHaveLength(0);
  });
});

describe('alarm state changes', () => {
  it('starts nothing for a transition to OK', async () => {
    const outcomes = await routeEvent(alarmEvent({ state: 'OK', previous: 'ALARM' }), config, deps);
    expect(outcomes.map((o) => o.decision)).toEqual(['ignored-state']);
    expect(ssmMock.calls()).toHaveLength(0);
  });

  it('starts nothing for a transition to INSUFFICIENT_DATA', async () => {
    const outcomes = await routeEvent(alarmEvent({ state: 'INSUFFICIENT_DATA' }), config, deps);
    expect(outcomes.map((o) => o.decision)).toEqual(['ignored-state']);
    expect(ssmMock.calls()).toHaveLength(0);
  });

  it('starts nothing when the no-data alarm fires (missing data never starts automation)', async () => {
    const outcomes = await routeEvent(alarmEvent({ name: 'StemeDB-db-1-disk-no-data' }), config, deps);
    expect(outcomes.map((o) => o.decision)).toEqual(['no-route']);
    expect(starts()).toHaveLength(0);
  });

  it('starts nothing for a kind routed to notification only', async () => {
    const outcomes = await routeEvent(alarmEvent({ name: 'StemeDB-db-1-disk-no-data' }), config, deps);
    expect(outcomes.map((o) => o.decision)).toEqual(['no-route']);
    expect(starts()).toHaveLength(0);
  });

  it('starts nothing for a node that is not in the registry', async () => {
    givenAlarms([{ name: 'StemeDB-db-9-disk-critical' }]);
    ssmMock
      .on(GetParameterCommand, { Name: '/StemeDB/nodes/db-9' })
      .rejects(new ParameterNotFound({ message: 'not found', $metadata: {} }));
    const outcomes = await routeEvent(alarmEvent({ name: 'StemeDB-db-9-disk-critical' }), config, deps);
    expect(outcomes).toMatchObject([{ decision: 'unknown-node', node: 'db-9' }]);
    expect(outcomes[0]?.reason).toContain('/StemeDB/nodes/db-9');
    expect(starts()).toHaveLength(0);
  });

  it('starts nothing for a node whose registry entry is not valid', async () => {
    ssmMock.on(GetParameterCommand, { Name: '/StemeDB/nodes/db-1' }).resolves({
      Parameter: { Value: JSON.stringify({ name: 'db-1', instanceId: 'i-$(reboot)' }) },
    });
    const outcomes = await routeEvent(alarmEvent(), config, deps);
    expect(outcomes).toMatchObject([{ decision: 'unknown-node' }]);
    expect(starts()).toHaveLength(0);
  });

  it('starts ExpandVolume for a critical alarm with the node instance, the role, the reason, the tags and the token', async () => {
    const outcomes = await routeEvent(alarmEvent(), config, deps);
    expect(outcomes).toMatchObject([
      { decision: 'started', document: 'StemeDB-ExpandVolume', executionId: 'exec-new', node: 'db-1' },
    ]);
    expect(starts()).toEqual([
      {
        DocumentName: 'StemeDB-ExpandVolume',
        ClientToken: clientToken(alarmArn(CRITICAL), TRANSITION, 'StemeDB-ExpandVolume'),
        Parameters: {
          InstanceId: [INSTANCE],
          AutomationAssumeRole: [ROLE],
          Reason: [`${CRITICAL} in ALARM since ${TRANSITION}`],
        },
        Tags: [
          { Key: 'stemedb:node', Value: 'db-1' },
          { Key: 'stemedb:alarm', Value: CRITICAL },
          { Key: 'stemedb:transition', Value: TRANSITION },
          { Key: 'stemedb:node:db-1', Value: 'remediation' },
        ],
      },
    ]);
  });

  it('starts ArchiveWal for a warning alarm', async () => {
    const outcomes = await routeEvent(alarmEvent({ name: WARNING }), config, deps);
    expect(outcomes).toMatchObject([{ decision: 'started', document: 'StemeDB-ArchiveWal' }]);
  });

  it('reads only running executions of this stack to decide whether the node is busy', async () => {
    await routeEvent(alarmEvent(), config, deps);
    expect(executionFilters()).toContainEqual([
      { Key: 'DocumentNamePrefix', Values: ['StemeDB-'] },
      {
        Key: 'ExecutionStatus',
        Values: expect.arrayContaining(['Pending', 'InProgress', 'Waiting', 'Cancelling']),
      },
    ]);
  });

  it('starts nothing new for a repeated event whose first start AWS already took (same ClientToken)', async () => {
    ssmMock
      .on(StartAutomationExecutionCommand)
      .resolvesOnce({ AutomationExecutionId: 'exec-1' })
      .rejects(Object.assign(new Error('token reused'), { name: 'IdempotentParameterMismatch' }));
    const first = await routeEvent(alarmEvent(), config, deps);
    const second = await routeEvent(alarmEvent(), config, deps);
    expect(first.map((o) => o.decision)).toEqual(['started']);
    expect(second.map((o) => o.decision)).toEqual(['already-started']);
    const tokens = starts().map((s) => s.ClientToken);
    expect(tokens).toHaveLength(2);
    expect(tokens[1]).toBe(tokens[0]);
  });

  const eventCases: ReadonlyArray<ExecutionsCase> = [
    {
      name: 'starts nothing for a repeated event once the transition has a tagged execution',
      executions: [ran('exec-1', 'StemeDB-ExpandVolume', 'Success', NOW)],
      outcome: { decision: 'already-started', executionId: 'exec-1' },
      started: [],
    },
    {
      name: 'starts nothing while another remediation runs on the node, even one started by hand',
      executions: [
        { id: 'manual-1', document: 'StemeDB-WalCleanup', status: 'InProgress', instanceId: INSTANCE },
      ],
      outcome: { decision: 'node-busy', executionId: 'manual-1' },
      started: [],
    },
    {
      name: 'starts when the only running remediation works on another node',
      executions: [
        { id: 'other-1', document: 'StemeDB-ArchiveWal', status: 'InProgress', instanceId: OTHER_INSTANCE },
      ],
      outcome: { decision: 'started' },
      started: ['StemeDB-ExpandVolume'],
    },
  ];
  it.each(eventCases.map((c) => [c.name, c] as const))(
    '%s',
    async (_name, { executions, outcome, started }) => {
      givenExecutions(executions);
      const outcomes = await routeEvent(alarmEvent(), config, deps);
      expect(outcomes).toMatchObject([outcome]);
      expect(starts().map((s) => s.DocumentName)).toEqual(started);
    },
  );

  it('retries throttled calls and then starts once', async () => {
    const throttled = (): Error => Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
    ssmMock
      .on(GetParameterCommand, { Name: '/StemeDB/nodes/db-1' })
      .rejectsOnce(throttled())
      .resolves({ Parameter: { Value: registryValue } });
    ssmMock
      .on(StartAutomationExecutionCommand)
      .rejectsOnce(throttled())
      .rejectsOnce(throttled())
      .resolves({ AutomationExecutionId: 'exec-2' });
    const outcomes = await routeEvent(alarmEvent(), config, deps);
    expect(outcomes).toMatchObject([{ decision: 'started', executionId: 'exec-2' }]);
    expect(registryReads()).toHaveLength(2);
    expect(new Set(starts().map((s) => s.ClientToken)).size).toBe(1);
    expect(starts()).toHaveLength(3);
  });

  it('fails the invocation when throttling outlasts the bounded retries', async () => {
    ssmMock
      .on(GetParameterCommand, { Name: '/StemeDB/nodes/db-1' })
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    await expect(routeEvent(alarmEvent(), config, deps)).rejects.toThrow('Rate exceeded');
    expect(registryReads()).toHaveLength(5);
    expect(starts()).toHaveLength(0);
  });

  it('skips a chain document that does not exist and starts the next one', async () => {
    ssmMock
      .on(StartAutomationExecutionCommand, { DocumentName: 'StemeDB-ExpandVolume' })
      .rejects(
        Object.assign(new Error('no such document'), { name: 'AutomationDefinitionNotFoundException' }),
      );
    const outcomes = await routeEvent(alarmEvent(), config, deps);
    expect(outcomes.map((o) => [o.decision, o.document])).toEqual([
      ['start-failed', 'StemeDB-ExpandVolume'],
      ['started', 'StemeDB-ArchiveWal'],
    ]);
  });
});

describe('scheduled re-check', () => {
  it('starts the next document of the chain once the previous remediation of the transition failed and settled', async () => {
    givenCriticalInAlarm();
    givenExecutions([ran('exec-1', 'StemeDB-ExpandVolume', 'Failed', at(10))]);
    const outcomes = await routeEvent(scheduledEvent, config, deps);
    expect(outcomes).toMatchObject([{ decision: 'started', document: 'StemeDB-ArchiveWal' }]);
    expect(starts()).toMatchObject([
      {
        DocumentName: 'StemeDB-ArchiveWal',
        ClientToken: clientToken(alarmArn(CRITICAL), TRANSITION, 'StemeDB-ArchiveWal'),
        Tags: expect.arrayContaining([{ Key: 'stemedb:transition', Value: TRANSITION }]),
      },
    ]);
  });

  const recheckCases: ReadonlyArray<ExecutionsCase> = [
    {
      name: 'escalates after a remediation that succeeded but left the alarm in ALARM',
      executions: [ran('exec-1', 'StemeDB-ExpandVolume', 'Success', at(10))],
      outcome: { decision: 'started', document: 'StemeDB-ArchiveWal' },
      started: ['StemeDB-ArchiveWal'],
    },
    {
      name: 'waits while the previous remediation of the transition still runs',
      executions: [ran('exec-1', 'StemeDB-ExpandVolume', 'InProgress')],
      outcome: { decision: 'waiting', executionId: 'exec-1' },
      started: [],
    },
    {
      name: 'waits until the metrics had time to show the effect of a remediation that just ended',
      executions: [ran('exec-1', 'StemeDB-ExpandVolume', 'Success', at(28))],
      outcome: { decision: 'waiting' },
      started: [],
    },
    {
      name: 'starts the first document when the event was missed (no execution for the transition)',
      executions: [],
      outcome: { decision: 'started', document: 'StemeDB-ExpandVolume' },
      started: ['StemeDB-ExpandVolume'],
    },
    {
      name: 'ignores executions of an earlier transition of the same alarm',
      executions: [
        {
          ...ran('old-1', 'StemeDB-ExpandVolume', 'Failed', at(1)),
          tags: tagsOf(CRITICAL, '2024-04-20T08:00:00Z'),
        },
      ],
      outcome: { decision: 'started', document: 'StemeDB-ExpandVolume' },
      started: ['StemeDB-ExpandVolume'],
    },
    {
      name: 'counts the WAL archival that ExpandVolume ran as its fallback as the next step of the chain',
      executions: [
        ran('exec-1', 'StemeDB-ExpandVolume', 'Failed', at(5)),
        { id: 'child-1', document: 'StemeDB-ArchiveWal', status: 'Success', parent: 'exec-1', end: at(4) },
      ],
      outcome: { decision: 'escalated-to-human' },
      started: [],
    },
    {
      name: 'starts nothing for an alarm whose node is busy with another remediation',
      executions: [
        ran('exec-1', 'StemeDB-ExpandVolume', 'Failed', at(5)),
        { id: 'warn-1', document: 'StemeDB-ArchiveWal', status: 'InProgress', tags: tagsOf(WARNING) },
      ],
      outcome: { decision: 'node-busy', executionId: 'warn-1' },
      started: [],
    },
  ];
  it.each(recheckCases.map((c) => [c.name, c] as const))(
    '%s',
    async (_name, { executions, outcome, started }) => {
      givenCriticalInAlarm();
      givenExecutions(executions);
      const outcomes = await routeEvent(scheduledEvent, config, deps);
      expect(outcomes).toMatchObject([outcome]);
      expect(starts().map((s) => s.DocumentName)).toEqual(started);
    },
  );

  it('publishes once that a human is needed when the chain is exhausted, and remembers it on the alarm', async () => {
    givenCriticalInAlarm();
    givenExecutions([
      ran('exec-1', 'StemeDB-ExpandVolume', 'Failed', at(5)),
      ran('exec-2', 'StemeDB-ArchiveWal', 'Success', at(15)),
    ]);
    const outcomes = await routeEvent(scheduledEvent, config, deps);
    expect(outcomes).toMatchObject([{ decision: 'escalated-to-human' }]);
    expect(notify).toHaveBeenCalledTimes(1);
    const [subject, message] = notify.mock.calls[0] ?? [];
    expect(subject).toContain(CRITICAL);
    expect(subject?.length).toBeLessThanOrEqual(100);
    expect(message).toContain('exec-1');
    expect(message).toContain('exec-2');
    expect(cwMock.commandCalls(TagResourceCommand).map((c) => c.args[0].input)).toEqual([
      { ResourceARN: alarmArn(CRITICAL), Tags: [{ Key: 'stemedb:escalated', Value: TRANSITION }] },
    ]);
    expect(starts()).toHaveLength(0);
  });

  it('does not publish again for a transition a human was already told about', async () => {
    givenCriticalInAlarm({ 'stemedb:escalated': TRANSITION });
    givenExecutions([ran('exec-2', 'StemeDB-ArchiveWal', 'Failed', at(15))]);
    const outcomes = await routeEvent(scheduledEvent, config, deps);
    expect(outcomes).toMatchObject([{ decision: 'already-escalated' }]);
    expect(notify).not.toHaveBeenCalled();
  });
});

describe('scheduled re-check: one failing node does not block the others', () => {
  const DB2_CRITICAL = 'StemeDB-db-2-disk-critical';
  const DB3_CRITICAL = 'StemeDB-db-3-disk-critical';
  const registryOf = (name: string, instanceId: string): string =>
    JSON.stringify({
      name,
      instanceId,
      availabilityZone: 'eu-west-1a',
      volumeId: 'vol-0123456789abcdef0',
      dataMount: '/data',
    });

  beforeEach(() => {
    givenAlarms([{ name: CRITICAL }, { name: DB2_CRITICAL }, { name: DB3_CRITICAL }]);
    cwMock.on(ListAlarmTagsCommand).resolves({ Tags: [] });
    cwMock.on(TagResourceCommand).resolves({});
    ssmMock.on(GetParameterCommand, { Name: '/StemeDB/nodes/db-1' }).rejects(
      Object.assign(new Error('User is not authorized to perform: ssm:GetParameter'), {
        name: 'AccessDeniedException',
      }),
    );
    ssmMock
      .on(GetParameterCommand, { Name: '/StemeDB/nodes/db-2' })
      .resolves({ Parameter: { Value: registryOf('db-2', OTHER_INSTANCE) } });
    ssmMock
      .on(GetParameterCommand, { Name: '/StemeDB/nodes/db-3' })
      .resolves({ Parameter: { Value: registryOf('db-3', 'i-0aaaaaaaaaaaaaaa3') } });
  });

  it('goes on with the other nodes when GetParameter of one node is denied, and says which failed', async () => {
    const outcomes = await routeEvent(scheduledEvent, config, deps);
    expect(outcomes.map((o) => [o.decision, o.alarmName])).toEqual([
      ['recheck-failed', CRITICAL],
      ['started', DB2_CRITICAL],
      ['started', DB3_CRITICAL],
    ]);
    expect(outcomes[0]).toMatchObject({ node: 'db-1', kind: 'critical', transition: TRANSITION });
    expect(outcomes[0]?.reason).toMatch(/^AccessDeniedException: User is not authorized/);
    expect(starts().map((s) => s.Parameters?.InstanceId)).toEqual([
      [OTHER_INSTANCE],
      ['i-0aaaaaaaaaaaaaaa3'],
    ]);
  });

  it('goes on when publishing one escalation fails', async () => {
    ssmMock
      .on(GetParameterCommand, { Name: '/StemeDB/nodes/db-1' })
      .resolves({ Parameter: { Value: registryValue } });
    const done = (id: string, alarm: string, node: string, document: string): FakeExecution => ({
      id,
      document,
      status: 'Failed',
      tags: { 'stemedb:node': node, 'stemedb:alarm': alarm, 'stemedb:transition': TRANSITION },
      end: new Date('2024-05-01T12:05:00Z'),
    });
    givenExecutions([
      done('a1', CRITICAL, 'db-1', 'StemeDB-ExpandVolume'),
      done('a2', CRITICAL, 'db-1', 'StemeDB-ArchiveWal'),
      done('b1', DB2_CRITICAL, 'db-2', 'StemeDB-ExpandVolume'),
      done('b2', DB2_CRITICAL, 'db-2', 'StemeDB-ArchiveWal'),
    ]);
    notify.mockRejectedValueOnce(
      Object.assign(new Error('KMS key disabled'), { name: 'KMSDisabledException' }),
    );
    const outcomes = await routeEvent(scheduledEvent, config, deps);
    expect(outcomes.map((o) => [o.decision, o.alarmName])).toEqual([
      ['recheck-failed', CRITICAL],
      ['escalated-to-human', DB2_CRITICAL],
      ['started', DB3_CRITICAL],
    ]);
    expect(outcomes[0]?.reason).toMatch(/KMSDisabledException/);
  });

  it('starts nothing more on a node whose re-check failed in this run (the start may have happened)', async () => {
    givenAlarms([{ name: DB2_CRITICAL }, { name: 'StemeDB-db-2-disk-warning' }]);
    ssmMock
      .on(StartAutomationExecutionCommand, { DocumentName: 'StemeDB-ExpandVolume' })
      .rejects(Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }));
    const outcomes = await routeEvent(scheduledEvent, config, deps);
    expect(outcomes.map((o) => [o.decision, o.alarmName])).toEqual([
      ['recheck-failed', DB2_CRITICAL],
      ['node-busy', 'StemeDB-db-2-disk-warning'],
    ]);
    expect(starts().map((s) => s.DocumentName)).toEqual(['StemeDB-ExpandVolume']);
  });

  it('reports the partial failure after counting every outcome, so the Errors alarm sees it', async () => {
    const published = await withMetricsSpied(async () => {
      await expect(runRouter(scheduledEvent, config, deps)).rejects.toThrow(
        /re-check failed for 1 of 3 alarms: StemeDB-db-1-disk-critical \(AccessDeniedException/,
      );
    });
    expect(published.datapoints).toEqual([
      'decision recheck-failed RouterDecision Count 1',
      'decision started RouterDecision Count 2',
    ]);
  });

  it('starts nothing twice when Lambda retries the failed invocation', async () => {
    const started: FakeExecution[] = [];
    ssmMock.on(StartAutomationExecutionCommand).callsFake((input: StartAutomationExecutionCommandInput) => {
      const id = `exec-${started.length + 1}`;
      started.push({
        id,
        document: input.DocumentName ?? '',
        status: 'InProgress',
        instanceId: input.Parameters?.InstanceId?.[0],
        tags: Object.fromEntries((input.Tags ?? []).map((t) => [t.Key, t.Value])),
      });
      givenExecutions(started);
      return { AutomationExecutionId: id };
    });
    await expect(runRouter(scheduledEvent, config, deps)).rejects.toThrow(/re-check failed/);
    await expect(runRouter(scheduledEvent, config, deps)).rejects.toThrow(/re-check failed/);
    expect(starts()).toHaveLength(2);
    expect(new Set(starts().map((s) => s.ClientToken)).size).toBe(2);
  });

  it('returns the outcomes of a re-check without failures', async () => {
    ssmMock
      .on(GetParameterCommand, { Name: '/StemeDB/nodes/db-1' })
      .resolves({ Parameter: { Value: registryValue } });
    const { outcomes } = await runRouter(scheduledEvent, config, deps);
    expect(outcomes.map((o) => o.decision)).toEqual(['started', 'started', 'started']);
  });
});

describe('routes, as the stack deploys them', () => {
  const cases: ReadonlyArray<readonly [string, string[]]> = [
    ['critical', ['StemeDB-ExpandVolume', 'StemeDB-ArchiveWal']],
    ['warning', ['StemeDB-ArchiveWal']],
    ['emergency-space', ['StemeDB-EmergencyCleanup', 'StemeDB-ExpandVolume']],
    ['inode-warning', ['StemeDB-InodeCleanup']],
    ['emergency-inodes', ['StemeDB-InodeCleanup']],
  ];

  it.each(cases)(
    'starts the %s chain %j: the first on the event, the next on the re-check',
    async (kind, chain) => {
      const name = `StemeDB-db-1-disk-${kind}`;
      const first = await routeEvent(alarmEvent({ name }), config, deps);
      expect(first).toMatchObject([{ decision: 'started', document: chain[0] }]);
      ssmMock.resetHistory();
      givenAlarms([{ name }]);
      givenExecutions([
        {
          id: 'exec-1',
          document: chain[0] as string,
          status: 'Failed',
          tags: tagsOf(name),
          end: new Date('2024-05-01T12:10:00Z'),
        },
      ]);
      cwMock.on(ListAlarmTagsCommand).resolves({ Tags: [] });
      cwMock.on(TagResourceCommand).resolves({});
      const next = await routeEvent(scheduledEvent, config, deps);
      expect(next).toMatchObject([
        chain.length > 1 ? { decision: 'started', document: chain[1] } : { decision: 'escalated-to-human' },
      ]);
    },
  );
});

describe('configuration and helpers', () => {
  const env = routerEnv;

  it('reads the routing table, account and region the stack passes, and never routes no-data', () => {
    const c = loadRouterConfig(env);
    expect(c.routes).toEqual({ ...routeTable('StemeDB', DEPLOYED.remediation), 'no-data': [] });
    expect(c.accountId).toBe(ACCOUNT);
    expect(c.region).toBe(TEST_REGION);
    expect(c.nodeParameterPrefix).toBe('/StemeDB/nodes/');
  });

  it.each([
    [{ PREFIX: 'Steme DB' }, /PREFIX/],
    [{ AUTOMATION_ROLE_ARN: 'role' }, /AUTOMATION_ROLE_ARN/],
    [{ TOPIC_ARN: '' }, /TOPIC_ARN/],
    [{ ROUTES: '{"no-data":["StemeDB-ExpandVolume"]}' }, /missing data never starts automation/],
    [{ ROUTES: '{"critical":["Other-ExpandVolume"]}' }, /ROUTES.critical/],
    [{ ROUTES: '{"panic":[]}' }, /not an alarm kind/],
    [{ ROUTES: 'not json' }, /ROUTES is not JSON/],
    [{ ROUTES: undefined }, /ROUTES is undefined; expected the JSON routing table/],
    [{ ROUTES: '' }, /ROUTES is ""/],
    [{ SETTLE_SECONDS: '-1' }, /SETTLE_SECONDS/],
    [{ ACCOUNT_ID: undefined }, /ACCOUNT_ID is undefined/],
    [{ ACCOUNT_ID: '12345678901' }, /ACCOUNT_ID/],
    [{ ACCOUNT_ID: ['$', '{Token[AWS.AccountId.7]}'].join('') }, /ACCOUNT_ID/],
    [{ REGION: undefined }, /REGION is undefined/],
    [{ REGION: 'eu west 1' }, /REGION/],
  ])('refuses the environment %j, naming the variable', (over, message) => {
    expect(() => loadRouterConfig({ ...env, ...over })).toThrow(message);
  });

  it('derives a UUID-shaped ClientToken that is the same for the same transition and document only', () => {
    const a = clientToken(alarmArn(CRITICAL), TRANSITION, 'StemeDB-ExpandVolume');
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(clientToken(alarmArn(CRITICAL), TRANSITION, 'StemeDB-ExpandVolume')).toBe(a);
    expect(clientToken(alarmArn(CRITICAL), TRANSITION, 'StemeDB-ArchiveWal')).not.toBe(a);
    expect(clientToken(alarmArn(CRITICAL), '2024-05-02T00:00:00Z', 'StemeDB-ExpandVolume')).not.toBe(a);
  });

  it('passes a Reason that the documents’ Reason pattern accepts', () => {
    const longName = `StemeDB-${'a'.repeat(30)}b-disk-emergency-inodes`;
    for (const reason of [remediationReason(CRITICAL, TRANSITION), remediationReason(longName, TRANSITION)]) {
      expect(reason).toMatch(/^[A-Za-z0-9 ._:,/()=+@#-]{0,256}$/);
    }
  });

  it('reads the same transition from the event timestamp and from DescribeAlarms', () => {
    expect(normalizeTransition('2024-05-01T12:00:00.985+0000')).toBe(TRANSITION);
    expect(normalizeTransition(new Date('2024-05-01T12:00:00.985Z'))).toBe(TRANSITION);
    expect(normalizeTransition('2024-05-01T14:00:00.985+02:00')).toBe(TRANSITION);
  });

  it('parses the sample event from the CloudWatch documentation', () => {
    const sample = {
      version: '0',
      id: 'c4c1c1c9-6542-e61b-6ef0-8c4d36933a92',
      'detail-type': 'CloudWatch Alarm State Change',
      source: 'aws.cloudwatch',
      account: '123456789012',
      time: '2019-10-02T17:04:40Z',
      region: 'us-east-1',
      resources: ['arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh'],
      detail: {
        alarmName: 'ServerCpuTooHigh',
        configuration: {
          description: 'Goes into alarm when server CPU utilization is too high!',
          metrics: [],
        },
        previousState: { timestamp: '2019-10-01T13:56:40.987+0000', value: 'OK' },
        state: { reason: 'Threshold Crossed', timestamp: '2019-10-02T17:04:40.989+0000', value: 'ALARM' },
      },
    };
    expect(parseRouterEvent(sample)).toEqual({
      ok: true,
      value: {
        type: 'alarm-state-change',
        alarmName: 'ServerCpuTooHigh',
        alarmArn: 'arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh',
        state: 'ALARM',
        previousState: 'OK',
        transition: '2019-10-02T17:04:40Z',
        account: '123456789012',
        region: 'us-east-1',
      },
    });
  });

  it('reads node and kind from names whose node contains "disk" or hyphens', () => {
    expect(parseAlarmName('StemeDB-disk-1-disk-inode-warning', 'StemeDB')).toEqual({
      ok: true,
      value: { node: 'disk-1', kind: 'inode-warning' },
    });
  });

  it('publishes one RouterDecision datapoint set per decision value', async () => {
    const published = await withMetricsSpied(() =>
      recordOutcomes([
        { decision: 'started', reason: 'x' },
        { decision: 'malformed-event', reason: 'y' },
        { decision: 'started', reason: 'z' },
      ]),
    );
    expect(published).toEqual({
      datapoints: [
        'decision started RouterDecision Count 2',
        'decision malformed-event RouterDecision Count 1',
      ],
      flushes: 2,
    });
  });

  it('fails the handler with a message naming a missing variable', async () => {
    const saved = process.env.PREFIX;
    delete process.env.PREFIX;
    try {
      await expect(handler(alarmEvent())).rejects.toThrow(/PREFIX/);
    } finally {
      if (saved !== undefined) process.env.PREFIX = saved;
    }
  });
});

describe('on moto_server (registry, alarms, tags and SNS real; Automation APIs mocked)', () => {
  let moto: MotoServer;
  let topicArn: string;
  let sns: SNSClient;

  beforeAll(async () => {
    moto = await startMotoServer();
    sns = new SNSClient({ endpoint: moto.endpoint, region: TEST_REGION, credentials });
    const created = await sns.send(new CreateTopicCommand({ Name: 'StemeDB-alerts' }));
    topicArn = created.TopicArn ?? '';
  });

  afterAll(async () => {
    await moto?.stop();
  });

  function clients(): { ssm: SSMClient; cloudwatch: CloudWatchClient } {
    const opts = { endpoint: moto.endpoint, region: TEST_REGION, credentials };
    return { ssm: new SSMClient(opts), cloudwatch: new CloudWatchClient(opts) };
  }

  async function sentNotifications(): Promise<unknown[][]> {
    const data = (await (await fetch(`${moto.endpoint}/moto-api/data.json`)).json()) as {
      sns: { Topic: { arn: string; sent_notifications: unknown[][] }[] };
    };
    return data.sns.Topic.find((t) => t.arn === topicArn)?.sent_notifications ?? [];
  }

  it('publishes the message to the real topic, with the subject cut to 100 characters', async () => {
    await snsNotifier(sns, topicArn)(`${'x'.repeat(120)}`, 'body\nline 2');
    const last = (await sentNotifications()).at(-1);
    expect(last?.[1]).toBe('body\nline 2');
    expect(last?.[2]).toBe('x'.repeat(100));
  });

  it('fails with the SNS error when the topic does not exist', async () => {
    const missing = `arn:aws:sns:${TEST_REGION}:${ACCOUNT}:nope`;
    await expect(snsNotifier(sns, missing)('s', 'm')).rejects.toThrow(/not exist|NotFound/i);
  });

  it('escalates a real alarm that stays in ALARM to a human once, through the registry and SNS', async () => {
    const real = clients();
    await real.ssm.send(
      new PutParameterCommand({ Name: '/StemeDB/nodes/db-1', Type: 'String', Value: registryValue }),
    );
    await real.ssm.send(new PutParameterCommand({ Name: MODE_PARAMETER, Type: 'String', Value: 'act' }));
    await real.cloudwatch.send(
      new PutMetricAlarmCommand({
        AlarmName: CRITICAL,
        Namespace: 'CWAgent',
        MetricName: 'disk_free',
        Dimensions: [
          { Name: 'InstanceId', Value: INSTANCE },
          { Name: 'path', Value: '/data' },
        ],
        Statistic: 'Minimum',
        Period: 60,
        EvaluationPeriods: 5,
        Threshold: 10,
        ComparisonOperator: 'LessThanThreshold',
      }),
    );
    await real.cloudwatch.send(
      new SetAlarmStateCommand({ AlarmName: CRITICAL, StateValue: 'ALARM', StateReason: 'test' }),
    );
    const described = await real.cloudwatch.send(new DescribeAlarmsCommand({ AlarmNames: [CRITICAL] }));
    const alarm = described.MetricAlarms?.[0];
    const transition = normalizeTransition(alarm?.StateTransitionedTimestamp ?? alarm?.StateUpdatedTimestamp);
    expect(transition).toBeDefined();

    // Only the Automation APIs moto lacks are mocked; everything else goes to moto_server.
    const ssmReal = new SSMClient({ endpoint: moto.endpoint, region: TEST_REGION, credentials });
    const passThrough = ssmReal.send.bind(ssmReal);
    const automation = mockClient(ssmReal);
    try {
      automation.on(GetParameterCommand).callsFake((input) => passThrough(new GetParameterCommand(input)));
      automation.on(DescribeAutomationExecutionsCommand).resolves({
        AutomationExecutionMetadataList: [
          {
            AutomationExecutionId: 'exec-1',
            DocumentName: 'StemeDB-ExpandVolume',
            AutomationExecutionStatus: 'Failed',
            ExecutionStartTime: new Date(),
            ExecutionEndTime: new Date(Date.now() - 3_600_000),
          },
          {
            AutomationExecutionId: 'exec-2',
            DocumentName: 'StemeDB-ArchiveWal',
            AutomationExecutionStatus: 'Failed',
            ExecutionStartTime: new Date(),
            ExecutionEndTime: new Date(Date.now() - 3_600_000),
          },
        ],
      });
      automation.on(ListTagsForResourceCommand).resolves({
        TagList: Object.entries(tagsOf(CRITICAL, transition as string)).map(([Key, Value]) => ({
          Key,
          Value,
        })),
      });
      const motoDeps: RouterDeps = {
        ssm: ssmReal,
        cloudwatch: real.cloudwatch,
        dynamodb,
        notify: snsNotifier(sns, topicArn, { sleep: async () => {} }),
        retry: { sleep: async () => {} },
      };
      const motoConfig = { ...config, topicArn };
      const before = (await sentNotifications()).length;

      const first = await routeEvent(scheduledEvent, motoConfig, motoDeps);
      const second = await routeEvent(scheduledEvent, motoConfig, motoDeps);

      expect(first.map((o) => o.decision)).toEqual(['escalated-to-human']);
      expect(second.map((o) => o.decision)).toEqual(['already-escalated']);
      const sent = (await sentNotifications()).slice(before);
      expect(sent).toHaveLength(1);
      expect(String(sent[0]?.[1])).toContain(`Alarm ${CRITICAL} (node db-1, instance ${INSTANCE})`);
      const tags = await real.cloudwatch.send(new ListAlarmTagsCommand({ ResourceARN: alarmArn(CRITICAL) }));
      expect(tags.Tags).toContainEqual({ Key: 'stemedb:escalated', Value: transition });
      expect(automation.commandCalls(StartAutomationExecutionCommand)).toHaveLength(0);
    } finally {
      automation.restore();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Prometheus alerts (Alertmanager → SNS → router) and the kill switch

const PROM_TOPIC = `arn:aws:sns:${TEST_REGION}:${ACCOUNT}:StemeDB-prometheus-alerts`;
const promConfig: RouterConfig = loadRouterConfig({ ...routerEnv, PROMETHEUS_TOPIC_ARN: PROM_TOPIC });

interface AmAlert {
  alertname?: string;
  kind?: string;
  node?: string | null;
  status?: 'firing' | 'resolved';
  startsAt?: string;
  fingerprint?: string;
}

function amAlert(a: AmAlert = {}): Record<string, unknown> {
  const labels: Record<string, string> = {
    alertname: a.alertname ?? 'StemeDBDiskSpaceCritical',
    instance: '10.0.0.5:9100',
    mountpoint: '/data',
    severity: 'critical',
    stemedb_alarm_kind: a.kind ?? 'critical',
  };
  if (a.node !== null) labels.stemedb_node = a.node ?? 'db-1';
  return {
    status: a.status ?? 'firing',
    labels,
    startsAt: a.startsAt ?? '2024-05-01T12:25:00.123Z',
    endsAt: '0001-01-01T00:00:00Z',
    fingerprint: a.fingerprint ?? '0123456789abcdef',
  };
}

/** An SNS → Lambda event carrying one Alertmanager notification (the stack's message template). */
function snsEvent(
  alerts: Record<string, unknown>[],
  o: { topic?: string; timestamp?: string; message?: string } = {},
): Record<string, unknown> {
  const message =
    o.message ?? JSON.stringify({ version: '4', status: 'firing', receiver: 'stemedb-critical', alerts });
  return {
    Records: [
      {
        EventSource: 'aws:sns',
        EventVersion: '1.0',
        EventSubscriptionArn: `${o.topic ?? PROM_TOPIC}:4f3b3a8e-0000-4000-8000-000000000000`,
        Sns: {
          Type: 'Notification',
          MessageId: '95df01b4-ee98-5cb9-9903-4c221d41eb5e',
          TopicArn: o.topic ?? PROM_TOPIC,
          Subject: '[FIRING:1] StemeDBDiskSpaceCritical',
          Message: message,
          Timestamp: o.timestamp ?? '2024-05-01T12:29:30.000Z',
          MessageAttributes: {},
        },
      },
    ],
  };
}

describe('Prometheus alerts from Alertmanager (SNS)', () => {
  it('starts the chain of the alert kind for the node of its stemedb_node label, tagged with the alert and its startsAt', async () => {
    const outcomes = await routeEvent(snsEvent([amAlert()]), promConfig, deps);
    expect(outcomes).toMatchObject([
      {
        decision: 'started',
        document: 'StemeDB-ExpandVolume',
        node: 'db-1',
        kind: 'critical',
        transition: '2024-05-01T12:25:00Z',
        alarmName: 'prometheus:StemeDBDiskSpaceCritical:0123456789abcdef',
      },
    ]);
    expect(starts()).toEqual([
      expect.objectContaining({
        DocumentName: 'StemeDB-ExpandVolume',
        Parameters: {
          InstanceId: [INSTANCE],
          AutomationAssumeRole: [ROLE],
          Reason: [
            'prometheus:StemeDBDiskSpaceCritical:0123456789abcdef in ALARM since 2024-05-01T12:25:00Z',
          ],
        },
        Tags: [
          { Key: 'stemedb:node', Value: 'db-1' },
          { Key: 'stemedb:alarm', Value: 'prometheus:StemeDBDiskSpaceCritical:0123456789abcdef' },
          { Key: 'stemedb:transition', Value: '2024-05-01T12:25:00Z' },
          { Key: 'stemedb:node:db-1', Value: 'remediation' },
        ],
      }),
    ]);
  });

  it('starts nothing for a resolved alert', async () => {
    const outcomes = await routeEvent(snsEvent([amAlert({ status: 'resolved' })]), promConfig, deps);
    expect(outcomes.map((o) => o.decision)).toEqual(['ignored-state']);
    expect(starts()).toHaveLength(0);
  });

  it('handles each alert of a group: one start per node, the other node started too', async () => {
    ssmMock.on(GetParameterCommand, { Name: '/StemeDB/nodes/db-2' }).resolves({
      Parameter: { Value: registryValue.replace('"db-1"', '"db-2"').replace(INSTANCE, OTHER_INSTANCE) },
    });
    const outcomes = await routeEvent(
      snsEvent([
        amAlert(),
        amAlert({ alertname: 'StemeDBDiskSpaceWarning', kind: 'warning', fingerprint: 'aa' }),
        amAlert({ node: 'db-2', fingerprint: 'bb' }),
        amAlert({ status: 'resolved', fingerprint: 'cc' }),
      ]),
      promConfig,
      deps,
    );
    expect(outcomes.map((o) => [o.decision, o.node])).toEqual([
      ['started', 'db-1'],
      ['node-busy', 'db-1'],
      ['started', 'db-2'],
      ['ignored-state', 'db-1'],
    ]);
    expect(starts().map((s) => [s.DocumentName, s.Parameters?.InstanceId?.[0]])).toEqual([
      ['StemeDB-ExpandVolume', INSTANCE],
      ['StemeDB-ExpandVolume', OTHER_INSTANCE],
    ]);
  });

  it('routes the predictive fills-soon alert to ArchiveWal (remediation.fillsSoon)', async () => {
    const outcomes = await routeEvent(
      snsEvent([amAlert({ alertname: 'StemeDBDiskFillsWithinHours', kind: 'fills-soon' })]),
      promConfig,
      deps,
    );
    expect(outcomes).toMatchObject([
      { decision: 'started', kind: 'fills-soon', document: 'StemeDB-ArchiveWal' },
    ]);
    expect(routeTable('StemeDB', DEPLOYED.remediation)['fills-soon']).toEqual(['StemeDB-ArchiveWal']);
  });

  it('starts and reads nothing for a notification of another topic', async () => {
    const other = `arn:aws:sns:${TEST_REGION}:${ACCOUNT}:someone-elses-alerts`;
    const outcomes = await routeEvent(snsEvent([amAlert()], { topic: other }), promConfig, deps);
    expect(outcomes).toMatchObject([{ decision: 'foreign-event' }]);
    expect(outcomes[0]?.reason).toContain(other);
    expect(ssmMock.calls()).toHaveLength(0);
    // A stack without a Prometheus topic takes no SNS notification at all.
    expect((await routeEvent(snsEvent([amAlert()]), config, deps))[0]?.decision).toBe('foreign-event');
  });

  it('starts nothing for a notification older than five minutes', async () => {
    const outcomes = await routeEvent(
      snsEvent([amAlert()], { timestamp: '2024-05-01T12:24:00.000Z' }),
      promConfig,
      deps,
    );
    expect(outcomes.map((o) => o.decision)).toEqual(['stale-event']);
    expect(starts()).toHaveLength(0);
  });

  it('starts nothing for an alert without a valid stemedb_node label, or of a kind nothing routes', async () => {
    const outcomes = await routeEvent(
      snsEvent([
        amAlert({ node: null }),
        amAlert({ node: 'db-1;reboot', fingerprint: 'aa' }),
        amAlert({ kind: 'no-data', fingerprint: 'bb' }),
        amAlert({ kind: 'panic', fingerprint: 'cc' }),
      ]),
      promConfig,
      deps,
    );
    expect(outcomes.map((o) => o.decision)).toEqual(['unknown-node', 'unknown-node', 'no-route', 'no-route']);
    expect(starts()).toHaveLength(0);
  });

  it('starts nothing for a message that is not the JSON template, and reads the other alerts of a group', async () => {
    const text = await routeEvent(snsEvent([], { message: 'Alerts Firing:\nLabels: ...' }), promConfig, deps);
    expect(text).toMatchObject([{ decision: 'malformed-event' }]);
    expect(text[0]?.reason).toMatch(/not a JSON object/);
    const mixed = await routeEvent(snsEvent([{ status: 'firing' }, amAlert()]), promConfig, deps);
    expect(mixed.map((o) => o.decision)).toEqual(['malformed-event', 'started']);
  });

  it('starts nothing new for a repeated notification of the same alert transition', async () => {
    givenExecutions([
      {
        id: 'exec-1',
        document: 'StemeDB-ExpandVolume',
        status: 'Success',
        tags: tagsOf('prometheus:StemeDBDiskSpaceCritical:0123456789abcdef', '2024-05-01T12:25:00Z'),
        start: new Date('2024-05-01T12:25:05Z'),
      },
    ]);
    const outcomes = await routeEvent(snsEvent([amAlert()]), promConfig, deps);
    expect(outcomes).toMatchObject([{ decision: 'already-started', executionId: 'exec-1' }]);
    expect(starts()).toHaveLength(0);
  });
});

describe('one disk, two reports: a CloudWatch alarm and a Prometheus alert start ONE remediation', () => {
  /** AWS's ClientToken rule: a token already used with other parameters is IdempotentParameterMismatch. */
  function awsIdempotency(): { executions: string[] } {
    const byToken = new Map<string, string>();
    const executions: string[] = [];
    ssmMock.on(StartAutomationExecutionCommand).callsFake((input: StartAutomationExecutionCommandInput) => {
      const key = JSON.stringify([input.DocumentName, input.Parameters]);
      const seen = byToken.get(input.ClientToken ?? '');
      if (seen !== undefined && seen !== key) {
        throw Object.assign(new Error('token used with other parameters'), {
          name: 'IdempotentParameterMismatch',
        });
      }
      byToken.set(input.ClientToken ?? '', key);
      executions.push(`exec-${executions.length + 1}`);
      // The listing lags: DescribeAutomationExecutions shows nothing yet (givenExecutions([])).
      return { AutomationExecutionId: executions.at(-1) };
    });
    return { executions };
  }
  const soon: RouterDeps = { ...deps, now: () => new Date('2024-05-01T12:02:00Z') };
  const alertSoon = amAlert({ startsAt: '2024-05-01T12:01:30Z' });
  const notificationSoon = snsEvent([alertSoon], { timestamp: '2024-05-01T12:01:31Z' });

  it('the CloudWatch alarm first, then the alert before the execution is listed: the same ClientToken, one start', async () => {
    const aws = awsIdempotency();
    const first = await routeEvent(alarmEvent(), promConfig, soon);
    const second = await routeEvent(notificationSoon, promConfig, soon);
    expect(first).toMatchObject([{ decision: 'started', document: 'StemeDB-ExpandVolume' }]);
    expect(second).toMatchObject([{ decision: 'already-started', document: 'StemeDB-ExpandVolume' }]);
    expect(aws.executions).toHaveLength(1);
    expect(new Set(starts().map((s) => s.ClientToken)).size).toBe(1);
  });

  it('the alert first, then the CloudWatch alarm: one start', async () => {
    const aws = awsIdempotency();
    const first = await routeEvent(notificationSoon, promConfig, soon);
    const second = await routeEvent(alarmEvent(), promConfig, soon);
    expect(first.map((o) => o.decision)).toEqual(['started']);
    expect(second.map((o) => o.decision)).toEqual(['already-started']);
    expect(aws.executions).toHaveLength(1);
  });

  /**
   * SSM Automation as AWS keeps it: a start records an execution (InProgress, its InstanceId and
   * tags) that the listing shows from then on; a ClientToken used with other parameters is refused.
   */
  function awsAutomation(now: () => Date): AutomationFake {
    const automation = new AutomationFake({ now });
    automation.install(ssmMock);
    return automation;
  }

  /** Router dependencies at a given time. */
  const at = (time: string): RouterDeps => ({ ...deps, now: () => new Date(time) });

  it("the alarm's remediation is running when an alert of another kind (another document, another token) arrives: node busy, one start", async () => {
    const first = at('2024-05-01T12:02:00Z');
    const aws = awsAutomation(first.now as () => Date);
    expect(await routeEvent(alarmEvent(), promConfig, first)).toMatchObject([
      { decision: 'started', document: 'StemeDB-ExpandVolume' },
    ]);
    // Within the settle window of the first start: a warning alert, transition in the next window.
    const warning = amAlert({
      alertname: 'StemeDBDiskSpaceWarning',
      kind: 'warning',
      startsAt: '2024-05-01T12:06:10Z',
      fingerprint: 'aa',
    });
    const second = await routeEvent(
      snsEvent([warning], { timestamp: '2024-05-01T12:06:20Z' }),
      promConfig,
      at('2024-05-01T12:06:30Z'),
    );
    expect(second).toMatchObject([
      {
        decision: 'node-busy',
        node: 'db-1',
        kind: 'warning',
        // The node's lock (remediation-locks) names the execution that holds it.
        reason: expect.stringContaining('exec-1'),
        executionId: 'exec-1',
      },
    ]);
    expect(aws.executions.map((e) => e.document)).toEqual(['StemeDB-ExpandVolume']);
    expect(starts()).toHaveLength(1);
  });

  it("the alert's remediation (fills-soon, ArchiveWal) is running when the CloudWatch critical alarm fires: node busy, one start", async () => {
    const first = at('2024-05-01T11:57:00Z');
    const aws = awsAutomation(first.now as () => Date);
    const fillsSoon = amAlert({
      alertname: 'StemeDBDiskFillsWithinHours',
      kind: 'fills-soon',
      startsAt: '2024-05-01T11:56:40Z',
    });
    expect(
      await routeEvent(snsEvent([fillsSoon], { timestamp: '2024-05-01T11:56:50Z' }), promConfig, first),
    ).toMatchObject([{ decision: 'started', document: 'StemeDB-ArchiveWal' }]);
    const second = await routeEvent(alarmEvent(), promConfig, at('2024-05-01T12:01:00Z'));
    expect(second).toMatchObject([
      {
        decision: 'node-busy',
        kind: 'critical',
        reason: expect.stringContaining('exec-1'),
        executionId: 'exec-1',
      },
    ]);
    expect(aws.executions.map((e) => e.document)).toEqual(['StemeDB-ArchiveWal']);
  });

  it('gives a later transition (two windows on) the alarm’s own token, so it is not held back', () => {
    const alarm = { alarmArn: alarmArn(CRITICAL), node: 'db-1', transition: TRANSITION };
    const early = startToken(alarm, 'StemeDB-ExpandVolume', new Date('2024-05-01T12:09:59Z'));
    const other = startToken(
      {
        alarmArn: 'prometheus:StemeDBDiskSpaceCritical:ab',
        node: 'db-1',
        transition: '2024-05-01T12:04:59Z',
      },
      'StemeDB-ExpandVolume',
      new Date('2024-05-01T12:05:30Z'),
    );
    expect(other).toBe(early);
    expect(startToken(alarm, 'StemeDB-ArchiveWal', new Date('2024-05-01T12:01:00Z'))).not.toBe(early);
    expect(
      startToken({ ...alarm, node: 'db-2' }, 'StemeDB-ExpandVolume', new Date('2024-05-01T12:01:00Z')),
    ).not.toBe(early);
    expect(startToken(alarm, 'StemeDB-ExpandVolume', new Date('2024-05-01T12:10:00Z'))).toBe(
      clientToken(alarmArn(CRITICAL), TRANSITION, 'StemeDB-ExpandVolume'),
    );
  });
});

describe('kill switch: /StemeDB/automation-mode', () => {
  /** Alarm tags that TagResource really sets (observe mode remembers its notification there). */
  function realAlarmTags(): void {
    const tags = new Map<string, { Key: string; Value: string }[]>();
    cwMock.on(ListAlarmTagsCommand).callsFake((input) => ({ Tags: tags.get(input.ResourceARN) ?? [] }));
    cwMock.on(TagResourceCommand).callsFake((input) => {
      const list = (tags.get(input.ResourceARN) ?? []).filter(
        (t) => !input.Tags.some((n: { Key: string }) => n.Key === t.Key),
      );
      tags.set(input.ResourceARN, [...list, ...input.Tags]);
      return {};
    });
  }
  function mode(value: string): void {
    ssmMock.on(GetParameterCommand, { Name: MODE_PARAMETER }).resolves({ Parameter: { Value: value } });
  }

  it('observe: an alarm event starts nothing, logs observed with the document, and notifies once per transition', async () => {
    mode('observe');
    realAlarmTags();
    const first = await routeEvent(alarmEvent(), config, deps);
    const again = await routeEvent(alarmEvent(), config, deps);
    expect(first).toMatchObject([{ decision: 'observed', document: 'StemeDB-ExpandVolume', node: 'db-1' }]);
    expect(first[0]?.reason).toMatch(/would have started step 1 of 2 .*automation-mode is observe/);
    expect(again).toMatchObject([{ decision: 'observed', document: 'StemeDB-ExpandVolume' }]);
    expect(again[0]?.reason).toMatch(/notified for this transition already/);
    expect(starts()).toHaveLength(0);
    expect(notify).toHaveBeenCalledTimes(1);
    expect(notify.mock.calls[0]?.[1]).toContain('would have started StemeDB-ExpandVolume');
    expect(notify.mock.calls[0]?.[1]).toContain(
      'aws ssm put-parameter --name /StemeDB/automation-mode --value act --overwrite',
    );
  });

  it('observe: the re-check starts nothing and notifies each transition once', async () => {
    mode('observe');
    realAlarmTags();
    givenAlarms([{ name: CRITICAL }, { name: WARNING }]);
    const first = await routeEvent(scheduledEvent, config, deps);
    const second = await routeEvent(scheduledEvent, config, deps);
    expect(first.map((o) => [o.decision, o.document])).toEqual([
      ['observed', 'StemeDB-ExpandVolume'],
      ['node-busy', undefined],
    ]);
    expect(second.map((o) => o.decision)).toEqual(['observed', 'node-busy']);
    expect(starts()).toHaveLength(0);
    expect(notify).toHaveBeenCalledTimes(1);
  });

  it('observe: a Prometheus alert starts nothing and notifies once per transition', async () => {
    mode('observe');
    const observedAlerts = new Set<string>();
    const d = { ...deps, observedAlerts };
    const first = await routeEvent(snsEvent([amAlert()]), promConfig, d);
    const again = await routeEvent(snsEvent([amAlert()]), promConfig, d);
    expect(first).toMatchObject([{ decision: 'observed', document: 'StemeDB-ExpandVolume' }]);
    expect(again).toMatchObject([{ decision: 'observed' }]);
    expect(starts()).toHaveLength(0);
    expect(notify).toHaveBeenCalledTimes(1);
  });

  it.each([
    [
      'a missing parameter',
      () =>
        ssmMock
          .on(GetParameterCommand, { Name: MODE_PARAMETER })
          .rejects(Object.assign(new Error('not found'), { name: 'ParameterNotFound' })),
      /could not be read \(ParameterNotFound\)/,
    ],
    ['an invalid value', () => mode('yes please'), /is "yes please", not act\/observe\/off/],
    [
      'a denied read',
      () =>
        ssmMock
          .on(GetParameterCommand, { Name: MODE_PARAMETER })
          .rejects(Object.assign(new Error('denied'), { name: 'AccessDeniedException' })),
      /AccessDeniedException/,
    ],
  ])('fails safe to observe on %s', async (_what, given, reason) => {
    given();
    realAlarmTags();
    const outcomes = await routeEvent(alarmEvent(), config, deps);
    expect(outcomes).toMatchObject([{ decision: 'observed' }]);
    expect(outcomes[0]?.reason).toMatch(reason);
    expect(starts()).toHaveLength(0);
  });

  it('off: starts nothing and notifies nothing, for alarm events, re-checks and alerts', async () => {
    mode('off');
    realAlarmTags();
    const outcomes = [
      ...(await routeEvent(alarmEvent(), config, deps)),
      ...(await routeEvent(scheduledEvent, config, deps)),
      ...(await routeEvent(snsEvent([amAlert()]), promConfig, deps)),
    ];
    // Every alarm that would start something says automation-off; no-data routes nowhere anyway.
    expect(new Set(outcomes.map((o) => o.decision))).toEqual(new Set(['automation-off', 'no-route']));
    expect(starts()).toHaveLength(0);
    expect(notify).not.toHaveBeenCalled();
  });

  it('act: reads the parameter once per invocation', async () => {
    await routeEvent(alarmEvent(), config, deps);
    expect(ssmMock.commandCalls(GetParameterCommand, { Name: MODE_PARAMETER })).toHaveLength(1);
    expect(starts()).toHaveLength(1);
  });
});

describe('fleet scale: per-node locks and the fleet-wide limit (lock table)', () => {
  const nowSeconds = Math.floor(NOW.getTime() / 1000);
  const instanceOf = (i: number): string => `i-${(i + 1).toString(16).padStart(17, '0')}`;

  /** Registers nodes db-<i> in the registry and their critical alarms in ALARM since `transitionOf(i)`. */
  function givenFleet(count: number, transitionOf: (i: number) => Date = () => TRANSITION_DATE): string[] {
    const names = Array.from({ length: count }, (_, i) => `db-${i}`);
    names.forEach((name, i) => {
      ssmMock.on(GetParameterCommand, { Name: `/StemeDB/nodes/${name}` }).resolves({
        Parameter: {
          Value: JSON.stringify({ ...JSON.parse(registryValue), name, instanceId: instanceOf(i) }),
        },
      });
    });
    givenAlarms(
      names.map((name, i) => ({ name: `StemeDB-${name}-disk-critical`, transitioned: transitionOf(i) })),
    );
    return names;
  }

  function hold(key: string, node: string, executionId?: string, expiresAt = nowSeconds + 3600): void {
    locks.items.set(key, {
      pk: { S: key },
      holder: { S: `holder-${node}` },
      node: { S: node },
      expiresAt: { N: String(expiresAt) },
      ...(executionId === undefined ? {} : { executionId: { S: executionId } }),
    });
  }

  it('takes the node lock and a slot, and records the started execution and its document on both', async () => {
    const outcomes = await routeEvent(alarmEvent(), config, deps);
    expect(outcomes).toMatchObject([{ decision: 'started', executionId: 'exec-new' }]);
    const lock = locks.record('node#db-1');
    expect(lock).toMatchObject({
      node: 'db-1',
      executionId: 'exec-new',
      documentName: 'StemeDB-ExpandVolume',
    });
    expect(lock?.expiresAt).toBe(nowSeconds + 6 * 3600);
    const [slot] = locks.heldSlots();
    expect(locks.heldSlots()).toHaveLength(1);
    expect(locks.record(slot as string)).toMatchObject({
      node: 'db-1',
      executionId: 'exec-new',
      documentName: 'StemeDB-ExpandVolume',
      holder: lock?.holder,
    });
  });

  it("looks up only the node's own executions (the node's tag key), whatever the fleet's size", async () => {
    await routeEvent(alarmEvent(), config, deps);
    expect(executionFilters()).toContainEqual([
      { Key: 'DocumentNamePrefix', Values: ['StemeDB-'] },
      { Key: 'TagKey', Values: ['stemedb:node:db-1'] },
      { Key: 'StartTimeAfter', Values: ['2024-05-01T11:59:00Z'] },
    ]);
  });

  it('starts nothing while another invocation holds the node lock', async () => {
    hold('node#db-1', 'db-1');
    const outcomes = await routeEvent(alarmEvent(), config, deps);
    expect(outcomes).toMatchObject([{ decision: 'node-busy' }]);
    expect(outcomes[0]?.reason).toMatch(/lock is held by another start/);
    expect(starts()).toHaveLength(0);
    expect(locks.record('node#db-1')?.holder).toBe('holder-db-1');
  });

  it('frees the lock of an execution that ended and starts, without waiting for the re-check', async () => {
    hold('node#db-1', 'db-1', 'exec-old');
    hold('slot#4', 'db-1', 'exec-old');
    ssmMock.on(GetAutomationExecutionCommand, { AutomationExecutionId: 'exec-old' }).resolves({
      AutomationExecution: { AutomationExecutionStatus: 'Success', Parameters: { InstanceId: [INSTANCE] } },
    });
    const outcomes = await routeEvent(alarmEvent(), config, deps);
    expect(outcomes).toMatchObject([{ decision: 'started', executionId: 'exec-new' }]);
    expect(locks.record('node#db-1')?.executionId).toBe('exec-new');
    expect(locks.heldSlots()).toHaveLength(1);
    expect(locks.record('slot#4')?.executionId ?? 'exec-new').toBe('exec-new');
  });

  it('takes over a lock whose lease ran out (a router that died between taking and starting)', async () => {
    hold('node#db-1', 'db-1', undefined, nowSeconds - 1);
    const outcomes = await routeEvent(alarmEvent(), config, deps);
    expect(outcomes.map((o) => o.decision)).toEqual(['started']);
  });

  it('queues when every slot is held: starts nothing, frees the node lock, says the limit', async () => {
    for (let i = 0; i < 10; i++) hold(`slot#${i}`, `other-${i}`, `exec-${i}`);
    const outcomes = await routeEvent(alarmEvent(), config, deps);
    expect(outcomes).toMatchObject([{ decision: 'queued', node: 'db-1' }]);
    expect(outcomes[0]?.reason).toMatch(/all 10 slots of remediation\.maxConcurrent are held/);
    expect(starts()).toHaveLength(0);
    expect(locks.record('node#db-1')).toBeUndefined();
  });

  it('two events for one node at once: one start, the other node-busy', async () => {
    ssmMock
      .on(StartAutomationExecutionCommand)
      .resolvesOnce({ AutomationExecutionId: 'exec-a' })
      .resolves({ AutomationExecutionId: 'exec-b' });
    const both = await Promise.all([
      routeEvent(alarmEvent(), config, deps),
      routeEvent(alarmEvent(), config, deps),
    ]);
    expect(
      both
        .flat()
        .map((o) => o.decision)
        .sort(),
    ).toEqual(['node-busy', 'started']);
    expect(starts()).toHaveLength(1);
  });

  it('SSM refuses the start (execution quota): lock and slot are freed, nothing is lost, the re-check starts it', async () => {
    ssmMock
      .on(StartAutomationExecutionCommand)
      .rejectsOnce(Object.assign(new Error('quota'), { name: 'AutomationExecutionLimitExceededException' }))
      .resolves({ AutomationExecutionId: 'exec-later' });
    const first = await routeEvent(alarmEvent(), config, deps);
    expect(first).toMatchObject([{ decision: 'start-failed', document: 'StemeDB-ExpandVolume' }]);
    expect(locks.items.size).toBe(0);
    givenCriticalInAlarm();
    const recheck = await routeEvent(scheduledEvent, config, deps);
    expect(recheck).toMatchObject([{ decision: 'started', executionId: 'exec-later', node: 'db-1' }]);
    expect(starts()).toHaveLength(2);
    expect(new Set(starts().map((s) => s.DocumentName))).toEqual(new Set(['StemeDB-ExpandVolume']));
  });

  it('throttling that outlasts the retries fails the invocation and frees the lock and the slot', async () => {
    ssmMock
      .on(StartAutomationExecutionCommand)
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    await expect(routeEvent(alarmEvent(), config, deps)).rejects.toThrow('Rate exceeded');
    expect(locks.items.size).toBe(0);
  });

  it('a storm of 30 alarms at once, limit 10: 10 distinct nodes start, 20 queue; the re-checks start the rest oldest first', async () => {
    const names = givenFleet(30, (i) => new Date(TRANSITION_DATE.getTime() + (29 - i) * 1000));
    let n = 0;
    const running = new Map<string, string>();
    ssmMock.on(StartAutomationExecutionCommand).callsFake((input) => {
      const id = `exec-${n++}`;
      running.set(id, input.Parameters?.InstanceId?.[0] as string);
      return { AutomationExecutionId: id };
    });
    ssmMock.on(GetAutomationExecutionCommand).callsFake((input) => ({
      AutomationExecution: {
        AutomationExecutionStatus: 'Success',
        Parameters: { InstanceId: [running.get(input.AutomationExecutionId) ?? 'i-none'] },
      },
    }));
    const events = names.map((name, i) =>
      alarmEvent({
        name: `StemeDB-${name}-disk-critical`,
        timestamp: new Date(TRANSITION_DATE.getTime() + (29 - i) * 1000).toISOString().replace('Z', '+0000'),
      }),
    );
    const storm = (await Promise.all(events.map((e) => routeEvent(e, config, deps)))).flat();
    expect(storm.filter((o) => o.decision === 'started')).toHaveLength(10);
    expect(storm.filter((o) => o.decision === 'queued')).toHaveLength(20);
    expect(locks.heldSlots()).toHaveLength(10);
    const startedNodes = (): string[] =>
      starts().map((s) => s.Tags?.find((t) => t.Key === 'stemedb:node')?.Value as string);
    expect(new Set(startedNodes()).size).toBe(10);
    // The executions end (GetAutomationExecution says Success): the re-check frees their slots and
    // starts the next 10, oldest transition first (db-29 is the oldest).
    const stillInAlarm = (): void =>
      givenAlarms(
        names
          .filter((name) => !startedNodes().includes(name))
          .map((name) => ({
            name: `StemeDB-${name}-disk-critical`,
            transitioned: new Date(TRANSITION_DATE.getTime() + (29 - Number(name.slice(3))) * 1000),
          })),
      );
    stillInAlarm();
    const second = await routeEvent(scheduledEvent, config, deps);
    const secondStarted = second.filter((o) => o.decision === 'started').map((o) => o.node);
    expect(secondStarted).toHaveLength(10);
    const waiting = names.filter((name) => !startedNodes().slice(0, 10).includes(name));
    const oldestFirst = [...waiting].sort((a, b) => Number(b.slice(3)) - Number(a.slice(3)));
    expect(secondStarted).toEqual(oldestFirst.slice(0, 10));
    stillInAlarm();
    await routeEvent(scheduledEvent, config, deps);
    expect(startedNodes().sort()).toEqual([...names].sort());
    expect(new Set(startedNodes()).size).toBe(30);
  });
});
