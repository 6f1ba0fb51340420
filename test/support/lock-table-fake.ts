/**
 * An in-memory stand-in of the router's DynamoDB lock table for aws-sdk-client-mock: it serves
 * BatchGetItem, PutItem, UpdateItem and DeleteItem with the exact condition expressions
 * lambda/shared/remediation-locks.ts sends, and refuses any other expression (so a change of the
 * router's writes cannot pass against a fake that ignores it). The same writes run against a real
 * DynamoDB (moto_server) in test/remediation-locks.moto.test.ts.
 */
import {
  type AttributeValue,
  BatchGetItemCommand,
  DeleteItemCommand,
  type DynamoDBClientResolvedConfig,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { AwsStub } from 'aws-sdk-client-mock';

type Item = Record<string, AttributeValue>;

function conditionFailed(): Error {
  return Object.assign(new Error('The conditional request failed'), {
    name: 'ConditionalCheckFailedException',
  });
}

/** The expressions of each write lambda/shared/remediation-locks.ts sends (no UpdateExpression: none). */
const WRITE_EXPRESSIONS = {
  PutItem: { condition: 'attribute_not_exists(pk) OR expiresAt < :now', update: undefined },
  UpdateItem: { condition: 'holder = :h', update: 'SET executionId = :e, documentName = :d, expiresAt = :x' },
  DeleteItem: { condition: 'holder = :h', update: undefined },
} as const;

export class LockTableFake {
  readonly items = new Map<string, Item>();

  /** @param delay awaited before each answer (a bench's simulated latency); none by default */
  constructor(
    readonly tableName: string,
    private readonly delay: () => Promise<void> = async () => {},
  ) {}

  /** Serves the four commands on `mock` from {@link items}. */
  // biome-ignore lint/suspicious/noExplicitAny: the stub's input and output types vary per command
  install(mock: AwsStub<any, any, DynamoDBClientResolvedConfig>): void {
    mock.on(BatchGetItemCommand).callsFake(async (input) => {
      await this.delay();
      const request = input.RequestItems?.[this.tableName];
      if (request === undefined)
        throw new Error(`BatchGetItem of another table: ${Object.keys(input.RequestItems ?? {})}`);
      const found = (request.Keys ?? []).flatMap((k: Item) => {
        const item = this.items.get(k.pk?.S ?? '');
        return item === undefined ? [] : [structuredClone(item)];
      });
      return { Responses: { [this.tableName]: found }, UnprocessedKeys: {} };
    });
    mock.on(PutItemCommand).callsFake(async (input) => {
      const key = await this.checkedWrite('PutItem', input, input.Item);
      const now = Number(input.ExpressionAttributeValues?.[':now']?.N);
      const current = this.items.get(key);
      if (current !== undefined && !(Number(current.expiresAt?.N) < now)) throw conditionFailed();
      this.items.set(key, structuredClone(input.Item as Item));
      return {};
    });
    mock.on(UpdateItemCommand).callsFake(async (input) => {
      const key = await this.checkedWrite('UpdateItem', input, input.Key);
      const values = input.ExpressionAttributeValues ?? {};
      const current = this.items.get(key);
      if (current?.holder?.S !== values[':h']?.S) throw conditionFailed();
      this.items.set(key, {
        ...current,
        executionId: values[':e'] as AttributeValue,
        documentName: values[':d'] as AttributeValue,
        expiresAt: values[':x'] as AttributeValue,
      });
      return {};
    });
    mock.on(DeleteItemCommand).callsFake(async (input) => {
      const key = await this.checkedWrite('DeleteItem', input, input.Key);
      const current = this.items.get(key);
      if (current?.holder?.S !== input.ExpressionAttributeValues?.[':h']?.S) throw conditionFailed();
      this.items.delete(key);
      return {};
    });
  }

  /** The record under `key` as plain values, or undefined. */
  record(
    key: string,
  ):
    | { holder?: string; node?: string; executionId?: string; documentName?: string; expiresAt?: number }
    | undefined {
    const item = this.items.get(key);
    if (item === undefined) return undefined;
    return {
      holder: item.holder?.S,
      node: item.node?.S,
      executionId: item.executionId?.S,
      documentName: item.documentName?.S,
      expiresAt: Number(item.expiresAt?.N),
    };
  }

  /** Keys of the slots held now. */
  heldSlots(): string[] {
    return [...this.items.keys()].filter((k) => k.startsWith('slot#'));
  }

  /**
   * What every write goes through first: the delay, this table, and the expressions exactly as
   * the router sends them (anything else throws); returns the key (`pk`) it writes.
   */
  private async checkedWrite(
    write: keyof typeof WRITE_EXPRESSIONS,
    input: { TableName?: string; ConditionExpression?: string; UpdateExpression?: string },
    item: Item | undefined,
  ): Promise<string> {
    await this.delay();
    if (input.TableName !== this.tableName) throw new Error(`write to another table: ${input.TableName}`);
    const expected = WRITE_EXPRESSIONS[write];
    if (input.ConditionExpression !== expected.condition || input.UpdateExpression !== expected.update) {
      throw new Error(`unexpected ${write} ${input.UpdateExpression ?? ''} / ${input.ConditionExpression}`);
    }
    return item?.pk?.S as string;
  }
}
