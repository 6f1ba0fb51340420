import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { Authorize, AutomationService, ExecutionRecord, Principal } from '../support/automation-runner';

/**
 * The drill's SSM endpoint on 127.0.0.1: what moto_server lacks of Systems Manager, served here
 * with the real permission decision; everything else forwarded to moto unchanged.
 *
 * moto has no Automation API and its SendCommand runs nothing, so this endpoint serves
 * - Automation: StartAutomationExecution, GetAutomationExecution, DescribeAutomationExecutions,
 *   StopAutomationExecution, and ListTagsForResource / AddTagsToResource of ResourceType
 *   `Automation` (from the {@link AutomationService} that runs the synthesized documents);
 * - Run Command as the agent reports it: ListCommands, ListCommandInvocations,
 *   GetCommandInvocation (from the {@link CommandLedger} the drill's host fills).
 * Every request it serves is authorized first: the caller is found by the access key in its
 * SigV4 `Authorization` header (a role session the drill assumed in moto) and the action on the
 * resource AWS authorizes it against is checked with the real IAM evaluator over the synthesized
 * policies. A denial answers `AccessDeniedException` naming principal, action and resource, as
 * AWS does. Every other SSM request (GetParameter, DescribeInstanceInformation, ...) goes to
 * moto byte for byte, headers included, so moto checks its signature and its authorization.
 *
 * The JSON protocol (`X-Amz-Target: AmazonSSM.<Op>`, `application/x-amz-json-1.1`, dates as
 * epoch seconds, errors as `{"__type", "message"}` with HTTP 400) is what both the AWS SDK for
 * JavaScript v3 and boto3 speak, so the router's bundled code and the documents' Python run
 * against it unchanged, through `AWS_ENDPOINT_URL_SSM`.
 */

/** One command invocation as the agent reported it. */
export interface CommandRecord {
  readonly commandId: string;
  readonly instanceId: string;
  readonly documentName: string;
  readonly parameters: Readonly<Record<string, readonly string[]>>;
  readonly comment: string;
  readonly requestedAt: Date;
  endedAt?: Date;
  status: 'Pending' | 'InProgress' | 'Success' | 'Failed' | 'TimedOut' | 'Cancelled';
  responseCode: number;
  stdout: string;
  stderr: string;
  /** The principal that sent it (SendCommand's caller). */
  readonly sentBy: string;
}

/** What the host's agent ran, for ListCommands and GetCommandInvocation. */
export class CommandLedger {
  private readonly records: CommandRecord[] = [];

  add(
    fields: Omit<
      CommandRecord,
      'commandId' | 'requestedAt' | 'status' | 'responseCode' | 'stdout' | 'stderr'
    >,
  ): CommandRecord {
    const record: CommandRecord = {
      ...fields,
      commandId: randomUUID(),
      requestedAt: new Date(),
      status: 'InProgress',
      responseCode: -1,
      stdout: '',
      stderr: '',
    };
    this.records.push(record);
    return record;
  }

  all(): readonly CommandRecord[] {
    return this.records;
  }

  find(commandId: string, instanceId?: string): CommandRecord | undefined {
    return this.records.find(
      (r) => r.commandId === commandId && (instanceId === undefined || r.instanceId === instanceId),
    );
  }
}

export interface LocalSsmOptions {
  readonly motoEndpoint: string;
  readonly account: string;
  readonly region: string;
  readonly automation: AutomationService;
  readonly commands: CommandLedger;
  /** The principal of an access key id (a session the drill assumed), or undefined. */
  readonly principalOf: (accessKeyId: string) => Principal | undefined;
  /** Decides whether `principal` may make a call (the real IAM evaluator); throws AccessDenied. */
  readonly authorize: Authorize;
  /** Told every call served here: who, what, the outcome. */
  readonly onCall?: (call: {
    principal: string;
    action: string;
    outcome: 'allowed' | 'denied' | 'error';
    detail?: string;
  }) => void;
}

