/**
 * The events the alarm router receives, parsed and validated in one place, plus the naming
 * contracts it keys on (alarm names, node registry entries, routes: contracts/ holds the names and
 * the routing table the stack shares; this module parses what the router is given).
 *
 * Two event shapes are accepted; anything else is `{ ok: false, reason }` and starts nothing:
 * - EventBridge "CloudWatch Alarm State Change" (`source: aws.cloudwatch`): `detail.alarmName`,
 *   `detail.state.{value,timestamp,reason}`, `detail.previousState.value`, and `resources`
 *   exactly `[<the alarm's ARN>]` in the event's `account` and `region` (CloudWatch always sends
 *   it so; an event without it, or naming anything else, is not an alarm state change). The state
 *   timestamp looks like `2019-10-02T17:04:40.985+0000`.
 * - EventBridge "Scheduled Event" (`source: aws.events`): the periodic re-check.
 * Both carry the event's `account` and `region` (required): whether they are this stack's is the
 * router's check, against its configuration.
 */

import {
  ALERT_KINDS,
  type AlertKind,
  DISK_ALARM_KINDS,
  type DiskAlarmKind,
  NEVER_ROUTED_KINDS,
} from '../../contracts/alarms';
import {
  ACCOUNT_PATTERN,
  AVAILABILITY_ZONE_PATTERN,
  INSTANCE_ID_PATTERN,
  REGION_PATTERN,
  VOLUME_ID_PATTERN,
} from '../../contracts/aws-ids';
import { DOCUMENT_NAME_PATTERN, NODE_NAME_PATTERN } from '../../contracts/deployment';
import type { NodeRegistryEntry } from '../../contracts/node-registry';
import { shown } from './payload';

export { shown };

export type AlarmStateValue = 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';
const STATE_VALUES: ReadonlySet<string> = new Set(['OK', 'ALARM', 'INSUFFICIENT_DATA']);

/** Absolute path of letters, digits, '.', '_', '-' with no '.' or '..' segment and no trailing '/'. */
export const MOUNT_POINT_PATTERN = /^(?:\/\.*[A-Za-z0-9_-][A-Za-z0-9._-]*)+$/;
const ALARM_NAME_MAX = 255;
const ALARM_ARN_PATTERN = /^arn:aws[a-z-]{0,20}:cloudwatch:([a-z0-9-]{1,30}):(\d{12}):alarm:(.+)$/;

/** A parsed alarm state change. `transition` identifies this entry into the state. */
export interface AlarmStateChange {
  readonly type: 'alarm-state-change';
  readonly alarmName: string;
  readonly alarmArn: string;
  readonly state: AlarmStateValue;
  readonly previousState: AlarmStateValue | undefined;
  /** The state timestamp as ISO 8601 UTC to the second (`2019-10-02T17:04:40Z`). */
  readonly transition: string;
  /** The event's account and region, which the alarm ARN agrees with. */
  readonly account: string;
  readonly region: string;
}

/** The periodic re-check of alarms that stay in ALARM. */
export interface ScheduledRecheck {
  readonly type: 'scheduled-recheck';
  readonly time: string | undefined;
  readonly account: string;
  readonly region: string;
}

export type RouterEvent = AlarmStateChange | ScheduledRecheck;

export type Parsed<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly reason: string };

/** What an alarm name says: whose disk, which alarm. */
export interface AlarmIdentity {
  readonly node: string;
  readonly kind: AlertKind;
}

/** Alarm kind → ordered Automation document names (an escalation chain; [] = notify only). */
export type Routes = Readonly<Record<AlertKind, readonly string[]>>;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const TIMESTAMP_PATTERN = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$/;

/**
 * Normalizes an alarm timestamp (`2019-10-02T17:04:40.985+0000`, `...Z`, `...+00:00`, or a Date)
 * to ISO 8601 UTC to the second. The event's `state.timestamp` and DescribeAlarms'
 * `StateTransitionedTimestamp` of the same transition give the same string.
 */
export function normalizeTransition(value: unknown): string | undefined {
  let ms: number;
  if (value instanceof Date) {
    ms = value.getTime();
  } else if (typeof value === 'string') {
    const m = TIMESTAMP_PATTERN.exec(value);
    if (m === null) return undefined;
    const [, base, fraction = '', zone = 'Z'] = m;
    const offset = zone === 'Z' ? 'Z' : `${zone.slice(0, 3)}:${zone.slice(-2)}`;
    ms = Date.parse(`${base}${fraction.slice(0, 4)}${offset}`);
  } else {
    return undefined;
  }
  if (!Number.isFinite(ms)) return undefined;
  return `${new Date(ms).toISOString().slice(0, 19)}Z`;
}

