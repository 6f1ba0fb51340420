/**
 * A fleet of 200 nodes, synthesized once (with cdk-nag: an unacknowledged finding makes the synth
 * throw) and reused by every assertion: stacks within CloudFormation's limits with margin, the
 * budgeted resources, the three fixed exports, the dashboards, and cfn-lint clean on every template
 * in one invocation (started as soon as the templates exist, while the other tests run). Growth
 * (a 201st node) is checked on the construct tree of a second app, not synthesized: each node's
 * stack and logical IDs come from the tree alone. The shard rule's bad input (a move, a full
 * shard) is checked on the pure functions, the configuration and bin/app.ts.
 * The 500-node figures are `npm run bench -- fleet` (bench/fleet.ts).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, nodeStackResourceCount, resolveConfig, stackResourceCount } from '../lib/config';
import { DASHBOARD_LIMITS } from '../lib/disk-dashboard';
import { addDiskStacks, type DiskStacks } from '../lib/disk-stacks';
import {
  fnv1a32,
  MAX_NODES_IN_SHARED_STACK,
  MAX_NODES_IN_SHARED_STACK_ALLOWED,
  MAX_NODES_PER_NODE_STACK,
  nodesByShard,
  shardLockProblems,
  shardOf,
  updatedShardLock,
} from '../lib/fleet-shards';
import {
  CDK_JSON_CONTEXT,
  type FleetSynthResult,
  generatedFleetConfig,
  generatedNode,
  MAX_RESOURCES,
  MAX_TEMPLATE_BYTES,
  synthFleet,
} from './support/fleet-synth';

const FLEET = 200;

interface Placement {
  readonly stack: string;
  readonly logicalIds: readonly string[];
}

/** Each node's stack and the logical IDs of its resources, by node name, from the construct tree. */
function nodePlacement(stacks: DiskStacks): Map<string, Placement> {
  const out = new Map<string, Placement>();
  for (const stack of [stacks.shared, ...stacks.nodeStacks]) {
    for (const node of stack.nodes) {
      const ids = node.node
        .findAll()
        .filter((c) => (c as { cfnResourceType?: string }).cfnResourceType !== undefined)
        .map((c) => stack.getLogicalId(c as never))
        .sort();
      out.set(node.nodeName, { stack: stack.stackName, logicalIds: ids });
    }
  }
  return out;
}

/** The stacks of a configuration as bin/app.ts builds them, not synthesized. */
function buildStacks(raw: Record<string, unknown>): DiskStacks {
  const app = new App({
    context: { ...CDK_JSON_CONTEXT, stemedb: undefined, 'aws:cdk:bundling-stacks': [] },
  });
  return addDiskStacks(app, resolveConfig(raw));
}

interface LintResult {
  readonly status: number | null;
  readonly output: string;
}

/** cfn-lint on every template in one process, without blocking the tests meanwhile. */
function cfnLint(files: readonly string[]): Promise<LintResult> {
  return new Promise((resolve) => {
    const child = spawn('cfn-lint', ['--format', 'parseable', ...files]);
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.on('error', (err) => resolve({ status: null, output: String(err) }));
    child.on('close', (status) => resolve({ status, output }));
  });
}

/** A dashboard's widgets, from its body (a Fn::Join of strings and the region's Ref). */
function dashboardWidgets(resource: unknown): Array<{ type: string; properties: Record<string, unknown> }> {
  const body = (resource as { Properties: { DashboardBody: unknown } }).Properties.DashboardBody;
  const parts = (body as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1];
  const text = parts.map((p) => (typeof p === 'string' ? p : 'eu-west-1')).join('');
  return (JSON.parse(text) as { widgets: Array<{ type: string; properties: Record<string, unknown> }> })
    .widgets;
}

