import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateTopicCommand, SNSClient } from '@aws-sdk/client-sns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AutomationDocumentContent } from '../lib/automation-document';
import { ARCHIVE_WAL_PATHS } from './support/archive-wal-paths';
import {
  type Authorize,
  type AutomationBackends,
  AutomationService,
  type AutomationServiceError,
  type CommandInvocationResult,
  convertOutput,
  type ExecutionRecord,
  type InvokeLambdaRequest,
  type InvokeLambdaResult,
  isoDurationMs,
  type Principal,
  type RunCommandRequest,
  selectJsonPath,
} from './support/automation-runner';
import { type MotoServer, startMotoServer, TEST_REGION } from './support/moto-server';
import { type SynthResult, synthStack, TWO_NODES_FILE } from './support/synth';

/**
 * The local SSM Automation runner (test/support/automation-runner.ts): small synthetic documents
 * run against in-memory back ends for each behaviour (parameter checks before anything runs,
 * ClientToken idempotency, authorization, references, outputs and their types, every action, flow
 * and failure handling); real python3 for aws:executeScript, real boto3 against a moto_server for
 * aws:executeAwsApi and aws:waitForAwsResourceProperty; and the synthesized StemeDB-ArchiveWal
 * document (intrinsics resolved as a deploy would) through its verified and refused paths.
 */

const ACCOUNT = '123456789012';
const DOC = 'Test-Doc';

function role(name: string): Principal {
  return {
    name,
    arn: `arn:aws:iam::${ACCOUNT}:role/${name}`,
    credentials: {
      accessKeyId: `AKIA${name.toUpperCase().replace(/[^A-Z]/g, '')}`,
      secretAccessKey: `secret-${name}`,
      sessionToken: `token-${name}`,
    },
  };
}

const AUTOMATION_ROLE = role('automation-role');
const OPERATOR = role('operator');

interface Authorization {
  readonly principal: string;
  readonly action: string;
  readonly resources: readonly string[];
  readonly context?: Readonly<Record<string, string | readonly string[]>>;
}

type CommandAnswer = Partial<Pick<CommandInvocationResult, 'status' | 'responseCode' | 'output' | 'stderr'>>;

/** In-memory back ends: documents by name, recorded calls, answers decided by the test. */
class FakeAws implements AutomationBackends {
  readonly account = ACCOUNT;
  readonly region = TEST_REGION;
  readonly partition = 'aws';
  readonly docs = new Map<string, AutomationDocumentContent>();
  readonly roles = new Map([[AUTOMATION_ROLE.arn, AUTOMATION_ROLE]]);
  readonly authorizations: Authorization[] = [];
  readonly commands: Array<{ caller: string; request: RunCommandRequest }> = [];
  readonly lambdas: Array<{ caller: string; request: InvokeLambdaRequest }> = [];
  readonly sleeps: number[] = [];
  deny: (call: Authorization) => boolean = () => false;
  command: (request: RunCommandRequest, n: number) => CommandAnswer = () => ({});
  lambda: (request: InvokeLambdaRequest) => Partial<InvokeLambdaResult> = () => ({});
  endpoint: string | undefined;

  automationDocument(name: string): AutomationDocumentContent | undefined {
    return this.docs.get(name);
  }

  async assumeRole(roleArn: string): Promise<Principal> {
    const found = this.roles.get(roleArn);
    if (found === undefined) throw new Error(`${roleArn} cannot be assumed by ssm.amazonaws.com`);
    return found;
  }

  readonly authorize: Authorize = async (principal, action, resources, context) => {
    const call = {
      principal: principal.name,
      action,
      resources,
      ...(context === undefined ? {} : { context }),
    };
    this.authorizations.push(call);
    if (this.deny(call))
      throw new Error(`${principal.name} is not authorized to perform ${action} on ${resources.join(', ')}`);
  };

  async invokeLambda(caller: Principal, request: InvokeLambdaRequest): Promise<InvokeLambdaResult> {
    this.lambdas.push({ caller: caller.name, request });
    return { statusCode: 200, payload: 'null', principal: 'lambda-role', ...this.lambda(request) };
  }

  async runCommand(
    caller: Principal,
    request: RunCommandRequest,
  ): Promise<readonly CommandInvocationResult[]> {
    this.commands.push({ caller: caller.name, request });
    const n = this.commands.length;
    return request.instanceIds.map((instanceId) => ({
      commandId: `command-${n}`,
      instanceId,
      status: 'Success' as const,
      responseCode: 0,
      output: '',
      stderr: '',
      principal: 'instance-role',
      ...this.command(request, n),
    }));
  }

  awsEnv(): NodeJS.ProcessEnv {
    // Deliberately other credentials: the runner must use the principal's.
    return {
      AWS_ACCESS_KEY_ID: 'not-the-principal',
      ...(this.endpoint === undefined ? {} : { AWS_ENDPOINT_URL: this.endpoint }),
    };
  }

  scaleSleepMs(ms: number): number {
    this.sleeps.push(ms);
    return ms / 1000;
  }
}

type Step = Record<string, unknown>;

function automation(
  mainSteps: Step[],
  parameters: Record<string, Record<string, unknown>> = {},
  outputs?: string[],
): AutomationDocumentContent {
  return {
    schemaVersion: '0.3',
    assumeRole: '{{ AutomationAssumeRole }}',
    parameters: {
      AutomationAssumeRole: {
        type: 'String',
        default: AUTOMATION_ROLE.arn,
        allowedPattern: '^arn:aws:iam::[0-9]{12}:role/[A-Za-z0-9-]+$',
      },
      ...parameters,
    },
    mainSteps,
    ...(outputs === undefined ? {} : { outputs }),
  } as unknown as AutomationDocumentContent;
}

const script = (name: string, body: string, extra: Step = {}): Step => ({
  name,
  action: 'aws:executeScript',
  ...extra,
  inputs: {
    Runtime: 'python3.11',
    Handler: 'handler',
    Script: `def handler(events, context):\n${body
      .split('\n')
      .map((l) => `    ${l}`)
      .join('\n')}`,
    ...((extra.inputs as object | undefined) ?? {}),
  },
});

