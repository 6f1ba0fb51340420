/**
 * SSM Automation as the alarm router sees it, kept in memory (moto has no
 * StartAutomationExecution, DescribeAutomationExecutions, GetAutomationExecution or automation
 * tags): executions with their document, status, parameters, tags, times and parent, served to an
 * `aws-sdk-client-mock` SSM mock the way AWS answers:
 *
 * - StartAutomationExecution records an InProgress execution. Its ClientToken is idempotent: the
 *   same token with the same document and parameters returns the first execution's ID, with
 *   others `IdempotentParameterMismatch`; beyond `quota` active executions,
 *   `AutomationExecutionLimitExceededException`.
 * - DescribeAutomationExecutions honours the `ExecutionStatus`, `TagKey` (executions carrying a
 *   tag with that key), `ParentExecutionId`, `DocumentNamePrefix` and `StartTimeAfter` filters.
 * - GetAutomationExecution answers with the status and parameters, or
 *   `AutomationExecutionNotFoundException` for an ID it does not know.
 * - ListTagsForResource lists the execution's tags.
 *
 * Used by the router's tests (test/alarm-router.test.ts, test/prometheus-alert-path.test.ts) and
 * its fleet benchmark (bench/fleet-storm.ts), which wraps each answer (`around`) to add latency
 * and throttling.
 */
import {
  type AutomationExecutionMetadata,
  type AutomationExecutionStatus,
  DescribeAutomationExecutionsCommand,
  GetAutomationExecutionCommand,
  ListTagsForResourceCommand,
  type SSMClientResolvedConfig,
  StartAutomationExecutionCommand,
  type StartAutomationExecutionCommandInput,
} from '@aws-sdk/client-ssm';
import type { AwsStub } from 'aws-sdk-client-mock';

/** One execution as SSM keeps it. */
export interface FakeAutomationExecution {
  readonly id: string;
  readonly document: string;
  status: string;
  readonly parameters: Readonly<Record<string, readonly string[]>>;
  readonly tags: Readonly<Record<string, string>>;
  readonly start: Date;
  end?: Date;
  readonly parent?: string;
  /** The StartAutomationExecution request that started it (none for an added one). */
  readonly input?: StartAutomationExecutionCommandInput;
}

/** An execution to add: all but `id`, `document` and `status` have defaults. */
export type GivenAutomationExecution = Pick<FakeAutomationExecution, 'id' | 'document' | 'status'> &
  Partial<Omit<FakeAutomationExecution, 'id' | 'document' | 'status'>>;

/** Wraps the answer to one SDK operation (`ssm:<Operation>`), e.g. to delay, count or throttle it. */
export type AroundAnswer = <I, O>(operation: string, answer: (input: I) => O) => (input: I) => O | Promise<O>;

export interface AutomationFakeOptions {
  /** Wraps every answer. @default none */
  readonly around?: AroundAnswer;
  /** Active executions (Pending, InProgress, Waiting) beyond which a start is refused. @default no limit */
  readonly quota?: number;
  /** The start time of an execution StartAutomationExecution records. @default the current time */
  readonly now?: () => Date;
  /** The ID of the next started execution, from the number of executions so far. @default `exec-<n + 1>` */
  readonly nextId?: (count: number) => string;
}

const ACTIVE = ['Pending', 'InProgress', 'Waiting'];

// biome-ignore lint/suspicious/noExplicitAny: the mock's input and output unions (as LockTableFake takes its mock)
type SsmStub = AwsStub<any, any, SSMClientResolvedConfig>;

function awsError(name: string, message: string): Error {
  return Object.assign(new Error(message), { name });
}

export class AutomationFake {
  /** Every execution, in the order they were added or started. */
  readonly executions: FakeAutomationExecution[] = [];
  private readonly tokens = new Map<string, { readonly id: string; readonly request: string }>();
  private readonly around: AroundAnswer;

  constructor(private readonly options: AutomationFakeOptions = {}) {
    this.around = options.around ?? ((_operation, answer) => answer);
  }

  /** Adds executions as if they had been started earlier (no ClientToken). */
  add(...given: readonly GivenAutomationExecution[]): void {
    for (const e of given) {
      this.executions.push({ parameters: {}, tags: {}, start: new Date('2024-05-01T12:00:30Z'), ...e });
    }
  }

