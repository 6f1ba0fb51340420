/**
 * alarm-router: turns disk alarm state changes into SSM Automation executions (issue 3 item 5).
 *
 * Every decision below is a pure function of ./shared/routing-policy.ts (table-tested in
 * test/routing-policy.test.ts); this file reads the AWS state each one needs, asks the policy and
 * acts on the answer (starts, notifies, tags, logs and counts).
 *
 * Events (see ./shared/alarm-event.ts):
 * - "CloudWatch Alarm State Change": a transition INTO `ALARM` of `<Prefix>-<node>-disk-<kind>`
 *   starts the first document of the kind's chain for the node. OK and INSUFFICIENT_DATA never
 *   start anything; `no-data` alarms never route (missing data never starts automation).
 * - "Scheduled Event" (every `recheckMinutes`): alarm actions fire on state change only, so the
 *   re-check lists this stack's alarms still in ALARM and, for each, starts the NEXT document of
 *   the chain once the previous remediation of the same transition has finished (and
 *   SETTLE_SECONDS have passed for the metrics to show its effect); when the chain is exhausted
 *   it publishes once to TOPIC_ARN that a human is needed.
 * - SNS deliveries (`Records[].Sns`) of PROMETHEUS_TOPIC_ARN: Alertmanager notifications (JSON by
 *   the stack's message template, ./shared/alertmanager-event.ts). Each alert of the group is
 *   handled on its own under the same rules: firing only (resolved starts nothing), the node from
 *   the `stemedb_node` label, the route from `stemedb_alarm_kind` (`fills-soon` included), the
 *   transition from `startsAt`; a notification of another topic starts and reads nothing
 *   (`foreign-event`), one older than MAX_NOTIFICATION_AGE_SECONDS starts nothing (`stale-event`).
 *   Prometheus alerts have no re-check: Alertmanager repeats a firing group at its repeat_interval,
 *   which the tags read as already started.
 *
 * Rules:
 * - Only this stack's events: an event whose `account` or `region` is not the stack's (ACCOUNT_ID,
 *   REGION) starts and reads nothing (`foreign-event`); the parser already refuses an alarm event
 *   whose `resources` is not exactly the alarm's ARN in that account and region.
 * - Only the alarm as it is now: before an alarm event can start anything, the alarm is re-read
 *   (DescribeAlarms by name). It must still exist, be in ALARM, and its current transition
 *   (StateTransitionedTimestamp, else StateUpdatedTimestamp, to the second as the event's) must be
 *   the event's; otherwise the event is late or replayed and starts nothing (`stale-event`). A
 *   newer transition has its own event, and the re-check covers it in any case.
 * - At most one remediation per node, at most MAX_CONCURRENT in the fleet, invocations running
 *   concurrently (no reserved concurrency): a start takes the node's lock record and one of the
 *   fleet-wide slots in the lock table (LOCK_TABLE, ./shared/remediation-locks.ts) by conditional
 *   writes, so of two racing invocations one wins (the other: `node-busy`); when every slot is
 *   held the alarm is `queued`: it stays in ALARM and the re-check, which first frees the slots of
 *   executions that ended, starts the alarms in ALARM oldest transition first. A lock whose
 *   execution ended is also freed by the node's next event. Any failure to start frees both.
 *   Before starting, the running executions of this stack's documents (DocumentNamePrefix
 *   `<Prefix>-`, active statuses; the fleet limit bounds them) are read too, and any whose
 *   `InstanceId` parameter is the node's instance (a child, or one started by hand from the
 *   console) means "busy: start nothing".
 * - A repeated event for the same transition starts nothing new: executions are tagged
 *   `stemedb:node`, `stemedb:alarm`, `stemedb:transition` (the state timestamp to the second),
 *   executions of that transition are looked up before starting, and the ClientToken
 *   ({@link startToken}) is a UUID derived from sha256 of node, 5-minute window and document while
 *   the transition is recent, else of alarm ARN, transition and document, so even a race makes AWS
 *   refuse the second start (IdempotentParameterMismatch is read as "already started"). The
 *   node's window is what makes a disk that a CloudWatch alarm AND a Prometheus alert report start
 *   one remediation, even before the first execution is listed.
 * - The kill switch (MODE_PARAMETER, read once per invocation, only when something would start
 *   or notify): `act` starts; `observe` starts nothing, logs `observed` with the document it would
 *   have started and notifies once per transition (alarm tag `stemedb:observed`); `off` starts and
 *   notifies nothing (`automation-off`). Missing, unreadable or invalid = observe.
 * - DescribeAutomationExecutions' `TagKey` filter is documented only as a tag-key filter (how it
 *   treats values is not), so every start is also tagged `stemedb:node:<node>` (the node in the
 *   KEY) and a transition's executions are listed with TagKey, DocumentNamePrefix and
 *   StartTimeAfter (`YYYY-MM-DDTHH:MM:SSZ`, as in the SSM user guide): only the node's own, whatever
 *   the fleet's size; each candidate's tags are read with ListTagsForResource (ResourceType
 *   `Automation`), and children of the matched ones listed by ParentExecutionId.
 * - "Published once" for an exhausted chain is remembered on the alarm itself: a tag
 *   `stemedb:escalated=<transition>` (CloudWatch TagResource), set after the publish succeeds.
 * - A document that does not exist or rejects the parameters is skipped (logged as
 *   `start-failed`) and the next one of the chain is tried.
 * - Each alarm's re-check is isolated: an AWS error on one (e.g. AccessDenied reading its node's
 *   registry entry) is logged and counted as `recheck-failed`, nothing more is started on that
 *   node in this run (its start may have happened before the error), and the other alarms go on.
 *   The invocation then fails (RouterPartialFailure, after every outcome is logged and counted)
 *   so the function's Errors metric and alarm see it. Lambda's retry of it re-runs the re-check,
 *   which cannot start anything twice: the transition's tagged executions, the busy-node check
 *   and the ClientToken of each start are all read again.
 * - Every decision is logged as one structured JSON line and counted in the metric
 *   `RouterDecision` (dimension `decision`), flushed by the handler.
 *
 * StartAutomationExecution passes exactly `InstanceId`, `AutomationAssumeRole` and `Reason` (every
 * document in a chain must declare them; `Reason` matches `^[A-Za-z0-9 ._:,/()=+@#-]{0,256}$`).
 *
 * Environment:
 *   PREFIX                 name prefix of alarms and documents, e.g. StemeDB (required)
 *   ROUTES                 JSON {kind: [document, ...]} (required): the table the stack computes
 *                          with routeTable (contracts/routing.ts); the router has no other
 *   ACCOUNT_ID, REGION     the stack's account and region; events from elsewhere start nothing
 *   AUTOMATION_ROLE_ARN    role passed as AutomationAssumeRole (required)
 *   TOPIC_ARN              SNS topic told when a chain is exhausted (required)
 *   NODE_PARAMETER_PREFIX  node registry prefix (default /<PREFIX>/nodes/)
 *   PROMETHEUS_TOPIC_ARN   the topic Alertmanager publishes to (default none: SNS events are foreign)
 *   MODE_PARAMETER         the kill switch parameter (default /<PREFIX>/automation-mode)
 *   SETTLE_SECONDS         wait after a remediation ends before escalating (default 300)
 *   LOCK_TABLE             the lock table's name (required)
 *   MAX_CONCURRENT         remediations the router runs at once, fleet-wide (1 to 100, default 10)
 */