describe(`a fleet of ${FLEET} nodes`, () => {
  let fleet: FleetSynthResult;
  let lint: Promise<LintResult>;
  const template = (name: string) => fleet.figures.find((f) => f.stackName === name)?.template ?? {};
  const resourcesOf = (name: string, type: string) =>
    Object.values((template(name).Resources ?? {}) as Record<string, { Type: string }>).filter(
      (r) => r.Type === type,
    );
  beforeAll(() => {
    fleet = synthFleet(generatedFleetConfig(FLEET));
    lint = cfnLint(fleet.figures.map((f) => f.templateFile));
  }, 300_000);
  afterAll(async () => {
    await lint;
    fleet?.cleanup();
  });

  it('synthesizes the shared stack and one stack per shard, with zero unacknowledged cdk-nag findings', () => {
    const shards = fleet.config.fleet.shards;
    expect(fleet.figures.map((f) => f.stackName).sort()).toEqual(
      ['StemeDB-Disk', ...Array.from({ length: shards }, (_, i) => `StemeDB-Disk-Nodes-${i + 1}`)].sort(),
    );
    expect([...nodePlacement(fleet.stacks).keys()]).toHaveLength(FLEET);
  });

  it(`keeps every stack under ${MAX_RESOURCES} resources and ${MAX_TEMPLATE_BYTES / 1024} KB`, () => {
    for (const f of fleet.figures) {
      expect(f.resources, f.stackName).toBeLessThanOrEqual(MAX_RESOURCES);
      expect(f.templateBytes, f.stackName).toBeLessThanOrEqual(MAX_TEMPLATE_BYTES);
    }
  });

  it('holds exactly the resources the configuration budgets, per stack', () => {
    const byShard = nodesByShard(fleet.config.nodes, fleet.config.fleet.shards);
    const count = (name: string) => fleet.figures.find((f) => f.stackName === name)?.resources;
    // One more than the budget in each: the CDKMetadata resource the CLI adds (and CloudFormation counts).
    expect(count('StemeDB-Disk')).toBe(stackResourceCount(fleet.config) + 1);
    for (const [shard, nodes] of byShard) {
      if (shard === 0) continue;
      expect(count(`StemeDB-Disk-Nodes-${shard}`)).toBe(nodeStackResourceCount(nodes) + 1);
    }
  });

  it('imports only the three fixed exports of the shared stack in every node stack', () => {
    const imports = new Set<string>();
    for (const f of fleet.figures.filter((x) => x.stackName !== 'StemeDB-Disk')) {
      for (const m of JSON.stringify(f.template).matchAll(/"Fn::ImportValue":"([^"]+)"/g))
        imports.add(m[1] ?? '');
      expect(JSON.stringify(f.template)).not.toMatch(/Fn::GetStackOutput/);
    }
    expect([...imports].sort()).toEqual([
      'StemeDB-Disk-KeyArn',
      'StemeDB-Disk-NotificationTopicArn',
      'StemeDB-Disk-WalArchiveBucketArn',
    ]);
    const outputs = template('StemeDB-Disk').Outputs as Record<string, { Export?: { Name: string } }>;
    const exported = Object.values(outputs).map((o) => o.Export?.Name);
    for (const name of imports) expect(exported).toContain(name);
  });

  it("gives every node stack's volumes and alarms what the shared automation acts on: the node and deployment tags, the shared topic", () => {
    for (const f of fleet.figures.filter((x) => x.stackName !== 'StemeDB-Disk')) {
      for (const v of resourcesOf(f.stackName, 'AWS::EC2::Volume') as unknown as Array<{
        Properties: { Tags: Array<{ Key: string; Value: string }>; KmsKeyId: unknown };
      }>) {
        const tags = Object.fromEntries(v.Properties.Tags.map((t) => [t.Key, t.Value]));
        expect(tags).toMatchObject({ 'stemedb:managed': 'true', 'stemedb:deployment': 'StemeDB' });
        expect(tags['stemedb:node']).toMatch(/^db-\d+$/);
        expect(v.Properties.KmsKeyId).toEqual({ 'Fn::ImportValue': 'StemeDB-Disk-KeyArn' });
      }
      for (const a of resourcesOf(f.stackName, 'AWS::CloudWatch::Alarm') as unknown as Array<{
        Properties: { AlarmActions: unknown[] };
      }>) {
        expect(a.Properties.AlarmActions).toEqual([
          { 'Fn::ImportValue': 'StemeDB-Disk-NotificationTopicArn' },
        ]);
      }
    }
  });

  it('grants EC2 the volume encryption in the key policy once, for the volumes of the node stacks', () => {
    const [key] = resourcesOf('StemeDB-Disk', 'AWS::KMS::Key') as unknown as Array<{
      Properties: { KeyPolicy: { Statement: Array<{ Action: string[]; Condition?: unknown }> } };
    }>;
    const grants = key?.Properties.KeyPolicy.Statement.filter((st) =>
      JSON.stringify(st).includes('kms:GenerateDataKeyWithoutPlainText'),
    );
    expect(grants).toHaveLength(1);
    expect(JSON.stringify(grants)).toContain('kms:ViaService');
  });

  it('ranks the worst nodes of every namespace on the fleet overview, with a fixed handful of widgets', () => {
    const [fleetDashboard] = (
      resourcesOf('StemeDB-Disk', 'AWS::CloudWatch::Dashboard') as unknown as Array<{
        Properties: { DashboardName: string };
      }>
    ).filter((d) => d.Properties.DashboardName === 'StemeDB-disk-fleet');
    const widgets = dashboardWidgets(fleetDashboard);
    expect(widgets).toHaveLength(5);
    const text = JSON.stringify(widgets);
    expect(text).toContain(
      `SORT(100 - SEARCH('\\"CWAgent/StemeDB\\" MetricName=\\"disk_used_percent\\" path=\\"/data\\"', 'Maximum', 300), MIN, ASC, 20)`,
    );
    expect(text).toContain('StemeDB-disk-shard-1');
    expect(text).not.toContain('db-1');
  });

  it("draws each node stack's nodes on its own shard dashboard, within CloudWatch's widget and metric limits", () => {
    for (const stack of fleet.stacks.nodeStacks) {
      const [dashboard] = resourcesOf(stack.stackName, 'AWS::CloudWatch::Dashboard');
      const widgets = dashboardWidgets(dashboard);
      expect(widgets.length).toBeLessThanOrEqual(DASHBOARD_LIMITS.widgetsPerDashboard);
      const titles = widgets.map((w) => String(w.properties.title ?? ''));
      for (const node of stack.nodes) expect(titles).toContain(`${node.nodeName}: free space %`);
    }
  });

  it("lets the operator policy read the fleet overview and every shard's dashboard", () => {
    const policies = resourcesOf('StemeDB-Disk', 'AWS::IAM::ManagedPolicy') as unknown as Array<{
      Properties: {
        ManagedPolicyName: string;
        PolicyDocument: { Statement: Array<{ Sid?: string; Resource: unknown }> };
      };
    }>;
    const operator = policies.find((p) => p.Properties.ManagedPolicyName === 'StemeDB-operator');
    const read = operator?.Properties.PolicyDocument.Statement.find((st) => st.Sid === 'ReadDashboard');
    const text = JSON.stringify(read?.Resource);
    for (const name of [
      'StemeDB-disk-fleet',
      ...fleet.stacks.nodeStacks.map((_, i) => `StemeDB-disk-shard-${i + 1}`),
    ]) {
      expect(text).toContain(`:dashboard/${name}"`);
    }
  });

  it('keeps every existing node in its stack, under the same logical IDs, when a node is added', () => {
    const raw = generatedFleetConfig(FLEET);
    const grown = buildStacks({ ...raw, nodes: [...(raw.nodes as object[]), generatedNode(FLEET + 1)] });
    const before = nodePlacement(fleet.stacks);
    const after = nodePlacement(grown);
    expect(after.size).toBe(FLEET + 1);
    for (const [name, placement] of before) expect(after.get(name), name).toEqual(placement);
    // Only the new node's stack gains a node; every other stack holds the same nodes as before.
    const members = (stacks: DiskStacks) =>
      new Map(
        [stacks.shared, ...stacks.nodeStacks].map((st) => [st.stackName, st.nodes.map((n) => n.nodeName)]),
      );
    const [was, is] = [members(fleet.stacks), members(grown)];
    const newStack = after.get(`db-${FLEET + 1}`)?.stack ?? '';
    for (const [stack, names] of is) {
      expect(names, stack).toEqual(
        stack === newStack ? [...(was.get(stack) ?? []), `db-${FLEET + 1}`] : was.get(stack),
      );
    }
  });

  it('passes cfn-lint with zero errors and zero warnings on every template (one cfn-lint process)', async () => {
    const r = await lint;
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  }, 600_000);
});