  /** The execution with this ID, or undefined. */
  find(id: string): FakeAutomationExecution | undefined {
    return this.executions.find((e) => e.id === id);
  }

  /** Answers the four Automation operations on `ssmMock`; `starts: false` leaves StartAutomationExecution to the test. */
  install(ssmMock: SsmStub, opts: { readonly starts?: boolean } = {}): void {
    if (opts.starts ?? true) {
      ssmMock
        .on(StartAutomationExecutionCommand)
        .callsFake(
          this.around('ssm:StartAutomationExecution', (input: StartAutomationExecutionCommandInput) =>
            this.start(input),
          ),
        );
    }
    ssmMock.on(DescribeAutomationExecutionsCommand).callsFake(
      this.around(
        'ssm:DescribeAutomationExecutions',
        (input: { Filters?: { Key?: string; Values?: string[] }[] }) => ({
          AutomationExecutionMetadataList: this.list(input.Filters ?? []),
        }),
      ),
    );
    ssmMock.on(GetAutomationExecutionCommand).callsFake(
      this.around('ssm:GetAutomationExecution', (input: { AutomationExecutionId?: string }) => {
        const e = this.find(input.AutomationExecutionId ?? '');
        if (e === undefined) {
          throw awsError('AutomationExecutionNotFoundException', `${input.AutomationExecutionId} not found`);
        }
        return {
          AutomationExecution: {
            AutomationExecutionId: e.id,
            DocumentName: e.document,
            AutomationExecutionStatus: e.status as AutomationExecutionStatus,
            Parameters: e.parameters,
          },
        };
      }),
    );
    ssmMock.on(ListTagsForResourceCommand).callsFake(
      this.around('ssm:ListTagsForResource', (input: { ResourceId?: string }) => ({
        TagList: Object.entries(this.find(input.ResourceId ?? '')?.tags ?? {}).map(([Key, Value]) => ({
          Key,
          Value,
        })),
      })),
    );
  }

  private start(input: StartAutomationExecutionCommandInput): { AutomationExecutionId: string } {
    const request = JSON.stringify([input.DocumentName, input.Parameters]);
    const token = input.ClientToken ?? '';
    const seen = this.tokens.get(token);
    if (seen !== undefined) {
      if (seen.request !== request)
        throw awsError('IdempotentParameterMismatch', 'token used with other parameters');
      return { AutomationExecutionId: seen.id };
    }
    const active = this.executions.filter((e) => ACTIVE.includes(e.status)).length;
    if (this.options.quota !== undefined && active >= this.options.quota) {
      throw awsError('AutomationExecutionLimitExceededException', 'concurrent automation quota reached');
    }
    const id = (this.options.nextId ?? ((n) => `exec-${n + 1}`))(this.executions.length);
    this.tokens.set(token, { id, request });
    this.executions.push({
      id,
      document: input.DocumentName ?? '',
      status: 'InProgress',
      parameters: input.Parameters ?? {},
      tags: Object.fromEntries((input.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? ''])),
      start: this.options.now?.() ?? new Date(),
      input,
    });
    return { AutomationExecutionId: id };
  }

  private list(filters: readonly { Key?: string; Values?: string[] }[]): AutomationExecutionMetadata[] {
    const values = (key: string) => filters.find((f) => f.Key === key)?.Values;
    const statuses = values('ExecutionStatus');
    const tagKeys = values('TagKey');
    const parents = values('ParentExecutionId');
    const prefixes = values('DocumentNamePrefix');
    const after = values('StartTimeAfter')?.[0];
    return this.executions
      .filter((e) => statuses === undefined || statuses.includes(e.status))
      .filter((e) => tagKeys === undefined || tagKeys.some((k) => k in e.tags))
      .filter((e) => parents === undefined || (e.parent !== undefined && parents.includes(e.parent)))
      .filter((e) => prefixes === undefined || prefixes.some((p) => e.document.startsWith(p)))
      .filter((e) => after === undefined || e.start.getTime() > Date.parse(after))
      .map((e) => ({
        AutomationExecutionId: e.id,
        DocumentName: e.document,
        AutomationExecutionStatus: e.status as AutomationExecutionStatus,
        ExecutionStartTime: e.start,
        ExecutionEndTime: e.end,
        ParentAutomationExecutionId: e.parent,
      }));
  }
}
