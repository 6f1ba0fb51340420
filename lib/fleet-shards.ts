/**
 * Which stack each node's resources live in (its shard), and the checks that keep that stable.
 *
 * Shard 0 is the shared stack `<prefix>-Disk` itself (today's single-stack layout: a small fleet
 * keeps its nodes exactly where they were deployed). Shards 1..`fleet.shards` are the node stacks
 * `<prefix>-Disk-Nodes-<shard>`.
 *
 * The rule, per node and independent of every other node (so adding or removing a node never
 * moves another one):
 * - the node's explicit `shard`, when it has one;
 * - else shard 0 when `fleet.shards` is 0 (the default);
 * - else `1 + fnv1a32(name) mod fleet.shards`.
 *
 * `fleet.shards` must not change once node stacks are deployed (it re-hashes every unpinned node);
 * the shard lock (a committed JSON file of node → shard, {@link shardLockProblems}) refuses any
 * configuration that would move a locked node, naming it. Moving a data volume between stacks
 * would replace it (and `Retain` would orphan the old one), so a move is never silent.
 *
 * Pure: no CDK, no I/O (bin/app.ts reads and writes the lock file).
 */

/** The shard that is the shared stack. */
export const SHARED_STACK_SHARD = 0;
/** Most node stacks a deployment may have. */
export const MAX_NODE_STACKS = 64;
/**
 * Most nodes in one node stack: 12 resources and about 13 KB of (unindented) template per node;
 * 30 nodes (every fifth adopting its volume) measured 365 resources and 397,601 bytes with
 * CDKMetadata, well under 450 resources and 800 KB (`npm run bench -- fleet`, test/fleet.test.ts).
 */
export const MAX_NODES_PER_NODE_STACK = 30;
/**
 * Most nodes in the shared stack (shard 0), which also holds the 66 shared resources and their
 * ~540 KB (documents, Lambdas, router, lock table, operator policy, outputs) at about 13.7 KB per
 * node: with every optional shared part (AMP workspace, self-managed Alertmanager, both
 * prevention associations, the fleet dashboard and exports) 18 nodes measured 300 resources and
 * 806,624 bytes, past CDK's template-size warning (80% of 1 MB); 16 stay under it, and under
 * 800 KB (test/stack.test.ts). Main's 36 nodes in one stack were 1,053,224 bytes (over 1 MB).
 */
export const MAX_NODES_IN_SHARED_STACK = 16;
/**
 * The most `fleet.sharedStackNodes` may allow: for a deployment from before shards, whose nodes
 * are all in the one stack and must stay there (moving one replaces its volume). 30 nodes with
 * every optional shared part come to about 975 KB (806,624 bytes at 18, ~14 KB a node) and 444
 * resources: under CloudFormation's 1 MB and 500, past the 800 KB the default keeps.
 */
export const MAX_NODES_IN_SHARED_STACK_ALLOWED = 30;

export interface ShardedNode {
  readonly name: string;
  /** Explicit shard. @default derived from the name ({@link shardOf}) */
  readonly shard?: number;
}

/** FNV-1a, 32 bit: a hash of the node name that is the same on every machine and Node version. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/** The node's shard by the rule above (`shards` is `fleet.shards`). */
export function shardOf(node: ShardedNode, shards: number): number {
  if (node.shard !== undefined) return node.shard;
  if (shards === 0) return SHARED_STACK_SHARD;
  return 1 + (fnv1a32(node.name) % shards);
}

/** The stack that holds shard `shard`'s nodes. */
export function shardStackName(prefix: string, shard: number): string {
  return shard === SHARED_STACK_SHARD ? `${prefix}-Disk` : `${prefix}-Disk-Nodes-${shard}`;
}

/** The detail dashboard of node stack `shard` (the shared stack's is `<prefix>-disk`). */
export function shardDashboardName(prefix: string, shard: number): string {
  return `${prefix}-disk-shard-${shard}`;
}

