/**
 * Alarm storm: N nodes' critical alarms enter ALARM at once (a shared ingest spike), and the
 * router's handler logic (lambda/alarm-router.ts `routeEvent`) is invoked for all N events
 * concurrently, then the re-check runs until every node is remediated. AWS is simulated in
 * process with aws-sdk-client-mock: every call is counted per operation and delayed (simulated
 * latency); SSM refuses starts above its concurrent-execution quota
 * (AutomationExecutionLimitExceededException) and throttles a share of calls; the lock table is
 * the in-memory fake that honours the router's conditional writes (test/support/lock-table-fake.ts).
 *
 * Checked (the bench fails otherwise): every node remediated exactly once, never more than
 * `remediation.maxConcurrent` remediations running, the queued nodes started oldest transition
 * first, and the storm's calls per alarm the same for every fleet size.
 *
 *   npm run bench -- fleet-storm              (fleets of 20, 200 and 500 nodes)
 *   npx tsx bench/fleet-storm.ts 200          (one fleet size)
 */
import {
  CloudWatchClient,
  DescribeAlarmsCommand,
  ListTagsForResourceCommand as ListAlarmTagsCommand,
  TagResourceCommand,
} from '@aws-sdk/client-cloudwatch';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { routeTable } from '../contracts/routing';
import { loadRouterConfig, type RouterDeps, type RouterOutcome, routeEvent } from '../lambda/alarm-router';
import { logger } from '../lambda/shared/powertools';
import { resolveConfig } from '../lib/config';
import { AutomationFake } from '../test/support/automation-fake';
import { LockTableFake } from '../test/support/lock-table-fake';