/** An SSM service error: `code` becomes `__type`. */
export class SsmError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = code;
  }
}

const SERVED = new Set([
  'StartAutomationExecution',
  'GetAutomationExecution',
  'DescribeAutomationExecutions',
  'StopAutomationExecution',
  'ListCommands',
  'ListCommandInvocations',
  'GetCommandInvocation',
]);
const TAG_OPS = new Set(['ListTagsForResource', 'AddTagsToResource']);

type Json = Record<string, unknown>;

const epoch = (d: Date | undefined): number | undefined => (d === undefined ? undefined : d.getTime() / 1000);

/** The access key id of a SigV4-signed request (`Credential=<AKID>/<date>/<region>/ssm/aws4_request`). */
export function accessKeyOf(authorization: string | undefined): string | undefined {
  return /Credential=([A-Z0-9]+)\//.exec(authorization ?? '')?.[1];
}

export class LocalSsmEndpoint {
  private server: Server | undefined;
  private url = '';

  constructor(private readonly opts: LocalSsmOptions) {}

  /** `http://127.0.0.1:<port>` once started. */
  get endpoint(): string {
    return this.url;
  }

  async start(): Promise<string> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        reply(res, 500, { __type: 'InternalServerError', message: String(err) });
      });
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    this.server = server;
    this.url = `http://127.0.0.1:${port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const target = String(req.headers['x-amz-target'] ?? '');
    const op = target.startsWith('AmazonSSM.') ? target.slice('AmazonSSM.'.length) : '';
    let input: Json = {};
    if (SERVED.has(op) || TAG_OPS.has(op)) {
      try {
        input = JSON.parse(body.toString('utf8') || '{}') as Json;
      } catch {
        reply(res, 400, { __type: 'SerializationException', message: 'request body is not JSON' });
        return;
      }
    }
    const servesHere = SERVED.has(op) || (TAG_OPS.has(op) && input.ResourceType === 'Automation');
    if (!servesHere) {
      await forward(this.opts.motoEndpoint, req, body, res);
      return;
    }
    const key = accessKeyOf(req.headers.authorization);
    const principal = key === undefined ? undefined : this.opts.principalOf(key);
    if (principal === undefined) {
      reply(res, 400, {
        __type: 'UnrecognizedClientException',
        message: `The security token included in the request is invalid (access key ${key ?? 'none'})`,
      });
      return;
    }
    const action = `ssm:${op}`;
    try {
      const out = await this.serve(op, input, principal);
      this.opts.onCall?.({ principal: principal.name, action, outcome: 'allowed' });
      reply(res, 200, out);
    } catch (err) {
      const code =
        err instanceof SsmError ? err.code : ((err as { code?: string }).code ?? (err as Error).name);
      const denied = code === 'AccessDeniedException';
      this.opts.onCall?.({
        principal: principal.name,
        action,
        outcome: denied ? 'denied' : 'error',
        detail: (err as Error).message,
      });
      reply(res, 400, { __type: code || 'ValidationException', message: (err as Error).message });
    }
  }

  private arn(resource: string): string {
    return `arn:aws:ssm:${this.opts.region}:${this.opts.account}:${resource}`;
  }

  private async authorize(principal: Principal, action: string, resources: readonly string[]): Promise<void> {
    try {
      await this.opts.authorize(principal, action, resources);
    } catch (err) {
      throw new SsmError('AccessDeniedException', (err as Error).message);
    }
  }

  private execution(id: unknown): ExecutionRecord {
    const record = typeof id === 'string' ? this.opts.automation.get(id) : undefined;
    if (record === undefined)
      throw new SsmError(
        'AutomationExecutionNotFoundException',
        `Automation execution ${String(id)} not found`,
      );
    return record;
  }

  /** Serves one request; the resource each action is authorized against is AWS's (see the comments). */
  private async serve(op: string, input: Json, principal: Principal): Promise<Json> {
    const automation = this.opts.automation;
    switch (op) {
      case 'StartAutomationExecution': {
        // The service authorizes the definition (and AddTagsToResource, PassRole): the runner does.
        const id = await automation.start(
          input as unknown as Parameters<AutomationService['start']>[0],
          principal,
        );
        return { AutomationExecutionId: id };
      }
      case 'GetAutomationExecution': {
        const id = String(input.AutomationExecutionId ?? '');
        await this.authorize(principal, 'ssm:GetAutomationExecution', [
          this.arn(`automation-execution/${id}`),
        ]);
        return { AutomationExecution: executionJson(this.execution(id), true) };
      }
      case 'StopAutomationExecution': {
        const id = String(input.AutomationExecutionId ?? '');
        await this.authorize(principal, 'ssm:StopAutomationExecution', [
          this.arn(`automation-execution/${id}`),
        ]);
        this.execution(id);
        throw new SsmError(
          'InvalidAutomationStatusUpdateException',
          'the local runner does not stop executions',
        );
      }
      case 'DescribeAutomationExecutions': {
        // No resource-level permission: AWS authorizes it against "*".
        await this.authorize(principal, 'ssm:DescribeAutomationExecutions', ['*']);
        const filters = (input.Filters as Array<{ Key: string; Values: string[] }> | undefined) ?? [];
        const list = automation
          .list()
          .filter((e) => filters.every((f) => executionMatches(e, f.Key, f.Values)));
        return { AutomationExecutionMetadataList: list.map((e) => executionJson(e, false)) };
      }
      case 'ListTagsForResource': {
        const id = String(input.ResourceId ?? '');
        await this.authorize(principal, 'ssm:ListTagsForResource', [this.arn(`automation-execution/${id}`)]);
        this.execution(id);
        return { TagList: automation.tags(id) };
      }
      case 'AddTagsToResource':
        await this.authorize(principal, 'ssm:AddTagsToResource', [
          this.arn(`automation-execution/${String(input.ResourceId ?? '')}`),
        ]);
        throw new SsmError(
          'InvalidResourceId',
          'the local runner tags executions only at start (Tags of StartAutomationExecution)',
        );
      case 'ListCommands': {
        await this.authorize(principal, 'ssm:ListCommands', ['*']);
        return { Commands: this.listCommands(input).map(commandJson) };
      }
      case 'ListCommandInvocations': {
        await this.authorize(principal, 'ssm:ListCommandInvocations', ['*']);
        return {
          CommandInvocations: this.listCommands(input).map((r) => ({
            ...commandJson(r),
            InstanceId: r.instanceId,
            StandardOutputContent: input.Details === true ? r.stdout.slice(0, 2500) : undefined,
          })),
        };
      }
      case 'GetCommandInvocation': {
        await this.authorize(principal, 'ssm:GetCommandInvocation', ['*']);
        const record = this.opts.commands.find(String(input.CommandId ?? ''), String(input.InstanceId ?? ''));
        if (record === undefined) throw new SsmError('InvocationDoesNotExist', 'no such command invocation');
        return {
          CommandId: record.commandId,
          InstanceId: record.instanceId,
          DocumentName: record.documentName,
          Status: record.status,
          StatusDetails: record.status,
          ResponseCode: record.responseCode,
          ExecutionStartDateTime: record.requestedAt.toISOString(),
          ExecutionEndDateTime: record.endedAt?.toISOString() ?? '',
          // The agent keeps the first 24,000 characters of each stream.
          StandardOutputContent: record.stdout.slice(0, 24_000),
          StandardErrorContent: record.stderr.slice(0, 8_000),
        };
      }
      default:
        throw new SsmError('InvalidAction', `${op} is not served by the drill's SSM endpoint`);
    }
  }

  private listCommands(input: Json): CommandRecord[] {
    const filters = (input.Filters as Array<{ key: string; value: string }> | undefined) ?? [];
    return this.opts.commands
      .all()
      .filter((r) => input.CommandId === undefined || r.commandId === input.CommandId)
      .filter((r) => input.InstanceId === undefined || r.instanceId === input.InstanceId)
      .filter((r) =>
        filters.every((f) => {
          if (f.key === 'DocumentName') return r.documentName === f.value;
          if (f.key === 'InvokedAfter') return r.requestedAt.getTime() >= Date.parse(f.value);
          if (f.key === 'InvokedBefore') return r.requestedAt.getTime() <= Date.parse(f.value);
          if (f.key === 'Status') return r.status === f.value;
          throw new SsmError('InvalidFilterKey', `filter key ${f.key} is not supported by the drill`);
        }),
      );
  }
}

