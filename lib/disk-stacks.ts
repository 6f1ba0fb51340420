import type { App } from 'aws-cdk-lib';
import type { StemeDbConfig } from './config';
import { nodesByShard, shardStackName } from './fleet-shards';
import { StemeDbDiskStack } from './stemedb-disk-stack';
import { StemeDbNodeStack } from './stemedb-node-stack';

export interface DiskStacks {
  /** `<prefix>-Disk`: shared resources and the nodes of shard 0. */
  readonly shared: StemeDbDiskStack;
  /** `<prefix>-Disk-Nodes-1..fleet.shards`, in shard order (one per shard, empty ones too). */
  readonly nodeStacks: readonly StemeDbNodeStack[];
}

/**
 * Every stack of the deployment, as `cdk deploy --all` deploys them: the shared stack, and one node
 * stack per shard 1..`fleet.shards` (every shard gets its stack even while it has no node, so the
 * set of stacks depends on `fleet.shards` alone). Node stacks import the shared stack's three
 * fixed exports (key, topic, archive bucket) and are deployed after it; adding a node never
 * changes an export.
 * Templates are written without indentation (`suppressTemplateIndentation`): a third of the size.
 */
export function addDiskStacks(app: App, config: StemeDbConfig): DiskStacks {
  const { prefix } = config;
  const shared = new StemeDbDiskStack(app, shardStackName(prefix, 0), {
    config,
    description: `${prefix} disk-full automation: data volumes, alarms, runbook automations`,
    suppressTemplateIndentation: true,
    // Environment-agnostic: deploys to the account and region of the credentials in use, and the
    // synthesized template (and its IAM ARNs) is the same on every machine.
  });
  const byShard = nodesByShard(config.nodes, config.fleet.shards);
  const nodeStacks: StemeDbNodeStack[] = [];
  for (let shard = 1; shard <= config.fleet.shards; shard++) {
    const stack = new StemeDbNodeStack(app, shardStackName(prefix, shard), {
      config,
      shard,
      nodes: byShard.get(shard) ?? [],
      agentInstalledBy: shared.agent,
      description: `${prefix} disk-full automation: nodes of shard ${shard} (volumes, alarms, agent configuration, registry)`,
      suppressTemplateIndentation: true,
    });
    stack.addStackDependency(shared);
    nodeStacks.push(stack);
  }
  return { shared, nodeStacks };
}
