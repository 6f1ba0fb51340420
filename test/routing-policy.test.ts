/**
 * The alarm router's policy (lambda/shared/routing-policy.ts): one table per decision, each row a
 * case and the decision it must give. Pure functions: no AWS, no clock. The handler's use of them
 * (which reads come before which decision) is covered by test/alarm-router.test.ts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AlertKind } from '../contracts/alarms';
import { routeTable } from '../contracts/routing';
import {
  type AlertFacts,
  alertDecision,
  busyNode,
  type ChainStep,
  type CurrentAlarm,
  type ExecutionRecord,
  escalateOnce,
  escalationUnderMode,
  firstStart,
  fleetFull,
  foreignEvent,
  foreignNotification,
  freeSlot,
  holds,
  ignoredTransition,
  isActive,
  killSwitchMode,
  type LockRecord,
  lastChainIndex,
  lockVerdict,
  MAX_NOTIFICATION_AGE_SECONDS,
  type ModeState,
  markedFor,
  type NodeActivity,
  nodeLockKey,
  observedVerdict,
  recheckOrder,
  recheckStep,
  routeFor,
  type StartResult,
  slotKeys,
  slotRelease,
  staleAlarm,
  startFailure,
  startUnderMode,
  startVerdict,
  type TagRecord,
  type Verdict,
} from '../lambda/shared/routing-policy';

const STACK = { accountId: '123456789012', region: 'eu-west-1' };
const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:StemeDB-prometheus-alerts';
const OTHER_TOPIC = 'arn:aws:sns:eu-west-1:123456789012:someone-else';
const ARN = 'arn:aws:cloudwatch:eu-west-1:123456789012:alarm:StemeDB-db-1-disk-critical';
const EVENT = { alarmName: 'StemeDB-db-1-disk-critical', alarmArn: ARN, transition: '2024-05-01T12:00:00Z' };
const INSTANCE = 'i-0123456789abcdef0';
const MODE_PARAMETER = '/StemeDB/automation-mode';
const ROUTES = {
  ...routeTable('StemeDB', {
    warning: '',
    critical: 'ExpandVolume',
    emergencySpace: 'EmergencyCleanup',
    inodes: 'InodeCleanup',
    fillsSoon: '',
  }),
  'no-data': [],
} satisfies Record<AlertKind, readonly string[]>;
const CRITICAL_CHAIN = ['StemeDB-ExpandVolume', 'StemeDB-ArchiveWal'];
const NOW = new Date('2024-05-01T12:30:00Z');

const act: ModeState = { mode: 'act', reason: `${MODE_PARAMETER} is act` };
const observe: ModeState = { mode: 'observe', reason: `${MODE_PARAMETER} is observe` };
const off: ModeState = { mode: 'off', reason: `${MODE_PARAMETER} is off` };

function execution(
  document: string,
  status: string,
  endedAt?: string,
  id = `exec-${document.split('-')[1]?.toLowerCase()}`,
): ExecutionRecord {
  return {
    DocumentName: document,
    AutomationExecutionId: id,
    AutomationExecutionStatus: status,
    ...(endedAt === undefined ? {} : { ExecutionEndTime: new Date(endedAt) }),
  };
}

describe('whose event: foreignEvent', () => {
  const cases: [string, { account: string; region: string }, ReturnType<typeof foreignEvent>][] = [
    ['the stack’s account and region', { account: '123456789012', region: 'eu-west-1' }, undefined],
    [
      'another account',
      { account: '210987654321', region: 'eu-west-1' },
      {
        decision: 'foreign-event',
        reason: 'the event is from account 210987654321; this stack is in 123456789012',
      },
    ],
    [
      'another region',
      { account: '123456789012', region: 'us-east-1' },
      { decision: 'foreign-event', reason: 'the event is from region us-east-1; this stack is in eu-west-1' },
    ],
    [
      'another account and region (the account is named)',
      { account: '210987654321', region: 'us-east-1' },
      {
        decision: 'foreign-event',
        reason: 'the event is from account 210987654321; this stack is in 123456789012',
      },
    ],
  ];
  it.each(cases)('%s', (_label, event, expected) => {
    expect(foreignEvent(event, STACK)).toEqual(expected);
  });
});

describe('whose notification: foreignNotification', () => {
  const cases: [string, string, string | undefined, ReturnType<typeof foreignNotification>][] = [
    ['the stack’s Prometheus topic', TOPIC, TOPIC, undefined],
    [
      'another topic',
      OTHER_TOPIC,
      TOPIC,
      {
        decision: 'foreign-event',
        reason: `the notification came from topic ${OTHER_TOPIC}; this stack's Prometheus alerts come from ${TOPIC}`,
      },
    ],
    [
      'any topic when none is configured',
      TOPIC,
      undefined,
      {
        decision: 'foreign-event',
        reason: `the notification came from topic ${TOPIC}; this stack's Prometheus alerts come from (none configured)`,
      },
    ],
  ];
  it.each(cases)('%s', (_label, topicArn, configured, expected) => {
    expect(foreignNotification(topicArn, configured)).toEqual(expected);
  });
});

describe('which transition: ignoredTransition', () => {
  type State = 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';
  const ignored = (reason: string): Verdict => ({ decision: 'ignored-state', reason });
  const cases: [State | undefined, State, ReturnType<typeof ignoredTransition>][] = [
    ['OK', 'ALARM', undefined],
    ['INSUFFICIENT_DATA', 'ALARM', undefined],
    [undefined, 'ALARM', undefined],
    ['ALARM', 'ALARM', ignored('ALARM → ALARM starts nothing; only a transition into ALARM does')],
    ['ALARM', 'OK', ignored('ALARM → OK starts nothing; only a transition into ALARM does')],
    [
      undefined,
      'INSUFFICIENT_DATA',
      ignored('? → INSUFFICIENT_DATA starts nothing; only a transition into ALARM does'),
    ],
  ];
  it.each(cases)('%s → %s', (previous, state, expected) => {
    expect(ignoredTransition(state, previous)).toEqual(expected);
  });
});

describe('which transition: staleAlarm (the alarm re-read by name)', () => {
  const stale = (reason: string): Verdict => ({ decision: 'stale-event', reason });
  const inAlarm: CurrentAlarm = { alarmArn: ARN, stateValue: 'ALARM', transition: EVENT.transition };
  const cases: [string, CurrentAlarm | undefined, ReturnType<typeof staleAlarm>][] = [
    ['still in ALARM since the event’s transition', inAlarm, undefined],
    ['no longer exists', undefined, stale('alarm StemeDB-db-1-disk-critical no longer exists')],
    [
      'another alarm of that name now',
      { ...inAlarm, alarmArn: `${ARN}-2` },
      stale(`alarm StemeDB-db-1-disk-critical is "${ARN}-2" now, not the event's ${ARN}`),
    ],
    [
      'back to OK',
      { ...inAlarm, stateValue: 'OK' },
      stale('the alarm is "OK" now: the event\'s ALARM since 2024-05-01T12:00:00Z is over'),
    ],
    [
      'without a state timestamp',
      { ...inAlarm, transition: undefined },
      stale("DescribeAlarms gives no state timestamp to compare with the event's"),
    ],
    [
      'in ALARM since a later transition',
      { ...inAlarm, transition: '2024-05-01T12:20:00Z' },
      stale(
        "the alarm is in ALARM since 2024-05-01T12:20:00Z, not since the event's 2024-05-01T12:00:00Z: a later transition, which its own event and the re-check handle",
      ),
    ],
  ];
  it.each(cases)('%s', (_label, current, expected) => {
    expect(staleAlarm(EVENT, current)).toEqual(expected);
  });
});

describe('which chain: routeFor', () => {
  const cases: [AlertKind, 'alarms' | 'alerts', ReturnType<typeof routeFor>][] = [
    ['critical', 'alarms', { chain: CRITICAL_CHAIN }],
    ['emergency-space', 'alarms', { chain: ['StemeDB-EmergencyCleanup', 'StemeDB-ExpandVolume'] }],
    ['inode-warning', 'alerts', { chain: ['StemeDB-InodeCleanup'] }],
    [
      'warning',
      'alarms',
      { verdict: { decision: 'no-route', reason: 'no automation is routed for warning alarms' } },
    ],
    [
      'no-data',
      'alarms',
      { verdict: { decision: 'no-route', reason: 'no automation is routed for no-data alarms' } },
    ],
    [
      'fills-soon',
      'alerts',
      { verdict: { decision: 'no-route', reason: 'no automation is routed for fills-soon alerts' } },
    ],
  ];
  it.each(cases)('%s %s', (kind, what, expected) => {
    expect(routeFor(ROUTES, kind, what)).toEqual(expected);
  });
});

describe('which alert: alertDecision (before anything is read)', () => {
  const PUBLISHED = '2024-05-01T12:29:00Z';
  const firing: AlertFacts = { status: 'firing', kind: 'critical', kindLabel: 'critical', node: 'db-1' };
  const at = (secondsAfterPublish: number) => new Date(Date.parse(PUBLISHED) + secondsAfterPublish * 1000);
  const cases: [string, AlertFacts, Date, ReturnType<typeof alertDecision>][] = [
    [
      'a firing critical alert of a node',
      firing,
      at(60),
      { chain: CRITICAL_CHAIN, node: 'db-1', kind: 'critical' },
    ],
    [
      'a notification exactly at the age limit',
      firing,
      at(MAX_NOTIFICATION_AGE_SECONDS),
      { chain: CRITICAL_CHAIN, node: 'db-1', kind: 'critical' },
    ],
    [
      'a resolved alert',
      { ...firing, status: 'resolved' },
      at(60),
      { verdict: { decision: 'ignored-state', reason: 'a resolved alert starts nothing; only firing does' } },
    ],
    [
      'a resolved alert of an old notification (resolved is named first)',
      { ...firing, status: 'resolved' },
      at(3600),
      { verdict: { decision: 'ignored-state', reason: 'a resolved alert starts nothing; only firing does' } },
    ],
    [
      'a notification older than the limit',
      firing,
      at(MAX_NOTIFICATION_AGE_SECONDS + 1),
      {
        verdict: {
          decision: 'stale-event',
          reason: `the notification was published at ${PUBLISHED}, 301 s ago (more than 300 s)`,
        },
      },
    ],
    [
      'an alert of a kind no route may name',
      { ...firing, kind: undefined, kindLabel: 'latency' },
      at(60),
      {
        verdict: {
          decision: 'no-route',
          reason: 'label stemedb_alarm_kind is "latency"; no automation is routed for it',
        },
      },
    ],
    [
      'an alert without stemedb_node',
      { ...firing, node: undefined },
      at(60),
      {
        verdict: {
          decision: 'unknown-node',
          reason: 'label stemedb_node is undefined; expected a node name (the scrape configuration sets it)',
        },
      },
    ],
    [
      'an alert whose stemedb_node is not a node name',
      { ...firing, node: 'DB_1' },
      at(60),
      {
        verdict: {
          decision: 'unknown-node',
          reason: 'label stemedb_node is "DB_1"; expected a node name (the scrape configuration sets it)',
        },
      },
    ],
    [
      'an alert of a kind routed nowhere',
      { ...firing, kind: 'fills-soon', kindLabel: 'fills-soon' },
      at(60),
      { verdict: { decision: 'no-route', reason: 'no automation is routed for fills-soon alerts' } },
    ],
  ];
  it.each(cases)('%s', (_label, alert, now, expected) => {
    expect(alertDecision(alert, { publishedAt: PUBLISHED, now }, ROUTES)).toEqual(expected);
  });
});

describe('once per transition: firstStart', () => {
  const cases: [string, ExecutionRecord[], ReturnType<typeof firstStart>][] = [
    ['no execution of the transition: start', [], undefined],
    [
      'a tagged execution of the transition',
      [execution('StemeDB-ExpandVolume', 'Success', '2024-05-01T12:05:00Z', 'exec-1')],
      {
        decision: 'already-started',
        reason: 'this transition already has a remediation; the re-check escalates if needed',
        document: 'StemeDB-ExpandVolume',
        executionId: 'exec-1',
      },
    ],
    [
      'several: the first one is named',
      [
        execution('StemeDB-ExpandVolume', 'Failed', undefined, 'exec-1'),
        execution('StemeDB-ArchiveWal', 'InProgress', undefined, 'exec-2'),
      ],
      {
        decision: 'already-started',
        reason: 'this transition already has a remediation; the re-check escalates if needed',
        document: 'StemeDB-ExpandVolume',
        executionId: 'exec-1',
      },
    ],
  ];
  it.each(cases)('%s', (_label, executions, expected) => {
    expect(firstStart(executions)).toEqual(expected);
  });
});

describe('one remediation per node: busyNode', () => {
  const running = execution('StemeDB-WalCleanup', 'InProgress', undefined, 'exec-9');
  const cases: [string, NodeActivity, ReturnType<typeof busyNode>][] = [
    ['nothing known yet', {}, undefined],
    [
      'not started in this run (before the running executions are read)',
      { startedInThisRun: false },
      undefined,
    ],
    ['nothing running on the instance', { running: undefined, instanceId: INSTANCE }, undefined],
    [
      'started in this run',
      { startedInThisRun: true },
      { decision: 'node-busy', reason: 'a remediation for this node was started in this run' },
    ],
    [
      'running on the instance (by the router, a parent document or a human)',
      { running, instanceId: INSTANCE },
      {
        decision: 'node-busy',
        reason: `StemeDB-WalCleanup exec-9 (InProgress) is running on ${INSTANCE}`,
        document: 'StemeDB-WalCleanup',
        executionId: 'exec-9',
      },
    ],
    [
      'a re-check failed on the node in this run (named before anything else)',
      { failedInThisRun: 'StemeDB-db-1-disk-warning', startedInThisRun: true, running, instanceId: INSTANCE },
      {
        decision: 'node-busy',
        reason:
          'the re-check of StemeDB-db-1-disk-warning failed in this run (its start may have happened): nothing more starts on this node until the next re-check',
      },
    ],
  ];
  it.each(cases)('%s', (_label, activity, expected) => {
    expect(busyNode(activity)).toEqual(expected);
  });
});

describe('the kill switch: killSwitchMode', () => {
  const failSafe = (shownValue: string): ModeState => ({
    mode: 'observe',
    reason: `${MODE_PARAMETER} is ${shownValue}, not act/observe/off: observe (fail safe)`,
  });
  const cases: [string, Parameters<typeof killSwitchMode>[1], ModeState][] = [
    ['act', { value: 'act' }, act],
    ['observe', { value: 'observe' }, observe],
    ['off', { value: 'off' }, off],
    ['act with a trailing newline', { value: 'act\n' }, act],
    ['another case (ACT)', { value: 'ACT' }, failSafe('"ACT"')],
    ['an empty value', { value: '' }, failSafe('""')],
    ['no value', { value: undefined }, failSafe('undefined')],
    [
      'an unreadable parameter',
      { errorCode: 'AccessDeniedException' },
      {
        mode: 'observe',
        reason: `${MODE_PARAMETER} could not be read (AccessDeniedException): observe (fail safe)`,
      },
    ],
    [
      'a missing parameter',
      { errorCode: 'ParameterNotFound' },
      {
        mode: 'observe',
        reason: `${MODE_PARAMETER} could not be read (ParameterNotFound): observe (fail safe)`,
      },
    ],
  ];
  it.each(cases)('%s', (_label, read, expected) => {
    expect(killSwitchMode(MODE_PARAMETER, read)).toEqual(expected);
  });
});

describe('the kill switch on a start: startUnderMode and observedVerdict', () => {
  const step: ChainStep = { chain: CRITICAL_CHAIN, from: 1, kind: 'critical' };
  const cases: [ModeState, ReturnType<typeof startUnderMode>][] = [
    [act, { action: 'start' }],
    [observe, { action: 'observe', document: 'StemeDB-ArchiveWal' }],
    [
      off,
      {
        verdict: {
          decision: 'automation-off',
          reason: `${MODE_PARAMETER} is off: would have started step 2 of 2 of the critical chain; starts and notifies nothing`,
          document: 'StemeDB-ArchiveWal',
        },
      },
    ],
  ];
  it.each(cases)('$mode', (mode, expected) => {
    expect(startUnderMode(mode, step)).toEqual(expected);
  });

  const observed: [string, ReturnType<typeof observedVerdict>][] = [
    [
      'published to arn:aws:sns:eu-west-1:123456789012:StemeDB-alerts',
      {
        decision: 'observed',
        reason: `would have started step 2 of 2 of the critical chain; ${MODE_PARAMETER} is observe; published to arn:aws:sns:eu-west-1:123456789012:StemeDB-alerts`,
        document: 'StemeDB-ArchiveWal',
      },
    ],
    [
      'notified for this transition already',
      {
        decision: 'observed',
        reason: `would have started step 2 of 2 of the critical chain; ${MODE_PARAMETER} is observe; notified for this transition already`,
        document: 'StemeDB-ArchiveWal',
      },
    ],
  ];
  it.each(observed)('observe, %s', (notified, expected) => {
    expect(observedVerdict(observe, step, notified)).toEqual(expected);
  });
});

describe('the kill switch on a notification: escalationUnderMode', () => {
  const cases: [ModeState, ReturnType<typeof escalationUnderMode>][] = [
    [act, undefined],
    [observe, undefined],
    [
      off,
      {
        decision: 'automation-off',
        reason: `${MODE_PARAMETER} is off: the chain is exhausted; notifies nothing`,
      },
    ],
  ];
  it.each(cases)('$mode', (mode, expected) => {
    expect(escalationUnderMode(mode)).toEqual(expected);
  });
});

describe('escalate once: escalateOnce (and markedFor, observe mode’s "once")', () => {
  const T = EVENT.transition;
  const told: Verdict = {
    decision: 'already-escalated',
    reason: 'a human was told about this transition already',
  };
  const cases: [string, TagRecord[], ReturnType<typeof escalateOnce>][] = [
    ['no tags: tell a human', [], undefined],
    ['told about this transition', [{ Key: 'stemedb:escalated', Value: T }], told],
    [
      'told about this transition, among other tags',
      [
        { Key: 'team', Value: 'db' },
        { Key: 'stemedb:escalated', Value: T },
      ],
      told,
    ],
    [
      'told about an earlier transition only: tell again',
      [{ Key: 'stemedb:escalated', Value: '2024-04-30T08:00:00Z' }],
      undefined,
    ],
    ['observed this transition, not escalated', [{ Key: 'stemedb:observed', Value: T }], undefined],
    ['a tag without a value', [{ Key: 'stemedb:escalated' }], undefined],
  ];
  it.each(cases)('%s', (_label, tags, expected) => {
    expect(escalateOnce(tags, 'stemedb:escalated', T)).toEqual(expected);
    expect(markedFor(tags, 'stemedb:escalated', T)).toBe(expected !== undefined);
  });
});

describe('starting: startFailure (a StartAutomationExecution error)', () => {
  const cases: [string, ReturnType<typeof startFailure>][] = [
    ['IdempotentParameterMismatch', 'already-started'],
    ['AutomationExecutionLimitExceededException', 'limit'],
    ['AutomationDefinitionNotFoundException', 'skip'],
    ['AutomationDefinitionVersionNotFoundException', 'skip'],
    ['InvalidAutomationExecutionParametersException', 'skip'],
    ['InvalidDocument', 'skip'],
    ['AccessDeniedException', 'throw'],
    ['ThrottlingException', 'throw'],
    ['InternalServerError', 'throw'],
    ['Error', 'throw'],
  ];
  it.each(cases)('%s → %s', (code, expected) => {
    expect(startFailure(code)).toBe(expected);
  });
});

describe('starting: startVerdict', () => {
  const cases: [string, StartResult, ReturnType<typeof startVerdict>][] = [
    [
      'the first document started',
      { kind: 'started', document: 'StemeDB-ExpandVolume', executionId: 'exec-1' },
      {
        verdict: {
          decision: 'started',
          reason: 'started step 1 of 2 of the critical chain',
          document: 'StemeDB-ExpandVolume',
          executionId: 'exec-1',
        },
      },
    ],
    [
      'the second document started (the first was skipped)',
      { kind: 'started', document: 'StemeDB-ArchiveWal', executionId: 'exec-2' },
      {
        verdict: {
          decision: 'started',
          reason: 'started step 2 of 2 of the critical chain',
          document: 'StemeDB-ArchiveWal',
          executionId: 'exec-2',
        },
      },
    ],
    [
      'AWS refused the ClientToken’s second use',
      { kind: 'already-started', document: 'StemeDB-ExpandVolume' },
      {
        verdict: {
          decision: 'already-started',
          reason: 'the ClientToken of this transition was used already (IdempotentParameterMismatch)',
          document: 'StemeDB-ExpandVolume',
        },
      },
    ],
    [
      'the account’s execution limit',
      {
        kind: 'limit',
        document: 'StemeDB-ExpandVolume',
        reason: 'AutomationExecutionLimitExceededException: limit',
      },
      {
        verdict: {
          decision: 'start-failed',
          reason: 'AutomationExecutionLimitExceededException: limit',
          document: 'StemeDB-ExpandVolume',
        },
      },
    ],
    ['no document of the chain could be started', { kind: 'none-startable' }, { exhausted: true }],
  ];
  it.each(cases)('%s', (_label, result, expected) => {
    expect(startVerdict(result, CRITICAL_CHAIN, 'critical')).toEqual(expected);
  });
});

describe('the re-check: recheckStep (an alarm that stays in ALARM)', () => {
  const SETTLE = 300;
  const expand = (status: string, endedAt?: string) =>
    execution('StemeDB-ExpandVolume', status, endedAt, 'exec-1');
  const archive = (status: string, endedAt?: string) =>
    execution('StemeDB-ArchiveWal', status, endedAt, 'exec-2');
  const cases: [string, ExecutionRecord[], ReturnType<typeof recheckStep>][] = [
    [
      'no execution of the transition (the event was missed): the first document',
      [],
      { action: 'start', from: 0 },
    ],
    [
      'the first document still runs: wait, the node is busy',
      [expand('InProgress')],
      {
        verdict: {
          decision: 'waiting',
          reason: 'StemeDB-ExpandVolume is InProgress',
          document: 'StemeDB-ExpandVolume',
          executionId: 'exec-1',
        },
        nodeBusy: true,
      },
    ],
    [
      'a document waits for approval: still running',
      [expand('Failed', '2024-05-01T12:05:00Z'), archive('PendingApproval')],
      {
        verdict: {
          decision: 'waiting',
          reason: 'StemeDB-ArchiveWal is PendingApproval',
          document: 'StemeDB-ArchiveWal',
          executionId: 'exec-2',
        },
        nodeBusy: true,
      },
    ],
    [
      'the first document ended less than the settle time ago: wait for the metrics',
      [expand('Failed', '2024-05-01T12:27:00Z')],
      {
        verdict: {
          decision: 'waiting',
          reason:
            'the last remediation ended at 2024-05-01T12:27:00.000Z; escalation waits until 2024-05-01T12:32:00.000Z',
        },
        nodeBusy: false,
      },
    ],
    [
      'the first document failed and settled: the next one',
      [expand('Failed', '2024-05-01T12:20:00Z')],
      { action: 'start', from: 1 },
    ],
    [
      'the first document succeeded and settled, the alarm stays: the next one',
      [expand('Success', '2024-05-01T12:20:00Z')],
      { action: 'start', from: 1 },
    ],
    [
      'ExpandVolume ran ArchiveWal as its fallback (a child): the chain is exhausted',
      [expand('Success', '2024-05-01T12:10:00Z'), archive('Success', '2024-05-01T12:12:00Z')],
      { action: 'escalate' },
    ],
    [
      'the last document of the chain ended and settled: escalate',
      [archive('Failed', '2024-05-01T12:20:00Z')],
      { action: 'escalate' },
    ],
    [
      'only a document outside the chain ran (settled): the first document',
      [execution('StemeDB-DiagnoseDiskFull', 'Success', '2024-05-01T12:00:30Z', 'exec-3')],
      { action: 'start', from: 0 },
    ],
  ];
  it.each(cases)('%s', (_label, executions, expected) => {
    expect(recheckStep({ chain: CRITICAL_CHAIN, executions, settleSeconds: SETTLE, now: NOW })).toEqual(
      expected,
    );
  });

  it.each([
    [0, { action: 'start', from: 1 }],
    [3600, { verdict: expect.objectContaining({ decision: 'waiting' }), nodeBusy: false }],
  ])('waits settleSeconds=%i after the last end', (settleSeconds, expected) => {
    const executions = [expand('Failed', '2024-05-01T12:29:59Z')];
    expect(recheckStep({ chain: CRITICAL_CHAIN, executions, settleSeconds, now: NOW })).toEqual(expected);
  });
});

describe('the re-check: lastChainIndex and isActive', () => {
  const cases: [string, ExecutionRecord[], number][] = [
    ['none', [], -1],
    ['the first document', [execution('StemeDB-ExpandVolume', 'Failed')], 0],
    [
      'both, listed in any order',
      [execution('StemeDB-ArchiveWal', 'Success'), execution('StemeDB-ExpandVolume', 'Success')],
      1,
    ],
    ['a document outside the chain', [execution('StemeDB-WalCleanup', 'Success')], -1],
    ['an execution without a document name', [{ AutomationExecutionId: 'x' }], -1],
  ];
  it.each(cases)('%s', (_label, executions, expected) => {
    expect(lastChainIndex(CRITICAL_CHAIN, executions)).toBe(expected);
  });

  const statuses: [string, boolean][] = [
    ['Pending', true],
    ['InProgress', true],
    ['Waiting', true],
    ['Cancelling', true],
    ['PendingApproval', true],
    ['Approved', true],
    ['Scheduled', true],
    ['RunbookInProgress', true],
    ['PendingChangeCalendarOverride', true],
    ['ChangeCalendarOverrideApproved', true],
    ['Success', false],
    ['Failed', false],
    ['TimedOut', false],
    ['Cancelled', false],
    ['Rejected', false],
    ['CompletedWithSuccess', false],
  ];
  it.each(statuses)('%s is active: %s', (status, expected) => {
    expect(isActive({ AutomationExecutionStatus: status })).toBe(expected);
  });
});

describe('the policy is pure', () => {
  it('imports only contracts/ and the payload quoting helper: no AWS SDK, no clock, no I/O', () => {
    const source = readFileSync(join(__dirname, '..', 'lambda', 'shared', 'routing-policy.ts'), 'utf8');
    const specifiers = [...source.matchAll(/^import[^;]*?from '([^']+)';/gms)].map((m) => m[1]);
    expect(specifiers.length).toBeGreaterThan(0);
    expect(specifiers.filter((s) => !/^(\.\.\/\.\.\/contracts\/[a-z-]+|\.\/payload)$/.test(s ?? ''))).toEqual(
      [],
    );
    expect(source).not.toMatch(/\bnew Date\(\)|Date\.now\(|process\.env|\bimport\(/);
  });
});

describe('fleet scale: locks, slots and the order of the queue', () => {
  const NOW_S = 1_714_564_800;
  const held = (key: string, node: string, executionId?: string, expiresAt = NOW_S + 60): LockRecord => ({
    key,
    holder: `h-${key}`,
    node,
    expiresAt,
    executionId,
  });

  it('names the node lock and the slots, and refuses a limit outside 1 to 100', () => {
    expect(nodeLockKey('db-1')).toBe('node#db-1');
    expect(slotKeys(3)).toEqual(['slot#0', 'slot#1', 'slot#2']);
    expect(slotKeys(100)).toHaveLength(100);
    for (const bad of [0, 101, 2.5, Number.NaN]) {
      expect(() => slotKeys(bad)).toThrow(/^maxConcurrent is .*; expected a whole number from 1 to 100/);
    }
  });

  it.each([
    ['absent', undefined, false],
    ['held until later', held('node#db-1', 'db-1'), true],
    ['lease ran out', held('node#db-1', 'db-1', 'exec-1', NOW_S - 1), false],
    ['lease ends this second', held('node#db-1', 'db-1', 'exec-1', NOW_S), false],
  ] as const)('holds: %s', (_label, record, expected) => {
    expect(holds(record, NOW_S)).toBe(expected);
  });

  it.each([
    ['no lock', undefined, undefined],
    [
      'held by a started execution',
      held('node#db-1', 'db-1', 'exec-1'),
      { decision: 'node-busy', reason: "the node's lock is held by exec-1", executionId: 'exec-1' },
    ],
    [
      'held by a started execution whose document is recorded',
      { ...held('node#db-1', 'db-1', 'exec-1'), documentName: 'StemeDB-ExpandVolume' },
      {
        decision: 'node-busy',
        reason: "the node's lock is held by exec-1 (StemeDB-ExpandVolume)",
        executionId: 'exec-1',
      },
    ],
    [
      'held by a start in progress',
      held('node#db-1', 'db-1'),
      {
        decision: 'node-busy',
        reason: `the node's lock is held by another start until ${new Date((NOW_S + 60) * 1000).toISOString()}`,
        executionId: undefined,
      },
    ],
    ['lease ran out', held('node#db-1', 'db-1', 'exec-1', NOW_S - 5), undefined],
  ] as const)('lockVerdict: %s', (_label, record, expected) => {
    expect(lockVerdict(record, NOW_S)).toEqual(expected);
  });

  const keys = slotKeys(3);
  it.each([
    ['all free: the first', [], new Set<string>(), { key: 'slot#0', previous: undefined }],
    [
      'the first held: the second',
      [held('slot#0', 'db-1')],
      new Set<string>(),
      { key: 'slot#1', previous: undefined },
    ],
    [
      'an expired slot is free, with what it held',
      [held('slot#0', 'db-1'), held('slot#1', 'db-2', 'exec-2', NOW_S - 1)],
      new Set<string>(),
      { key: 'slot#1', previous: held('slot#1', 'db-2', 'exec-2', NOW_S - 1) },
    ],
    [
      'a slot lost to another invocation is skipped',
      [],
      new Set(['slot#0', 'slot#1']),
      { key: 'slot#2', previous: undefined },
    ],
    [
      'all held: none',
      [held('slot#0', 'a'), held('slot#1', 'b'), held('slot#2', 'c')],
      new Set<string>(),
      undefined,
    ],
    ['all lost: none', [], new Set(keys), undefined],
  ] as const)('freeSlot: %s', (_label, records, tried, expected) => {
    expect(freeSlot(keys, records, NOW_S, tried)).toEqual(expected);
  });

  it('freeSlot from a start index: wraps round, and still finds the one free slot', () => {
    expect(freeSlot(keys, [], NOW_S, new Set(), 2)).toEqual({ key: 'slot#2', previous: undefined });
    expect(freeSlot(keys, [], NOW_S, new Set(), 7)).toEqual({ key: 'slot#1', previous: undefined });
    expect(freeSlot(keys, [held('slot#2', 'a'), held('slot#1', 'b')], NOW_S, new Set(), 1)).toEqual({
      key: 'slot#0',
      previous: undefined,
    });
  });

  it('fleetFull: queued, naming the limit and the order', () => {
    expect(fleetFull(keys)).toEqual({
      decision: 'queued',
      reason:
        'all 3 slots of remediation.maxConcurrent are held; the re-check starts it, oldest transition first',
    });
  });

  it.each([
    ['no execution yet (left to its lease)', held('slot#0', 'a'), { status: 'Success' }, false],
    ['execution succeeded', held('slot#0', 'a', 'e'), { status: 'Success' }, true],
    ['execution failed', held('slot#0', 'a', 'e'), { status: 'Failed' }, true],
    ['execution timed out', held('slot#0', 'a', 'e'), { status: 'TimedOut' }, true],
    ['execution still runs', held('slot#0', 'a', 'e'), { status: 'InProgress' }, false],
    ['execution waits', held('slot#0', 'a', 'e'), { status: 'Waiting' }, false],
    ['execution unknown to SSM', held('slot#0', 'a', 'e'), 'not-found', true],
    ['no status returned', held('slot#0', 'a', 'e'), {}, false],
    ['not read', held('slot#0', 'a', 'e'), undefined, false],
  ] as const)('slotRelease: %s', (_label, record, execution, expected) => {
    expect(slotRelease(record, execution)).toBe(expected);
  });

  it('recheckOrder: oldest transition first, then by alarm name; the input is not changed', () => {
    const alarms = [
      { alarmName: 'StemeDB-db-3-disk-critical', transition: '2024-05-01T12:02:00Z' },
      { alarmName: 'StemeDB-db-2-disk-critical', transition: '2024-05-01T12:00:00Z' },
      { alarmName: 'StemeDB-db-1-disk-critical', transition: '2024-05-01T12:00:00Z' },
      { alarmName: 'StemeDB-db-0-disk-warning', transition: '2024-05-01T12:01:00Z' },
    ];
    const before = structuredClone(alarms);
    expect(recheckOrder(alarms).map((a) => a.alarmName)).toEqual([
      'StemeDB-db-1-disk-critical',
      'StemeDB-db-2-disk-critical',
      'StemeDB-db-0-disk-warning',
      'StemeDB-db-3-disk-critical',
    ]);
    expect(alarms).toEqual(before);
  });
});