describe('shard assignment', () => {
  const nodes = Array.from({ length: 40 }, (_, i) => ({ name: `db-${i + 1}` }));

  it('hashes a node name the same on every machine (FNV-1a 32 bit reference values)', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });

  it('puts every node in the shared stack while fleet.shards is 0, and an explicit shard wins', () => {
    expect(nodes.every((n) => shardOf(n, 0) === 0)).toBe(true);
    expect(shardOf({ name: 'db-1', shard: 3 }, 4)).toBe(3);
    expect(shardOf({ name: 'db-1', shard: 0 }, 4)).toBe(0);
  });

  it("derives a node's shard from its own name only: adding nodes never changes another's", () => {
    const before = nodes.map((n) => shardOf(n, 8));
    const more = [...nodes, ...Array.from({ length: 100 }, (_, i) => ({ name: `new-${i}` }))];
    expect(more.slice(0, nodes.length).map((n) => shardOf(n, 8))).toEqual(before);
    expect(new Set(before).size).toBeGreaterThan(1);
    expect(before.every((s) => s >= 1 && s <= 8)).toBe(true);
  });

  it('refuses, naming the node, a configuration that would move a locked node (fleet.shards changed)', () => {
    const lock = updatedShardLock(nodes, 0, {});
    expect(shardLockProblems(nodes, 0, 'StemeDB', lock)).toEqual([]);
    const moves = shardLockProblems(nodes, 4, 'StemeDB', lock);
    expect(moves).toHaveLength(nodes.length);
    expect(moves[0]).toMatch(
      /^node db-1 would move from shard 0 \(StemeDB-Disk\) to shard \d \(StemeDB-Disk-Nodes-\d\): moving a node between stacks replaces its data volume; pin it with "shard": 0/,
    );
    // Pinned to where the lock has them, they stay.
    expect(
      shardLockProblems(
        nodes.map((n) => ({ ...n, shard: 0 })),
        4,
        'StemeDB',
        lock,
      ),
    ).toEqual([]);
  });

  it('refuses, naming the node, an explicit shard that differs from the lock', () => {
    const lock = { 'db-7': 2 };
    expect(shardLockProblems([{ name: 'db-7', shard: 3 }], 4, 'StemeDB', lock)).toEqual([
      'node db-7 would move from shard 2 (StemeDB-Disk-Nodes-2) to shard 3 (StemeDB-Disk-Nodes-3): moving a node between stacks replaces its data volume; pin it with "shard": 2, or restore fleet.shards',
    ]);
  });

  it('keeps removed nodes in the lock and adds new ones, never changing an entry', () => {
    const lock = updatedShardLock([{ name: 'db-2' }], 4, { 'db-1': 3 });
    expect(lock).toEqual({ 'db-1': 3, 'db-2': shardOf({ name: 'db-2' }, 4) });
    expect(updatedShardLock([{ name: 'db-1' }], 4, lock)).toEqual(lock);
  });
});