const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';
const MAX_CONCURRENT = 10;
/** SSM's concurrent-automation quota in the simulation (lower than the default 100, so it binds). */
const SSM_QUOTA = 25;
const LATENCY_MS = 4;
const THROTTLE_EVERY = 37;
const T0 = Date.parse('2026-12-01T03:00:00Z');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function storm(nodes: number): Promise<{
  readonly stormCallsPerAlarm: number;
  readonly stormCalls: Record<string, number>;
  readonly stormMs: number;
  readonly rechecks: number;
  readonly recheckCalls: number;
  readonly maxRunning: number;
}> {
  const names = Array.from({ length: nodes }, (_, i) => `db-${String(i).padStart(3, '0')}`);
  const instance = (i: number) => `i-${(i + 1).toString(16).padStart(17, '0')}`;
  // Node i's disk filled i seconds after the first: the queue must start them in that order.
  const transitionOf = (i: number) => new Date(T0 + i * 1000);
  const inAlarm = new Set(names);
  const calls = new Map<string, number>();
  let maxRunning = 0;
  // The router's clock: a minute after the last node's transition (executions start after it).
  let clock = transitionOf(nodes - 1).getTime() + 60_000;

  const ssm = new SSMClient({ region: REGION, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  const cloudwatch = new CloudWatchClient({
    region: REGION,
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
  });
  const dynamodb = new DynamoDBClient({
    region: REGION,
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
  });
  const ssmMock = mockClient(ssm);
  const cwMock = mockClient(cloudwatch);
  const ddbMock = mockClient(dynamodb);
  // The lock table answers after the same latency (on demand: not throttled); counted below.
  new LockTableFake('StemeDB-remediation-locks', () => sleep(LATENCY_MS * (0.5 + Math.random()))).install(
    ddbMock,
  );
  const lockCalls = () => {
    const byOp = new Map<string, number>();
    for (const c of ddbMock.calls()) {
      const op = `dynamodb:${(c.args[0] as { constructor: { name: string } }).constructor.name.replace(/Command$/, '')}`;
      byOp.set(op, (byOp.get(op) ?? 0) + 1);
    }
    return byOp;
  };
  // Count and delay every call (the fakes below answer after LATENCY_MS), throttle some.
  const count = (op: string) => {
    const n = (calls.get(op) ?? 0) + 1;
    calls.set(op, n);
    return n;
  };
  const slow =
    <I, O>(op: string, fn: (input: I) => O) =>
    async (input: I): Promise<O> => {
      const n = count(op);
      await sleep(LATENCY_MS * (0.5 + Math.random()));
      if (n % THROTTLE_EVERY === 0)
        throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
      return fn(input);
    };
  const registry = new Map(
    names.map((name, i) => [
      `/StemeDB/nodes/${name}`,
      JSON.stringify({
        name,
        instanceId: instance(i),
        availabilityZone: 'eu-west-1a',
        volumeId: 'vol-0123456789abcdef0',
        dataMount: '/data',
      }),
    ]),
  );
  ssmMock.on(GetParameterCommand).callsFake(
    slow('ssm:GetParameter', (input: { Name?: string }) => {
      if (input.Name === '/StemeDB/automation-mode') return { Parameter: { Value: 'act' } };
      const value = registry.get(input.Name ?? '');
      if (value === undefined)
        throw Object.assign(new Error('no such parameter'), { name: 'ParameterNotFound' });
      return { Parameter: { Name: input.Name, Value: value } };
    }),
  );
  // SSM Automation as AWS keeps it (test/support/automation-fake.ts), each answer delayed,
  // counted and sometimes throttled; starts refused above SSM_QUOTA active executions.
  const active = ['Pending', 'InProgress', 'Waiting'];
  const automation = new AutomationFake({
    quota: SSM_QUOTA,
    now: () => new Date(clock),
    around: (op, answer) =>
      slow(op, (input) => {
        const out = answer(input);
        if (op === 'ssm:StartAutomationExecution') {
          const running = automation.executions.filter((e) => active.includes(e.status)).length;
          maxRunning = Math.max(maxRunning, running);
        }
        return out;
      }),
  });
  const executions = automation.executions;
  automation.install(ssmMock);
  const nodeOf = (e: { readonly tags: Readonly<Record<string, string>> }) => e.tags['stemedb:node'] ?? '';
  const alarmName = (name: string) => `StemeDB-${name}-disk-critical`;
  const alarmArn = (name: string) => `arn:aws:cloudwatch:${REGION}:${ACCOUNT}:alarm:${alarmName(name)}`;
  cwMock.on(DescribeAlarmsCommand).callsFake(
    slow(
      'cloudwatch:DescribeAlarms',
      (input: { AlarmNames?: string[]; NextToken?: string; MaxRecords?: number }) => {
        const all = names
          .filter((n) => inAlarm.has(n))
          .filter((n) => input.AlarmNames === undefined || input.AlarmNames.includes(alarmName(n)));
        const from = Number(input.NextToken ?? '0');
        const page = all.slice(from, from + (input.MaxRecords ?? 100));
        return {
          MetricAlarms: page.map((n) => ({
            AlarmName: alarmName(n),
            AlarmArn: alarmArn(n),
            StateValue: 'ALARM',
            StateTransitionedTimestamp: transitionOf(names.indexOf(n)),
          })),
          NextToken: from + page.length < all.length ? String(from + page.length) : undefined,
        };
      },
    ),
  );
  cwMock.on(ListAlarmTagsCommand).callsFake(slow('cloudwatch:ListTagsForResource', () => ({ Tags: [] })));
  cwMock.on(TagResourceCommand).callsFake(slow('cloudwatch:TagResource', () => ({})));

  const config = loadRouterConfig({
    PREFIX: 'StemeDB',
    ROUTES: JSON.stringify(routeTable('StemeDB', resolveConfig({}).remediation)),
    AUTOMATION_ROLE_ARN: `arn:aws:iam::${ACCOUNT}:role/StemeDB-Automation`,
    TOPIC_ARN: `arn:aws:sns:${REGION}:${ACCOUNT}:StemeDB-alerts`,
    ACCOUNT_ID: ACCOUNT,
    REGION,
    LOCK_TABLE: 'StemeDB-remediation-locks',
    MAX_CONCURRENT: String(MAX_CONCURRENT),
    SETTLE_SECONDS: '0',
  });
  const deps = (): RouterDeps => {
    const now = new Date(clock);
    return {
      ssm,
      cloudwatch,
      dynamodb,
      notify: async () => {},
      now: () => now,
      retry: { sleep: (ms: number) => sleep(Math.min(ms, 20)) },
    };
  };
  const event = (name: string, i: number) => ({
    version: '0',
    id: `storm-${i}`,
    'detail-type': 'CloudWatch Alarm State Change',
    source: 'aws.cloudwatch',
    account: ACCOUNT,
    time: transitionOf(i).toISOString(),
    region: REGION,
    resources: [alarmArn(name)],
    detail: {
      alarmName: alarmName(name),
      configuration: { metrics: [] },
      previousState: { value: 'OK', timestamp: '2026-11-30T00:00:00.000+0000' },
      state: {
        value: 'ALARM',
        reason: 'Threshold Crossed',
        timestamp: transitionOf(i).toISOString().replace('Z', '+0000'),
      },
    },
  });

  // The storm: N events, handled concurrently. An invocation that fails is retried by Lambda
  // (async invoke, twice): the bench retries it too.
  const started = performance.now();
  const outcomes: RouterOutcome[] = [];
  await Promise.all(
    names.map(async (name, i) => {
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          outcomes.push(...(await routeEvent(event(name, i), config, deps())));
          return;
        } catch {
          // Lambda's retry of a failed async invocation.
        }
      }
    }),
  );
  const stormMs = performance.now() - started;
  for (const [op, n] of lockCalls()) calls.set(op, n);
  const stormCalls = Object.fromEntries(calls);
  const stormTotal = [...calls.values()].reduce((a, b) => a + b, 0);

  // Remediations end (Success) and their disks recover; the re-check starts the next in line.
  let rechecks = 0;
  calls.clear();
  ddbMock.resetHistory();
  while (inAlarm.size > 0 && rechecks < 10 * Math.ceil(nodes / MAX_CONCURRENT) + 10) {
    for (const e of executions) {
      if (active.includes(e.status)) {
        e.status = 'Success';
        e.end = new Date(clock);
        inAlarm.delete(nodeOf(e));
      }
    }
    clock += 15 * 60_000;
    rechecks++;
    try {
      await routeEvent(
        {
          version: '0',
          id: `recheck-${rechecks}`,
          'detail-type': 'Scheduled Event',
          source: 'aws.events',
          account: ACCOUNT,
          time: new Date(clock).toISOString(),
          region: REGION,
          resources: [],
          detail: {},
        },
        config,
        deps(),
      );
    } catch {
      // A throttled re-check is retried at the next one.
    }
  }
  for (const [op, n] of lockCalls()) calls.set(op, n);
  const recheckCalls = [...calls.values()].reduce((a, b) => a + b, 0);

  // The properties the bench stands for.
  const perNode = new Map<string, number>();
  for (const e of executions) perNode.set(nodeOf(e), (perNode.get(nodeOf(e)) ?? 0) + 1);
  const twice = [...perNode].filter(([, n]) => n !== 1);
  const missing = names.filter((n) => !perNode.has(n));
  if (twice.length > 0 || missing.length > 0 || inAlarm.size > 0) {
    throw new Error(
      `${nodes} nodes: started more than once ${JSON.stringify(twice)}, never ${missing.length}, still in ALARM ${inAlarm.size}`,
    );
  }
  if (maxRunning > MAX_CONCURRENT)
    throw new Error(`${nodes} nodes: ${maxRunning} ran at once (limit ${MAX_CONCURRENT})`);
  // After the storm's first wave (concurrent, any order), the queue starts oldest first.
  const queued = executions.map(nodeOf).slice(MAX_CONCURRENT);
  const sorted = [...queued].sort();
  if (queued.join() !== sorted.join())
    throw new Error(`${nodes} nodes: the queue did not start oldest first`);
  for (const r of [ssmMock, cwMock, ddbMock]) r.restore();
  return {
    stormCallsPerAlarm: stormTotal / nodes,
    stormCalls,
    stormMs,
    rechecks,
    recheckCalls,
    maxRunning,
  };
}