import { createHash, randomUUID } from 'node:crypto';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import {
  CloudWatchClient,
  DescribeAlarmsCommand,
  ListTagsForResourceCommand as ListAlarmTagsCommand,
  TagResourceCommand,
} from '@aws-sdk/client-cloudwatch';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import {
  type AutomationExecutionFilter,
  type AutomationExecutionMetadata,
  DescribeAutomationExecutionsCommand,
  GetAutomationExecutionCommand,
  GetParameterCommand,
  ListTagsForResourceCommand,
  SSMClient,
  StartAutomationExecutionCommand,
} from '@aws-sdk/client-ssm';
import type { AlertKind } from '../contracts/alarms';
import { ACCOUNT_PATTERN, REGION_PATTERN } from '../contracts/aws-ids';
import { PREFIX_PATTERN } from '../contracts/deployment';
import {
  NODE_REGISTRY_PREFIX_PATTERN,
  type NodeRegistryEntry,
  nodeRegistryParameterPrefix,
} from '../contracts/node-registry';
import {
  type AlarmIdentity,
  type AlarmStateChange,
  normalizeTransition,
  parseAlarmName,
  parseNodeRegistryEntry,
  parseRouterEvent,
  parseRoutes,
  type Routes,
  shown,
} from './shared/alarm-event';
import {
  type AlertmanagerNotification,
  isSnsEvent,
  type PrometheusAlert,
  parseSnsRecord,
} from './shared/alertmanager-event';
import { allPages } from './shared/pages';
import { logger, metrics } from './shared/powertools';
import { confirmLock, type LockTable, readLocks, releaseLock, takeLock } from './shared/remediation-locks';
import { errorCode, type RetryOptions, unlessAwsError, withThrottlingRetry } from './shared/retry';
import type { Decision, LockRecord, ModeState, StartResult, Verdict } from './shared/routing-policy';
import * as policy from './shared/routing-policy';

// ---------------------------------------------------------------------------------------------
// Configuration

export interface RouterConfig {
  readonly prefix: string;
  readonly routes: Routes;
  readonly automationRoleArn: string;
  readonly topicArn: string;
  readonly nodeParameterPrefix: string;
  readonly settleSeconds: number;
  /** The stack's account and region: the only ones whose events are acted on. */
  readonly accountId: string;
  readonly region: string;
  /** The SNS topic Alertmanager publishes to; SNS deliveries from any other topic start nothing. */
  readonly prometheusTopicArn: string | undefined;
  /** The kill switch: SSM parameter holding `act`, `observe` or `off`, read at each invocation. */
  readonly modeParameterName: string;
  /** The lock table (DynamoDB): per-node locks and the fleet-wide slots. */
  readonly lockTableName: string;
  /** Remediations started by the router that may run at once, fleet-wide (1 to 100). */
  readonly maxConcurrent: number;
}

const ROLE_ARN_PATTERN = /^arn:aws[a-z-]{0,20}:iam::\d{12}:role\/[A-Za-z0-9+=,.@_/-]{1,512}$/;
const TOPIC_ARN_PATTERN = /^arn:aws[a-z-]{0,20}:sns:[a-z0-9-]{1,30}:\d{12}:[A-Za-z0-9_-]{1,256}$/;

/** Reads and validates the router's environment; throws an Error naming the bad variable. */
export function loadRouterConfig(env: NodeJS.ProcessEnv): RouterConfig {
  const prefix = env.PREFIX ?? '';
  if (!PREFIX_PATTERN.test(prefix)) throw new Error(`PREFIX is ${shown(env.PREFIX)}; expected e.g. StemeDB`);
  if (env.ROUTES === undefined || env.ROUTES === '') {
    throw new Error(`ROUTES is ${shown(env.ROUTES)}; expected the JSON routing table the stack computes`);
  }
  const parsedRoutes = parseRoutes(env.ROUTES, prefix);
  if (!parsedRoutes.ok) throw new Error(parsedRoutes.reason);
  const routes: Routes = parsedRoutes.value;
  const accountId = env.ACCOUNT_ID ?? '';
  if (!ACCOUNT_PATTERN.test(accountId)) {
    throw new Error(`ACCOUNT_ID is ${shown(env.ACCOUNT_ID)}; expected the stack's 12-digit account ID`);
  }
  const region = env.REGION ?? '';
  if (!REGION_PATTERN.test(region)) {
    throw new Error(`REGION is ${shown(env.REGION)}; expected the stack's region, e.g. eu-west-1`);
  }
  const automationRoleArn = env.AUTOMATION_ROLE_ARN ?? '';
  if (!ROLE_ARN_PATTERN.test(automationRoleArn)) {
    throw new Error(`AUTOMATION_ROLE_ARN is ${shown(env.AUTOMATION_ROLE_ARN)}; expected an IAM role ARN`);
  }
  const topicArn = env.TOPIC_ARN ?? '';
  if (!TOPIC_ARN_PATTERN.test(topicArn)) {
    throw new Error(`TOPIC_ARN is ${shown(env.TOPIC_ARN)}; expected an SNS topic ARN`);
  }
  const prometheusTopicArn = env.PROMETHEUS_TOPIC_ARN || undefined;
  if (prometheusTopicArn !== undefined && !TOPIC_ARN_PATTERN.test(prometheusTopicArn)) {
    throw new Error(
      `PROMETHEUS_TOPIC_ARN is ${shown(prometheusTopicArn)}; expected an SNS topic ARN or nothing`,
    );
  }
  const modeParameterName = env.MODE_PARAMETER || `/${prefix}/automation-mode`;
  if (!/^\/[A-Za-z0-9_.\-/]{1,1000}$/.test(modeParameterName)) {
    throw new Error(`MODE_PARAMETER is ${shown(modeParameterName)}; expected an SSM parameter name /<path>`);
  }
  const nodeParameterPrefix = env.NODE_PARAMETER_PREFIX || nodeRegistryParameterPrefix(prefix);
  if (!NODE_REGISTRY_PREFIX_PATTERN.test(nodeParameterPrefix)) {
    throw new Error(`NODE_PARAMETER_PREFIX is ${shown(nodeParameterPrefix)}; expected /<path>/`);
  }
  const lockTableName = env.LOCK_TABLE ?? '';
  if (!/^[A-Za-z0-9_.-]{3,255}$/.test(lockTableName)) {
    throw new Error(`LOCK_TABLE is ${shown(env.LOCK_TABLE)}; expected the router's DynamoDB lock table name`);
  }
  const maxText = env.MAX_CONCURRENT ?? '10';
  const maxConcurrent = /^\d{1,3}$/.test(maxText) ? Number(maxText) : Number.NaN;
  if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1 || maxConcurrent > 100) {
    throw new Error(`MAX_CONCURRENT is ${shown(env.MAX_CONCURRENT)}; expected 1 to 100`);
  }
  const settleText = env.SETTLE_SECONDS ?? '300';
  const settleSeconds = /^\d{1,5}$/.test(settleText) ? Number(settleText) : Number.NaN;
  if (!Number.isInteger(settleSeconds) || settleSeconds > 86_400) {
    throw new Error(`SETTLE_SECONDS is ${shown(env.SETTLE_SECONDS)}; expected 0 to 86400`);
  }
  return {
    prefix,
    routes,
    automationRoleArn,
    topicArn,
    nodeParameterPrefix,
    settleSeconds,
    accountId,
    region,
    prometheusTopicArn,
    modeParameterName,
    lockTableName,
    maxConcurrent,
  };
}

