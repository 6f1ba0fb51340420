/**
 * The router's lock-table writes (lambda/shared/remediation-locks.ts) against a real DynamoDB
 * (moto_server on 127.0.0.1): the conditional PutItem that takes a lock, the holder-conditioned
 * UpdateItem and DeleteItem, and BatchGetItem — the same expressions test/support/lock-table-fake.ts
 * serves to the unit tests, evaluated here by DynamoDB's own condition engine.
 */
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  confirmLock,
  type LockTable,
  readLocks,
  releaseLock,
  takeLock,
} from '../lambda/shared/remediation-locks';
import { type MotoServer, startMotoServer, TEST_REGION } from './support/moto-server';

const NOW = 1_714_564_800;
let moto: MotoServer | undefined;
let table: LockTable;

beforeAll(async () => {
  // DynamoDB decides each conditional write on an item atomically; moto's threaded server does
  // not (two of the eight concurrent takers below could both pass its check), so one at a time.
  moto = await startMotoServer({ oneRequestAtATime: true });
  const client = new DynamoDBClient({
    endpoint: moto.endpoint,
    region: TEST_REGION,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
  await client.send(
    new CreateTableCommand({
      TableName: 'StemeDB-remediation-locks',
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
  table = { client, tableName: 'StemeDB-remediation-locks', retry: { sleep: async () => {} } };
}, 60_000);

afterAll(async () => {
  await moto?.stop();
});

describe('lock table on moto_server', () => {
  it('takes a free lock once: the second taker loses while the lease holds', async () => {
    const lock = { key: 'node#db-1', holder: 'a', node: 'db-1', expiresAt: NOW + 600 };
    expect(await takeLock(table, lock, NOW)).toBe(true);
    expect(await takeLock(table, { ...lock, holder: 'b' }, NOW)).toBe(false);
    expect(await readLocks(table, ['node#db-1', 'slot#0'])).toEqual([{ ...lock, executionId: undefined }]);
  });

  it('concurrent takers of one slot: exactly one wins', async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        takeLock(table, { key: 'slot#3', holder: `h${i}`, node: `db-${i}`, expiresAt: NOW + 600 }, NOW),
      ),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it('takes over a lock whose lease ran out', async () => {
    await takeLock(table, { key: 'node#db-2', holder: 'old', node: 'db-2', expiresAt: NOW - 1 }, NOW - 600);
    expect(
      await takeLock(table, { key: 'node#db-2', holder: 'new', node: 'db-2', expiresAt: NOW + 600 }, NOW),
    ).toBe(true);
    const [record] = await readLocks(table, ['node#db-2']);
    expect(record?.holder).toBe('new');
  });

  it('confirms and releases only for the holder', async () => {
    await takeLock(table, { key: 'slot#5', holder: 'mine', node: 'db-5', expiresAt: NOW + 600 }, NOW);
    const execution = { executionId: 'exec-5', documentName: 'StemeDB-ExpandVolume' };
    await expect(
      confirmLock(table, 'slot#5', 'theirs', { ...execution, executionId: 'exec-x' }, NOW + 3600),
    ).rejects.toThrow();
    await confirmLock(table, 'slot#5', 'mine', execution, NOW + 3600);
    expect(await readLocks(table, ['slot#5'])).toEqual([
      { key: 'slot#5', holder: 'mine', node: 'db-5', expiresAt: NOW + 3600, ...execution },
    ]);
    expect(await releaseLock(table, 'slot#5', 'theirs')).toBe(false);
    expect(await releaseLock(table, 'slot#5', 'mine')).toBe(true);
    expect(await readLocks(table, ['slot#5'])).toEqual([]);
  });
});