describe('shard capacity in the configuration', () => {
  const config = (count: number, extra: Record<string, unknown> = {}) => ({
    ...generatedFleetConfig(count, 0),
    ...extra,
  });

  it(`refuses more than ${MAX_NODES_IN_SHARED_STACK} nodes in the shared stack, naming the shard, its nodes and the limit`, () => {
    expect(() => resolveConfig(config(MAX_NODES_IN_SHARED_STACK))).not.toThrow();
    expect(() => resolveConfig(config(MAX_NODES_IN_SHARED_STACK + 1))).toThrow(
      new RegExp(
        `shard 0 \\(stack StemeDB-Disk\\) has ${MAX_NODES_IN_SHARED_STACK + 1} nodes \\(db-1, db-2, .*db-${MAX_NODES_IN_SHARED_STACK + 1}\\); the shared stack holds at most ${MAX_NODES_IN_SHARED_STACK} nodes: give new nodes an explicit "shard" with room, or set fleet.shards`,
      ),
    );
  });

  it(`keeps up to ${MAX_NODES_IN_SHARED_STACK_ALLOWED} deployed nodes in the shared stack with fleet.sharedStackNodes (an upgrade from one stack), no more`, () => {
    expect(() => resolveConfig(config(MAX_NODES_IN_SHARED_STACK + 1))).toThrow(
      /a deployment from before shards keeps its deployed nodes in place with fleet.sharedStackNodes \(up to 30\)/,
    );
    const upgraded = resolveConfig(config(24, { fleet: { sharedStackNodes: 24 } }));
    expect(upgraded.fleet).toEqual({ shards: 0, sharedStackNodes: 24 });
    expect(() => resolveConfig(config(25, { fleet: { sharedStackNodes: 24 } }))).toThrow(
      /shard 0 \(stack StemeDB-Disk\) has 25 nodes .*the shared stack holds at most 24 nodes/,
    );
    for (const bad of [0, 31, 16.5, '20'])
      expect(() => resolveConfig(config(2, { fleet: { sharedStackNodes: bad } }))).toThrow(
        /fleet.sharedStackNodes .*expected a whole number of nodes from 1 to 30/,
      );
  });

  it(`refuses more than ${MAX_NODES_PER_NODE_STACK} nodes in one node stack, naming it`, () => {
    const raw = generatedFleetConfig(MAX_NODES_PER_NODE_STACK + 1, 2);
    const pinned = { ...raw, nodes: (raw.nodes as object[]).map((n) => ({ ...n, shard: 2 })) };
    expect(() => resolveConfig(pinned)).toThrow(
      /shard 2 \(stack StemeDB-Disk-Nodes-2\) has 31 nodes \(db-1, .*db-31\); a node stack holds at most 30 nodes/,
    );
  });

  it('refuses a shard outside 0..fleet.shards and a fleet.shards out of range, naming the key', () => {
    const raw = generatedFleetConfig(2, 2);
    const nodes = raw.nodes as object[];
    expect(() => resolveConfig({ ...raw, nodes: [{ ...nodes[0], shard: 3 }, nodes[1]] })).toThrow(
      /nodes\[0\]\.shard is 3; expected a whole number from 0 \(the shared stack\) to fleet.shards \(2\)/,
    );
    expect(() => resolveConfig({ ...raw, fleet: { shards: 65 } })).toThrow(
      /fleet.shards is 65; expected a whole number/,
    );
    expect(() => resolveConfig({ ...raw, fleet: { stacks: 2 } })).toThrow(ConfigError);
  });
});

