import { Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { NodeConfig, StemeDbConfig } from './config';
import { DiskDashboard } from './disk-dashboard';
import { MAX_NODE_STACKS, MAX_NODES_PER_NODE_STACK, shardDashboardName, shardOf } from './fleet-shards';
import { importSharedResources } from './shared-stack-exports';
import { addStemeDbNodes, type StemeDbNode } from './stemedb-node';

export interface StemeDbNodeStackProps extends StackProps {
  /** The validated configuration (prefix, mount, thresholds, fleet.shards). */
  readonly config: StemeDbConfig;
  /** The shard this stack holds, 1 to `fleet.shards`. */
  readonly shard: number;
  /** The shard's nodes (every one must be of `shard` by lib/fleet-shards.ts). @default none */
  readonly nodes?: readonly NodeConfig[];
  /** What installs the CloudWatch agent (in the shared stack); the nodes' configurations wait for it. @default none */
  readonly agentInstalledBy?: Construct;
}

/**
 * One node stack (`<prefix>-Disk-Nodes-<shard>`): the {@link StemeDbNode}s of one shard and the
 * shard's detail dashboard. It takes from the shared stack only the three fixed exports
 * (key, topic, archive bucket: lib/shared-stack-exports.ts) and a dependency on the agent
 * installer, the same for every shard, so adding a node changes only its own shard's stack.
 * The stack only composes constructs.
 */
export class StemeDbNodeStack extends Stack {
  public readonly shard: number;
  public readonly nodes: readonly StemeDbNode[];

  constructor(scope: Construct, id: string, props: StemeDbNodeStackProps) {
    super(scope, id, props);
    const { config, shard } = props;
    const nodes = props.nodes ?? [];
    const { prefix } = config;
    if (!Number.isInteger(shard) || shard < 1 || shard > Math.min(config.fleet.shards, MAX_NODE_STACKS)) {
      throw new Error(
        `StemeDbNodeStack shard is ${shard}; expected a whole number from 1 to fleet.shards (${config.fleet.shards})`,
      );
    }
    const strangers = nodes.filter((n) => shardOf(n, config.fleet.shards) !== shard);
    if (strangers.length > 0) {
      throw new Error(
        `StemeDbNodeStack nodes of shard ${shard} include ${strangers.map((n) => `${n.name} (shard ${shardOf(n, config.fleet.shards)})`).join(', ')}`,
      );
    }
    if (nodes.length > MAX_NODES_PER_NODE_STACK) {
      throw new Error(
        `StemeDbNodeStack nodes has ${nodes.length} nodes for shard ${shard}; a node stack holds at most ${MAX_NODES_PER_NODE_STACK}`,
      );
    }
    this.shard = shard;
    this.nodes = addStemeDbNodes(
      this,
      nodes,
      config,
      importSharedResources(this, prefix),
      props.agentInstalledBy,
    );
    new DiskDashboard(this, 'Dashboard', {
      prefix,
      dashboardName: shardDashboardName(prefix, shard),
      title: `${prefix} disk, shard ${shard}`,
      thresholds: config.thresholds,
      nodes: this.nodes.map((n) => ({ nodeName: n.nodeName, alarms: n.alarms })),
    });
  }
}