/** `<Prefix>-<node>-disk-<kind>` → node and kind, or why not. */
export function parseAlarmName(alarmName: string, prefix: string): Parsed<AlarmIdentity> {
  if (alarmName.length > ALARM_NAME_MAX) return { ok: false, reason: 'alarm name longer than 255' };
  const head = `${prefix}-`;
  if (!alarmName.startsWith(head)) {
    return { ok: false, reason: `alarm name ${shown(alarmName)} does not start with ${shown(head)}` };
  }
  const rest = alarmName.slice(head.length);
  for (const kind of DISK_ALARM_KINDS) {
    const tail = `-disk-${kind}`;
    if (rest.endsWith(tail)) {
      const node = rest.slice(0, -tail.length);
      if (!NODE_NAME_PATTERN.test(node)) {
        return { ok: false, reason: `alarm name ${shown(alarmName)} names an invalid node ${shown(node)}` };
      }
      return { ok: true, value: { node, kind } };
    }
  }
  return {
    ok: false,
    reason: `alarm name ${shown(alarmName)} is not <prefix>-<node>-disk-<kind> with kind in ${DISK_ALARM_KINDS.join(', ')}`,
  };
}

function parseState(v: unknown): AlarmStateValue | undefined {
  return typeof v === 'string' && STATE_VALUES.has(v) ? (v as AlarmStateValue) : undefined;
}

function parseAlarmStateChange(e: Record<string, unknown>): Parsed<AlarmStateChange> {
  const detail = e.detail;
  if (!isRecord(detail)) return { ok: false, reason: 'detail is missing or not an object' };
  const alarmName = detail.alarmName;
  if (typeof alarmName !== 'string' || alarmName.length === 0 || alarmName.length > ALARM_NAME_MAX) {
    return { ok: false, reason: `detail.alarmName is ${shown(alarmName)}; expected an alarm name` };
  }
  if (!isRecord(detail.state)) return { ok: false, reason: 'detail.state is missing or not an object' };
  const state = parseState(detail.state.value);
  if (state === undefined) {
    return {
      ok: false,
      reason: `detail.state.value is ${shown(detail.state.value)}; expected OK, ALARM or INSUFFICIENT_DATA`,
    };
  }
  const transition = normalizeTransition(detail.state.timestamp);
  if (transition === undefined) {
    return {
      ok: false,
      reason: `detail.state.timestamp is ${shown(detail.state.timestamp)}; expected an ISO 8601 time`,
    };
  }
  const previousState = isRecord(detail.previousState) ? parseState(detail.previousState.value) : undefined;
  if (isRecord(detail.previousState) && previousState === undefined) {
    return { ok: false, reason: `detail.previousState.value is ${shown(detail.previousState.value)}` };
  }

  const origin = parseOrigin(e);
  if (!origin.ok) return origin;
  const { account, region } = origin.value;
  const resources = e.resources;
  if (!Array.isArray(resources) || resources.length !== 1) {
    return {
      ok: false,
      reason: `resources is ${shown(resources)}; expected exactly [the ARN of alarm ${shown(alarmName)}]`,
    };
  }
  const first: unknown = resources[0];
  const m = typeof first === 'string' ? ALARM_ARN_PATTERN.exec(first) : null;
  if (m === null || m[1] !== region || m[2] !== account || m[3] !== alarmName) {
    return {
      ok: false,
      reason: `resources[0] is ${shown(first)}; expected the ARN of alarm ${shown(alarmName)} in the event's region ${region} and account ${account}`,
    };
  }
  const alarmArn = first as string;
  return {
    ok: true,
    value: {
      type: 'alarm-state-change',
      alarmName,
      alarmArn,
      state,
      previousState,
      transition,
      account,
      region,
    },
  };
}

/** The event's `account` and `region`, each required in its AWS form. */
function parseOrigin(e: Record<string, unknown>): Parsed<{ account: string; region: string }> {
  const { account, region } = e;
  if (typeof account !== 'string' || !ACCOUNT_PATTERN.test(account)) {
    return { ok: false, reason: `account is ${shown(account)}; expected a 12-digit AWS account ID` };
  }
  if (typeof region !== 'string' || !REGION_PATTERN.test(region)) {
    return { ok: false, reason: `region is ${shown(region)}; expected an AWS region such as eu-west-1` };
  }
  return { ok: true, value: { account, region } };
}

