import { randomUUID } from 'node:crypto';
import type { AutomationDocumentContent } from '../../lib/automation-document';
import {
  holds,
  interpolate,
  isRecord,
  PREDEFINED_OUTPUTS,
  referenceText,
  stepTarget,
} from './automation-validator';
import { runForked } from './python-forkserver';

/**
 * A local SSM Automation service: runs a synthesized Automation document (schemaVersion 0.3, the
 * object content of its `AWS::SSM::Document`, intrinsics resolved) the way AWS Systems Manager
 * Automation runs it. Every AWS side effect goes through {@link AutomationBackends}: the caller
 * (a test or the drill) decides who may do what, what a Lambda or a host command does, and where
 * boto3 sends its calls. The runner knows nothing of moto or of the drill.
 *
 * ```ts
 * const ssm = new AutomationService(backends);
 * const id = await ssm.start({ DocumentName: 'StemeDB-ArchiveWal', Parameters: { InstanceId: ['i-0123456789abcdef0'] } }, caller);
 * const done = await ssm.wait(id);   // done.status, done.steps[i].principal, done.outputs['VerifyArchive.Status']
 * ```
 *
 * Faithful to SSM (AWS's Automation actions reference, "Properties shared by all actions",
 * "Using action outputs as inputs", "Automation system variables"):
 * - StartAutomationExecution authorizes `ssm:StartAutomationExecution` on the definition ARNs
 *   (`…:automation-definition/<Name>:$DEFAULT` and `…:<Name>:1`), the document
 *   (`…:document/<Name>`) and the new execution (`…:automation-execution/<id>`), `ssm:AddTagsToResource` on the
 *   execution when Tags are given, and `iam:PassRole` on the assume role with
 *   `iam:PassedToService=ssm.amazonaws.com`; it validates every parameter before anything runs
 *   (unknown names, missing required, type String/StringList/Integer/Boolean/StringMap/MapList,
 *   allowedPattern, allowedValues, maxChars, minItems/maxItems) and answers the SSM error codes
 *   (`name` and `code`): InvalidAutomationExecutionParametersException,
 *   AutomationDefinitionNotFoundException, InvalidDocumentVersion, IdempotentParameterMismatch
 *   (same ClientToken, other request; the same request returns the same execution id),
 *   ValidationException (a ClientToken that is not a UUID, bad Tags), AccessDeniedException; and,
 *   the runner's own, InvalidDocument / InvalidDocumentContent for content SSM would never hold
 *   (not schemaVersion 0.3, or a CloudFormation intrinsic left unresolved).
 * - The execution runs as the session of the resolved `assumeRole` (else as the caller); a role
 *   that cannot be assumed fails the execution before any step.
 * - `{{ Param }}`, `{{ Step.Output }}`, `{{ automation:EXECUTION_ID }}` and `{{ global:ACCOUNT_ID |
 *   REGION | AWS_PARTITION | DATE | DATE_TIME }}` in every string of a step's inputs; a string that
 *   is exactly one reference takes the value's type (a StringList stays a list, an Integer a
 *   number), a list element that is exactly a reference to a list is spread into the list. A
 *   reference that cannot be resolved fails the step (never an empty string). A step's outputs can
 *   be referenced only after it succeeded.
 * - Outputs: the action's predefined ones and the declared `outputs` (Selector, a JSONPath subset:
 *   `$.a.b`, `$.a[0]`, `$['a']`, `$.a[*]`, `$..a`; Type with AWS's conversions: String to
 *   Integer/Boolean/StringList, Integer and Boolean to String/StringList, a one-element list to
 *   its element's type; anything else fails the step).
 * - Actions: aws:executeScript (python3, `handler(events, None)`, the return value as `Payload`, a
 *   raised exception fails the step; at most 600 s), aws:executeAwsApi and
 *   aws:waitForAwsResourceProperty (real boto3 in python3, `boto3.client(Service).<operation of
 *   Api>(**inputs)`, datetimes as ISO strings), aws:invokeLambdaFunction (a FunctionError fails
 *   the step; at most 300 s), aws:runCommand (any instance not Success fails the step; the
 *   predefined outputs are still recorded on the failed step, so GetAutomationExecution shows its
 *   CommandId; `Output` is the first 24,000 characters of the first instance's stdout, the limit
 *   of GetCommandInvocation's StandardOutputContent), aws:executeAutomation (a child execution
 *   started as this execution's session, so it needs StartAutomationExecution and PassRole too;
 *   a child that does not succeed fails the step), aws:branch (And/Or/Not and the string, numeric
 *   and boolean operators; no match and no Default goes on to the next step, as AWS documents),
 *   aws:sleep (Duration or Timestamp, at most 7 days).
 * - Flow: nextStep, isEnd, onFailure (Abort, Continue, step:Name), isCritical (default true, false
 *   when onFailure is Continue; a failed critical step makes the execution Failed, or TimedOut
 *   when it timed out, even when the flow goes on), maxAttempts, timeoutSeconds (the attempt
 *   ends TimedOut and its python3 process group is killed), document `outputs`.
 *
 * Not faithful, on purpose:
 * - Time: `aws:sleep` and the polling of aws:waitForAwsResourceProperty sleep for real, for
 *   `scaleSleepMs(ms)`; step timeouts (per attempt) last `scaleTimeoutMs(ms)`. Python's
 *   `time.sleep` is real. AWS documents no poll interval and no default timeout for
 *   aws:waitForAwsResourceProperty: the runner polls every 5 s and gives up after 3600 s.
 * - python3 runs with the back end's `awsEnv(principal)` (the host's AWS_* variables dropped) and
 *   always with the principal's own access key, secret and session token.
 * - python3 is this machine's (whatever python3.x Runtime says); `context` is None (AWS does not
 *   document its content and no document here reads it); the 100 KB Payload limit is not applied.
 * - An action the runner does not implement (aws:approve, aws:pause, aws:loop, aws:createStack,
 *   ...; Targets or rate controls of aws:runCommand; script attachments) fails its step with
 *   `action X is not supported by the local runner` (or `… input X …`), never a silent skip.
 * - A Selector that matches nothing leaves that output unset (a later reference fails). Inside a
 *   longer string a list or map reads as JSON (AWS does not document it). allowedPattern is a
 *   JavaScript RegExp tested as the construct tests defaults (SSM's engine is Java's).
 * - onFailure `step:X` is taken even when the step has `isEnd: true` (AWS's text says isEnd ends
 *   the execution "if the step failed or succeeded"; the repository's documents and validator
 *   assume the failure path wins). An Abort by a non-critical step still ends Failed.
 * - No cancellation (onCancel is ignored), no rate limits or concurrency quotas, one document
 *   version (`1`), `{{ ssm:... }}` and `{{ variable:... }}` unsupported (start fails / step fails).
 * - Steps are recorded when they end (no InProgress step in the record); a loop is bounded by
 *   `maxSteps` steps per execution (default 200), past which the execution fails.
 */

// ---------------------------------------------------------------------------------------------
// The back-end interface

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

/** Who makes a call: a role session. */
export interface Principal {
  /** e.g. `automation-role` */
  readonly name: string;
  /** The role ARN. */
  readonly arn: string;
  readonly credentials: AwsCredentials;
}

/** One instance's run of an `aws:runCommand` step's command. */
export interface CommandInvocationResult {
  readonly commandId: string;
  readonly instanceId: string;
  readonly status: 'Success' | 'Failed' | 'TimedOut' | 'Cancelled';
  readonly responseCode: number;
  /** stdout, in full: the runner keeps the first 24,000 characters as the step's `Output`. */
  readonly output: string;
  readonly stderr: string;
  /** Who ran the script on the host (the instance's role). */
  readonly principal: string;
}

export interface InvokeLambdaRequest {
  readonly functionName: string;
  readonly payload: string;
  readonly invocationType: string;
  readonly qualifier?: string;
  readonly logType?: string;
}

export interface InvokeLambdaResult {
  readonly statusCode: number;
  /** `Handled` or `Unhandled` when the handler raised: the step fails. */
  readonly functionError?: string;
  readonly payload: string;
  readonly logResult?: string;
  /** @default '$LATEST' (or the qualifier) */
  readonly executedVersion?: string;
  /** Who made the function's AWS calls (its execution role). */
  readonly principal: string;
}

