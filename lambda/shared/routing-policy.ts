/**
 * The alarm router's policy: every decision it takes, as pure functions over plain data (no AWS
 * SDK, no clock, no I/O), table-tested in test/routing-policy.test.ts. The handler
 * (lambda/alarm-router.ts) reads the AWS state a decision needs, asks the policy, and acts on the
 * answer; the order of its reads is the order of the questions below.
 *
 * A {@link Verdict} ends the handling of one alarm or alert: it is logged and counted as the
 * router's outcome (with the alarm, node, kind and transition the handler adds). Anything else a
 * function returns tells the handler what to do next.
 *
 * The decisions, in the order the handler asks them:
 * - whose event: {@link foreignEvent}, {@link foreignNotification} (another account, region or topic);
 * - which transition: {@link ignoredTransition} (only a transition into ALARM), {@link staleAlarm}
 *   (the alarm re-read is no longer in that transition), and for Prometheus alerts
 *   {@link alertDecision} (firing, fresh, a kind and a node, a route);
 * - which chain: {@link routeFor} (the routing table; [] = notify only);
 * - once per transition: {@link firstStart} (a tagged execution of the transition exists);
 * - one remediation per node: {@link busyNode};
 * - the kill switch: {@link killSwitchMode}, then {@link startUnderMode} and {@link observedVerdict}
 *   for a start, {@link escalationUnderMode} for a notification, {@link markedFor} for "once";
 * - starting: {@link startFailure} (which StartAutomationExecution errors skip to the next
 *   document), {@link startVerdict};
 * - the re-check of an alarm that stays in ALARM: {@link recheckStep} (wait for the running
 *   remediation, wait for the metrics to settle, start the next document, or escalate);
 * - escalate once: {@link escalateOnce};
 * - fleet scale: {@link lockVerdict} (the node's lock record is held: busy), {@link freeSlot} (a
 *   slot of the fleet-wide limit, or {@link fleetFull}: queued), {@link slotRelease} (the
 *   re-check frees the slots of ended remediations), {@link recheckOrder} (oldest transition
 *   first: the alarms in ALARM are the queue).
 */
import type { AlertKind } from '../../contracts/alarms';
import { NODE_NAME_PATTERN } from '../../contracts/deployment';
import { AUTOMATION_MODES, type AutomationMode } from '../../contracts/routing';
import { shown } from './payload';

// ---------------------------------------------------------------------------------------------
// Vocabulary

export type Decision =
  | 'malformed-event'
  | 'foreign-event'
  | 'stale-event'
  | 'recheck-failed'
  | 'ignored-state'
  | 'no-route'
  | 'unknown-node'
  | 'node-busy'
  | 'already-started'
  | 'started'
  | 'start-failed'
  | 'waiting'
  | 'escalated-to-human'
  | 'already-escalated'
  | 'observed'
  | 'automation-off'
  | 'queued';

/** A decision that ends the handling of one alarm or alert, and why. */
export interface Verdict {
  readonly decision: Decision;
  readonly reason: string;
  readonly document?: string;
  readonly executionId?: string;
}

/**
 * What the policy reads of one Automation execution: the fields of SSM's
 * AutomationExecutionMetadata it needs (so the SDK's records are passed as they are).
 */
export interface ExecutionRecord {
  readonly DocumentName?: string;
  readonly AutomationExecutionId?: string;
  readonly AutomationExecutionStatus?: string;
  readonly ExecutionEndTime?: Date;
}

/** A tag as CloudWatch lists it. */
export interface TagRecord {
  readonly Key?: string;
  readonly Value?: string;
}

/** The kill switch as read for this invocation, and why (for the log). */
export interface ModeState {
  readonly mode: AutomationMode;
  readonly reason: string;
}

/** Statuses of an execution that is still running (or about to); at most 10 (a filter's limit). */
export const ACTIVE_STATUSES = [
  'Pending',
  'InProgress',
  'Waiting',
  'Cancelling',
  'PendingApproval',
  'Approved',
  'Scheduled',
  'RunbookInProgress',
  'PendingChangeCalendarOverride',
  'ChangeCalendarOverrideApproved',
] as const;
const ACTIVE: ReadonlySet<string> = new Set(ACTIVE_STATUSES);