describe('the shard lock in bin/app.ts (-c stemedbShardLock=FILE)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stemedb-shard-lock-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const cdkJson = JSON.parse(readFileSync(join(__dirname, '..', 'cdk.json'), 'utf8')) as {
    context: Record<string, unknown>;
  };

  /** Runs the app as the CDK CLI does (context in CDK_CONTEXT_JSON), Lambda bundling skipped. */
  function runApp(stemedb: Record<string, unknown>, lock: string) {
    const context = {
      ...cdkJson.context,
      stemedb,
      stemedbShardLock: lock,
      'aws:cdk:bundling-stacks': [],
    };
    return spawnSync(
      join(__dirname, '..', 'node_modules', '.bin', 'tsx'),
      [join(__dirname, '..', 'bin', 'app.ts')],
      {
        encoding: 'utf8',
        env: {
          ...process.env,
          CDK_CONTEXT_JSON: JSON.stringify(context),
          CDK_OUTDIR: mkdtempSync(join(dir, 'out-')),
        },
        timeout: 300_000,
      },
    );
  }

  it('refuses a configuration that moves a locked node, naming it, and leaves the lock as it was', () => {
    const lock = join(dir, 'moved.json');
    writeFileSync(lock, '{\n  "db-1": 0\n}\n');
    const r = runApp({ ...generatedFleetConfig(1, 2), nodes: [{ ...generatedNode(1), shard: 2 }] }, lock);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /node db-1 would move from shard 0 \(StemeDB-Disk\) to shard 2 \(StemeDB-Disk-Nodes-2\)/,
    );
    expect(readFileSync(lock, 'utf8')).toBe('{\n  "db-1": 0\n}\n');
  });

  it('refuses a lock file that is not node → shard, naming the file', () => {
    const lock = join(dir, 'bad.json');
    writeFileSync(lock, '{"db-1": "two"}');
    const r = runApp(generatedFleetConfig(1), lock);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      `shard lock ${lock}: node db-1 has shard "two"; expected a whole number from 0 to 64`,
    );
  });

  it('records new nodes in the lock (a missing file is an empty lock) and synthesizes', () => {
    const lock = join(dir, 'new.json');
    const r = runApp(generatedFleetConfig(2), lock);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(readFileSync(lock, 'utf8'))).toEqual({ 'db-1': 0, 'db-2': 0 });
  }, 300_000);
});