export interface RunCommandRequest {
  readonly documentName: string;
  readonly instanceIds: readonly string[];
  readonly parameters: Readonly<Record<string, string | readonly string[]>>;
  readonly timeoutSeconds?: number;
  readonly comment?: string;
}

/**
 * Decides whether `principal` may call `action` on every one of `resources` (with the request's
 * condition keys in `context`); resolves when allowed, throws when denied.
 */
export type Authorize = (
  principal: Principal,
  action: string,
  resources: readonly string[],
  context?: Readonly<Record<string, string | readonly string[]>>,
) => Promise<void>;

export interface AutomationBackends {
  readonly account: string;
  readonly region: string;
  readonly partition: string;
  /** Synthesized Automation document content by deployed name, e.g. 'StemeDB-ExpandVolume'; undefined = AutomationDefinitionNotFoundException. */
  automationDocument(name: string): AutomationDocumentContent | undefined;
  /** The session an execution runs as, from the resolved AutomationAssumeRole parameter (a role ARN). Throws when the role cannot be assumed. */
  assumeRole(roleArn: string): Promise<Principal>;
  /**
   * Authorizes a call the Automation service makes with `principal`'s credentials (every resource
   * must be allowed); throws an Error whose message names principal, action and resource when denied.
   */
  readonly authorize: Authorize;
  /** aws:invokeLambdaFunction: authorization (lambda:InvokeFunction by caller) and the invocation both happen in the back end. */
  invokeLambda(caller: Principal, request: InvokeLambdaRequest): Promise<InvokeLambdaResult>;
  /** aws:runCommand: SendCommand as caller (authorization in the back end) and the agent's run on each instance. */
  runCommand(caller: Principal, request: RunCommandRequest): Promise<readonly CommandInvocationResult[]>;
  /**
   * Environment for a python3 process whose real boto3 must act as `principal` (region, endpoint
   * URLs). The runner always sets the access key, secret and session token to the principal's.
   */
  awsEnv(principal: Principal): NodeJS.ProcessEnv;
  /** Real time in ms for an aws:sleep / wait of `ms` document milliseconds (the drill scales sleeps down). @default identity */
  scaleSleepMs?(ms: number): number;
  /** Real time in ms for a step timeout of `ms` document milliseconds. @default identity */
  scaleTimeoutMs?(ms: number): number;
}

// ---------------------------------------------------------------------------------------------
// Records

export type StepStatus = 'Success' | 'Failed' | 'TimedOut' | 'Cancelled' | 'Skipped';
export type ExecutionStatus = 'Pending' | 'InProgress' | 'Success' | 'Failed' | 'TimedOut' | 'Cancelled';

export interface StepRecord {
  readonly name: string;
  readonly action: string;
  readonly startedAt: Date;
  readonly endedAt: Date;
  readonly durationMs: number;
  readonly status: StepStatus;
  /** Who made the step's AWS calls: the execution's session (scripts, API calls), the Lambda's role, the instance's role. */
  readonly principal?: string;
  /** The session that made the call Automation itself makes for the step (Invoke, SendCommand, StartAutomationExecution). */
  readonly caller?: string;
  /** The inputs, references resolved (the document's inputs as they are when they could not be resolved). */
  readonly inputs: unknown;
  /** Predefined and declared outputs (recorded on a failed step too; referenceable only after success). */
  readonly outputs: Record<string, unknown>;
  readonly failureMessage?: string;
  readonly attempts: number;
}

export interface ExecutionRecord {
  readonly executionId: string;
  readonly documentName: string;
  readonly documentVersion: string;
  /** Resolved parameters (defaults applied), as string lists like SSM's. */
  readonly parameters: Readonly<Record<string, readonly string[]>>;
  readonly status: ExecutionStatus;
  readonly startedAt: Date;
  readonly endedAt?: Date;
  readonly steps: readonly StepRecord[];
  /** The document's `outputs` that have a value, each as a list. */
  readonly outputs: Readonly<Record<string, readonly unknown[]>>;
  readonly failureMessage?: string;
  readonly parentExecutionId?: string;
  readonly tags: readonly Tag[];
  /** The assumed role's session name ('' until the execution runs). */
  readonly principal: string;
  /** Who started it (undefined when started without a caller). */
  readonly startedBy?: string;
}

export interface Tag {
  readonly Key: string;
  readonly Value: string;
}

export interface StartRequest {
  readonly DocumentName: string;
  readonly Parameters?: Readonly<Record<string, readonly string[]>>;
  readonly ClientToken?: string;
  readonly Tags?: readonly Tag[];
  readonly DocumentVersion?: string;
}

/** An error the Automation API answers: `name` and `code` are the SSM error code. */
export class AutomationServiceError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = code;
    this.code = code;
  }
}

export interface AutomationServiceOptions {
  /** Steps one execution may run before it fails (a loop). @default 200 */
  readonly maxSteps?: number;
  /** Told what happens, one line at a time. */
  readonly log?: (line: string) => void;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
/** The live record: what `get` hands out, updated as the execution runs. */
type LiveRecord = Omit<Mutable<ExecutionRecord>, 'steps' | 'outputs'> & {
  steps: StepRecord[];
  outputs: Record<string, unknown[]>;
};

interface Execution {
  readonly record: LiveRecord;
  readonly doc: AutomationDocumentContent;
  readonly values: Readonly<Record<string, unknown>>;
  readonly roleArn: string;
  readonly caller?: Principal;
  /** Outputs of the steps that succeeded, by step name. */
  readonly stepOutputs: Map<string, Record<string, unknown>>;
  readonly children: Execution[];
  done: Promise<void>;
}

/** What an action did; `failure` fails the step with its outputs still recorded. */
interface ActionResult {
  /** What the declared Selectors read. */
  readonly selectable?: unknown;
  readonly predefined?: Record<string, unknown>;
  readonly principal?: string;
  readonly caller?: string;
  readonly failure?: string;
}

interface AttemptResult {
  readonly status: 'Success' | 'Failed' | 'TimedOut';
  readonly outputs: Record<string, unknown>;
  readonly principal?: string;
  readonly caller?: string;
  readonly failureMessage?: string;
}

/** A failure the step reports as it is (no `Error:` prefix). */
class StepFailure extends Error {}

const CLIENT_TOKEN = /^[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}$/;
const OUTPUT_LIMIT = 24_000;
const EXECUTE_SCRIPT_MAX_SECONDS = 600;
const INVOKE_LAMBDA_MAX_SECONDS = 300;
const SLEEP_MAX_SECONDS = 604_800;
/** aws:waitForAwsResourceProperty without timeoutSeconds: AWS documents no default; the runner's bound. */
const WAIT_DEFAULT_TIMEOUT_SECONDS = 3600;
/** Document seconds between two polls of aws:waitForAwsResourceProperty (AWS documents no interval). */
const WAIT_POLL_SECONDS = 5;
const RUN_COMMAND_INPUTS = new Set([
  'DocumentName',
  'InstanceIds',
  'Parameters',
  'TimeoutSeconds',
  'Comment',
  'DocumentHash',
  'DocumentHashType',
]);
const EXECUTE_AUTOMATION_INPUTS = new Set(['DocumentName', 'DocumentVersion', 'RuntimeParameters', 'Tags']);
const INVOKE_LAMBDA_INPUTS = new Set(['FunctionName', 'Qualifier', 'InvocationType', 'LogType', 'Payload']);
const EXECUTE_SCRIPT_INPUTS = new Set(['Runtime', 'Handler', 'Script', 'InputPayload', 'Attachment']);
const SLEEP_INPUTS = new Set(['Duration', 'Timestamp']);

// ---------------------------------------------------------------------------------------------
// The service

export class AutomationService {
  private readonly executions = new Map<string, Execution>();
  private readonly tokens = new Map<string, { readonly key: string; readonly executionId: string }>();
  private readonly maxSteps: number;
  private readonly log: (line: string) => void;