function commandJson(r: CommandRecord): Json {
  return {
    CommandId: r.commandId,
    DocumentName: r.documentName,
    Comment: r.comment,
    Parameters: r.parameters,
    InstanceIds: [r.instanceId],
    RequestedDateTime: epoch(r.requestedAt),
    Status: r.status,
    StatusDetails: r.status,
  };
}

function executionMatches(e: ExecutionRecord, key: string, values: readonly string[]): boolean {
  switch (key) {
    case 'DocumentNamePrefix':
      return values.some((v) => e.documentName.startsWith(v));
    case 'ExecutionStatus':
      return values.includes(e.status);
    case 'ExecutionId':
      return values.includes(e.executionId);
    case 'ParentExecutionId':
      return values.includes(e.parentExecutionId ?? '');
    case 'StartTimeAfter':
      return values.some((v) => e.startedAt.getTime() >= Date.parse(v));
    case 'StartTimeBefore':
      return values.some((v) => e.startedAt.getTime() <= Date.parse(v));
    case 'TagKey':
      // SSM documents TagKey as a filter on tag keys: an execution with a tag of one of them.
      return values.some((v) => e.tags.some((t) => t.Key === v));
    default:
      throw new SsmError('InvalidFilterKey', `filter key ${key} is not supported by the drill`);
  }
}

