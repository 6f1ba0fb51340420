/**
 * The router's lock table (DynamoDB, partition key `pk`, TTL attribute `expiresAt`): the reads and
 * conditional writes behind "at most one remediation per node" and the fleet-wide limit
 * (`remediation.maxConcurrent`). The decisions over what is read are in ./routing-policy.ts
 * ({@link lockVerdict}, {@link freeSlot}, {@link slotRelease}); this module only reads and writes.
 *
 * Records: `node#<node>` (the node's lock) and `slot#<i>` (one per concurrent remediation), each
 * `{ holder, node, expiresAt, executionId?, documentName? }`. Taking one is a PutItem conditioned on the record
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

/** Sends one request to the table, retrying throttling as `table.retry` says. */
function sendToTable<T>(table: LockTable, send: (client: DynamoDBClient) => Promise<T>): Promise<T> {
  return withThrottlingRetry(() => send(table.client), table.retry);
}

/** Makes a conditional write: true when it was made, false when its condition failed. */
function conditionalWrite(
  table: LockTable,
  write: (client: DynamoDBClient) => Promise<unknown>,
): Promise<boolean> {
  return unlessAwsError('ConditionalCheckFailedException', false, async () => {
    await sendToTable(table, write);
    return true;
  });
}

/**
 * The table, key, condition and values of a write to record `key` that is made only while
 * `holder` holds it (every write after the take: confirm, release).
 */
function whileHeld(
  table: LockTable,
  key: string,
  holder: string,
  values: Record<string, AttributeValue> = {},
): {
  readonly TableName: string;
  readonly Key: Record<string, AttributeValue>;
  readonly ConditionExpression: string;
  readonly ExpressionAttributeValues: Record<string, AttributeValue>;
} {
  return {
    TableName: table.tableName,
    Key: { pk: { S: key } },
    ConditionExpression: 'holder = :h',
    ExpressionAttributeValues: { ...values, ':h': { S: holder } },
  };
}

function recordOf(item: Record<string, AttributeValue>): LockRecord | undefined {
  const key = item.pk?.S;
  const holder = item.holder?.S;
  const node = item.node?.S;
  const expiresAt = Number(item.expiresAt?.N);
  if (key === undefined || holder === undefined || node === undefined || !Number.isFinite(expiresAt)) {
    return undefined;
  }
  return {
    key,
    holder,
    node,
    expiresAt,
    executionId: item.executionId?.S,
    documentName: item.documentName?.S,
  };
}

/**
 * Reads `keys` (at most 100) in one BatchGetItem, strongly consistent; keys AWS returns as
 * unprocessed are asked again (bounded). A record that does not parse is treated as absent.
 */
export async function readLocks(table: LockTable, keys: readonly string[]): Promise<LockRecord[]> {
  const records: LockRecord[] = [];
  let pending: Record<string, AttributeValue>[] = keys.map((k) => ({ pk: { S: k } }));
  for (let round = 0; round < 5 && pending.length > 0; round++) {
    const out = await sendToTable(table, (client) =>
      client.send(
        new BatchGetItemCommand({
          RequestItems: { [table.tableName]: { Keys: pending, ConsistentRead: true } },
        }),
      ),
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
  return conditionalWrite(table, (client) =>
    client.send(
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
  );
}

/** Records the started execution (and its document) on a record `holder` holds, with the run lease. */
export async function confirmLock(
  table: LockTable,
  key: string,
  holder: string,
  execution: { readonly executionId: string; readonly documentName: string },
  expiresAt: number,
): Promise<void> {
  await sendToTable(table, (client) =>
    client.send(
      new UpdateItemCommand({
        ...whileHeld(table, key, holder, {
          ':e': { S: execution.executionId },
          ':d': { S: execution.documentName },
          ':x': { N: String(expiresAt) },
        }),
        UpdateExpression: 'SET executionId = :e, documentName = :d, expiresAt = :x',
      }),
    ),
  );
}

/** Frees a record if `holder` still holds it (a record someone else took is left alone). */
export function releaseLock(table: LockTable, key: string, holder: string): Promise<boolean> {
  return conditionalWrite(table, (client) =>
    client.send(new DeleteItemCommand(whileHeld(table, key, holder))),
  );
}