  constructor(
    private readonly backends: AutomationBackends,
    opts: AutomationServiceOptions = {},
  ) {
    this.maxSteps = opts.maxSteps ?? 200;
    this.log = opts.log ?? (() => undefined);
  }

  /**
   * StartAutomationExecution: authorizes and validates everything before anything runs, then
   * returns the execution id at once; the execution runs asynchronously.
   */
  async start(request: StartRequest, caller?: Principal, parent?: { executionId: string }): Promise<string> {
    const name = request.DocumentName;
    if (typeof name !== 'string' || !/^[a-zA-Z0-9_\-.:/]{3,128}$/.test(name))
      throw new AutomationServiceError(
        'ValidationException',
        `DocumentName ${JSON.stringify(name)} is not valid`,
      );
    const { partition, region, account } = this.backends;
    const definition = `arn:${partition}:ssm:${region}:${account}:automation-definition/${name}`;
    const executionId = randomUUID();
    // Every resource AWS is reported to check for this call (the Service Authorization Reference
    // lists document and automation-execution as required, automation-definition:<version> as
    // optional; AccessDenied messages name the version number): all must be allowed.
    if (caller !== undefined)
      await this.authorize(caller, 'ssm:StartAutomationExecution', [
        `${definition}:$DEFAULT`,
        `${definition}:1`,
        `arn:${partition}:ssm:${region}:${account}:document/${name}`,
        `arn:${partition}:ssm:${region}:${account}:automation-execution/${executionId}`,
      ]);
    const doc = this.backends.automationDocument(name);
    if (doc === undefined)
      throw new AutomationServiceError(
        'AutomationDefinitionNotFoundException',
        `Document ${name} does not exist`,
      );
    const version = request.DocumentVersion;
    if (version !== undefined && !['$DEFAULT', '$LATEST', '1'].includes(version))
      throw new AutomationServiceError(
        'InvalidDocumentVersion',
        `Document ${name} has no version ${version}`,
      );
    checkDocument(name, doc);
    if (request.ClientToken !== undefined && !CLIENT_TOKEN.test(request.ClientToken))
      throw new AutomationServiceError(
        'ValidationException',
        `ClientToken ${JSON.stringify(request.ClientToken)} is not a UUID (36 characters, 8-4-4-4-12 hex digits)`,
      );
    const tags = checkTags(request.Tags);
    const { strings, values } = resolveParameters(name, doc, request.Parameters ?? {});
    const roleArn = resolveAssumeRole(name, doc, strings);
    if (roleArn === '' && caller === undefined)
      throw new AutomationServiceError(
        'ValidationException',
        `document ${name} has no assumeRole and no caller started it: the local runner needs one of them`,
      );
    if (caller !== undefined && roleArn !== '')
      await this.authorize(caller, 'iam:PassRole', [roleArn], { 'iam:PassedToService': 'ssm.amazonaws.com' });
    if (caller !== undefined && tags.length > 0)
      await this.authorize(caller, 'ssm:AddTagsToResource', [
        `arn:${partition}:ssm:${region}:${account}:automation-execution/${executionId}`,
      ]);
    // From here on nothing awaits until the execution is registered, so a concurrent start with
    // the same ClientToken sees it.
    if (request.ClientToken !== undefined) {
      const key = JSON.stringify([name, version ?? '$DEFAULT', canonical(request.Parameters ?? {}), tags]);
      const seen = this.tokens.get(request.ClientToken);
      if (seen !== undefined) {
        if (seen.key === key) return seen.executionId;
        throw new AutomationServiceError(
          'IdempotentParameterMismatch',
          `ClientToken ${request.ClientToken} was used for execution ${seen.executionId} with other parameters`,
        );
      }
      this.tokens.set(request.ClientToken, { key, executionId });
    }
    const parentExecution = parent === undefined ? undefined : this.executions.get(parent.executionId);
    const execution: Execution = {
      record: {
        executionId,
        documentName: name,
        documentVersion: '1',
        parameters: strings,
        status: 'Pending',
        startedAt: new Date(),
        steps: [],
        outputs: {},
        tags,
        principal: '',
        ...(parent === undefined ? {} : { parentExecutionId: parent.executionId }),
        ...(caller === undefined ? {} : { startedBy: caller.name }),
      },
      doc,
      values,
      roleArn,
      ...(caller === undefined ? {} : { caller }),
      stepOutputs: new Map(),
      children: [],
      done: Promise.resolve(),
    };
    this.executions.set(executionId, execution);
    parentExecution?.children.push(execution);
    execution.done = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.run(execution));
    this.log(`${executionId} ${name}: started${caller === undefined ? '' : ` by ${caller.name}`}`);
    return executionId;
  }

  /** Resolves when the execution (and its children) ended; returns the record. */
  async wait(executionId: string): Promise<ExecutionRecord> {
    const execution = this.execution(executionId);
    await execution.done;
    for (const child of execution.children) await this.wait(child.record.executionId);
    return execution.record;
  }

  /** For GetAutomationExecution: the live record, or undefined. */
  get(executionId: string): ExecutionRecord | undefined {
    return this.executions.get(executionId)?.record;
  }

  /** For DescribeAutomationExecutions: every execution, in the order they started. */
  list(): readonly ExecutionRecord[] {
    return [...this.executions.values()].map((e) => e.record);
  }

  tags(executionId: string): readonly Tag[] {
    return this.execution(executionId).record.tags;
  }

  /** Resolves when every execution started so far (and those they start) ended. */
  async idle(): Promise<void> {
    for (;;) {
      const running = [...this.executions.values()].filter((e) => e.record.endedAt === undefined);
      if (running.length === 0) return;
      await Promise.all(running.map((e) => e.done));
    }
  }

  /** Real milliseconds of a sleep of `ms` document milliseconds. */
  private sleepMs(ms: number): number {
    return this.backends.scaleSleepMs?.(ms) ?? ms;
  }

  /** Real milliseconds of a step timeout of `ms` document milliseconds. */
  private timeoutMs(ms: number): number {
    return this.backends.scaleTimeoutMs?.(ms) ?? ms;
  }

  private execution(executionId: string): Execution {
    const execution = this.executions.get(executionId);
    if (execution === undefined)
      throw new AutomationServiceError(
        'AutomationExecutionNotFoundException',
        `Automation execution ${executionId} not found`,
      );
    return execution;
  }

  private readonly authorize: Authorize = async (principal, action, resources, context) => {
    try {
      await this.backends.authorize(principal, action, resources, context);
    } catch (err) {
      throw new AutomationServiceError(
        'AccessDeniedException',
        err instanceof Error ? err.message : String(err),
      );
    }
  };

  // -------------------------------------------------------------------------------------------
  // Running an execution

  private async run(execution: Execution): Promise<void> {
    const record = execution.record;
    record.status = 'InProgress';
    let principal: Principal;
    try {
      principal =
        execution.roleArn === ''
          ? (execution.caller as Principal)
          : await this.backends.assumeRole(execution.roleArn);
    } catch (err) {
      this.finish(
        execution,
        'Failed',
        `The defined assume role ${execution.roleArn} is unable to be assumed: ${errorText(err)}`,
      );
      return;
    }
    record.principal = principal.name;
    try {
      const { status, failureMessage } = await this.walk(execution, principal);
      this.collectOutputs(execution);
      this.finish(execution, status, failureMessage);
    } catch (err) {
      this.finish(execution, 'Failed', `local runner error: ${errorText(err)}`);
    }
  }

  private finish(execution: Execution, status: ExecutionStatus, failureMessage?: string): void {
    const record = execution.record;
    record.status = status;
    if (failureMessage !== undefined) record.failureMessage = failureMessage;
    record.endedAt = new Date();
    this.log(
      `${record.executionId} ${record.documentName}: ${status}${failureMessage === undefined ? '' : ` (${failureMessage})`}`,
    );
  }