/** Parses and validates a router event. Never throws. */
export function parseRouterEvent(raw: unknown): Parsed<RouterEvent> {
  if (!isRecord(raw)) return { ok: false, reason: `the event is ${shown(raw)}; expected an object` };
  const source = raw.source;
  const detailType = raw['detail-type'];
  if (source === 'aws.cloudwatch' && detailType === 'CloudWatch Alarm State Change') {
    return parseAlarmStateChange(raw);
  }
  if (source === 'aws.events' && detailType === 'Scheduled Event') {
    const origin = parseOrigin(raw);
    if (!origin.ok) return origin;
    const time = typeof raw.time === 'string' ? normalizeTransition(raw.time) : undefined;
    return { ok: true, value: { type: 'scheduled-recheck', time, ...origin.value } };
  }
  return {
    ok: false,
    reason: `source ${shown(source)} with detail-type ${shown(detailType)} is neither a CloudWatch alarm state change nor the scheduled re-check`,
  };
}

/** Parses a node registry parameter value; the name must be the node the alarm names. */
export function parseNodeRegistryEntry(value: unknown, expectedName: string): Parsed<NodeRegistryEntry> {
  let json: unknown;
  try {
    json = typeof value === 'string' ? JSON.parse(value) : undefined;
  } catch {
    return { ok: false, reason: 'the registry entry is not JSON' };
  }
  if (!isRecord(json)) return { ok: false, reason: 'the registry entry is not a JSON object' };
  const { name, instanceId, availabilityZone, volumeId, dataMount } = json;
  if (name !== expectedName) {
    return { ok: false, reason: `registry name is ${shown(name)}; expected ${shown(expectedName)}` };
  }
  if (typeof instanceId !== 'string' || !INSTANCE_ID_PATTERN.test(instanceId)) {
    return { ok: false, reason: `registry instanceId is ${shown(instanceId)}; expected an EC2 instance ID` };
  }
  if (typeof availabilityZone !== 'string' || !AVAILABILITY_ZONE_PATTERN.test(availabilityZone)) {
    return { ok: false, reason: `registry availabilityZone is ${shown(availabilityZone)}` };
  }
  if (typeof volumeId !== 'string' || !VOLUME_ID_PATTERN.test(volumeId)) {
    return { ok: false, reason: `registry volumeId is ${shown(volumeId)}; expected an EBS volume ID` };
  }
  if (typeof dataMount !== 'string' || !MOUNT_POINT_PATTERN.test(dataMount) || dataMount.length > 200) {
    return { ok: false, reason: `registry dataMount is ${shown(dataMount)}; expected an absolute path` };
  }
  return { ok: true, value: { name, instanceId, availabilityZone, volumeId, dataMount } };
}

/**
 * Parses the `ROUTES` JSON (`{"critical": ["StemeDB-ExpandVolume", ...], ...}`): keys are alarm
 * kinds, values ordered lists of this stack's Automation documents. Kinds not given get [].
 * `no-data` may not route anywhere (missing data never starts automation).
 */
export function parseRoutes(text: string, prefix: string): Parsed<Routes> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: `ROUTES is not JSON: ${(err as Error).message}` };
  }
  if (!isRecord(json)) return { ok: false, reason: 'ROUTES must be a JSON object of kind → document list' };
  const routes: Record<string, readonly string[]> = Object.fromEntries(ALERT_KINDS.map((k) => [k, []]));
  for (const [kind, docs] of Object.entries(json)) {
    if (!(ALERT_KINDS as readonly string[]).includes(kind)) {
      return {
        ok: false,
        reason: `ROUTES key ${shown(kind)} is not an alarm kind (${ALERT_KINDS.join(', ')})`,
      };
    }
    if (!Array.isArray(docs) || docs.length > 5) {
      return { ok: false, reason: `ROUTES.${kind} must be a list of at most 5 document names` };
    }
    for (const d of docs) {
      if (
        typeof d !== 'string' ||
        !d.startsWith(`${prefix}-`) ||
        !DOCUMENT_NAME_PATTERN.test(d.slice(prefix.length + 1))
      ) {
        return {
          ok: false,
          reason: `ROUTES.${kind} entry ${shown(d)} is not a document named ${prefix}-<Name>`,
        };
      }
    }
    if (new Set(docs).size !== docs.length)
      return { ok: false, reason: `ROUTES.${kind} lists a document twice` };
    if (NEVER_ROUTED_KINDS.has(kind as DiskAlarmKind) && docs.length > 0) {
      return { ok: false, reason: `ROUTES.${kind} must be []: missing data never starts automation` };
    }
    routes[kind] = docs as string[];
  }
  return { ok: true, value: routes as Routes };
}