/** Whether an execution is still running (or about to). */
export function isActive(execution: ExecutionRecord): boolean {
  return ACTIVE.has(execution.AutomationExecutionStatus ?? '');
}

/** How old an Alertmanager notification may be when it reaches the router (as ROUTER_MAX_EVENT_AGE). */
export const MAX_NOTIFICATION_AGE_SECONDS = 300;

// ---------------------------------------------------------------------------------------------
// Whose event, which transition

/** `foreign-event` when the event is not from the stack's account and region. */
export function foreignEvent(
  event: { readonly account: string; readonly region: string },
  stack: { readonly accountId: string; readonly region: string },
): Verdict | undefined {
  if (event.account !== stack.accountId) {
    return {
      decision: 'foreign-event',
      reason: `the event is from account ${event.account}; this stack is in ${stack.accountId}`,
    };
  }
  if (event.region !== stack.region) {
    return {
      decision: 'foreign-event',
      reason: `the event is from region ${event.region}; this stack is in ${stack.region}`,
    };
  }
  return undefined;
}

/** `foreign-event` when an SNS notification is not from the stack's Prometheus topic (or none is configured). */
export function foreignNotification(
  topicArn: string,
  prometheusTopicArn: string | undefined,
): Verdict | undefined {
  if (prometheusTopicArn !== undefined && topicArn === prometheusTopicArn) return undefined;
  return {
    decision: 'foreign-event',
    reason: `the notification came from topic ${topicArn}; this stack's Prometheus alerts come from ${prometheusTopicArn ?? '(none configured)'}`,
  };
}

type AlarmStateValue = 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';

/** `ignored-state` unless the event is a transition INTO ALARM. */
export function ignoredTransition(
  state: AlarmStateValue,
  previousState: AlarmStateValue | undefined,
): Verdict | undefined {
  if (state === 'ALARM' && previousState !== 'ALARM') return undefined;
  return {
    decision: 'ignored-state',
    reason: `${previousState ?? '?'} → ${state} starts nothing; only a transition into ALARM does`,
  };
}

/** The alarm as DescribeAlarms gives it now, with its current transition normalized to the second. */
export interface CurrentAlarm {
  readonly alarmArn: string | undefined;
  readonly stateValue: string | undefined;
  /** StateTransitionedTimestamp, else StateUpdatedTimestamp, normalized; undefined when neither is given. */
  readonly transition: string | undefined;
}

/**
 * `stale-event` when the alarm (re-read by name, `undefined` when it no longer exists) no longer
 * describes the event: another alarm of that name, out of ALARM, or in ALARM since another
 * transition (which its own event and the re-check handle).
 */