  private collectOutputs(execution: Execution): void {
    for (const ref of execution.doc.outputs ?? []) {
      const m = /^([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)$/.exec(ref);
      const value = m === null ? undefined : execution.stepOutputs.get(m[1] as string)?.[m[2] as string];
      if (value !== undefined) execution.record.outputs[ref] = Array.isArray(value) ? value : [value];
    }
  }

  /** Runs the steps from the first; returns the execution's status. */
  private async walk(
    execution: Execution,
    principal: Principal,
  ): Promise<{ status: ExecutionStatus; failureMessage?: string }> {
    const steps = execution.doc.mainSteps;
    const indexOf = new Map(steps.map((s, i) => [String(s.name), i]));
    let index: number | undefined = 0;
    let critical: { status: ExecutionStatus; message: string } | undefined;
    const jump = (from: string, target: string): number => {
      const i = indexOf.get(target);
      if (i === undefined) throw new Error(`step ${from} goes to step ${target}, which does not exist`);
      return i;
    };
    while (index !== undefined && index < steps.length) {
      const raw = steps[index] as Readonly<Record<string, unknown>>;
      const name = String(raw.name);
      if (execution.record.steps.length >= this.maxSteps) {
        return {
          status: 'Failed',
          failureMessage: `more than ${this.maxSteps} steps ran (a loop?); the last: ${execution.record.steps
            .slice(-5)
            .map((s) => s.name)
            .join(' → ')}`,
        };
      }
      const { step, branchTarget } = await this.runStep(execution, raw, principal);
      execution.record.steps.push(step);
      this.log(
        `${execution.record.executionId} ${name} (${step.action}): ${step.status} in ${step.durationMs} ms${
          step.failureMessage === undefined ? '' : `: ${step.failureMessage}`
        }`,
      );
      const following: number = index + 1;
      const isEnd = raw.isEnd === true || raw.isEnd === 'true';
      const nextStep = typeof raw.nextStep === 'string' ? raw.nextStep : undefined;
      if (step.status === 'Success') {
        execution.stepOutputs.set(name, step.outputs);
        if (branchTarget !== undefined) index = jump(name, branchTarget);
        else if (isEnd) index = undefined;
        else if (nextStep !== undefined && raw.action !== 'aws:branch') index = jump(name, nextStep);
        else index = following;
        continue;
      }
      execution.stepOutputs.delete(name);
      const status: ExecutionStatus = step.status === 'TimedOut' ? 'TimedOut' : 'Failed';
      const message = `Step ${name} ${step.status === 'TimedOut' ? 'timed out' : 'failed'}: ${step.failureMessage ?? ''}`;
      if (isCriticalStep(raw) && critical === undefined) critical = { status, message };
      const onFailure = raw.onFailure ?? 'Abort';
      const target = stepTarget(onFailure);
      if (target !== undefined) index = jump(name, target);
      else if (onFailure === 'Continue')
        index = isEnd ? undefined : nextStep !== undefined ? jump(name, nextStep) : following;
      else return { status, failureMessage: message };
    }
    return critical === undefined
      ? { status: 'Success' }
      : { status: critical.status, failureMessage: critical.message };
  }

  private lookup(execution: Execution, name: string): unknown {
    if (Object.hasOwn(execution.values, name)) return execution.values[name];
    if (name === 'automation:EXECUTION_ID') return execution.record.executionId;
    if (name.startsWith('global:')) return this.globalVariable(name);
    if (name.startsWith('ssm:') || name.startsWith('variable:'))
      throw new StepFailure(
        `{{ ${name} }}: ${name.split(':')[0]}: references are not supported by the local runner`,
      );
    const m = /^([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)$/.exec(name);
    if (m !== null) {
      const [, stepName, output] = m as unknown as [string, string, string];
      const outputs = execution.stepOutputs.get(stepName);
      if (outputs === undefined)
        throw new StepFailure(`{{ ${name} }} cannot be resolved: step ${stepName} has not succeeded`);
      if (!Object.hasOwn(outputs, output))
        throw new StepFailure(`{{ ${name} }} cannot be resolved: step ${stepName} has no output ${output}`);
      return outputs[output];
    }
    throw new StepFailure(
      `{{ ${name} }} cannot be resolved: not a parameter, step output or system variable`,
    );
  }

  private globalVariable(name: string): string {
    const now = new Date().toISOString();
    switch (name) {
      case 'global:ACCOUNT_ID':
        return this.backends.account;
      case 'global:REGION':
        return this.backends.region;
      case 'global:AWS_PARTITION':
        return this.backends.partition;
      case 'global:DATE':
        return now.slice(0, 10);
      case 'global:DATE_TIME':
        return `${now.slice(0, 10)}_${now.slice(11, 19).replaceAll(':', '.')}`;
      default:
        throw new StepFailure(`{{ ${name} }} cannot be resolved: no such system variable`);
    }
  }

  private async runStep(
    execution: Execution,
    raw: Readonly<Record<string, unknown>>,
    principal: Principal,
  ): Promise<{ step: StepRecord; branchTarget?: string }> {
    const startedAt = new Date();
    const name = String(raw.name);
    const action = String(raw.action);
    const done = (
      result: AttemptResult,
      inputs: unknown,
      attempts: number,
      branchTarget?: string,
    ): { step: StepRecord; branchTarget?: string } => {
      const endedAt = new Date();
      const step: StepRecord = {
        name,
        action,
        startedAt,
        endedAt,
        durationMs: endedAt.getTime() - startedAt.getTime(),
        status: result.status,
        inputs,
        outputs: result.outputs,
        attempts,
        ...(result.principal === undefined ? {} : { principal: result.principal }),
        ...(result.caller === undefined ? {} : { caller: result.caller }),
        ...(result.failureMessage === undefined ? {} : { failureMessage: result.failureMessage }),
      };
      return branchTarget === undefined ? { step } : { step, branchTarget };
    };
    const lookup = (n: string): unknown => this.lookup(execution, n);
    if (action === 'aws:branch') {
      try {
        return done({ status: 'Success', outputs: {} }, raw.inputs, 1, branchTarget(raw.inputs, lookup));
      } catch (err) {
        return done({ status: 'Failed', outputs: {}, failureMessage: errorText(err) }, raw.inputs, 1);
      }
    }
    let inputs: unknown;
    try {
      inputs = interpolate(raw.inputs ?? {}, lookup);
    } catch (err) {
      return done({ status: 'Failed', outputs: {}, failureMessage: errorText(err) }, raw.inputs, 1);
    }
    const maxAttempts = positiveInteger(raw.maxAttempts) ?? 1;
    const timeoutSeconds = stepTimeoutSeconds(action, positiveInteger(raw.timeoutSeconds));
    let result: AttemptResult = { status: 'Failed', outputs: {} };
    let attempts = 0;
    while (attempts < maxAttempts) {
      attempts += 1;
      result = await this.attempt(execution, raw, action, inputs, principal, timeoutSeconds);
      if (result.status === 'Success') break;
      if (attempts < maxAttempts)
        this.log(`${execution.record.executionId} ${name}: attempt ${attempts} ${result.status}, retrying`);
    }
    return done(result, inputs, attempts);
  }

  /** One attempt of a step, bounded by its timeout. */
  private async attempt(
    execution: Execution,
    raw: Readonly<Record<string, unknown>>,
    action: string,
    inputs: unknown,
    principal: Principal,
    timeoutSeconds: number | undefined,
  ): Promise<AttemptResult> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<AttemptResult>((resolve) => {
      if (timeoutSeconds === undefined) return;
      const ms = this.timeoutMs(timeoutSeconds * 1000);
      timer = setTimeout(() => {
        controller.abort();
        resolve({
          status: 'TimedOut',
          outputs: {},
          failureMessage: `the step exceeded timeoutSeconds ${timeoutSeconds}`,
        });
      }, ms);
    });
    const work = this.act(execution, action, inputs, principal, controller.signal).then(
      (r): AttemptResult => outcomeOf(raw, r),
      (err: unknown): AttemptResult => ({ status: 'Failed', outputs: {}, failureMessage: errorText(err) }),
    );
    try {
      return await Promise.race([work, timedOut]);
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
  }

  private act(
    execution: Execution,
    action: string,
    inputs: unknown,
    principal: Principal,
    signal: AbortSignal,
  ): Promise<ActionResult> {
    const i = isRecord(inputs) ? inputs : {};
    switch (action) {
      case 'aws:executeScript':
        return this.executeScript(i, principal, signal);
      case 'aws:executeAwsApi':
        return this.executeAwsApi(i, principal, signal);
      case 'aws:waitForAwsResourceProperty':
        return this.waitForAwsResourceProperty(i, principal, signal);
      case 'aws:invokeLambdaFunction':
        return this.invokeLambda(i, principal);
      case 'aws:runCommand':
        return this.runCommand(i, principal);
      case 'aws:executeAutomation':
        return this.executeAutomation(execution, i, principal, signal);
      case 'aws:sleep':
        return this.sleepStep(i, signal);
      default:
        return Promise.reject(new StepFailure(`action ${action} is not supported by the local runner`));
    }
  }

  // -------------------------------------------------------------------------------------------
  // Actions

  private pythonEnv(principal: Principal): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AWS_')) env[k] = v;
    Object.assign(
      env,
      {
        AWS_REGION: this.backends.region,
        AWS_DEFAULT_REGION: this.backends.region,
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_CONFIG_FILE: '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      },
      this.backends.awsEnv(principal),
    );
    delete env.AWS_PROFILE;
    env.AWS_ACCESS_KEY_ID = principal.credentials.accessKeyId;
    env.AWS_SECRET_ACCESS_KEY = principal.credentials.secretAccessKey;
    if (principal.credentials.sessionToken === undefined) delete env.AWS_SESSION_TOKEN;
    else env.AWS_SESSION_TOKEN = principal.credentials.sessionToken;
    return env;
  }

  private async executeScript(
    inputs: Record<string, unknown>,
    principal: Principal,
    signal: AbortSignal,
  ): Promise<ActionResult> {
    unsupportedInputs('aws:executeScript', inputs, EXECUTE_SCRIPT_INPUTS);
    const runtime = inputs.Runtime;
    if (typeof runtime !== 'string' || !/^python3\.\d+$/.test(runtime))
      throw new StepFailure(
        `aws:executeScript Runtime ${JSON.stringify(runtime)} is not supported by the local runner (python3.x only)`,
      );
    if (inputs.Attachment !== undefined)
      throw new StepFailure('aws:executeScript input Attachment is not supported by the local runner');
    if (typeof inputs.Script !== 'string' || typeof inputs.Handler !== 'string')
      throw new StepFailure('aws:executeScript needs an inline Script and a Handler');
    let events: unknown = inputs.InputPayload ?? {};
    if (typeof events === 'string') {
      try {
        events = JSON.parse(events) as unknown;
      } catch {
        throw new StepFailure('aws:executeScript InputPayload is a string that is not JSON');
      }
    }
    const result = await runPython(
      { mode: 'script', script: inputs.Script, handler: inputs.Handler, events },
      this.pythonEnv(principal),
      signal,
      this.log,
    );
    return {
      selectable: { Payload: result },
      predefined: { OutputPayload: JSON.stringify({ Payload: result }) },
      principal: principal.name,
    };
  }

  private async awsApi(
    inputs: Record<string, unknown>,
    exclude: readonly string[],
    principal: Principal,
    signal: AbortSignal,
  ): Promise<unknown> {
    const { Service, Api } = inputs;
    if (typeof Service !== 'string' || typeof Api !== 'string')
      throw new StepFailure('Service and Api are required');
    const params = Object.fromEntries(
      Object.entries(inputs).filter(([k]) => k !== 'Service' && k !== 'Api' && !exclude.includes(k)),
    );
    return await runPython(
      { mode: 'api', service: Service, api: Api, params },
      this.pythonEnv(principal),
      signal,
      this.log,
    );
  }

  private async executeAwsApi(
    inputs: Record<string, unknown>,
    principal: Principal,
    signal: AbortSignal,
  ): Promise<ActionResult> {
    const response = await this.awsApi(inputs, [], principal, signal);
    return { selectable: response, principal: principal.name };
  }

  private async waitForAwsResourceProperty(
    inputs: Record<string, unknown>,
    principal: Principal,
    signal: AbortSignal,
  ): Promise<ActionResult> {
    const { PropertySelector, DesiredValues } = inputs;
    if (typeof PropertySelector !== 'string' || !Array.isArray(DesiredValues))
      throw new StepFailure(
        'aws:waitForAwsResourceProperty needs PropertySelector and a list of DesiredValues',
      );
    const desired = DesiredValues.map(referenceText);
    for (;;) {
      const response = await this.awsApi(inputs, ['PropertySelector', 'DesiredValues'], principal, signal);
      const selected = selectJsonPath(response, PropertySelector);
      if (selected.found && desired.includes(referenceText(selected.value)))
        return { selectable: response, principal: principal.name };
      this.log(
        `waiting: ${PropertySelector} is ${selected.found ? referenceText(selected.value) : 'absent'}`,
      );
      await sleep(this.sleepMs(WAIT_POLL_SECONDS * 1000), signal);
    }
  }

  private async invokeLambda(inputs: Record<string, unknown>, principal: Principal): Promise<ActionResult> {
    unsupportedInputs('aws:invokeLambdaFunction', inputs, INVOKE_LAMBDA_INPUTS);
    const functionName = inputs.FunctionName;
    if (typeof functionName !== 'string' || functionName === '')
      throw new StepFailure('FunctionName is required');
    const payload =
      inputs.Payload === undefined
        ? ''
        : typeof inputs.Payload === 'string'
          ? inputs.Payload
          : JSON.stringify(inputs.Payload);
    const invocationType =
      typeof inputs.InvocationType === 'string' ? inputs.InvocationType : 'RequestResponse';
    const qualifier = typeof inputs.Qualifier === 'string' ? inputs.Qualifier : undefined;
    const out = await this.backends.invokeLambda(principal, {
      functionName,
      payload,
      invocationType,
      ...(qualifier === undefined ? {} : { qualifier }),
      ...(typeof inputs.LogType === 'string' ? { logType: inputs.LogType } : {}),
    });
    const predefined: Record<string, unknown> = {
      StatusCode: out.statusCode,
      ExecutedVersion: out.executedVersion ?? qualifier ?? '$LATEST',
      ...(out.functionError === undefined ? {} : { FunctionError: out.functionError }),
      ...(out.logResult === undefined ? {} : { LogResult: out.logResult }),
      ...(invocationType === 'RequestResponse' ? { Payload: out.payload } : {}),
    };
    let parsed: unknown = out.payload;
    try {
      parsed = JSON.parse(out.payload) as unknown;
    } catch {
      // not JSON: selectors below $.Payload find nothing
    }
    const result: ActionResult = {
      selectable: { ...predefined, Payload: parsed },
      predefined,
      principal: out.principal,
      caller: principal.name,
    };
    if (out.functionError === undefined) return result;
    const error = isRecord(parsed)
      ? `${String(parsed.errorType ?? 'Error')}: ${String(parsed.errorMessage ?? '')}`
      : out.payload;
    return { ...result, failure: `Lambda function ${functionName} failed (${out.functionError}): ${error}` };
  }

  private async runCommand(inputs: Record<string, unknown>, principal: Principal): Promise<ActionResult> {
    unsupportedInputs('aws:runCommand', inputs, RUN_COMMAND_INPUTS);
    const { DocumentName, InstanceIds } = inputs;
    if (typeof DocumentName !== 'string' || DocumentName === '')
      throw new StepFailure('DocumentName is required');
    if (
      !Array.isArray(InstanceIds) ||
      InstanceIds.length === 0 ||
      !InstanceIds.every((i) => typeof i === 'string')
    )
      throw new StepFailure('InstanceIds must be a non-empty list of instance IDs');
    if (InstanceIds.length > 50) throw new StepFailure('InstanceIds takes at most 50 IDs');
    const parameters: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(isRecord(inputs.Parameters) ? inputs.Parameters : {}))
      parameters[k] = Array.isArray(v) ? v.map(referenceText) : referenceText(v);
    const timeoutSeconds = positiveInteger(inputs.TimeoutSeconds);
    const results = await this.backends.runCommand(principal, {
      documentName: DocumentName,
      instanceIds: InstanceIds as string[],
      parameters,
      ...(timeoutSeconds === undefined ? {} : { timeoutSeconds }),
      ...(typeof inputs.Comment === 'string' ? { comment: inputs.Comment } : {}),
    });
    const first = results[0];
    if (first === undefined) throw new StepFailure(`SendCommand of ${DocumentName} ran on no instance`);
    const failed = results.find((r) => r.status !== 'Success');
    const shown = failed ?? first;
    const predefined = {
      CommandId: first.commandId,
      Status: shown.status,
      ResponseCode: shown.responseCode,
      Output: shown.output.slice(0, OUTPUT_LIMIT),
    };
    const principals = [...new Set(results.map((r) => r.principal))].join(', ');
    const result: ActionResult = {
      selectable: predefined,
      predefined,
      principal: principals,
      caller: principal.name,
    };
    if (failed === undefined) return result;
    const reason = failed.stderr.trim().split('\n').at(-1) ?? '';
    return {
      ...result,
      failure: `command ${failed.commandId} (${DocumentName}) on ${failed.instanceId}: ${failed.status}, exit code ${failed.responseCode}${
        reason === '' ? '' : `: ${reason}`
      }`,
    };
  }

  private async executeAutomation(
    execution: Execution,
    inputs: Record<string, unknown>,
    principal: Principal,
    signal: AbortSignal,
  ): Promise<ActionResult> {
    unsupportedInputs('aws:executeAutomation', inputs, EXECUTE_AUTOMATION_INPUTS);
    const { DocumentName, DocumentVersion } = inputs;
    if (typeof DocumentName !== 'string') throw new StepFailure('DocumentName is required');
    const parameters: Record<string, string[]> = {};
    for (const [k, v] of Object.entries(isRecord(inputs.RuntimeParameters) ? inputs.RuntimeParameters : {}))
      parameters[k] = Array.isArray(v) ? v.map(referenceText) : [referenceText(v)];
    let childId: string;
    try {
      childId = await this.start(
        {
          DocumentName,
          Parameters: parameters,
          ...(typeof DocumentVersion === 'string' ? { DocumentVersion } : {}),
          ...(Array.isArray(inputs.Tags) ? { Tags: inputs.Tags as Tag[] } : {}),
        },
        principal,
        { executionId: execution.record.executionId },
      );
    } catch (err) {
      throw new StepFailure(`StartAutomationExecution of ${DocumentName} failed: ${errorText(err)}`);
    }
    const child = this.execution(childId);
    await Promise.race([child.done, aborted(signal)]);
    const record = child.record;
    const output = Object.values(record.outputs).flatMap((values) => values.map(referenceText));
    const predefined = { ExecutionId: childId, Status: record.status, Output: output };
    const result: ActionResult = {
      selectable: predefined,
      predefined,
      principal: record.principal,
      caller: principal.name,
    };
    if (record.status === 'Success') return result;
    return {
      ...result,
      failure: `child execution ${childId} (${DocumentName}) ended ${record.status}: ${record.failureMessage ?? ''}`,
    };
  }

  private async sleepStep(inputs: Record<string, unknown>, signal: AbortSignal): Promise<ActionResult> {
    unsupportedInputs('aws:sleep', inputs, SLEEP_INPUTS);
    let ms: number;
    if (typeof inputs.Duration === 'string') ms = isoDurationMs(inputs.Duration);
    else if (typeof inputs.Timestamp === 'string') {
      const at = Date.parse(inputs.Timestamp);
      if (Number.isNaN(at))
        throw new StepFailure(`Timestamp ${inputs.Timestamp} is not an ISO 8601 timestamp`);
      ms = Math.max(0, at - Date.now());
    } else throw new StepFailure('aws:sleep needs Duration or Timestamp');
    if (ms > SLEEP_MAX_SECONDS * 1000)
      throw new StepFailure(`aws:sleep delays at most ${SLEEP_MAX_SECONDS} seconds`);
    await sleep(this.sleepMs(ms), signal);
    return {};
  }
}

// ---------------------------------------------------------------------------------------------
// Start-time checks

function errorText(err: unknown): string {
  if (err instanceof StepFailure || err instanceof AutomationServiceError) return err.message;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/** A CloudFormation intrinsic left in the content: the deployed document would never hold one. */
function intrinsicPath(value: unknown, path: string): string | undefined {
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) {
      const found = intrinsicPath(v, `${path}[${i}]`);
      if (found !== undefined) return found;
    }
  } else if (isRecord(value)) {
    const keys = Object.keys(value);
    if (keys.length === 1 && (keys[0] === 'Ref' || keys[0]?.startsWith('Fn::'))) return path;
    for (const [k, v] of Object.entries(value)) {
      const found = intrinsicPath(v, `${path}.${k}`);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

function checkDocument(name: string, doc: AutomationDocumentContent): void {
  if (doc.schemaVersion !== '0.3')
    throw new AutomationServiceError(
      'InvalidDocument',
      `document ${name} has schemaVersion ${doc.schemaVersion}, not 0.3`,
    );
  if (!Array.isArray(doc.mainSteps) || doc.mainSteps.length === 0)
    throw new AutomationServiceError('InvalidDocument', `document ${name} has no mainSteps`);
  const intrinsic = intrinsicPath(doc, name);
  if (intrinsic !== undefined)
    throw new AutomationServiceError(
      'InvalidDocumentContent',
      `document ${name} still holds a CloudFormation intrinsic at ${intrinsic}: resolve the template first`,
    );
}

function checkTags(tags: readonly Tag[] | undefined): Tag[] {
  if (tags === undefined) return [];
  if (!Array.isArray(tags)) throw new AutomationServiceError('ValidationException', 'Tags must be a list');
  for (const t of tags) {
    if (
      !isRecord(t) ||
      typeof t.Key !== 'string' ||
      typeof t.Value !== 'string' ||
      t.Key.length < 1 ||
      t.Key.length > 128 ||
      t.Value.length > 256
    )
      throw new AutomationServiceError(
        'ValidationException',
        `tag ${JSON.stringify(t)} is not {Key (1-128), Value (0-256)}`,
      );
  }
  return tags.map((t) => ({ Key: t.Key, Value: t.Value }));
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (isRecord(value))
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical(value[k])]),
    );
  return value;
}