async function main(): Promise<void> {
  logger.setLogLevel('WARN');
  const sizes = process.argv.slice(2).length > 0 ? process.argv.slice(2).map(Number) : [20, 200, 500];
  for (const s of sizes) {
    if (!Number.isInteger(s) || s < 1 || s > 2000) throw new Error(`fleet size ${s}; expected 1 to 2000`);
  }
  console.log(
    `router alarm storm: every node's critical alarm at once, handled concurrently; ${LATENCY_MS} ms simulated latency per call, 1 call in ${THROTTLE_EVERY} throttled, SSM quota ${SSM_QUOTA}, remediation.maxConcurrent ${MAX_CONCURRENT}`,
  );
  const perAlarm: number[] = [];
  for (const nodes of sizes) {
    const r = await storm(nodes);
    perAlarm.push(r.stormCallsPerAlarm);
    const top = Object.entries(r.stormCalls)
      .sort((a, b) => b[1] - a[1])
      .map(([op, n]) => `${op} ${n}`)
      .join(', ');
    console.log(
      `${String(nodes).padStart(4)} nodes: storm ${r.stormCallsPerAlarm.toFixed(2)} calls/alarm in ${(r.stormMs / 1000).toFixed(2)} s wall (${top}); drained by ${r.rechecks} re-checks (${r.recheckCalls} calls, ${(r.recheckCalls / nodes).toFixed(1)} per node); at most ${r.maxRunning} running; every node remediated once, queue oldest first`,
    );
  }
  // A started alarm costs more calls than a queued one, so a small fleet (half its alarms start)
  // averages differently from a large one (almost all queue): "constant" is a bound that does not
  // move with the fleet, checked between the two largest sizes and against a fixed ceiling.
  console.log(`calls per alarm in the storm: ${perAlarm.map((x) => x.toFixed(2)).join(', ')}`);
  const [a, b] = perAlarm.slice(-2);
  if (a !== undefined && b !== undefined && Math.abs(b - a) > 0.1 * a)
    throw new Error(`calls per alarm grow with the fleet: ${perAlarm.join(', ')}`);
  if (Math.max(...perAlarm) > 20) throw new Error(`more than 20 calls per alarm: ${perAlarm.join(', ')}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
