/**
 * A fleet of 200 nodes, synthesized once (with cdk-nag: an unacknowledged finding makes the synth
 * throw) and reused by every assertion: stacks within CloudFormation's limits with margin,
 * cfn-lint clean on every template in one invocation, and every node kept in its stack, under the
 * same logical IDs, when a node is added (a second synth, of 201 nodes). The shard rule's bad
 * input (a move, a full shard) is checked on the pure functions and the configuration.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, nodeStackResourceCount, resolveConfig, stackResourceCount } from '../lib/config';
import {
  fnv1a32,
  MAX_NODES_IN_SHARED_STACK,
  MAX_NODES_PER_NODE_STACK,
  nodesByShard,
  shardLockProblems,
  shardOf,
  updatedShardLock,
} from '../lib/fleet-shards';
import {
  type FleetSynthResult,
  generatedFleetConfig,
  generatedNode,
  synthFleet,
} from './support/fleet-synth';

const FLEET = 200;
const MAX_RESOURCES = 450;
const MAX_TEMPLATE_BYTES = 800 * 1024;

/** Logical IDs of each node's resources, by node name, and the stack that holds them. */
function nodePlacement(r: FleetSynthResult): Map<string, { stack: string; logicalIds: string[] }> {
  const out = new Map<string, { stack: string; logicalIds: string[] }>();
  for (const stack of [r.stacks.shared, ...r.stacks.nodeStacks]) {
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

describe(`a fleet of ${FLEET} nodes`, () => {
  let fleet: FleetSynthResult;
  let grown: FleetSynthResult;
  beforeAll(() => {
    fleet = synthFleet(generatedFleetConfig(FLEET));
    const raw = generatedFleetConfig(FLEET);
    grown = synthFleet({ ...raw, nodes: [...(raw.nodes as object[]), generatedNode(FLEET + 1)] });
  }, 900_000);
  afterAll(() => {
    fleet?.cleanup();
    grown?.cleanup();
  });

  it('synthesizes the shared stack and one stack per shard, with zero unacknowledged cdk-nag findings', () => {
    const shards = fleet.config.fleet.shards;
    expect(fleet.figures.map((f) => f.stackName).sort()).toEqual(
      ['StemeDB-Disk', ...Array.from({ length: shards }, (_, i) => `StemeDB-Disk-Nodes-${i + 1}`)].sort(),
    );
    const placed = [...nodePlacement(fleet).keys()];
    expect(placed).toHaveLength(FLEET);
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
    const outputs = fleet.figures.find((f) => f.stackName === 'StemeDB-Disk')?.template.Outputs as Record<
      string,
      { Export?: { Name: string } }
    >;
    expect(
      Object.values(outputs)
        .map((o) => o.Export?.Name)
        .filter((n) => n !== undefined)
        .sort(),
    ).toEqual([...imports].sort());
  });

  it('keeps every existing node in its stack, under the same logical IDs, when a node is added', () => {
    const before = nodePlacement(fleet);
    const after = nodePlacement(grown);
    expect(after.size).toBe(FLEET + 1);
    for (const [name, placement] of before) expect(after.get(name), name).toEqual(placement);
    // Only the new node's shard stack and the shared stack (agent installation targets) change.
    const changed = grown.figures
      .filter(
        (g) =>
          JSON.stringify(g.template) !==
          JSON.stringify(fleet.figures.find((f) => f.stackName === g.stackName)?.template),
      )
      .map((g) => g.stackName);
    expect(changed.sort()).toEqual(['StemeDB-Disk', after.get(`db-${FLEET + 1}`)?.stack].sort());
  });

  it('passes cfn-lint with zero errors and zero warnings on every template', () => {
    const lint = spawnSync(
      'cfn-lint',
      ['--format', 'parseable', ...fleet.figures.map((f) => f.templateFile)],
      {
        encoding: 'utf8',
        timeout: 600_000,
      },
    );
    expect(lint.stdout + lint.stderr).toBe('');
    expect(lint.status).toBe(0);
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
      /shard 0 \(stack StemeDB-Disk\) has 21 nodes \(db-1, db-2, .*db-21\); the shared stack holds at most 20 nodes: give new nodes an explicit "shard" with room, or set fleet.shards/,
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