/** A parameter declaration as the runner reads it. */
interface ParameterSpec {
  readonly type?: unknown;
  readonly default?: unknown;
  readonly allowedPattern?: unknown;
  readonly allowedValues?: unknown;
  readonly maxChars?: unknown;
  readonly minItems?: unknown;
  readonly maxItems?: unknown;
}

/** A declared default as the string list StartAutomationExecution would have been given. */
function defaultStrings(value: unknown): string[] {
  if (Array.isArray(value)) return value.map((v) => (isRecord(v) ? JSON.stringify(v) : referenceText(v)));
  return [isRecord(value) ? JSON.stringify(value) : referenceText(value)];
}

function parseJsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    return isRecord(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The execution's parameters, checked as StartAutomationExecution checks them: every problem
 * (not only the first) in one InvalidAutomationExecutionParametersException.
 */
function resolveParameters(
  documentName: string,
  doc: AutomationDocumentContent,
  given: Readonly<Record<string, readonly string[]>>,
): { strings: Record<string, string[]>; values: Record<string, unknown> } {
  const declared = (doc.parameters ?? {}) as Readonly<Record<string, ParameterSpec>>;
  const problems: string[] = [];
  if (!isRecord(given)) problems.push('Parameters must be a map of string lists');
  for (const name of Object.keys(isRecord(given) ? given : {}))
    if (!Object.hasOwn(declared, name))
      problems.push(`parameter ${name} is not defined in document ${documentName}`);
  const strings: Record<string, string[]> = {};
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(declared)) {
    let raw: string[];
    if (isRecord(given) && Object.hasOwn(given, name)) {
      const v = given[name];
      if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) {
        problems.push(`parameter ${name} must be a list of strings`);
        continue;
      }
      raw = [...v];
    } else if (spec.default !== undefined) {
      raw = defaultStrings(spec.default);
      if (raw.some((s) => /\{\{\s*ssm:/.test(s))) {
        problems.push(`parameter ${name}: a default from {{ ssm:... }} is not supported by the local runner`);
        continue;
      }
    } else {
      problems.push(`parameter ${name} is required`);
      continue;
    }
    const checked = checkParameter(name, spec, raw);
    if (typeof checked === 'string') problems.push(checked);
    else {
      strings[name] = raw;
      values[name] = checked.value;
    }
  }
  if (problems.length > 0)
    throw new AutomationServiceError(
      'InvalidAutomationExecutionParametersException',
      `invalid parameters for ${documentName}: ${problems.join('; ')}`,
    );
  return { strings, values };
}

/** The typed value of one parameter, or the reason it is invalid. */
function checkParameter(
  name: string,
  spec: ParameterSpec,
  raw: readonly string[],
): { value: unknown } | string {
  const type = typeof spec.type === 'string' ? spec.type : 'String';
  const pattern = typeof spec.allowedPattern === 'string' ? new RegExp(spec.allowedPattern) : undefined;
  const allowed = Array.isArray(spec.allowedValues) ? spec.allowedValues.map(referenceText) : undefined;
  const maxChars = typeof spec.maxChars === 'number' ? spec.maxChars : undefined;
  const checkText = (v: string): string | undefined => {
    if (pattern !== undefined && !pattern.test(v))
      return `parameter ${name} value ${JSON.stringify(v)} does not match its allowedPattern ${String(spec.allowedPattern)}`;
    if (allowed !== undefined && !allowed.includes(v))
      return `parameter ${name} value ${JSON.stringify(v)} is not one of its allowedValues ${allowed.join(', ')}`;
    if (maxChars !== undefined && v.length > maxChars)
      return `parameter ${name} value is ${v.length} characters, more than its maxChars ${maxChars}`;
    return undefined;
  };
  const checkItems = (): string | undefined => {
    if (typeof spec.minItems === 'number' && raw.length < spec.minItems)
      return `parameter ${name} has ${raw.length} items, fewer than its minItems ${spec.minItems}`;
    if (typeof spec.maxItems === 'number' && raw.length > spec.maxItems)
      return `parameter ${name} has ${raw.length} items, more than its maxItems ${spec.maxItems}`;
    return undefined;
  };
  const single = (): string | undefined =>
    raw.length === 1 ? undefined : `parameter ${name} (${type}) takes exactly one value, got ${raw.length}`;
  switch (type) {
    case 'String': {
      const v = raw[0] as string;
      const problem = single() ?? checkText(v);
      return problem ?? { value: v };
    }
    case 'StringList': {
      const problem = checkItems() ?? raw.map(checkText).find((p) => p !== undefined);
      return problem ?? { value: [...raw] };
    }
    case 'Integer': {
      const v = raw[0] as string;
      const problem =
        single() ??
        (/^-?\d+$/.test(v) ? checkText(v) : `parameter ${name} value ${JSON.stringify(v)} is not an Integer`);
      return problem ?? { value: Number.parseInt(v, 10) };
    }
    case 'Boolean': {
      const v = raw[0] as string;
      const problem =
        single() ??
        (v === 'true' || v === 'false'
          ? undefined
          : `parameter ${name} value ${JSON.stringify(v)} is not a Boolean`);
      return problem ?? { value: v === 'true' };
    }
    case 'StringMap': {
      const v = raw[0] as string;
      const map = parseJsonObject(v);
      const problem =
        single() ??
        (map === undefined ? `parameter ${name} value is not a JSON object (StringMap)` : undefined);
      return problem ?? { value: map };
    }
    case 'MapList': {
      const maps = raw.map(parseJsonObject);
      const problem =
        checkItems() ??
        (maps.includes(undefined)
          ? `parameter ${name} has an item that is not a JSON object (MapList)`
          : undefined);
      return problem ?? { value: maps };
    }
    default:
      return `parameter ${name} has type ${type}, which the local runner does not support`;
  }
}

function resolveAssumeRole(
  documentName: string,
  doc: AutomationDocumentContent,
  strings: Record<string, string[]>,
): string {
  if (typeof doc.assumeRole !== 'string') return '';
  return String(
    interpolate(doc.assumeRole, (n) => {
      const v = strings[n];
      if (v === undefined)
        throw new AutomationServiceError(
          'InvalidAutomationExecutionParametersException',
          `document ${documentName}: assumeRole {{ ${n} }} names no parameter`,
        );
      return v.join(',');
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Steps

function positiveInteger(value: unknown): number | undefined {
  const n =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && /^\d+$/.test(value)
        ? Number(value)
        : NaN;
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

function isCriticalStep(raw: Readonly<Record<string, unknown>>): boolean {
  if (raw.isCritical === false || raw.isCritical === 'false') return false;
  if (raw.isCritical === true || raw.isCritical === 'true') return true;
  return raw.onFailure !== 'Continue';
}

function stepTimeoutSeconds(action: string, declared: number | undefined): number | undefined {
  if (action === 'aws:executeScript')
    return Math.min(declared ?? EXECUTE_SCRIPT_MAX_SECONDS, EXECUTE_SCRIPT_MAX_SECONDS);
  if (action === 'aws:invokeLambdaFunction')
    return Math.min(declared ?? INVOKE_LAMBDA_MAX_SECONDS, INVOKE_LAMBDA_MAX_SECONDS);
  if (action === 'aws:waitForAwsResourceProperty') return declared ?? WAIT_DEFAULT_TIMEOUT_SECONDS;
  return declared;
}

/** The step an aws:branch goes to; undefined when nothing matched and there is no Default. */
function branchTarget(inputs: unknown, lookup: (name: string) => unknown): string | undefined {
  const i = isRecord(inputs) ? inputs : {};
  const choices = Array.isArray(i.Choices) ? i.Choices : [];
  for (const choice of choices) {
    if (holds(choice, lookup)) {
      if (!isRecord(choice) || typeof choice.NextStep !== 'string')
        throw new StepFailure('a choice has no NextStep');
      return choice.NextStep;
    }
  }
  return typeof i.Default === 'string' ? i.Default : undefined;
}

function unsupportedInputs(
  action: string,
  inputs: Record<string, unknown>,
  known: ReadonlySet<string>,
): void {
  const unknown = Object.keys(inputs).filter((k) => !known.has(k));
  if (unknown.length > 0)
    throw new StepFailure(`${action} input ${unknown.join(', ')} is not supported by the local runner`);
}

/** The step's outputs from what the action did: predefined, then the declared Selectors with their Types. */
function outcomeOf(raw: Readonly<Record<string, unknown>>, r: ActionResult): AttemptResult {
  const outputs: Record<string, unknown> = {};
  const known = new Set(PREDEFINED_OUTPUTS[String(raw.action)] ?? []);
  for (const [k, v] of Object.entries(r.predefined ?? {})) if (known.has(k)) outputs[k] = v;
  const base = {
    ...(r.principal === undefined ? {} : { principal: r.principal }),
    ...(r.caller === undefined ? {} : { caller: r.caller }),
  };
  if (r.failure !== undefined) return { status: 'Failed', outputs, failureMessage: r.failure, ...base };
  const declared = Array.isArray(raw.outputs) ? raw.outputs : [];
  for (const o of declared) {
    if (!isRecord(o) || typeof o.Name !== 'string' || typeof o.Selector !== 'string') continue;
    const selected = selectJsonPath(r.selectable, o.Selector);
    if (!selected.found || selected.value === null || selected.value === undefined) continue;
    try {
      outputs[o.Name] = convertOutput(selected.value, typeof o.Type === 'string' ? o.Type : 'String');
    } catch (err) {
      return {
        status: 'Failed',
        outputs,
        failureMessage: `output ${o.Name} (${o.Selector}): ${errorText(err)}`,
        ...base,
      };
    }
  }
  return { status: 'Success', outputs, ...base };
}

// ---------------------------------------------------------------------------------------------
// JSONPath and output types

/** One step of a Selector: `..key`, `.*` / `[*]`, `.key`, `['key']`, `[n]`. */
const SELECTOR_TOKEN =
  /^(?:\.\.([A-Za-z0-9_$-]+)|(\.\*|\[\*\])|\.([A-Za-z0-9_$-]+)|\[['"]([^'"]*)['"]\]|\[(-?\d+)\])/;

/**
 * The value at `path` in `root`: `$`, `.name`, `['name']`, `[n]` (negative from the end), `[*]`
 * or `.*`, and `..name` (deep scan). A wildcard or deep scan makes the result a list.
 */
export function selectJsonPath(root: unknown, path: string): { found: boolean; value?: unknown } {
  if (!path.startsWith('$')) throw new StepFailure(`Selector ${path} does not start with $`);
  let current: unknown[] = [root];
  let many = false;
  let rest = path.slice(1);
  const children = (v: unknown): unknown[] => (Array.isArray(v) ? v : isRecord(v) ? Object.values(v) : []);
  const deep = (v: unknown, key: string, out: unknown[]): void => {
    if (isRecord(v)) {
      if (Object.hasOwn(v, key)) out.push(v[key]);
      for (const c of Object.values(v)) deep(c, key, out);
    } else if (Array.isArray(v)) for (const c of v) deep(c, key, out);
  };
  while (rest.length > 0) {
    const m = SELECTOR_TOKEN.exec(rest);
    if (m === null) throw new StepFailure(`Selector ${path}: cannot read ${JSON.stringify(rest)}`);
    const [token, deepKey, wildcard, dotKey, quotedKey, index] = m;
    if (deepKey !== undefined) {
      const out: unknown[] = [];
      for (const v of current) deep(v, deepKey, out);
      current = out;
      many = true;
    } else if (wildcard !== undefined) {
      current = current.flatMap(children);
      many = true;
    } else if (index !== undefined) {
      const n = Number(index);
      current = current.flatMap((v) => {
        if (!Array.isArray(v)) return [];
        const i = n < 0 ? v.length + n : n;
        return i >= 0 && i < v.length ? [v[i]] : [];
      });
    } else {
      const key = (dotKey ?? quotedKey) as string;
      current = current.flatMap((v) => (isRecord(v) && Object.hasOwn(v, key) ? [v[key]] : []));
    }
    rest = rest.slice(token.length);
  }
  if (many) return { found: true, value: current };
  return current.length === 0 ? { found: false } : { found: true, value: current[0] };
}

/** `value` as an output of `type`, with the conversions AWS documents; throws when there is none. */
export function convertOutput(value: unknown, type: string): unknown {
  const shown = JSON.stringify(value);
  const scalar = (v: unknown): v is string | number | boolean =>
    typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
  const single = Array.isArray(value) && value.length === 1 && scalar(value[0]) ? value[0] : undefined;
  switch (type) {
    case 'String':
      if (scalar(value)) return String(value);
      if (single !== undefined) return String(single);
      break;
    case 'Integer': {
      const v = single ?? value;
      if (typeof v === 'number' && Number.isInteger(v)) return v;
      if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) return Number.parseInt(v, 10);
      break;
    }
    case 'Boolean': {
      const v = single ?? value;
      if (typeof v === 'boolean') return v;
      if (typeof v === 'string' && /^(true|false)$/i.test(v.trim())) return v.trim().toLowerCase() === 'true';
      break;
    }
    case 'StringList':
      if (scalar(value)) return [String(value)];
      if (Array.isArray(value) && value.every(scalar)) return value.map(String);
      break;
    case 'StringMap':
      if (isRecord(value)) return value;
      break;
    case 'MapList':
      if (Array.isArray(value) && value.every(isRecord)) return value;
      break;
    default:
      throw new StepFailure(
        `output Type ${type} is not one of String, Integer, Boolean, StringList, StringMap, MapList`,
      );
  }
  throw new StepFailure(
    `${shown.length > 200 ? `${shown.slice(0, 200)}…` : shown} cannot be converted to ${type}`,
  );
}

// ---------------------------------------------------------------------------------------------
// Time

/** Milliseconds of an ISO 8601 duration (weeks, days, hours, minutes, seconds). */
export function isoDurationMs(duration: string): number {
  const m =
    /^P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(
      duration,
    );
  if (m === null || duration === 'P' || duration.endsWith('T'))
    throw new StepFailure(
      `Duration ${duration} is not an ISO 8601 duration the local runner reads (PnW, PnD, PTnHnMnS; no years or months)`,
    );
  const [w, d, h, min, s] = m.slice(1).map((x) => (x === undefined ? 0 : Number(x))) as number[];
  return (
    ((((w as number) * 7 + (d as number)) * 24 + (h as number)) * 60 + (min as number)) * 60_000 +
    (s as number) * 1000
  );
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new StepFailure('aborted'));
      return;
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new StepFailure('aborted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Settles (never resolves) when `signal` aborts: for racing a wait the step timeout ends. */
function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(new StepFailure('aborted'));
    else signal.addEventListener('abort', () => reject(new StepFailure('aborted')), { once: true });
  });
}

// ---------------------------------------------------------------------------------------------
// python3 with real boto3

/**
 * Runs the harness in python3: `script` mode execs the Script and calls `handler(events, None)`;
 * `api` mode calls one boto3 operation. The result comes back on fd 3 (stdout stays the script's).
 * Each run is a process of its own, forked from a Python that has boto3 loaded (python-forkserver.ts).
 * Aborting `signal` kills the process group. Throws StepFailure `Type: message` when Python raised.
 */
async function runPython(
  request: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  signal: AbortSignal,
  log: (line: string) => void,
): Promise<unknown> {
  const run = await runForked(PY_HARNESS, JSON.stringify(request), env, signal);
  if (run.stdout !== '') log(`python3 stdout: ${run.stdout.trimEnd()}`);
  if (signal.aborted) throw new StepFailure('python3 was killed (step timeout)');
  let out: { ok: boolean; result?: unknown; type?: string; message?: string; traceback?: string } | undefined;
  try {
    out = JSON.parse(run.fd3) as typeof out;
  } catch {
    out = undefined;
  }
  if (out === undefined)
    throw new StepFailure(
      `python3 exited (${run.signal ?? run.exitCode}) without a result: ${run.stderr.trim().split('\n').slice(-3).join(' | ')}`,
    );
  if (out.ok) return out.result;
  if (out.traceback !== undefined) log(out.traceback.trimEnd());
  throw new StepFailure(`${out.type ?? 'Exception'}: ${out.message ?? ''}`);
}

const PY_HARNESS = `
import base64, datetime, decimal, json, os, sys, traceback
request = json.load(sys.stdin)
result_pipe = os.fdopen(3, 'w')

def encode(o):
    if isinstance(o, (datetime.datetime, datetime.date)):
        return o.isoformat()
    if isinstance(o, decimal.Decimal):
        return float(o)
    if isinstance(o, (bytes, bytearray)):
        return base64.b64encode(o).decode('ascii')
    if hasattr(o, 'read'):
        raise TypeError('streaming responses are not supported by aws:executeAwsApi')
    return str(o)

def run():
    if request['mode'] == 'script':
        namespace = {'__name__': 'automation_step'}
        exec(compile(request['script'], 'script', 'exec'), namespace)
        handler = namespace.get(request['handler'])
        if not callable(handler):
            raise NameError('handler %s is not defined by the script' % request['handler'])
        return handler(request['events'], None)
    import boto3
    client = boto3.client(request['service'])
    operations = client.meta.method_to_api_mapping
    by_api = {api: method for method, api in operations.items()}
    method = by_api.get(request['api']) or (request['api'] if request['api'] in operations else None)
    if method is None:
        raise ValueError('%s is not an operation of service %s' % (request['api'], request['service']))
    response = getattr(client, method)(**request['params'])
    response.pop('ResponseMetadata', None)
    return response

try:
    out = {'ok': True, 'result': run()}
    text = json.dumps(out, default=encode)
except Exception as err:
    text = json.dumps({'ok': False, 'type': type(err).__name__, 'message': str(err), 'traceback': traceback.format_exc()})
result_pipe.write(text)
result_pipe.close()
`;