// ---------------------------------------------------------------------------------------------
// Outcomes (the decisions themselves: ./shared/routing-policy.ts)

/** One decision: logged as one JSON line, counted in `RouterDecision{decision}`. */
export interface RouterOutcome {
  readonly decision: Decision;
  readonly reason: string;
  readonly alarmName?: string;
  readonly node?: string;
  readonly kind?: AlertKind;
  readonly transition?: string;
  readonly document?: string;
  readonly executionId?: string;
}

/** Sends the "a human is needed" message. */
export type Notifier = (subject: string, message: string) => Promise<void>;

export interface RouterDeps {
  readonly ssm: SSMClient;
  readonly cloudwatch: CloudWatchClient;
  /** The lock table's client (per-node locks, fleet-wide slots). */
  readonly dynamodb: DynamoDBClient;
  readonly notify: Notifier;
  /** @default () => new Date() */
  readonly now?: () => Date;
  /** Throttling retry options (tests inject a no-op sleep). */
  readonly retry?: RetryOptions;
  /**
   * Prometheus alert transitions already notified in observe mode (CloudWatch alarms remember it
   * in a tag on the alarm; an alert has nothing to tag). @default one set per container
   */
  readonly observedAlerts?: Set<string>;
}

export const TAG_NODE = 'stemedb:node';
export const TAG_ALARM = 'stemedb:alarm';
export const TAG_TRANSITION = 'stemedb:transition';
export const TAG_ESCALATED = 'stemedb:escalated';
export const TAG_OBSERVED = 'stemedb:observed';

/**
 * The tag KEY naming the node (`stemedb:node:<node>`): DescribeAutomationExecutions' `TagKey`
 * filter matches keys (how it treats values is not documented), so the node is in the key, and
 * the listing of one node's executions costs the same whatever the fleet's size.
 */
export function nodeTagKey(node: string): string {
  return `${TAG_NODE}:${node}`;
}

/**
 * Width of the window that makes the two reports of one disk (a CloudWatch alarm and a Prometheus
 * alert of the same node) share a ClientToken: see {@link startToken}.
 */
export const DEDUPE_WINDOW_SECONDS = 300;

/** The `alarmName` of a Prometheus alert in outcomes and the `stemedb:alarm` tag. */
export function prometheusAlarmName(alert: Pick<PrometheusAlert, 'alertname' | 'fingerprint'>): string {
  return `prometheus:${alert.alertname}:${alert.fingerprint}`;
}

const MAX_PAGES = 20;
/** Pages of 100 alarms the re-check reads (10,000 alarms in ALARM). */
const MAX_ALARM_PAGES = 100;

/**
 * The ClientToken for starting `document` for one alarm transition: sha256 of
 * `alarmArn|transition|document`, shaped as a version-5-style UUID (AWS enforces UUID format).
 */