/** GetAutomationExecution's AutomationExecution (with steps) or a metadata list entry. */
function executionJson(e: ExecutionRecord, withSteps: boolean): Json {
  const base: Json = {
    AutomationExecutionId: e.executionId,
    DocumentName: e.documentName,
    DocumentVersion: '1',
    AutomationExecutionStatus: e.status,
    ExecutionStartTime: epoch(e.startedAt),
    ExecutionEndTime: epoch(e.endedAt),
    ParentAutomationExecutionId: e.parentExecutionId,
    Outputs: e.outputs,
    FailureMessage: e.failureMessage,
    Mode: 'Auto',
  };
  if (!withSteps) return base;
  return {
    ...base,
    Parameters: e.parameters,
    StepExecutions: e.steps.map((s) => ({
      StepName: s.name,
      Action: s.action,
      ExecutionStartTime: epoch(s.startedAt),
      ExecutionEndTime: epoch(s.endedAt),
      StepStatus: s.status,
      Outputs: Object.fromEntries(
        Object.entries(s.outputs).map(([k, v]) => [k, (Array.isArray(v) ? v : [v]).map(outputText)]),
      ),
      FailureMessage: s.failureMessage,
    })),
  };
}

/** An output value as GetAutomationExecution lists it: text as is, anything else as JSON. */
function outputText(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((done, fail) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => done(Buffer.concat(chunks)));
    req.on('error', fail);
  });
}

function reply(res: ServerResponse, status: number, body: Json): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() });
  res.end(text);
}

/** Sends the request to moto as it came (method, path, headers with Host, body) and pipes back the answer. */
function forward(
  motoEndpoint: string,
  req: IncomingMessage,
  body: Buffer,
  res: ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? '/', motoEndpoint);
  return new Promise((done, fail) => {
    const out = request(
      {
        hostname: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method: req.method,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        answer.on('end', () => done());
        answer.on('error', fail);
      },
    );
    out.on('error', fail);
    out.end(body);
  });
}
