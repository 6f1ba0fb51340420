/**
 * The router's lock table (DynamoDB, partition key `pk`, TTL attribute `expiresAt`): the reads and
 * conditional writes behind "at most one remediation per node" and the fleet-wide limit
 * (`remediation.maxConcurrent`). The decisions over what is read are in ./routing-policy.ts
 * ({@link lockVerdict}, {@link freeSlot}, {@link slotRelease}); this module only reads and writes.
 *
 * Records: `node#<node>` (the node's lock) and `slot#<i>` (one per concurrent remediation), each
 * `{ holder, node, expiresAt, executionId? }`. Taking one is a PutItem conditioned on the record
 * being absent or past its lease, so of two invocations racing for the same node or slot exactly
 * one wins (the other gets ConditionalCheckFailedException) and no reserved concurrency is needed.
 * Every later write (confirm, release) is conditioned on `holder`, so a record someone else took
 * over after a lease ran out is never touched.
 */
import {
  type AttributeValue,
  BatchGetItemCommand,
  DeleteItemCommand,
  type DynamoDBClient,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { type RetryOptions, unlessAwsError, withThrottlingRetry } from './retry';
import type { LockRecord } from './routing-policy';

export interface LockTable {
  readonly client: DynamoDBClient;
  readonly tableName: string;
  readonly retry?: RetryOptions;
}

function recordOf(item: Record<string, AttributeValue>): LockRecord | undefined {
  const key = item.pk?.S;
  const holder = item.holder?.S;
  const node = item.node?.S;
  const expiresAt = Number(item.expiresAt?.N);
  if (key === undefined || holder === undefined || node === undefined || !Number.isFinite(expiresAt)) {
    return undefined;
  }
  return { key, holder, node, expiresAt, executionId: item.executionId?.S };
}

/**
 * Reads `keys` (at most 100) in one BatchGetItem, strongly consistent; keys AWS returns as
 * unprocessed are asked again (bounded). A record that does not parse is treated as absent.
 */
export async function readLocks(table: LockTable, keys: readonly string[]): Promise<LockRecord[]> {
  const records: LockRecord[] = [];
  let pending: Record<string, AttributeValue>[] = keys.map((k) => ({ pk: { S: k } }));
  for (let round = 0; round < 5 && pending.length > 0; round++) {
    const out = await withThrottlingRetry(
      () =>
        table.client.send(
          new BatchGetItemCommand({
            RequestItems: { [table.tableName]: { Keys: pending, ConsistentRead: true } },
          }),
        ),
      table.retry,
    );
    for (const item of out.Responses?.[table.tableName] ?? []) {
      const r = recordOf(item);
      if (r !== undefined) records.push(r);
    }
    pending = out.UnprocessedKeys?.[table.tableName]?.Keys ?? [];
  }
  if (pending.length > 0) {
    throw Object.assign(new Error(`BatchGetItem left ${pending.length} lock records unprocessed`), {
      name: 'ThrottlingException',
    });
  }
  return records;
}

/** Takes `key` for `holder` unless someone holds it at `nowSeconds`; false when someone does. */
export function takeLock(table: LockTable, record: LockRecord, nowSeconds: number): Promise<boolean> {
  return unlessAwsError('ConditionalCheckFailedException', false, async () => {
    await withThrottlingRetry(
      () =>
        table.client.send(
          new PutItemCommand({
            TableName: table.tableName,
            Item: {
              pk: { S: record.key },
              holder: { S: record.holder },
              node: { S: record.node },
              expiresAt: { N: String(record.expiresAt) },
            },
            ConditionExpression: 'attribute_not_exists(pk) OR expiresAt < :now',
            ExpressionAttributeValues: { ':now': { N: String(nowSeconds) } },
          }),
        ),
      table.retry,
    );
    return true;
  });
}

/** Records the started execution on a record `holder` holds, with the run lease. */
export async function confirmLock(
  table: LockTable,
  key: string,
  holder: string,
  executionId: string,
  expiresAt: number,
): Promise<void> {
  await withThrottlingRetry(
    () =>
      table.client.send(
        new UpdateItemCommand({
          TableName: table.tableName,
          Key: { pk: { S: key } },
          UpdateExpression: 'SET executionId = :e, expiresAt = :x',
          ConditionExpression: 'holder = :h',
          ExpressionAttributeValues: {
            ':e': { S: executionId },
            ':x': { N: String(expiresAt) },
            ':h': { S: holder },
          },
        }),
      ),
    table.retry,
  );
}

/** Frees a record if `holder` still holds it (a record someone else took is left alone). */
export function releaseLock(table: LockTable, key: string, holder: string): Promise<boolean> {
  return unlessAwsError('ConditionalCheckFailedException', false, async () => {
    await withThrottlingRetry(
      () =>
        table.client.send(
          new DeleteItemCommand({
            TableName: table.tableName,
            Key: { pk: { S: key } },
            ConditionExpression: 'holder = :h',
            ExpressionAttributeValues: { ':h': { S: holder } },
          }),
        ),
      table.retry,
    );
    return true;
  });
}