export function staleAlarm(
  event: { readonly alarmName: string; readonly alarmArn: string; readonly transition: string },
  current: CurrentAlarm | undefined,
): Verdict | undefined {
  const stale = (reason: string): Verdict => ({ decision: 'stale-event', reason });
  if (current === undefined) return stale(`alarm ${event.alarmName} no longer exists`);
  if (current.alarmArn !== event.alarmArn) {
    return stale(
      `alarm ${event.alarmName} is ${shown(current.alarmArn)} now, not the event's ${event.alarmArn}`,
    );
  }
  if (current.stateValue !== 'ALARM') {
    return stale(
      `the alarm is ${shown(current.stateValue)} now: the event's ALARM since ${event.transition} is over`,
    );
  }
  if (current.transition === undefined) {
    return stale("DescribeAlarms gives no state timestamp to compare with the event's");
  }
  if (current.transition !== event.transition) {
    return stale(
      `the alarm is in ALARM since ${current.transition}, not since the event's ${event.transition}: a later transition, which its own event and the re-check handle`,
    );
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Which chain

/** The chain of documents routed for a kind, or `no-route` when the kind starts nothing. */
export function routeFor(
  routes: Readonly<Record<AlertKind, readonly string[]>>,
  kind: AlertKind,
  what: 'alarms' | 'alerts',
): { readonly chain: readonly string[] } | { readonly verdict: Verdict } {
  const chain = routes[kind];
  if (chain.length === 0) {
    return { verdict: { decision: 'no-route', reason: `no automation is routed for ${kind} ${what}` } };
  }
  return { chain };
}

/** One alert of an Alertmanager notification, as the policy reads it. */
export interface AlertFacts {
  readonly status: 'firing' | 'resolved';
  readonly kind: AlertKind | undefined;
  readonly kindLabel: string | undefined;
  readonly node: string | undefined;
}

/**
 * One Prometheus alert, before anything is read: firing only, from a notification no older than
 * {@link MAX_NOTIFICATION_AGE_SECONDS} (there is no alert state to re-read), with a kind a route
 * may name, a node name in `stemedb_node`, and a route for the kind. Otherwise the verdict.
 */
export function alertDecision(
  alert: AlertFacts,
  notification: { readonly publishedAt: string; readonly now: Date },
  routes: Readonly<Record<AlertKind, readonly string[]>>,
):
  | { readonly chain: readonly string[]; readonly node: string; readonly kind: AlertKind }
  | { readonly verdict: Verdict } {
  if (alert.status !== 'firing') {
    return {
      verdict: { decision: 'ignored-state', reason: 'a resolved alert starts nothing; only firing does' },
    };
  }
  const age = (notification.now.getTime() - Date.parse(notification.publishedAt)) / 1000;
  if (age > MAX_NOTIFICATION_AGE_SECONDS) {
    return {
      verdict: {
        decision: 'stale-event',
        reason: `the notification was published at ${notification.publishedAt}, ${Math.round(age)} s ago (more than ${MAX_NOTIFICATION_AGE_SECONDS} s)`,
      },
    };
  }
  if (alert.kind === undefined) {
    return {
      verdict: {
        decision: 'no-route',
        reason: `label stemedb_alarm_kind is ${shown(alert.kindLabel)}; no automation is routed for it`,
      },
    };
  }
  if (alert.node === undefined || !NODE_NAME_PATTERN.test(alert.node)) {
    return {
      verdict: {
        decision: 'unknown-node',
        reason: `label stemedb_node is ${shown(alert.node)}; expected a node name (the scrape configuration sets it)`,
      },
    };
  }
  const route = routeFor(routes, alert.kind, 'alerts');
  if ('verdict' in route) return route;
  return { chain: route.chain, node: alert.node, kind: alert.kind };
}

// ---------------------------------------------------------------------------------------------
// Once per transition, one remediation per node

/** `already-started` when the transition has a router-started execution (the first one named). */
export function firstStart(transitionExecutions: readonly ExecutionRecord[]): Verdict | undefined {
  const first = transitionExecutions[0];
  if (first === undefined) return undefined;
  return {
    decision: 'already-started',
    reason: 'this transition already has a remediation; the re-check escalates if needed',
    document: first.DocumentName,
    executionId: first.AutomationExecutionId,
  };
}

/** What the router knows about a node's remediations, in the order it learns it. */
export interface NodeActivity {
  /** The alarm whose re-check failed on this node earlier in this run (its start may have happened). */
  readonly failedInThisRun?: string;
  /** This run already started, observed or found running a remediation for the node. */
  readonly startedInThisRun?: boolean;
  /** The running execution of this stack's documents on the node's instance (when read). */
  readonly running?: ExecutionRecord;
  /** The node's instance (for the reason). */
  readonly instanceId?: string;
}

/**
 * `node-busy` when the node has a remediation: a re-check failed on it in this run, this run
 * started one, or one is running on its instance (started by the router, a parent document or a
 * human). The handler asks before it reads the running executions and again after.
 */
export function busyNode(activity: NodeActivity): Verdict | undefined {
  if (activity.failedInThisRun !== undefined) {
    return {
      decision: 'node-busy',
      reason: `the re-check of ${activity.failedInThisRun} failed in this run (its start may have happened): nothing more starts on this node until the next re-check`,
    };
  }
  if (activity.startedInThisRun === true) {
    return { decision: 'node-busy', reason: 'a remediation for this node was started in this run' };
  }
  const running = activity.running;
  if (running === undefined) return undefined;
  return {
    decision: 'node-busy',
    reason: `${running.DocumentName} ${running.AutomationExecutionId} (${running.AutomationExecutionStatus}) is running on ${activity.instanceId}`,
    document: running.DocumentName,
    executionId: running.AutomationExecutionId,
  };
}

// ---------------------------------------------------------------------------------------------
// The kill switch

/**
 * The kill switch from its parameter: `act`, `observe` or `off` (surrounding blanks ignored). A
 * missing parameter, an unreadable one (denied, throttled past the retries) or any other value is
 * `observe`: the safe side starts nothing and still notifies.
 */
export function killSwitchMode(
  parameterName: string,
  read: { readonly value: string | undefined } | { readonly errorCode: string },
): ModeState {
  if ('errorCode' in read) {
    return {
      mode: 'observe',
      reason: `${parameterName} could not be read (${read.errorCode}): observe (fail safe)`,
    };
  }
  const value = read.value?.trim();
  if ((AUTOMATION_MODES as readonly (string | undefined)[]).includes(value)) {
    return { mode: value as AutomationMode, reason: `${parameterName} is ${value}` };
  }
  return {
    mode: 'observe',
    reason: `${parameterName} is ${shown(value)}, not act/observe/off: observe (fail safe)`,
  };
}

/** Which step of which chain a start would be. */
export interface ChainStep {
  readonly chain: readonly string[];
  /** Index in the chain of the document to start. */
  readonly from: number;
  readonly kind: AlertKind;
}

/**
 * A start under the kill switch: `act` starts; `off` ends with `automation-off` (starts and
 * notifies nothing); `observe` starts nothing, and the handler notifies once per transition
 * ({@link markedFor}) and ends with {@link observedVerdict}.
 */
export function startUnderMode(
  mode: ModeState,
  step: ChainStep,
):
  | { readonly action: 'start' }
  | { readonly action: 'observe'; readonly document: string }
  | { readonly verdict: Verdict } {
  if (mode.mode === 'off') {
    return {
      verdict: {
        decision: 'automation-off',
        reason: `${mode.reason}: would have started step ${step.from + 1} of ${step.chain.length} of the ${step.kind} chain; starts and notifies nothing`,
        document: step.chain[step.from],
      },
    };
  }
  if (mode.mode === 'observe') return { action: 'observe', document: step.chain[step.from] as string };
  return { action: 'start' };
}

/** `observed`: what observe mode would have started, and whether it notified (`notified`). */
export function observedVerdict(mode: ModeState, step: ChainStep, notified: string): Verdict {
  return {
    decision: 'observed',
    reason: `would have started step ${step.from + 1} of ${step.chain.length} of the ${step.kind} chain; ${mode.reason}; ${notified}`,
    document: step.chain[step.from],
  };
}

/** A notification under the kill switch: `off` ends with `automation-off`; the other modes notify. */
export function escalationUnderMode(mode: ModeState): Verdict | undefined {
  if (mode.mode !== 'off') return undefined;
  return { decision: 'automation-off', reason: `${mode.reason}: the chain is exhausted; notifies nothing` };
}

/**
 * Whether a "once per transition" marker is set: the alarm's tag `key` (e.g. `stemedb:escalated`,
 * `stemedb:observed`) holds this transition. A marker of another transition does not count.
 */
export function markedFor(tags: readonly TagRecord[], key: string, transition: string): boolean {
  return tags.some((t) => t.Key === key && t.Value === transition);
}

/** `already-escalated` when a human was told about this transition (the alarm's escalated tag). */
export function escalateOnce(
  tags: readonly TagRecord[],
  escalatedTagKey: string,
  transition: string,
): Verdict | undefined {
  if (!markedFor(tags, escalatedTagKey, transition)) return undefined;
  return { decision: 'already-escalated', reason: 'a human was told about this transition already' };
}

// ---------------------------------------------------------------------------------------------
// Starting

/** StartAutomationExecution errors whose document is skipped for the next one of the chain. */
const SKIPPABLE_START_ERRORS: ReadonlySet<string> = new Set([
  'AutomationDefinitionNotFoundException',
  'AutomationDefinitionVersionNotFoundException',
  'InvalidAutomationExecutionParametersException',
  'InvalidDocument',
]);

/**
 * What a failed StartAutomationExecution means: the ClientToken was used (`already-started`), the
 * account's execution limit (`limit`: try again at the next re-check), a document that does not
 * exist or rejects the parameters (`skip` to the next one of the chain), or a fault (`throw`).
 */
export function startFailure(errorCode: string): 'already-started' | 'limit' | 'skip' | 'throw' {
  if (errorCode === 'IdempotentParameterMismatch') return 'already-started';
  if (errorCode === 'AutomationExecutionLimitExceededException') return 'limit';
  return SKIPPABLE_START_ERRORS.has(errorCode) ? 'skip' : 'throw';
}

/** How starting the chain from a step went (`failures`, the skipped documents, are logged before). */
export type StartResult =
  | { readonly kind: 'started'; readonly document: string; readonly executionId: string }
  | { readonly kind: 'already-started'; readonly document: string }
  | { readonly kind: 'none-startable' }
  | { readonly kind: 'limit'; readonly document: string; readonly reason: string };

/**
 * The verdict of a start: `started` (step n of the chain), `already-started` (AWS refused the
 * ClientToken's second use), `start-failed` (the execution limit); none startable exhausts the
 * chain (`exhausted`: the re-check escalates).
 */
export function startVerdict(
  result: StartResult,
  chain: readonly string[],
  kind: AlertKind,
): { readonly verdict: Verdict } | { readonly exhausted: true } {
  switch (result.kind) {
    case 'started':
      return {
        verdict: {
          decision: 'started',
          reason: `started step ${chain.indexOf(result.document) + 1} of ${chain.length} of the ${kind} chain`,
          document: result.document,
          executionId: result.executionId,
        },
      };
    case 'already-started':
      return {
        verdict: {
          decision: 'already-started',
          reason: 'the ClientToken of this transition was used already (IdempotentParameterMismatch)',
          document: result.document,
        },
      };
    case 'limit':
      return { verdict: { decision: 'start-failed', reason: result.reason, document: result.document } };
    case 'none-startable':
      return { exhausted: true };
  }
}

// ---------------------------------------------------------------------------------------------
// The re-check

/** Index in `chain` of the last document the transition's executions ran (children included), or -1. */
export function lastChainIndex(chain: readonly string[], executions: readonly ExecutionRecord[]): number {
  return Math.max(-1, ...executions.map((e) => chain.indexOf(e.DocumentName ?? '')));
}

/**
 * One alarm that stays in ALARM, from the executions of its transition (router-started, with
 * their children): wait while one runs (the node is busy: `nodeBusy`), wait `settleSeconds` after
 * the last one ended for the metrics to show its effect, then start the next document of the
 * chain after the last one that ran (a child counts: ExpandVolume's fallback ArchiveWal is the
 * next step), or escalate when the chain is exhausted. No execution: the first document (the
 * event was missed).
 */
export function recheckStep(input: {
  readonly chain: readonly string[];
  readonly executions: readonly ExecutionRecord[];
  readonly settleSeconds: number;
  readonly now: Date;
}):
  | { readonly verdict: Verdict; readonly nodeBusy: boolean }
  | { readonly action: 'start'; readonly from: number }
  | { readonly action: 'escalate' } {
  const { chain, executions } = input;
  const running = executions.find(isActive);
  if (running !== undefined) {
    return {
      verdict: {
        decision: 'waiting',
        reason: `${running.DocumentName} is ${running.AutomationExecutionStatus}`,
        document: running.DocumentName,
        executionId: running.AutomationExecutionId,
      },
      nodeBusy: true,
    };
  }
  const lastEnd = Math.max(0, ...executions.map((e) => e.ExecutionEndTime?.getTime() ?? 0));
  const settledAt = lastEnd + input.settleSeconds * 1000;
  if (executions.length > 0 && input.now.getTime() < settledAt) {
    return {
      verdict: {
        decision: 'waiting',
        reason: `the last remediation ended at ${new Date(lastEnd).toISOString()}; escalation waits until ${new Date(settledAt).toISOString()}`,
      },
      nodeBusy: false,
    };
  }
  const next = lastChainIndex(chain, executions) + 1;
  if (next < chain.length) return { action: 'start', from: next };
  return { action: 'escalate' };
}

// ---------------------------------------------------------------------------------------------
// Fleet scale: per-node locks and the fleet-wide limit (records of the router's lock table)

/**
 * One record of the lock table as the handler read it: `node#<node>` (the node's lock) or
 * `slot#<i>` (one of `remediation.maxConcurrent` slots). `holder` is the token of the start that
 * took it; `executionId` is set once the execution started; `expiresAt` (epoch seconds) is the
 * lease: a record past it is free (a router that died between taking and starting).
 */
export interface LockRecord {
  readonly key: string;
  readonly holder: string;
  readonly node: string;
  readonly expiresAt: number;
  readonly executionId?: string;
  /** The document the execution runs (recorded with the execution). */
  readonly documentName?: string;
}

/** Seconds a lock or slot is held before the execution is started (taking → starting). */
export const START_LEASE_SECONDS = 600;
/** Seconds a lock or slot is held by a started execution, unless the re-check frees it earlier. */
export const RUN_LEASE_SECONDS = 6 * 3600;

/** The key of the node's lock record. */
export function nodeLockKey(node: string): string {
  return `node#${node}`;
}

/** The keys of the fleet-wide slots, `slot#0` … `slot#<max-1>`. */
export function slotKeys(maxConcurrent: number): string[] {
  if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1 || maxConcurrent > 100) {
    throw new Error(`maxConcurrent is ${shown(maxConcurrent)}; expected a whole number from 1 to 100`);
  }
  return Array.from({ length: maxConcurrent }, (_, i) => `slot#${i}`);
}

/** Whether a record holds (its lease is not over at `nowSeconds`). */
export function holds(record: LockRecord | undefined, nowSeconds: number): record is LockRecord {
  return record !== undefined && record.expiresAt > nowSeconds;
}

/**
 * `node-busy` when the node's lock is held by another start (a concurrent invocation, or a
 * running remediation the re-check has not freed yet).
 */
export function lockVerdict(record: LockRecord | undefined, nowSeconds: number): Verdict | undefined {
  if (!holds(record, nowSeconds)) return undefined;
  return {
    decision: 'node-busy',
    reason:
      record.executionId === undefined
        ? `the node's lock is held by another start until ${new Date(record.expiresAt * 1000).toISOString()}`
        : `the node's lock is held by ${record.executionId}${record.documentName === undefined ? '' : ` (${record.documentName})`}`,
    executionId: record.executionId,
  };
}

/**
 * The first free slot (absent or past its lease) in slot order from `startAt` (wrapping round:
 * racing invocations that start at different slots seldom collide), skipping `tried` (slots a
 * conditional write lost to another invocation in this attempt); undefined when all are held.
 */
export function freeSlot(
  keys: readonly string[],
  records: readonly LockRecord[],
  nowSeconds: number,
  tried: ReadonlySet<string> = new Set(),
  startAt = 0,
): { readonly key: string; readonly previous?: LockRecord } | undefined {
  const byKey = new Map(records.map((r) => [r.key, r]));
  const first = keys.length === 0 ? 0 : ((startAt % keys.length) + keys.length) % keys.length;
  for (const key of [...keys.slice(first), ...keys.slice(0, first)]) {
    if (tried.has(key)) continue;
    const record = byKey.get(key);
    if (!holds(record, nowSeconds)) return { key, previous: record };
  }
  return undefined;
}

/** `queued`: every slot of the fleet-wide limit is held; the re-check starts it in transition order. */
export function fleetFull(keys: readonly string[]): Verdict {
  return {
    decision: 'queued',
    reason: `all ${keys.length} slots of remediation.maxConcurrent are held; the re-check starts it, oldest transition first`,
  };
}

/**
 * Whether the re-check frees a held slot: its execution ended (any status that is not active),
 * or AWS no longer knows it (`not-found`). A slot without an execution yet is left to its lease.
 */
export function slotRelease(
  record: LockRecord,
  execution: { readonly status?: string } | 'not-found' | undefined,
): boolean {
  if (record.executionId === undefined || execution === undefined) return false;
  if (execution === 'not-found') return true;
  // A status SSM did not say is not "ended".
  if (execution.status === undefined) return false;
  return !(ACTIVE_STATUSES as readonly string[]).includes(execution.status);
}

/**
 * The order the re-check handles alarms in ALARM: oldest transition first, then by name. The
 * alarms themselves are the queue: one that waits for a slot stays in ALARM, and is listed again.
 */
export function recheckOrder<T extends { readonly alarmName: string; readonly transition: string }>(
  alarms: readonly T[],
): T[] {
  return [...alarms].sort(
    (a, b) =>
      Date.parse(a.transition) - Date.parse(b.transition) ||
      (a.alarmName < b.alarmName ? -1 : a.alarmName > b.alarmName ? 1 : 0),
  );
}