/** How many nodes the shard's stack holds at most (`sharedStackNodes`: `fleet.sharedStackNodes`). */
export function shardCapacity(shard: number, sharedStackNodes = MAX_NODES_IN_SHARED_STACK): number {
  return shard === SHARED_STACK_SHARD ? sharedStackNodes : MAX_NODES_PER_NODE_STACK;
}

/** Nodes by shard, in configuration order; every shard from 0 to `shards` has an entry. */
export function nodesByShard<N extends ShardedNode>(nodes: readonly N[], shards: number): Map<number, N[]> {
  const out = new Map<number, N[]>();
  for (let s = 0; s <= shards; s++) out.set(s, []);
  for (const node of nodes) out.get(shardOf(node, shards))?.push(node);
  return out;
}

/** A shard over its capacity: one message per full shard, naming it, its nodes and the limit. */
export function shardCapacityProblems(
  nodes: readonly ShardedNode[],
  shards: number,
  prefix: string,
  sharedStackNodes = MAX_NODES_IN_SHARED_STACK,
): string[] {
  const problems: string[] = [];
  for (const [shard, members] of nodesByShard(nodes, shards)) {
    const limit = shardCapacity(shard, sharedStackNodes);
    if (members.length <= limit) continue;
    const what = shard === SHARED_STACK_SHARD ? 'the shared stack' : 'a node stack';
    problems.push(
      `shard ${shard} (stack ${shardStackName(prefix, shard)}) has ${members.length} nodes (${members.map((n) => n.name).join(', ')}); ${what} holds at most ${limit} nodes: give new nodes an explicit "shard" with room${shards === 0 ? ', or set fleet.shards (before deploying the nodes it moves: see README "Fleets and shards")' : ''}${shard === SHARED_STACK_SHARD && limit < MAX_NODES_IN_SHARED_STACK_ALLOWED ? `; a deployment from before shards keeps its deployed nodes in place with fleet.sharedStackNodes (up to ${MAX_NODES_IN_SHARED_STACK_ALLOWED})` : ''}`,
    );
  }
  return problems;
}

/** The committed record of where each deployed node lives: node name → shard. */
export type ShardLock = Readonly<Record<string, number>>;

/**
 * The nodes this configuration would move from the shard the lock records: one message each,
 * naming the node, both shards and both stacks.
 */
export function shardLockProblems(
  nodes: readonly ShardedNode[],
  shards: number,
  prefix: string,
  lock: ShardLock,
): string[] {
  const problems: string[] = [];
  for (const node of nodes) {
    const locked = lock[node.name];
    if (locked === undefined) continue;
    const now = shardOf(node, shards);
    if (now !== locked) {
      problems.push(
        `node ${node.name} would move from shard ${locked} (${shardStackName(prefix, locked)}) to shard ${now} (${shardStackName(prefix, now)}): moving a node between stacks replaces its data volume; pin it with "shard": ${locked}, or restore fleet.shards`,
      );
    }
  }
  return problems;
}

/** Parses a lock file's text; throws an Error naming what is wrong. */
export function parseShardLock(text: string, where: string): ShardLock {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new Error(`shard lock ${where} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`shard lock ${where} must be a JSON object of node name to shard number`);
  }
  for (const [name, shard] of Object.entries(parsed)) {
    if (typeof shard !== 'number' || !Number.isInteger(shard) || shard < 0 || shard > MAX_NODE_STACKS) {
      throw new Error(
        `shard lock ${where}: node ${name} has shard ${JSON.stringify(shard)}; expected a whole number from 0 to ${MAX_NODE_STACKS}`,
      );
    }
  }
  return parsed as ShardLock;
}

/** The lock after this configuration: every locked entry kept (removed nodes too), new nodes added. */
export function updatedShardLock(nodes: readonly ShardedNode[], shards: number, lock: ShardLock): ShardLock {
  const out: Record<string, number> = { ...lock };
  for (const node of nodes) {
    if (out[node.name] === undefined) out[node.name] = shardOf(node, shards);
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}