export function clientToken(alarmArn: string, transition: string, document: string): string {
  const h = createHash('sha256').update(`${alarmArn}|${transition}|${document}`).digest('hex');
  const variant = ((Number.parseInt(h.charAt(16), 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * The ClientToken of a start. While the transition is recent (less than two windows after the
 * start of its {@link DEDUPE_WINDOW_SECONDS} window), it is the DISK's token: node, window and
 * document, whatever reported it, so a CloudWatch alarm and a Prometheus alert of the same node
 * whose transitions fall in the same window cannot both start the document, even when the second
 * is routed before the first execution shows in DescribeAutomationExecutions (AWS refuses the
 * second start: IdempotentParameterMismatch, read as already started). A repeated event of one
 * transition gets the same token. Later (the re-check's next step, a late event), it is the
 * alarm's own token (alarm, transition, document): the listing shows every earlier start by then,
 * and a new transition of the same disk in the same window is not held back for ever.
 */
export function startToken(
  alarm: { readonly alarmArn: string; readonly node: string; readonly transition: string },
  document: string,
  now: Date,
): string {
  const windowMs = DEDUPE_WINDOW_SECONDS * 1000;
  const windowStart = Math.floor(Date.parse(alarm.transition) / windowMs) * windowMs;
  if (now.getTime() < windowStart + 2 * windowMs) {
    return clientToken(`node:${alarm.node}`, new Date(windowStart).toISOString(), document);
  }
  return clientToken(alarm.alarmArn, alarm.transition, document);
}

/** The Reason passed to the document (its pattern allows letters, digits, spaces and ._:,/()=+@#-). */
export function remediationReason(alarmName: string, transition: string): string {
  return `${alarmName} in ALARM since ${transition}`.slice(0, 256);
}

// ---------------------------------------------------------------------------------------------
// AWS reads and writes (each call bounded-retried on throttling)

export interface Ctx {
  readonly config: RouterConfig;
  readonly deps: RouterDeps;
  readonly now: Date;
  /** The kill switch, read once per invocation when something would start or notify. */
  readonly mode: () => Promise<ModeState>;
}

/** Reads the kill switch ({@link killSwitchMode}: missing, unreadable or invalid is `observe`). */
export async function readMode(config: RouterConfig, deps: RouterDeps): Promise<ModeState> {
  const name = config.modeParameterName;
  try {
    const out = await withThrottlingRetry(
      () => deps.ssm.send(new GetParameterCommand({ Name: name })),
      deps.retry,
    );
    return policy.killSwitchMode(name, { value: out.Parameter?.Value });
  } catch (err) {
    return policy.killSwitchMode(name, { errorCode: errorCode(err) ?? 'Error' });
  }
}

function makeCtx(config: RouterConfig, deps: RouterDeps): Ctx {
  let read: Promise<ModeState> | undefined;
  return {
    config,
    deps,
    now: deps.now?.() ?? new Date(),
    mode: () => {
      read ??= readMode(config, deps);
      return read;
    },
  };
}

function call<T>(ctx: Ctx, fn: () => Promise<T>): Promise<T> {
  return withThrottlingRetry(fn, ctx.deps.retry);
}

function readNode(ctx: Ctx, node: string): Promise<{ entry?: NodeRegistryEntry; reason: string }> {
  const name = `${ctx.config.nodeParameterPrefix}${node}`;
  return unlessAwsError('ParameterNotFound', { reason: `no registry parameter ${name}` }, async () => {
    const out = await call(ctx, () => ctx.deps.ssm.send(new GetParameterCommand({ Name: name })));
    const parsed = parseNodeRegistryEntry(out.Parameter?.Value, node);
    if (!parsed.ok) return { reason: `registry parameter ${name}: ${parsed.reason}` };
    return { entry: parsed.value, reason: '' };
  });
}

async function listExecutions(
  ctx: Ctx,
  filters: {
    readonly statuses?: readonly string[];
    readonly startedAfter?: Date;
    readonly tagKey?: string;
    readonly parentIds?: readonly string[];
  },
): Promise<AutomationExecutionMetadata[]> {
  const head = `${ctx.config.prefix}-`;
  const Filters: AutomationExecutionFilter[] = [{ Key: 'DocumentNamePrefix', Values: [head] }];
  if (filters.statuses) Filters.push({ Key: 'ExecutionStatus', Values: [...filters.statuses] });
  if (filters.tagKey) Filters.push({ Key: 'TagKey', Values: [filters.tagKey] });
  if (filters.parentIds) Filters.push({ Key: 'ParentExecutionId', Values: [...filters.parentIds] });
  if (filters.startedAfter) {
    const after = `${filters.startedAfter.toISOString().slice(0, 19)}Z`;
    Filters.push({ Key: 'StartTimeAfter', Values: [after] });
  }
  const all = await allPages(async (NextToken) => {
    const out = await call(ctx, () =>
      ctx.deps.ssm.send(new DescribeAutomationExecutionsCommand({ Filters, MaxResults: 50, NextToken })),
    );
    return { items: out.AutomationExecutionMetadataList, next: out.NextToken };
  }, MAX_PAGES);
  // The filters narrow the listing; these checks do not depend on how the service combines them.
  return all.filter(
    (e) =>
      e.DocumentName?.startsWith(head) === true &&
      (filters.parentIds === undefined || filters.parentIds.includes(e.ParentAutomationExecutionId ?? '')) &&
      (filters.statuses === undefined || filters.statuses.includes(e.AutomationExecutionStatus ?? '')) &&
      (filters.startedAfter === undefined ||
        (e.ExecutionStartTime !== undefined && e.ExecutionStartTime >= filters.startedAfter)),
  );
}

/** The running execution of this stack's documents that works on the node's instance, if any. */
async function runningRemediation(
  ctx: Ctx,
  entry: NodeRegistryEntry,
): Promise<AutomationExecutionMetadata | undefined> {
  const active = await listExecutions(ctx, { statuses: policy.ACTIVE_STATUSES });
  for (const e of active) {
    const id = e.AutomationExecutionId;
    if (id === undefined) continue;
    try {
      const out = await call(ctx, () =>
        ctx.deps.ssm.send(new GetAutomationExecutionCommand({ AutomationExecutionId: id })),
      );
      if (out.AutomationExecution?.Parameters?.InstanceId?.includes(entry.instanceId)) return e;
    } catch (err) {
      if (errorCode(err) !== 'AutomationExecutionNotFoundException') throw err;
    }
  }
  return undefined;
}

interface TransitionHistory {
  /** Router-started executions of this transition, with their children. */
  readonly executions: readonly AutomationExecutionMetadata[];
}

/** Executions this router started for one alarm transition (matched by tags), plus their children. */
async function transitionHistory(
  ctx: Ctx,
  alarm: { readonly alarmName: string; readonly node: string; readonly transition: string },
): Promise<TransitionHistory> {
  const since = new Date(Date.parse(alarm.transition) - 60_000);
  // Only this node's executions (the node is in the tag key): the cost does not grow with the fleet.
  const candidates = await listExecutions(ctx, { startedAfter: since, tagKey: nodeTagKey(alarm.node) });
  const matched = new Set<string>();
  for (const e of candidates) {
    const id = e.AutomationExecutionId;
    if (id === undefined || e.ParentAutomationExecutionId) continue;
    const out = await call(ctx, () =>
      ctx.deps.ssm.send(new ListTagsForResourceCommand({ ResourceType: 'Automation', ResourceId: id })),
    );
    const tags = new Map((out.TagList ?? []).map((t) => [t.Key, t.Value]));
    if (
      tags.get(TAG_NODE) === alarm.node &&
      tags.get(TAG_ALARM) === alarm.alarmName &&
      tags.get(TAG_TRANSITION) === alarm.transition
    ) {
      matched.add(id);
    }
  }
  // Children do not carry the parent's tags: list them by parent (a filter takes 10 values).
  const children: AutomationExecutionMetadata[] = [];
  const parents = [...matched];
  for (let i = 0; i < parents.length; i += 10) {
    children.push(
      ...(await listExecutions(ctx, { startedAfter: since, parentIds: parents.slice(i, i + 10) })),
    );
  }
  const seen = new Set(candidates.map((e) => e.AutomationExecutionId));
  const all = [...candidates, ...children.filter((e) => !seen.has(e.AutomationExecutionId))];
  const executions = all.filter(
    (e) =>
      (e.AutomationExecutionId !== undefined && matched.has(e.AutomationExecutionId)) ||
      (e.ParentAutomationExecutionId !== undefined && matched.has(e.ParentAutomationExecutionId)),
  );
  return { executions };
}

/** How starting went; `failures` are the documents skipped before (all of them for none-startable). */
type ChainStart = StartResult & { readonly failures: readonly RouterOutcome[] };

/** Starts the first startable document of `chain` from `from`; tags it with the transition. */
async function startFromChain(
  ctx: Ctx,
  alarm: AlarmStateChange & AlarmIdentity,
  entry: NodeRegistryEntry,
  chain: readonly string[],
  from: number,
): Promise<ChainStart> {
  const failures: RouterOutcome[] = [];
  for (let i = from; i < chain.length; i++) {
    const document = chain[i] as string;
    const input = {
      DocumentName: document,
      ClientToken: startToken(alarm, document, ctx.now),
      Parameters: {
        InstanceId: [entry.instanceId],
        AutomationAssumeRole: [ctx.config.automationRoleArn],
        Reason: [remediationReason(alarm.alarmName, alarm.transition)],
      },
      Tags: [
        { Key: TAG_NODE, Value: alarm.node },
        { Key: TAG_ALARM, Value: alarm.alarmName },
        { Key: TAG_TRANSITION, Value: alarm.transition },
        { Key: nodeTagKey(alarm.node), Value: 'remediation' },
      ],
    };
    try {
      const out = await call(ctx, () => ctx.deps.ssm.send(new StartAutomationExecutionCommand(input)));
      return { kind: 'started', document, executionId: out.AutomationExecutionId ?? '', failures };
    } catch (err) {
      const code = errorCode(err) ?? 'Error';
      const failure = policy.startFailure(code);
      if (failure === 'already-started') return { kind: 'already-started', document, failures };
      if (failure === 'limit') {
        return { kind: 'limit', document, reason: `${code}: ${(err as Error).message}`, failures };
      }
      if (failure === 'throw') throw err;
      failures.push({
        decision: 'start-failed',
        reason: `${code}: ${(err as Error).message}`.slice(0, 300),
        alarmName: alarm.alarmName,
        node: alarm.node,
        kind: alarm.kind,
        transition: alarm.transition,
        document,
      });
    }
  }
  return { kind: 'none-startable', failures };
}

// ---------------------------------------------------------------------------------------------
// The decision for one alarm in ALARM

/** Common part of both paths: known node, route, not busy → start `chain[from]` (or later). */
async function startIfIdle(
  ctx: Ctx,
  alarm: AlarmStateChange & AlarmIdentity,
  entry: NodeRegistryEntry,
  chain: readonly string[],
  from: number,
  busyNodes: Set<string>,
): Promise<{ readonly outcomes: RouterOutcome[]; readonly exhausted: boolean }> {
  const base = {
    alarmName: alarm.alarmName,
    node: alarm.node,
    kind: alarm.kind,
    transition: alarm.transition,
  };
  const done = (verdict: Verdict, before: readonly RouterOutcome[] = []) => ({
    outcomes: [...before, { ...base, ...verdict }],
    exhausted: false,
  });
  const busyInThisRun = policy.busyNode({ startedInThisRun: busyNodes.has(alarm.node) });
  if (busyInThisRun !== undefined) return done(busyInThisRun);
  const mode = await ctx.mode();
  // Only a start takes the node's lock and a fleet-wide slot (observe and off start nothing).
  const taken = mode.mode === 'act' ? await takeNodeAndSlot(ctx, alarm.node) : undefined;
  if (taken !== undefined && 'verdict' in taken) {
    if (taken.verdict.decision === 'node-busy') busyNodes.add(alarm.node);
    return done(taken.verdict);
  }
  const lease = taken?.lease;
  let result: ChainStart | StartDone | undefined;
  try {
    const busy = policy.busyNode({
      running: await runningRemediation(ctx, entry),
      instanceId: entry.instanceId,
    });
    if (busy !== undefined) {
      busyNodes.add(alarm.node);
      return done(busy);
    }
    result = await startUnderLease(ctx, alarm, entry, chain, from, mode, busyNodes);
  } finally {
    if (lease !== undefined) await settleLease(ctx, lease, result);
  }
  if (result === undefined) throw new Error('unreachable: no start result');
  if ('outcomes' in result) return result;
  if (result.kind === 'started') busyNodes.add(alarm.node);
  const started = policy.startVerdict(result, chain, alarm.kind);
  if ('exhausted' in started) return { outcomes: [...result.failures], exhausted: true };
  return done(started.verdict, result.failures);
}

/** What the node's lock and slot become: the execution's (started), or free again. */
async function settleLease(
  ctx: Ctx,
  lease: Lease,
  result: ChainStart | StartDone | undefined,
): Promise<void> {
  const table = lockTable(ctx);
  if (result !== undefined && 'kind' in result && result.kind === 'started') {
    const until = Math.floor(ctx.now.getTime() / 1000) + policy.RUN_LEASE_SECONDS;
    const execution = { executionId: result.executionId, documentName: result.document };
    for (const key of lease.keys) await confirmLock(table, key, lease.holder, execution, until);
    return;
  }
  for (const key of lease.keys) await releaseLock(table, key, lease.holder);
}

type StartDone = { readonly outcomes: RouterOutcome[]; readonly exhausted: boolean };

/** The mode's answer for a node that is idle: start (act), notify once (observe), nothing (off). */
async function startUnderLease(
  ctx: Ctx,
  alarm: AlarmStateChange & AlarmIdentity,
  entry: NodeRegistryEntry,
  chain: readonly string[],
  from: number,
  mode: ModeState,
  busyNodes: Set<string>,
): Promise<ChainStart | StartDone> {
  const base = {
    alarmName: alarm.alarmName,
    node: alarm.node,
    kind: alarm.kind,
    transition: alarm.transition,
  };
  const done = (verdict: Verdict) => ({ outcomes: [{ ...base, ...verdict }], exhausted: false });
  const step = { chain, from, kind: alarm.kind };
  const underMode = policy.startUnderMode(mode, step);
  if ('verdict' in underMode) return done(underMode.verdict);
  if (underMode.action === 'observe') {
    busyNodes.add(alarm.node);
    const notified = await notifyObservedOnce(ctx, alarm, entry, underMode.document, mode);
    return done(policy.observedVerdict(mode, step, notified));
  }
  return startFromChain(ctx, alarm, entry, chain, from);
}

// ---------------------------------------------------------------------------------------------
// Per-node locks and the fleet-wide limit (./shared/remediation-locks.ts)

interface Lease {
  readonly holder: string;
  /** The node's lock and the slot, both held by `holder`. */
  readonly keys: readonly string[];
}

function lockTable(ctx: Ctx): LockTable {
  return { client: ctx.deps.dynamodb, tableName: ctx.config.lockTableName, retry: ctx.deps.retry };
}

function nowSeconds(ctx: Ctx): number {
  return Math.floor(ctx.now.getTime() / 1000);
}

/** The execution's status, `not-found` when SSM no longer knows it. */
function executionStatus(ctx: Ctx, id: string): Promise<{ readonly status?: string } | 'not-found'> {
  return unlessAwsError('AutomationExecutionNotFoundException', 'not-found' as const, async () => {
    const out = await call(ctx, () =>
      ctx.deps.ssm.send(new GetAutomationExecutionCommand({ AutomationExecutionId: id })),
    );
    return { status: out.AutomationExecution?.AutomationExecutionStatus };
  });
}

/**
 * Frees a held slot whose execution ended ({@link slotRelease}), with the node lock of the same
 * holder; true when it did.
 */
async function releaseIfEnded(ctx: Ctx, slot: LockRecord): Promise<boolean> {
  if (slot.executionId === undefined) return false;
  if (!policy.slotRelease(slot, await executionStatus(ctx, slot.executionId))) return false;
  const table = lockTable(ctx);
  const freed = await releaseLock(table, slot.key, slot.holder);
  await releaseLock(table, policy.nodeLockKey(slot.node), slot.holder);
  return freed;
}

/**
 * Takes the node's lock, then a free slot (conditional writes: of two racing invocations one
 * wins). `node-busy` when the lock is held (unless its execution ended: then it is freed first),
 * `queued` when every slot is held; both read in one BatchGetItem.
 */
async function takeNodeAndSlot(
  ctx: Ctx,
  node: string,
): Promise<{ readonly lease: Lease } | { readonly verdict: Verdict }> {
  const table = lockTable(ctx);
  const slots = policy.slotKeys(ctx.config.maxConcurrent);
  const nodeKey = policy.nodeLockKey(node);
  const now = nowSeconds(ctx);
  let records = await readLocks(table, [nodeKey, ...slots]);
  const nodeLock = records.find((r) => r.key === nodeKey);
  if (policy.lockVerdict(nodeLock, now) !== undefined && nodeLock !== undefined) {
    // The lock of an execution that ended is freed here, not only at the next re-check.
    const slot = records.find((r) => r.key !== nodeKey && r.holder === nodeLock.holder);
    const ended = slot !== undefined && (await releaseIfEnded(ctx, slot));
    if (!ended) return { verdict: policy.lockVerdict(nodeLock, now) as Verdict };
    records = records.filter((r) => r.holder !== nodeLock.holder);
  }
  if (policy.freeSlot(slots, records, now) === undefined) return { verdict: policy.fleetFull(slots) };
  const holder = randomUUID();
  const expiresAt = now + policy.START_LEASE_SECONDS;
  if (!(await takeLock(table, { key: nodeKey, holder, node, expiresAt }, now))) {
    return { verdict: { decision: 'node-busy', reason: "another invocation took the node's lock first" } };
  }
  const lost = new Set<string>();
  // Each node starts looking at its own slot, so a storm's invocations seldom race for one.
  const startAt = Number.parseInt(createHash('sha256').update(node).digest('hex').slice(0, 8), 16);
  for (let attempt = 0; attempt < slots.length; attempt++) {
    const slot = policy.freeSlot(slots, records, now, lost, startAt);
    if (slot === undefined) break;
    if (await takeLock(table, { key: slot.key, holder, node, expiresAt }, now)) {
      return { lease: { holder, keys: [nodeKey, slot.key] } };
    }
    // Lost to another invocation: read the slots again rather than try each in turn.
    lost.add(slot.key);
    records = await readLocks(table, slots);
  }
  await releaseLock(table, nodeKey, holder);
  return { verdict: policy.fleetFull(slots) };
}

/**
 * The re-check's first step: frees the slots (and node locks) of remediations that ended. Not a
 * decision about an alarm: each release is logged (`slot released`), the count returned.
 */
export async function releaseEndedSlots(ctx: Ctx): Promise<number> {
  const records = await readLocks(lockTable(ctx), policy.slotKeys(ctx.config.maxConcurrent));
  let released = 0;
  for (const slot of records) {
    if (!(await releaseIfEnded(ctx, slot))) continue;
    released++;
    logger.info('slot released', { slot: slot.key, node: slot.node, executionId: slot.executionId });
  }
  return released;
}

/**
 * Observe mode's one notification per transition: a CloudWatch alarm remembers it in the tag
 * `stemedb:observed=<transition>` (set after the publish), a Prometheus alert in the container's
 * memory (Alertmanager itself re-sends a firing group only at its repeat_interval).
 */
async function notifyObservedOnce(
  ctx: Ctx,
  alarm: AlarmStateChange & AlarmIdentity,
  entry: NodeRegistryEntry,
  document: string,
  mode: ModeState,
): Promise<string> {
  const isAlarm = alarm.alarmArn.startsWith('arn:');
  const memo = ctx.deps.observedAlerts ?? OBSERVED_ALERTS;
  const key = `${alarm.alarmName}|${alarm.transition}`;
  if (isAlarm) {
    const tags = await call(ctx, () =>
      ctx.deps.cloudwatch.send(new ListAlarmTagsCommand({ ResourceARN: alarm.alarmArn })),
    );
    if (policy.markedFor(tags.Tags ?? [], TAG_OBSERVED, alarm.transition)) {
      return 'notified for this transition already';
    }
  } else if (memo.has(key)) {
    return 'notified for this transition already';
  }
  const subject = `${ctx.config.prefix}: ${alarm.node} would start ${document} (automation ${mode.mode})`;
  const message = [
    `${alarm.alarmName} (node ${alarm.node}, instance ${entry.instanceId}) is in ALARM since ${alarm.transition}.`,
    `The automation is in ${mode.mode} mode (${mode.reason}): it would have started ${document} and started nothing.`,
    `To act: aws ssm put-parameter --name ${ctx.config.modeParameterName} --value act --overwrite`,
  ].join('\n');
  await ctx.deps.notify(subject.slice(0, 100), message);
  if (isAlarm) {
    await call(ctx, () =>
      ctx.deps.cloudwatch.send(
        new TagResourceCommand({
          ResourceARN: alarm.alarmArn,
          Tags: [{ Key: TAG_OBSERVED, Value: alarm.transition }],
        }),
      ),
    );
  } else {
    memo.add(key);
  }
  return `published to ${ctx.config.topicArn}`;
}

const OBSERVED_ALERTS = new Set<string>();

async function escalateToHuman(
  ctx: Ctx,
  alarm: AlarmStateChange & AlarmIdentity,
  entry: NodeRegistryEntry,
  chain: readonly string[],
  history: TransitionHistory,
): Promise<RouterOutcome> {
  const base = {
    alarmName: alarm.alarmName,
    node: alarm.node,
    kind: alarm.kind,
    transition: alarm.transition,
  };
  const off = policy.escalationUnderMode(await ctx.mode());
  if (off !== undefined) return { ...base, ...off };
  const tags = await call(ctx, () =>
    ctx.deps.cloudwatch.send(new ListAlarmTagsCommand({ ResourceARN: alarm.alarmArn })),
  );
  const told = policy.escalateOnce(tags.Tags ?? [], TAG_ESCALATED, alarm.transition);
  if (told !== undefined) return { ...base, ...told };
  const tried = history.executions
    .map((e) => `  ${e.DocumentName} ${e.AutomationExecutionId}: ${e.AutomationExecutionStatus}`)
    .join('\n');
  const subject = `${ctx.config.prefix}: ${alarm.alarmName} still in ALARM, automation exhausted`.slice(
    0,
    100,
  );
  const message = [
    `Alarm ${alarm.alarmName} (node ${alarm.node}, instance ${entry.instanceId}) has been in ALARM since ${alarm.transition}.`,
    chain.length === 0
      ? 'No automation is configured for this alarm.'
      : `Every automation configured for it has run and finished:\n${tried || '  (none could be started)'}`,
    'A human is needed: see the runbook "Disk Full" and the executions above in Systems Manager > Automation.',
  ].join('\n');
  await ctx.deps.notify(subject, message);
  await call(ctx, () =>
    ctx.deps.cloudwatch.send(
      new TagResourceCommand({
        ResourceARN: alarm.alarmArn,
        Tags: [{ Key: TAG_ESCALATED, Value: alarm.transition }],
      }),
    ),
  );
  return { ...base, decision: 'escalated-to-human', reason: `published to ${ctx.config.topicArn}` };
}

/**
 * Re-reads the alarm by name: `stale-event` ({@link staleAlarm}) when it no longer describes the
 * event, undefined when it is still in ALARM since the event's transition.
 */
async function staleness(ctx: Ctx, alarm: AlarmStateChange): Promise<Verdict | undefined> {
  const out = await call(ctx, () =>
    ctx.deps.cloudwatch.send(
      new DescribeAlarmsCommand({
        AlarmNames: [alarm.alarmName],
        AlarmTypes: ['MetricAlarm', 'CompositeAlarm'],
      }),
    ),
  );
  const now = [...(out.MetricAlarms ?? []), ...(out.CompositeAlarms ?? [])].find(
    (a) => a.AlarmName === alarm.alarmName,
  );
  const current =
    now === undefined
      ? undefined
      : {
          alarmArn: now.AlarmArn,
          stateValue: now.StateValue,
          transition: normalizeTransition(now.StateTransitionedTimestamp ?? now.StateUpdatedTimestamp),
        };
  return policy.staleAlarm(alarm, current);
}

/**
 * Checks the name, the route, then `confirm` (if given), then the node; returns the outcome that
 * ends it, or what is needed.
 */
async function resolveAlarm(
  ctx: Ctx,
  alarm: AlarmStateChange,
  confirm?: (alarm: AlarmStateChange & AlarmIdentity) => Promise<RouterOutcome | undefined>,
): Promise<
  | { readonly done: RouterOutcome }
  | {
      readonly alarm: AlarmStateChange & AlarmIdentity;
      readonly chain: readonly string[];
      readonly entry: NodeRegistryEntry;
    }
> {
  const identity = parseAlarmName(alarm.alarmName, ctx.config.prefix);
  if (!identity.ok) {
    return { done: { decision: 'malformed-event', reason: identity.reason, transition: alarm.transition } };
  }
  const full = { ...alarm, ...identity.value };
  const base = { alarmName: alarm.alarmName, node: full.node, kind: full.kind, transition: alarm.transition };
  const route = policy.routeFor(ctx.config.routes, full.kind, 'alarms');
  if ('verdict' in route) return { done: { ...base, ...route.verdict } };
  const { chain } = route;
  const refused = await confirm?.(full);
  if (refused !== undefined) return { done: refused };
  const node = await readNode(ctx, full.node);
  if (node.entry === undefined) return { done: { ...base, decision: 'unknown-node', reason: node.reason } };
  return { alarm: full, chain, entry: node.entry };
}

/** An alarm state change event: only a transition into ALARM can start something. */
async function handleAlarmStateChange(alarm: AlarmStateChange, ctx: Ctx): Promise<RouterOutcome[]> {
  const ignored = policy.ignoredTransition(alarm.state, alarm.previousState);
  if (ignored !== undefined) {
    return [{ ...ignored, alarmName: alarm.alarmName, transition: alarm.transition }];
  }
  const resolved = await resolveAlarm(ctx, alarm, async (full) => {
    const stale = await staleness(ctx, full);
    if (stale === undefined) return undefined;
    return {
      ...stale,
      alarmName: full.alarmName,
      node: full.node,
      kind: full.kind,
      transition: full.transition,
    };
  });
  if ('done' in resolved) return [resolved.done];
  return startFirst(ctx, resolved.alarm, resolved.entry, resolved.chain, new Set());
}

/** An event's transition (alarm event or firing alert): the chain's first document, once. */
async function startFirst(
  ctx: Ctx,
  alarm: AlarmStateChange & AlarmIdentity,
  entry: NodeRegistryEntry,
  chain: readonly string[],
  busyNodes: Set<string>,
): Promise<RouterOutcome[]> {
  const history = await transitionHistory(ctx, alarm);
  const started = policy.firstStart(history.executions);
  if (started !== undefined) {
    const base = {
      alarmName: alarm.alarmName,
      node: alarm.node,
      kind: alarm.kind,
      transition: alarm.transition,
    };
    return [{ ...base, ...started }];
  }
  const { outcomes } = await startIfIdle(ctx, alarm, entry, chain, 0, busyNodes);
  return outcomes;
}

/**
 * One Alertmanager notification (an SNS record of this stack's Prometheus topic): each alert of
 * the group on its own, under the CloudWatch rules. Firing only (resolved starts nothing); the
 * node from `stemedb_node`, the route from `stemedb_alarm_kind`, the transition from `startsAt`;
 * at most one start per node in the notification, none while the node is busy, and one per
 * transition (tags, then {@link startToken}). There is no alert state to re-read: a notification
 * older than {@link MAX_NOTIFICATION_AGE_SECONDS} is stale.
 */
async function handleAlertmanagerNotification(
  notification: AlertmanagerNotification,
  ctx: Ctx,
): Promise<RouterOutcome[]> {
  const { config } = ctx;
  const outcomes: RouterOutcome[] = [];
  const busyNodes = new Set<string>();
  for (const alert of notification.alerts) {
    const alarmName = prometheusAlarmName(alert);
    const base = { alarmName, node: alert.node, kind: alert.kind, transition: alert.transition };
    const decided = policy.alertDecision(
      alert,
      { publishedAt: notification.publishedAt, now: ctx.now },
      config.routes,
    );
    if ('verdict' in decided) {
      outcomes.push({ ...base, ...decided.verdict });
      continue;
    }
    const { chain } = decided;
    const node = await readNode(ctx, decided.node);
    if (node.entry === undefined) {
      outcomes.push({ ...base, decision: 'unknown-node', reason: node.reason });
      continue;
    }
    const alarm: AlarmStateChange & AlarmIdentity = {
      type: 'alarm-state-change',
      alarmName,
      // An alert has no ARN: its name stands for it in the alarm-specific token.
      alarmArn: alarmName,
      state: 'ALARM',
      previousState: undefined,
      transition: alert.transition,
      account: config.accountId,
      region: config.region,
      node: decided.node,
      kind: decided.kind,
    };
    outcomes.push(...(await startFirst(ctx, alarm, node.entry, chain, busyNodes)));
  }
  return outcomes;
}

/** One alarm that stayed in ALARM: wait, start the next document, or tell a human once. */
async function recheckOne(
  ctx: Ctx,
  alarm: AlarmStateChange,
  busyNodes: Set<string>,
): Promise<RouterOutcome[]> {
  const resolved = await resolveAlarm(ctx, alarm);
  if ('done' in resolved) return [resolved.done];
  const { chain, entry } = resolved;
  const full = resolved.alarm;
  const base = { alarmName: full.alarmName, node: full.node, kind: full.kind, transition: full.transition };
  const history = await transitionHistory(ctx, full);
  const step = policy.recheckStep({
    chain,
    executions: history.executions,
    settleSeconds: ctx.config.settleSeconds,
    now: ctx.now,
  });
  if ('verdict' in step) {
    if (step.nodeBusy) busyNodes.add(full.node);
    return [{ ...base, ...step.verdict }];
  }
  if (step.action === 'start') {
    const { outcomes, exhausted } = await startIfIdle(ctx, full, entry, chain, step.from, busyNodes);
    if (!exhausted) return outcomes;
    // No document of the rest of the chain could be started: that exhausts it.
    return [...outcomes, await escalateToHuman(ctx, full, entry, chain, history)];
  }
  return [await escalateToHuman(ctx, full, entry, chain, history)];
}

/**
 * The scheduled re-check: frees the slots of ended executions, then every `<Prefix>-` alarm in
 * ALARM (paged), one at a time, oldest transition first.
 */
async function recheckAlarms(ctx: Ctx): Promise<RouterOutcome[]> {
  const { config, deps } = ctx;
  const listed = await allPages(async (NextToken) => {
    const out = await call(ctx, () =>
      deps.cloudwatch.send(
        new DescribeAlarmsCommand({
          AlarmNamePrefix: `${config.prefix}-`,
          StateValue: 'ALARM',
          AlarmTypes: ['MetricAlarm', 'CompositeAlarm'],
          MaxRecords: 100,
          NextToken,
        }),
      ),
    );
    return { items: [...(out.MetricAlarms ?? []), ...(out.CompositeAlarms ?? [])], next: out.NextToken };
  }, MAX_ALARM_PAGES);
  const alarms: AlarmStateChange[] = [];
  for (const a of listed) {
    const transition = normalizeTransition(a.StateTransitionedTimestamp ?? a.StateUpdatedTimestamp);
    if (a.AlarmName === undefined || a.AlarmArn === undefined || transition === undefined) continue;
    if (a.StateValue !== 'ALARM') continue;
    alarms.push({
      type: 'alarm-state-change',
      alarmName: a.AlarmName,
      alarmArn: a.AlarmArn,
      state: 'ALARM',
      previousState: undefined,
      transition,
      account: config.accountId,
      region: config.region,
    });
  }
  const busyNodes = new Set<string>();
  const failedNodes = new Map<string, string>();
  // Slots of remediations that ended are freed first, so this re-check starts the next in line.
  await releaseEndedSlots(ctx);
  const outcomes: RouterOutcome[] = [];
  // The alarms in ALARM are the queue: oldest transition first.
  for (const alarm of policy.recheckOrder(alarms)) {
    // Alarms that are not disk alarms of this stack are not the re-check's business: skip quietly.
    const identity = parseAlarmName(alarm.alarmName, config.prefix);
    if (!identity.ok) continue;
    const base = { alarmName: alarm.alarmName, ...identity.value, transition: alarm.transition };
    const failedBefore = policy.busyNode({ failedInThisRun: failedNodes.get(base.node) });
    if (failedBefore !== undefined) {
      outcomes.push({ ...base, ...failedBefore });
      continue;
    }
    try {
      outcomes.push(...(await recheckOne(ctx, alarm, busyNodes)));
    } catch (err) {
      // Isolated: this alarm fails, the others go on; the handler fails the invocation at the end.
      failedNodes.set(base.node, alarm.alarmName);
      busyNodes.add(base.node);
      const reason = `${errorCode(err) ?? 'Error'}: ${err instanceof Error ? err.message : String(err)}`;
      outcomes.push({ ...base, decision: 'recheck-failed', reason: reason.slice(0, 300) });
    }
  }
  return outcomes;
}

/** Parses any event and routes it. Malformed events start nothing and say why. */
export async function routeEvent(
  raw: unknown,
  config: RouterConfig,
  deps: RouterDeps,
): Promise<RouterOutcome[]> {
  if (isSnsEvent(raw)) return routeSnsEvent(raw.Records, config, deps);
  const parsed = parseRouterEvent(raw);
  if (!parsed.ok) return [{ decision: 'malformed-event', reason: parsed.reason }];
  const foreign = policy.foreignEvent(parsed.value, config);
  if (foreign !== undefined) {
    const alarm = parsed.value.type === 'alarm-state-change' ? parsed.value : undefined;
    return [{ ...foreign, alarmName: alarm?.alarmName, transition: alarm?.transition }];
  }
  if (parsed.value.type === 'scheduled-recheck') return recheckAlarms(makeCtx(config, deps));
  return handleAlarmStateChange(parsed.value, makeCtx(config, deps));
}

/** SNS deliveries: Alertmanager notifications of this stack's Prometheus topic only. */
async function routeSnsEvent(
  records: readonly unknown[],
  config: RouterConfig,
  deps: RouterDeps,
): Promise<RouterOutcome[]> {
  const outcomes: RouterOutcome[] = [];
  for (const record of records) {
    const parsed = parseSnsRecord(record);
    if (!parsed.ok) {
      outcomes.push({ decision: 'malformed-event', reason: parsed.reason });
      continue;
    }
    const { notification, unreadable } = parsed.value;
    const foreign = policy.foreignNotification(notification.topicArn, config.prometheusTopicArn);
    if (foreign !== undefined) {
      outcomes.push(foreign);
      continue;
    }
    for (const u of unreadable) outcomes.push({ decision: 'malformed-event', reason: u.reason });
    outcomes.push(...(await handleAlertmanagerNotification(notification, makeCtx(config, deps))));
  }
  return outcomes;
}

/** The invocation did its work, but the re-check of some alarms failed (see `failed`). */
export class RouterPartialFailure extends Error {
  constructor(
    readonly failed: readonly RouterOutcome[],
    readonly outcomes: readonly RouterOutcome[],
  ) {
    const alarms = new Set(outcomes.flatMap((o) => (o.alarmName === undefined ? [] : [o.alarmName]))).size;
    super(
      `re-check failed for ${failed.length} of ${alarms} alarms: ${failed.map((o) => `${o.alarmName} (${o.reason})`).join('; ')}`.slice(
        0,
        1000,
      ),
    );
    this.name = 'RouterPartialFailure';
  }
}

/**
 * Routes one event, logs and counts every outcome, then fails with {@link RouterPartialFailure}
 * when the re-check of some alarm failed (an async invocation's result goes nowhere: only a
 * failure reaches the Errors metric, its alarm, and Lambda's retry).
 */
export async function runRouter(
  raw: unknown,
  config: RouterConfig,
  deps: RouterDeps,
): Promise<{ readonly outcomes: readonly RouterOutcome[] }> {
  const outcomes = await routeEvent(raw, config, deps);
  recordOutcomes(outcomes);
  const failed = outcomes.filter((o) => o.decision === 'recheck-failed');
  if (failed.length > 0) throw new RouterPartialFailure(failed, outcomes);
  return { outcomes };
}

// ---------------------------------------------------------------------------------------------
// SNS

/** A Notifier that publishes to `topicArn` (Subject cut to SNS's 100 characters), retried on throttling. */
export function snsNotifier(sns: SNSClient, topicArn: string, retry?: RetryOptions): Notifier {
  return async (subject, message) => {
    await withThrottlingRetry(
      () =>
        sns.send(
          new PublishCommand({ TopicArn: topicArn, Subject: subject.slice(0, 100), Message: message }),
        ),
      retry,
    );
  };
}

// ---------------------------------------------------------------------------------------------
// Handler

const ssmClient = new SSMClient({ maxAttempts: 1 });
const cloudwatchClient = new CloudWatchClient({ maxAttempts: 1 });
const snsClient = new SNSClient({ maxAttempts: 1 });
const dynamodbClient = new DynamoDBClient({ maxAttempts: 1 });
let cachedConfig: RouterConfig | undefined;

/** Decisions logged at WARN: something is wrong or a human is needed. */
const WARN_DECISIONS: ReadonlySet<Decision> = new Set<Decision>([
  'malformed-event',
  'foreign-event',
  'unknown-node',
  'start-failed',
  'escalated-to-human',
]);

/** Logs each outcome and publishes one `RouterDecision` datapoint set per decision value. */
export function recordOutcomes(outcomes: readonly RouterOutcome[]): void {
  const counts = new Map<Decision, number>();
  for (const o of outcomes) {
    if (o.decision === 'recheck-failed') logger.error('router decision', { ...o });
    else if (WARN_DECISIONS.has(o.decision)) logger.warn('router decision', { ...o });
    else logger.info('router decision', { ...o });
    counts.set(o.decision, (counts.get(o.decision) ?? 0) + 1);
  }
  for (const [decision, n] of counts) {
    metrics.addDimension('decision', decision);
    metrics.addMetric('RouterDecision', MetricUnit.Count, n);
    metrics.publishStoredMetrics();
  }
}

export const handler = async (event: unknown): Promise<{ readonly outcomes: readonly RouterOutcome[] }> => {
  cachedConfig ??= loadRouterConfig(process.env);
  const config = cachedConfig;
  const deps: RouterDeps = {
    ssm: ssmClient,
    cloudwatch: cloudwatchClient,
    dynamodb: dynamodbClient,
    notify: snsNotifier(snsClient, config.topicArn),
  };
  return runRouter(event, config, deps);
};