const command = (name: string, extra: Step = {}): Step => ({
  name,
  action: 'aws:runCommand',
  ...extra,
  inputs: {
    DocumentName: name,
    InstanceIds: ['i-0123456789abcdef0'],
    ...((extra.inputs as object | undefined) ?? {}),
  },
});

async function run(
  aws: FakeAws,
  doc: AutomationDocumentContent,
  parameters: Record<string, string[]> = {},
  caller?: Principal,
): Promise<ExecutionRecord & { path: string[] }> {
  aws.docs.set(DOC, doc);
  const ssm = new AutomationService(aws);
  const id = await ssm.start({ DocumentName: DOC, Parameters: parameters }, caller);
  const record = await ssm.wait(id);
  return Object.assign(record, { path: record.steps.map((s) => s.name) });
}

async function startError(
  ssm: AutomationService,
  request: Parameters<AutomationService['start']>[0],
  caller?: Principal,
) {
  try {
    await ssm.start(request, caller);
  } catch (err) {
    return err as AutomationServiceError;
  }
  throw new Error('start did not throw');
}

let moto: MotoServer;
const tmp = mkdtempSync(join(tmpdir(), 'automation-runner-'));

beforeAll(async () => {
  moto = await startMotoServer();
});
afterAll(async () => {
  await moto?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe('StartAutomationExecution', () => {
  const params = {
    InstanceId: { type: 'String', allowedPattern: '^i-[0-9a-f]{8}([0-9a-f]{9})?$' },
    DryRun: { type: 'String', default: 'false', allowedValues: ['true', 'false'] },
    Mount: { type: 'String', default: '/data', allowedPattern: '^/[a-z/]*$', maxChars: 10 },
    Count: { type: 'Integer', default: 2 },
    Force: { type: 'Boolean', default: false },
    Ids: { type: 'StringList', default: ['a'], minItems: 1, maxItems: 2 },
    Maps: { type: 'MapList', default: [{ a: 1 }] },
  };
  const doc = () => automation([command('Host-Echo')], params);

  it.each([
    ['an unknown parameter', { InstanceId: ['i-01234567'], Bogus: ['x'] }, 'parameter Bogus is not defined'],
    ['a missing required parameter', {}, 'parameter InstanceId is required'],
    ['a value outside allowedPattern', { InstanceId: ['i-nothex!'] }, 'does not match its allowedPattern'],
    [
      'a value outside allowedValues',
      { InstanceId: ['i-01234567'], DryRun: ['yes'] },
      'is not one of its allowedValues',
    ],
    [
      'a value past maxChars',
      { InstanceId: ['i-01234567'], Mount: ['/aaaaaaaaaaaa'] },
      'more than its maxChars 10',
    ],
    ['two values for a String', { InstanceId: ['i-01234567', 'i-89abcdef'] }, 'takes exactly one value'],
    ['a non-integer Integer', { InstanceId: ['i-01234567'], Count: ['2.5'] }, 'is not an Integer'],
    ['a non-boolean Boolean', { InstanceId: ['i-01234567'], Force: ['yes'] }, 'is not a Boolean'],
    [
      'too many StringList items',
      { InstanceId: ['i-01234567'], Ids: ['a', 'b', 'c'] },
      'more than its maxItems 2',
    ],
    ['too few StringList items', { InstanceId: ['i-01234567'], Ids: [] }, 'fewer than its minItems 1'],
    [
      'a MapList item that is no map',
      { InstanceId: ['i-01234567'], Maps: ['[1]'] },
      'not a JSON object (MapList)',
    ],
  ])('rejects %s before anything runs', async (_, parameters, message) => {
    const aws = new FakeAws();
    aws.docs.set(DOC, doc());
    const ssm = new AutomationService(aws);
    const err = await startError(ssm, { DocumentName: DOC, Parameters: parameters });
    expect(err.code).toBe('InvalidAutomationExecutionParametersException');
    expect(err.name).toBe('InvalidAutomationExecutionParametersException');
    expect(err.message).toContain(message);
    await ssm.idle();
    expect(ssm.list()).toEqual([]);
    expect(aws.commands).toEqual([]);
  });

  it('applies defaults and passes typed values: Integer as a number, StringList spread into a list', async () => {
    const aws = new FakeAws();
    const record = await run(
      aws,
      automation(
        [
          command('Host-Echo', {
            inputs: {
              InstanceIds: ['{{ Ids }}', 'i-fedcba98'],
              Parameters: { Count: '{{ Count }}', Text: 'n={{ Count }} force={{ Force }} maps={{ Maps }}' },
            },
          }),
        ],
        { ...params, Ids: { type: 'StringList', default: ['i-01234567', 'i-89abcdef'] } },
      ),
      { InstanceId: ['i-01234567'], Count: ['7'] },
    );
    expect(record.status).toBe('Success');
    expect(record.parameters).toMatchObject({
      Count: ['7'],
      Force: ['false'],
      DryRun: ['false'],
      Maps: ['{"a":1}'],
    });
    expect(aws.commands[0]?.request).toMatchObject({
      instanceIds: ['i-01234567', 'i-89abcdef', 'i-fedcba98'],
      parameters: { Count: '7', Text: 'n=7 force=false maps=[{"a":1}]' },
    });
  });

  it('answers AutomationDefinitionNotFoundException for a document that is not deployed', async () => {
    const err = await startError(new AutomationService(new FakeAws()), { DocumentName: 'StemeDB-Nothing' });
    expect(err.code).toBe('AutomationDefinitionNotFoundException');
  });

  it('refuses a document that still holds a CloudFormation intrinsic', async () => {
    const aws = new FakeAws();
    aws.docs.set(
      DOC,
      automation([{ name: 'Api', action: 'aws:executeAwsApi', inputs: { TopicArn: { Ref: 'Topic' } } }]),
    );
    const err = await startError(new AutomationService(aws), { DocumentName: DOC });
    expect(err.code).toBe('InvalidDocumentContent');
    expect(err.message).toContain('mainSteps[0].inputs.TopicArn');
  });

  it('returns the same execution for a repeated ClientToken, IdempotentParameterMismatch for other parameters', async () => {
    const aws = new FakeAws();
    aws.docs.set(DOC, doc());
    const ssm = new AutomationService(aws);
    const token = '5f0c7e61-2f4b-5a3c-9d1e-0123456789ab';
    const request = { DocumentName: DOC, ClientToken: token, Parameters: { InstanceId: ['i-01234567'] } };
    const first = await ssm.start(request);
    expect(await ssm.start(request)).toBe(first);
    const err = await startError(ssm, { ...request, Parameters: { InstanceId: ['i-89abcdef'] } });
    expect(err.code).toBe('IdempotentParameterMismatch');
    expect((await startError(ssm, { ...request, ClientToken: 'not-a-uuid' })).code).toBe(
      'ValidationException',
    );
    await ssm.idle();
    expect(ssm.list()).toHaveLength(1);
    expect(aws.commands).toHaveLength(1);
  });

  it('authorizes the caller on the definition (both forms), the document and the execution, AddTagsToResource for tags and PassRole to SSM', async () => {
    const aws = new FakeAws();
    aws.docs.set(DOC, doc());
    const ssm = new AutomationService(aws);
    const id = await ssm.start(
      {
        DocumentName: DOC,
        Parameters: { InstanceId: ['i-01234567'] },
        Tags: [{ Key: 'stemedb:node', Value: 'db-1' }],
      },
      OPERATOR,
    );
    const definition = `arn:aws:ssm:${TEST_REGION}:${ACCOUNT}:automation-definition/${DOC}`;
    expect(aws.authorizations).toEqual([
      {
        principal: 'operator',
        action: 'ssm:StartAutomationExecution',
        resources: [
          `${definition}:$DEFAULT`,
          `${definition}:1`,
          `arn:aws:ssm:${TEST_REGION}:${ACCOUNT}:document/${DOC}`,
          `arn:aws:ssm:${TEST_REGION}:${ACCOUNT}:automation-execution/${id}`,
        ],
      },
      {
        principal: 'operator',
        action: 'iam:PassRole',
        resources: [AUTOMATION_ROLE.arn],
        context: { 'iam:PassedToService': 'ssm.amazonaws.com' },
      },
      {
        principal: 'operator',
        action: 'ssm:AddTagsToResource',
        resources: [`arn:aws:ssm:${TEST_REGION}:${ACCOUNT}:automation-execution/${id}`],
      },
    ]);
    const record = await ssm.wait(id);
    expect(ssm.tags(id)).toEqual([{ Key: 'stemedb:node', Value: 'db-1' }]);
    expect(record).toMatchObject({ principal: 'automation-role', startedBy: 'operator', status: 'Success' });
    expect(aws.commands[0]?.caller).toBe('automation-role');
  });

  it('starts nothing when the caller may not pass the role', async () => {
    const aws = new FakeAws();
    aws.docs.set(DOC, doc());
    aws.deny = (c) => c.action === 'iam:PassRole';
    const ssm = new AutomationService(aws);
    const err = await startError(
      ssm,
      { DocumentName: DOC, Parameters: { InstanceId: ['i-01234567'] } },
      OPERATOR,
    );
    expect(err.code).toBe('AccessDeniedException');
    expect(err.message).toContain('operator is not authorized to perform iam:PassRole on');
    expect(ssm.list()).toEqual([]);
  });

  it('fails the execution before any step when the role cannot be assumed', async () => {
    const aws = new FakeAws();
    const record = await run(aws, doc(), {
      InstanceId: ['i-01234567'],
      AutomationAssumeRole: [`arn:aws:iam::${ACCOUNT}:role/missing`],
    });
    expect(record.status).toBe('Failed');
    expect(record.failureMessage).toContain('is unable to be assumed');
    expect(record.steps).toEqual([]);
  });
});

describe('references and outputs', () => {
  it('selects outputs by JSONPath and converts them to their Types', async () => {
    const aws = new FakeAws();
    aws.lambda = () => ({
      payload: JSON.stringify({
        n: '42',
        ok: 'true',
        list: ['a', 'b'],
        map: { k: 'v' },
        maps: [{ k: 1 }],
        nested: { deep: [7] },
      }),
    });
    const outputs = (name: string, selector: string, type: string) => ({
      Name: name,
      Selector: selector,
      Type: type,
    });
    const record = await run(
      aws,
      automation(
        [
          {
            name: 'Lambda',
            action: 'aws:invokeLambdaFunction',
            inputs: { FunctionName: 'fn', Payload: '{"run": "{{ automation:EXECUTION_ID }}"}' },
            outputs: [
              outputs('N', '$.Payload.n', 'Integer'),
              outputs('Ok', '$.Payload.ok', 'Boolean'),
              outputs('List', '$.Payload.list', 'StringList'),
              outputs('First', '$.Payload.list[0]', 'String'),
              outputs('Map', '$.Payload.map', 'StringMap'),
              outputs('Maps', '$.Payload.maps', 'MapList'),
              outputs('Deep', '$.Payload.nested.deep', 'Integer'),
              outputs('Missing', '$.Payload.none', 'String'),
            ],
          },
        ],
        {},
        ['Lambda.N', 'Lambda.List', 'Lambda.StatusCode', 'Lambda.Missing'],
      ),
    );
    expect(record.status).toBe('Success');
    expect(record.steps[0]?.outputs).toEqual({
      StatusCode: 200,
      ExecutedVersion: '$LATEST',
      Payload: expect.any(String),
      N: 42,
      Ok: true,
      List: ['a', 'b'],
      First: 'a',
      Map: { k: 'v' },
      Maps: [{ k: 1 }],
      Deep: 7,
    });
    expect(JSON.parse(aws.lambdas[0]?.request.payload ?? '')).toEqual({ run: record.executionId });
    expect(record.outputs).toEqual({
      'Lambda.N': [42],
      'Lambda.List': ['a', 'b'],
      'Lambda.StatusCode': [200],
    });
  });

  it('fails the step when an Integer output reads a non-integer', async () => {
    const aws = new FakeAws();
    aws.lambda = () => ({ payload: '{"n": "lots"}' });
    const record = await run(
      aws,
      automation([
        {
          name: 'Lambda',
          action: 'aws:invokeLambdaFunction',
          inputs: { FunctionName: 'fn' },
          outputs: [{ Name: 'N', Selector: '$.Payload.n', Type: 'Integer' }],
        },
      ]),
    );
    expect(record.status).toBe('Failed');
    expect(record.steps[0]?.failureMessage).toBe(
      'output N ($.Payload.n): "lots" cannot be converted to Integer',
    );
  });

  it.each([
    ['a step that did not succeed', '{{ Broken.Output }}', 'step Broken has not succeeded'],
    ['an output the step does not have', '{{ Ok.Nothing }}', 'step Ok has no output Nothing'],
    ['a name that is nothing', '{{ Nothing }}', 'not a parameter, step output or system variable'],
    ['an SSM parameter', '{{ ssm:/stemedb/x }}', 'are not supported by the local runner'],
  ])(
    'fails the step on a reference to %s, never substituting an empty string',
    async (_, reference, message) => {
      const aws = new FakeAws();
      aws.command = (r) => (r.documentName === 'Broken' ? { status: 'Failed', responseCode: 1 } : {});
      const record = await run(
        aws,
        automation([
          command('Ok'),
          command('Broken', { onFailure: 'Continue' }),
          command('Uses', { inputs: { Parameters: { Value: `x${reference}` } } }),
        ]),
      );
      expect(record.path).toEqual(['Ok', 'Broken', 'Uses']);
      expect(record.steps[2]).toMatchObject({
        status: 'Failed',
        failureMessage: expect.stringContaining(message),
      });
      expect(record.status).toBe('Failed');
      expect(aws.commands.map((c) => c.request.documentName)).toEqual(['Ok', 'Broken']);
    },
  );

  it('resolves the global variables', async () => {
    const aws = new FakeAws();
    await run(
      aws,
      automation([
        command('Echo', {
          inputs: {
            Parameters: {
              V: '{{ global:ACCOUNT_ID }} {{ global:REGION }} {{ global:AWS_PARTITION }} {{ global:DATE }}',
            },
          },
        }),
      ]),
    );
    expect(aws.commands[0]?.request.parameters.V).toMatch(/^123456789012 eu-west-1 aws \d{4}-\d{2}-\d{2}$/);
  });

  it('reads Selectors as the documents write them', () => {
    const response = {
      Reservations: [{ Instances: [{ State: { Name: 'running' } }, { State: { Name: 'stopped' } }] }],
    };
    expect(selectJsonPath(response, '$.Reservations[0].Instances[1].State.Name')).toEqual({
      found: true,
      value: 'stopped',
    });
    expect(selectJsonPath(response, "$['Reservations'][-1].Instances[0].State")).toEqual({
      found: true,
      value: { Name: 'running' },
    });
    expect(selectJsonPath(response, '$.Reservations..Name')).toEqual({
      found: true,
      value: ['running', 'stopped'],
    });
    expect(selectJsonPath(response, '$.Reservations[0].Instances[*].State.Name')).toEqual({
      found: true,
      value: ['running', 'stopped'],
    });
    expect(selectJsonPath(response, '$.Reservations[3]')).toEqual({ found: false });
    expect(() => selectJsonPath(response, 'Reservations')).toThrow('does not start with $');
  });

  it.each([
    [16, 'String', '16'],
    [true, 'String', 'true'],
    ['16', 'Integer', 16],
    [['16'], 'Integer', 16],
    ['TRUE', 'Boolean', true],
    ['x', 'StringList', ['x']],
    [[1, 'a'], 'StringList', ['1', 'a']],
  ])('converts %j to %s', (value, type, expected) => {
    expect(convertOutput(value, type)).toEqual(expected);
  });

  it.each([
    [1.5, 'Integer'],
    [true, 'Integer'],
    [{ a: 1 }, 'String'],
    ['yes', 'Boolean'],
    [['a', 'b'], 'String'],
    ['x', 'MapList'],
    ['x', 'Float'],
  ])('refuses to convert %j to %s', (value, type) => {
    expect(() => convertOutput(value, type)).toThrow();
  });
});

describe('aws:executeScript with python3', () => {
  it('returns the handler value as Payload and outputs, run as the execution principal', async () => {
    const aws = new FakeAws();
    const record = await run(
      aws,
      automation(
        [
          script(
            'Compute',
            "import os\nprint('a line of script output')\nreturn {'double': events['n'] * 2, 'key': os.environ['AWS_ACCESS_KEY_ID'], 'token': os.environ['AWS_SESSION_TOKEN']}",
            {
              inputs: { InputPayload: { n: '{{ N }}' } },
              outputs: [
                { Name: 'Double', Selector: '$.Payload.double', Type: 'Integer' },
                { Name: 'Key', Selector: '$.Payload.key', Type: 'String' },
              ],
            },
          ),
        ],
        { N: { type: 'Integer' } },
        ['Compute.Double'],
      ),
      { N: ['21'] },
    );
    expect(record.status).toBe('Success');
    const step = record.steps[0];
    expect(step?.principal).toBe('automation-role');
    expect(step?.outputs).toMatchObject({ Double: 42, Key: AUTOMATION_ROLE.credentials.accessKeyId });
    expect(JSON.parse(String(step?.outputs.OutputPayload))).toEqual({
      Payload: { double: 42, key: AUTOMATION_ROLE.credentials.accessKeyId, token: 'token-automation-role' },
    });
    expect(record.outputs).toEqual({ 'Compute.Double': [42] });
  });

  it('fails the step, and the execution, with the raised exception', async () => {
    const aws = new FakeAws();
    const record = await run(
      aws,
      automation([
        script('Fail', "raise Exception('refused: ' + events['why'])", {
          inputs: { InputPayload: { why: 'no manifest' } },
        }),
      ]),
    );
    expect(record.status).toBe('Failed');
    expect(record.steps[0]).toMatchObject({
      status: 'Failed',
      failureMessage: 'Exception: refused: no manifest',
    });
    expect(record.failureMessage).toBe('Step Fail failed: Exception: refused: no manifest');
  });

  it('times out: the step and the execution end TimedOut and python3 is killed', async () => {
    const aws = new FakeAws();
    const pidFile = join(tmp, 'sleeper.pid');
    const started = Date.now();
    const record = await run(
      aws,
      automation([
        script(
          'Sleep',
          "import os, time\nopen(events['pidFile'], 'w').write(str(os.getpid()))\ntime.sleep(60)",
          {
            timeoutSeconds: 1,
            inputs: { InputPayload: { pidFile } },
          },
        ),
      ]),
    );
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(record.steps[0]).toMatchObject({
      status: 'TimedOut',
      failureMessage: 'the step exceeded timeoutSeconds 1',
    });
    expect(record.status).toBe('TimedOut');
    expect(existsSync(pidFile)).toBe(true);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    const gone = async (): Promise<boolean> => {
      for (let i = 0; i < 50; i++) {
        try {
          process.kill(pid, 0);
        } catch {
          return true;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      return false;
    };
    expect(await gone()).toBe(true);
  });
});

describe('aws:executeAwsApi and aws:waitForAwsResourceProperty with boto3 against moto_server', () => {
  /** Runs a document of `steps` with the back ends' boto3 calls going to moto_server. */
  async function runOnMoto(steps: Step[], parameters?: Record<string, Record<string, unknown>>) {
    const aws = new FakeAws();
    aws.endpoint = moto.endpoint;
    return { aws, record: await run(aws, automation(steps, parameters)) };
  }

  it('calls the APIs as the principal: outputs by Selector, datetimes as ISO strings, typed inputs', async () => {
    const { record } = await runOnMoto(
      [
        {
          name: 'CreateTopic',
          action: 'aws:executeAwsApi',
          inputs: { Service: 'sns', Api: 'CreateTopic', Name: '{{ TopicName }}' },
          outputs: [{ Name: 'TopicArn', Selector: '$.TopicArn', Type: 'String' }],
        },
        {
          name: 'Publish',
          action: 'aws:executeAwsApi',
          inputs: {
            Service: 'sns',
            Api: 'Publish',
            TopicArn: '{{ CreateTopic.TopicArn }}',
            Message: 'execution {{ automation:EXECUTION_ID }}',
          },
          outputs: [{ Name: 'MessageId', Selector: '$.MessageId', Type: 'String' }],
        },
        {
          name: 'WaitForTopic',
          action: 'aws:waitForAwsResourceProperty',
          timeoutSeconds: 60,
          inputs: {
            Service: 'sns',
            Api: 'GetTopicAttributes',
            TopicArn: '{{ CreateTopic.TopicArn }}',
            PropertySelector: '$.Attributes.TopicArn',
            DesiredValues: ['{{ CreateTopic.TopicArn }}'],
          },
        },
        {
          name: 'CreateVolume',
          action: 'aws:executeAwsApi',
          inputs: {
            Service: 'ec2',
            Api: 'CreateVolume',
            AvailabilityZone: `${TEST_REGION}a`,
            Size: '{{ SizeGiB }}',
          },
          outputs: [
            { Name: 'CreateTime', Selector: '$.CreateTime', Type: 'String' },
            { Name: 'Size', Selector: '$.Size', Type: 'Integer' },
          ],
        },
      ],
      { TopicName: { type: 'String', default: 'runner-test' }, SizeGiB: { type: 'Integer', default: 3 } },
    );
    expect(record.failureMessage).toBeUndefined();
    expect(record.path).toEqual(['CreateTopic', 'Publish', 'WaitForTopic', 'CreateVolume']);
    expect(record.steps.map((s) => s.principal)).toEqual(Array(4).fill('automation-role'));
    expect(record.steps[0]?.outputs.TopicArn).toBe(`arn:aws:sns:${TEST_REGION}:${ACCOUNT}:runner-test`);
    expect(record.steps[1]?.outputs.MessageId).toMatch(/^[0-9a-f-]{36}$/);
    expect(record.steps[3]?.outputs.Size).toBe(3);
    expect(record.steps[3]?.outputs.CreateTime).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}/);
  });

  it('fails the step with the API error', async () => {
    const { record } = await runOnMoto([
      {
        name: 'Publish',
        action: 'aws:executeAwsApi',
        inputs: {
          Service: 'sns',
          Api: 'Publish',
          TopicArn: `arn:aws:sns:${TEST_REGION}:${ACCOUNT}:absent`,
          Message: 'x',
        },
      },
    ]);
    expect(record.status).toBe('Failed');
    expect(record.steps[0]?.failureMessage).toMatch(/^NotFoundException: An error occurred \(NotFound\)/);
  });

  it('times out waiting for a property that never takes a desired value', async () => {
    const { aws, record } = await runOnMoto([
      {
        name: 'Wait',
        action: 'aws:waitForAwsResourceProperty',
        // Long enough for one boto3 call and its poll sleep on a loaded 2-core machine.
        timeoutSeconds: 4,
        onFailure: 'Continue',
        inputs: {
          Service: 'sns',
          Api: 'ListTopics',
          PropertySelector: '$.NextToken',
          DesiredValues: ['never'],
        },
      },
    ]);
    expect(record.steps[0]).toMatchObject({
      status: 'TimedOut',
      failureMessage: 'the step exceeded timeoutSeconds 4',
    });
    expect(aws.sleeps.length).toBeGreaterThan(0);
    expect(aws.sleeps.every((ms) => ms === 5000)).toBe(true);
    // onFailure Continue: not critical, so the execution succeeds.
    expect(record.status).toBe('Success');
  });
});

describe('aws:invokeLambdaFunction, aws:runCommand, aws:executeAutomation', () => {
  it('fails the Lambda step on a FunctionError; the step names the function role and the caller', async () => {
    const aws = new FakeAws();
    aws.lambda = () => ({
      functionError: 'Unhandled',
      payload: JSON.stringify({ errorType: 'TypeError', errorMessage: 'x is undefined' }),
      principal: 'verify-archive-role',
    });
    const record = await run(
      aws,
      automation([{ name: 'Verify', action: 'aws:invokeLambdaFunction', inputs: { FunctionName: 'fn' } }]),
    );
    expect(record.steps[0]).toMatchObject({
      status: 'Failed',
      principal: 'verify-archive-role',
      caller: 'automation-role',
      failureMessage: 'Lambda function fn failed (Unhandled): TypeError: x is undefined',
      outputs: { FunctionError: 'Unhandled', StatusCode: 200 },
    });
    expect(aws.lambdas[0]?.request).toEqual({
      functionName: 'fn',
      payload: '',
      invocationType: 'RequestResponse',
    });
  });

  it('fails the command step when an instance fails, keeping CommandId and the first 24,000 characters of Output', async () => {
    const aws = new FakeAws();
    aws.command = () => ({
      status: 'Failed',
      responseCode: 3,
      output: 'x'.repeat(30_000),
      stderr: 'progress\ndisk not healthy',
    });
    const record = await run(
      aws,
      automation([command('Validate', { onFailure: 'Continue' }), command('After')]),
    );
    expect(record.path).toEqual(['Validate', 'After']);
    const step = record.steps[0];
    expect(step).toMatchObject({
      status: 'Failed',
      principal: 'instance-role',
      caller: 'automation-role',
      failureMessage:
        'command command-1 (Validate) on i-0123456789abcdef0: Failed, exit code 3: disk not healthy',
      outputs: { CommandId: 'command-1', Status: 'Failed', ResponseCode: 3 },
    });
    expect(String(step?.outputs.Output)).toHaveLength(24_000);
  });

  it('runs a child automation as the parent session and fails the step when the child fails', async () => {
    const aws = new FakeAws();
    aws.command = (r) => ({
      output: `ran ${r.parameters.What}`,
      ...(r.parameters.What === 'bad' ? { status: 'Failed' } : {}),
    });
    aws.docs.set(
      'Child',
      automation(
        [command('Work', { inputs: { Parameters: { What: '{{ What }}' } } })],
        { What: { type: 'String', allowedPattern: '^[a-z]+$' } },
        ['Work.Output'],
      ),
    );
    const parent = (what: string) =>
      automation([
        {
          name: 'RunChild',
          action: 'aws:executeAutomation',
          inputs: {
            DocumentName: 'Child',
            RuntimeParameters: { What: [what], AutomationAssumeRole: ['{{ AutomationAssumeRole }}'] },
          },
        },
        command('Report', {
          inputs: { Parameters: { Child: '{{ RunChild.Status }} {{ RunChild.Output }}' } },
        }),
      ]);
    const ssm = new AutomationService(aws);
    aws.docs.set('Parent-Ok', parent('good'));
    aws.docs.set('Parent-Bad', parent('bad'));
    const ok = await ssm.wait(await ssm.start({ DocumentName: 'Parent-Ok' }, OPERATOR));
    const bad = await ssm.wait(await ssm.start({ DocumentName: 'Parent-Bad' }, OPERATOR));

    expect(ok.status).toBe('Success');
    const childId = String(ok.steps[0]?.outputs.ExecutionId);
    expect(ssm.get(childId)).toMatchObject({
      parentExecutionId: ok.executionId,
      startedBy: 'automation-role',
      status: 'Success',
    });
    expect(ok.steps[0]?.outputs).toEqual({ ExecutionId: childId, Status: 'Success', Output: ['ran good'] });
    expect(aws.commands.find((c) => c.request.documentName === 'Report')?.request.parameters.Child).toBe(
      'Success ["ran good"]',
    );
    // The child is started by the parent's session: it needs StartAutomationExecution and PassRole.
    expect(
      aws.authorizations
        .filter((a) => a.principal === 'automation-role')
        .map((a) => [a.action, a.resources[0]]),
    ).toContainEqual([
      'ssm:StartAutomationExecution',
      `arn:aws:ssm:${TEST_REGION}:${ACCOUNT}:automation-definition/Child:$DEFAULT`,
    ]);
    expect(
      aws.authorizations.filter((a) => a.principal === 'automation-role').map((a) => a.action),
    ).toContain('iam:PassRole');

    expect(bad.steps[0]).toMatchObject({
      status: 'Failed',
      failureMessage: expect.stringMatching(/^child execution .* ended Failed: Step Work failed/),
    });
    expect(bad.steps.map((s) => s.name)).toEqual(['RunChild']);
    expect(bad.status).toBe('Failed');
    expect(ssm.list().filter((e) => e.parentExecutionId !== undefined)).toHaveLength(2);
  });

  it('fails the step when the parent session may not start the child', async () => {
    const aws = new FakeAws();
    aws.deny = (c) => c.principal === 'automation-role' && c.action === 'ssm:StartAutomationExecution';
    aws.docs.set('Child', automation([command('Work')]));
    const record = await run(
      aws,
      automation([{ name: 'RunChild', action: 'aws:executeAutomation', inputs: { DocumentName: 'Child' } }]),
    );
    expect(record.steps[0]?.failureMessage).toContain(
      'StartAutomationExecution of Child failed: automation-role is not authorized to perform ssm:StartAutomationExecution',
    );
    expect(aws.commands).toEqual([]);
  });
});

describe('flow', () => {
  const branchDoc = () =>
    automation(
      [
        {
          name: 'Choose',
          action: 'aws:branch',
          inputs: {
            Choices: [
              {
                NextStep: 'Big',
                And: [
                  { Variable: '{{ Size }}', NumericGreater: 100 },
                  { Not: { Variable: '{{ Kind }}', StringEquals: 'tmp' } },
                ],
              },
              {
                NextStep: 'Special',
                Or: [
                  { Variable: '{{ Kind }}', StartsWith: 'sp' },
                  { Variable: '{{ Flag }}', BooleanEquals: true },
                ],
              },
            ],
          },
        },
        command('Fallthrough', { isEnd: true }),
        command('Big', { isEnd: true }),
        command('Special', { isEnd: true }),
      ],
      {
        Size: { type: 'Integer' },
        Kind: { type: 'String', default: 'data' },
        Flag: { type: 'Boolean', default: false },
      },
    );

  it.each([
    [{ Size: ['200'] }, 'Big'],
    [{ Size: ['200'], Kind: ['tmp'] }, 'Fallthrough'],
    [{ Size: ['5'], Kind: ['special'] }, 'Special'],
    [{ Size: ['5'], Flag: ['true'] }, 'Special'],
    [{ Size: ['5'] }, 'Fallthrough'],
  ])('branches on %j to %s (no Default: the next step)', async (parameters, target) => {
    const record = await run(new FakeAws(), branchDoc(), parameters);
    expect(record.path).toEqual(['Choose', target]);
    expect(record.status).toBe('Success');
  });

  it('takes Default when no choice holds', async () => {
    const record = await run(
      new FakeAws(),
      automation([
        {
          name: 'Choose',
          action: 'aws:branch',
          inputs: { Choices: [{ NextStep: 'A', Variable: 'x', StringEquals: 'y' }], Default: 'B' },
        },
        command('A', { isEnd: true }),
        command('B'),
      ]),
    );
    expect(record.path).toEqual(['Choose', 'B']);
  });

  it('follows nextStep and stops at isEnd', async () => {
    const record = await run(
      new FakeAws(),
      automation([
        command('A', { nextStep: 'C' }),
        command('B'),
        command('C', { isEnd: true }),
        command('D'),
      ]),
    );
    expect(record.path).toEqual(['A', 'C']);
  });

  it.each([
    ['Abort (default)', {}, ['Fails'], 'Failed'],
    ['Continue, not critical by default', { onFailure: 'Continue' }, ['Fails', 'Next', 'Last'], 'Success'],
    [
      'Continue, isCritical true',
      { onFailure: 'Continue', isCritical: true },
      ['Fails', 'Next', 'Last'],
      'Failed',
    ],
    ['step:Last, critical by default', { onFailure: 'step:Last' }, ['Fails', 'Last'], 'Failed'],
    [
      'step:Last, isCritical false',
      { onFailure: 'step:Last', isCritical: false },
      ['Fails', 'Last'],
      'Success',
    ],
    ['Abort, isCritical false', { isCritical: false }, ['Fails'], 'Failed'],
  ])('on failure with %s', async (_, props, path, status) => {
    const aws = new FakeAws();
    aws.command = (r) => (r.documentName === 'Fails' ? { status: 'Failed', responseCode: 1 } : {});
    const record = await run(aws, automation([command('Fails', props), command('Next'), command('Last')]));
    expect(record.path).toEqual(path);
    expect(record.status).toBe(status);
    if (status === 'Failed') expect(record.failureMessage).toMatch(/^Step Fails failed: command command-1/);
  });

  it('retries a step up to maxAttempts', async () => {
    const aws = new FakeAws();
    aws.command = (r, n) =>
      r.documentName === 'Flaky' && n === 1
        ? { status: 'Failed', responseCode: 1 }
        : r.documentName === 'Broken'
          ? { status: 'Failed', responseCode: 2 }
          : {};
    const flaky = await run(aws, automation([command('Flaky', { maxAttempts: 3 })]));
    expect(flaky.steps[0]).toMatchObject({ status: 'Success', attempts: 2 });
    const broken = await run(aws, automation([command('Broken', { maxAttempts: 3 })]));
    expect(broken.steps[0]).toMatchObject({ status: 'Failed', attempts: 3 });
    expect(aws.commands.map((c) => c.request.documentName)).toEqual([
      'Flaky',
      'Flaky',
      'Broken',
      'Broken',
      'Broken',
    ]);
  });

  it('fails an execution that runs more steps than maxSteps (a loop)', async () => {
    const aws = new FakeAws();
    aws.docs.set(
      DOC,
      automation([
        command('Poll', { nextStep: 'Again' }),
        {
          name: 'Again',
          action: 'aws:branch',
          inputs: { Choices: [{ NextStep: 'Poll', Variable: 'x', StringEquals: 'x' }] },
        },
      ]),
    );
    const ssm = new AutomationService(aws, { maxSteps: 10 });
    const record = await ssm.wait(await ssm.start({ DocumentName: DOC }));
    expect(record.steps).toHaveLength(10);
    expect(record.status).toBe('Failed');
    expect(record.failureMessage).toContain('more than 10 steps ran');
  });

  it('sleeps for the scaled Duration', async () => {
    const aws = new FakeAws();
    const record = await run(
      aws,
      automation([{ name: 'Pause', action: 'aws:sleep', inputs: { Duration: 'PT1M30S' } }, command('After')]),
    );
    expect(record.path).toEqual(['Pause', 'After']);
    expect(aws.sleeps).toEqual([90_000]);
    expect(isoDurationMs('P1W2DT3H4M5.5S')).toBe(((9 * 24 + 3) * 60 + 4) * 60_000 + 5500);
    expect(() => isoDurationMs('P1M')).toThrow('no years or months');
  });

  it.each(['aws:approve', 'aws:pause', 'aws:createStack'])(
    'fails the step and the execution for %s, which the runner does not implement',
    async (action) => {
      const aws = new FakeAws();
      const record = await run(
        aws,
        automation([{ name: 'Unsupported', action, inputs: {} }, command('After')]),
      );
      expect(record.steps[0]).toMatchObject({
        status: 'Failed',
        failureMessage: `action ${action} is not supported by the local runner`,
      });
      expect(record.status).toBe('Failed');
      expect(aws.commands).toEqual([]);
    },
  );

  it('fails the step for an input of a supported action that the runner does not implement', async () => {
    const record = await run(
      new FakeAws(),
      automation([command('Targeted', { inputs: { Targets: [{ Key: 'tag:a', Values: ['b'] }] } })]),
    );
    expect(record.steps[0]?.failureMessage).toBe(
      'aws:runCommand input Targets is not supported by the local runner',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// A synthesized document

type Resource = { Type: string; Properties: Record<string, unknown> };

/** Resolves Ref, Fn::GetAtt and Fn::Join as CloudFormation would for the given physical values. */
function resolveIntrinsics(
  value: unknown,
  ref: (logicalId: string) => string,
  getAtt: (id: string, attr: string) => string,
): unknown {
  if (Array.isArray(value)) return value.map((v) => resolveIntrinsics(v, ref, getAtt));
  if (typeof value !== 'object' || value === null) return value;
  const o = value as Record<string, unknown>;
  if (typeof o.Ref === 'string') return ref(o.Ref);
  if (Array.isArray(o['Fn::GetAtt'])) return getAtt(String(o['Fn::GetAtt'][0]), String(o['Fn::GetAtt'][1]));
  if (Array.isArray(o['Fn::Join'])) {
    const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
    return parts.map((p) => String(resolveIntrinsics(p, ref, getAtt))).join(sep);
  }
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, resolveIntrinsics(v, ref, getAtt)]));
}

describe('the synthesized StemeDB-ArchiveWal', () => {
  let synth: SynthResult;
  let archiveWal: AutomationDocumentContent;
  let topicArn: string;
  const BUCKET = 'stemedb-wal-archive-test';

  beforeAll(async () => {
    synth = synthStack(JSON.parse(readFileSync(TWO_NODES_FILE, 'utf8')) as Record<string, unknown>);
    const sns = new SNSClient({
      endpoint: moto.endpoint,
      region: TEST_REGION,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    topicArn =
      (await sns.send(new CreateTopicCommand({ Name: 'StemeDB-disk-notifications' }))).TopicArn ?? '';
    const resources = synth.template.toJSON().Resources as Record<string, Resource>;
    const ref = (id: string): string => {
      const r = resources[id];
      if (r?.Type === 'AWS::SNS::Topic') return topicArn;
      if (r?.Type === 'AWS::S3::Bucket') return BUCKET;
      if (r?.Type === 'AWS::Lambda::Function' && typeof r.Properties.FunctionName === 'string')
        return r.Properties.FunctionName;
      throw new Error(`no physical value for Ref ${id} (${r?.Type})`);
    };
    const getAtt = (id: string, attr: string): string => {
      if (resources[id]?.Type === 'AWS::IAM::Role' && attr === 'Arn') return AUTOMATION_ROLE.arn;
      throw new Error(`no value for Fn::GetAtt ${id}.${attr}`);
    };
    const found = Object.values(resources).find(
      (r) => r.Type === 'AWS::SSM::Document' && r.Properties.Name === 'StemeDB-ArchiveWal',
    );
    archiveWal = resolveIntrinsics(found?.Properties.Content, ref, getAtt) as AutomationDocumentContent;
  });

  const hostResult = (r: RunCommandRequest): CommandAnswer => ({
    output: `progress\n${JSON.stringify({ document: r.documentName, dryRun: r.parameters.DryRun, bytesFreed: 4096 })}`,
  });

  async function archive(verification: Record<string, unknown>) {
    const aws = new FakeAws();
    aws.endpoint = moto.endpoint;
    aws.docs.set('StemeDB-ArchiveWal', archiveWal);
    aws.command = hostResult;
    aws.lambda = () => ({ payload: JSON.stringify(verification), principal: 'verify-archive-role' });
    const ssm = new AutomationService(aws);
    const id = await ssm.start(
      {
        DocumentName: 'StemeDB-ArchiveWal',
        Parameters: { InstanceId: ['i-0123456789abcdef0'], Node: ['db-1'] },
      },
      OPERATOR,
    );
    const record = await ssm.wait(id);
    return { aws, record, path: record.steps.map((s) => s.name) };
  }

  it('uploads, verifies, deletes and notifies when every segment is verified, each step as its principal', async () => {
    const { aws, record, path } = await archive({
      status: 'verified',
      reason: '',
      counts: { verified: 3, mismatched: 0, notArchived: 0 },
    });
    expect(record.failureMessage).toBeUndefined();
    expect(path).toEqual(ARCHIVE_WAL_PATHS.verified);
    expect(record.status).toBe('Success');
    expect(record.steps.map((s) => s.principal)).toEqual([
      'automation-role',
      'instance-role',
      'verify-archive-role',
      undefined,
      'instance-role',
      'instance-role',
      'automation-role',
    ]);
    expect(aws.commands.map((c) => [c.request.documentName, c.request.parameters.Prefix])).toEqual([
      ['StemeDB-Host-ArchiveWal', 'wal/db-1/'],
      ['StemeDB-Host-DeleteArchivedWal', 'wal/db-1/'],
      ['StemeDB-Host-DiskReport', undefined],
    ]);
    expect(JSON.parse(aws.lambdas[0]?.request.payload ?? '')).toMatchObject({
      bucket: BUCKET,
      manifestKey: 'wal/db-1/_manifest/upload.json',
      node: 'db-1',
      dryRun: 'false',
    });
    expect(record.outputs).toMatchObject({
      'ResolveNode.Node': ['db-1'],
      'VerifyArchive.Status': ['verified'],
      'VerifyArchive.Verified': [3],
    });
    expect(record.steps.at(-1)?.outputs.MessageId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('deletes nothing, notifies the refusal and ends Failed with its reason when verification refuses', async () => {
    const { aws, record, path } = await archive({
      status: 'refused',
      reason: 'manifest runId is not the latest upload',
      counts: { verified: 0, mismatched: 1, notArchived: 0 },
    });
    expect(path).toEqual(ARCHIVE_WAL_PATHS.refused);
    expect(aws.commands.map((c) => c.request.documentName)).toEqual(['StemeDB-Host-ArchiveWal']);
    expect(record.status).toBe('Failed');
    expect(record.failureMessage).toBe(
      'Step FailRefused failed: Exception: verification refused, nothing deleted: manifest runId is not the latest upload',
    );
  });
});
