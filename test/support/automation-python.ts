import { spawnSync } from 'node:child_process';
import type { AutomationDocumentContent } from '../../lib/automation-document';
import { loadStepScript } from '../../lib/automation-script';
import type { StepResult } from './automation-validator';

/**
 * Runs the Python of an Automation document's `aws:executeScript` steps in a local `python3`, as
 * Automation would call it (`handler(events, None)`), with a stub `boto3` whose clients answer
 * from canned responses and record every call. `time.sleep` is a no-op, so retry loops run
 * instantly. The harness needs only the standard library, so python3 runs with `-S` (no `site`:
 * about half its start-up time on a machine whose site-packages import certifi at start). The script is the one SSM runs: a step's `Script` as synthesized (its file under
 * `ssm-documents/automation-scripts/` with the shared helpers it imports inlined), from a loaded
 * document ({@link stepScript}) or straight from the file ({@link stepScriptFile}).
 *
 * ```ts
 * const run = runStepScript(doc, 'ReadResult', { commandId: 'c-1' }, {
 *   get_command_invocation: [{ error: 'InvocationDoesNotExist' }, { Status: 'Success', StandardOutputContent: '…' }],
 * });
 * run.result;                 // what the handler returned
 * run.calls[0];               // { service: 'ssm', op: 'get_command_invocation', args: { … } }
 * expect(() => runStepScript(doc, 'FailExecution', { execution: 'e-1' })).toThrow('Exception: …');
 * ```
 *
 * Responses: per boto3 operation name (snake_case), a list of answers given in order; the last
 * one repeats. An answer `{ error: 'Code' }` raises a `ClientError` (a botocore-like exception
 * whose `response['Error']['Code']` is `Code`). An operation without answers raises `NotStubbed`.
 */

/** A boto3 call the handler made. */
export interface BotoCall {
  /** The `boto3.client(name)` the call went through, e.g. `ssm`. */
  readonly service: string;
  /** The operation, e.g. `get_command_invocation`. */
  readonly op: string;
  /** The keyword arguments. */
  readonly args: Record<string, unknown>;
}

/** Canned answers by boto3 operation name; `{ error: code }` raises a ClientError with that code. */
export type BotoResponses = Readonly<Record<string, readonly unknown[]>>;

/** The Python source and handler name of an `aws:executeScript` step. */
export interface StepScript {
  readonly script: string;
  readonly handler: string;
}

/** What a handler that returned did: its return value and the boto3 calls it made. */
export interface ScriptRun<R> {
  readonly result: R;
  readonly calls: readonly BotoCall[];
}

/** Thrown when the handler raised: `message` is `Type: text`, as Python's traceback ends. */
export class PythonHandlerError extends Error {
  constructor(
    /** The exception class name, e.g. `Exception`. */
    readonly pythonType: string,
    /** `str(exception)`. */
    readonly pythonMessage: string,
    /** The boto3 calls made before it raised. */
    readonly calls: readonly BotoCall[],
  ) {
    super(`${pythonType}: ${pythonMessage}`);
    this.name = 'PythonHandlerError';
  }
}

/** The Script and Handler of `stepName`; throws when there is no such `aws:executeScript` step. */
export function stepScript(doc: AutomationDocumentContent, stepName: string): StepScript {
  const step = doc.mainSteps.find((s) => s.name === stepName);
  if (step === undefined) throw new Error(`no step ${stepName}`);
  if (step.action !== 'aws:executeScript') throw new Error(`step ${stepName} is ${String(step.action)}`);
  const inputs = step.inputs as { Script?: unknown; Handler?: unknown } | undefined;
  if (typeof inputs?.Script !== 'string' || typeof inputs.Handler !== 'string')
    throw new Error(`step ${stepName} has no inline Script and Handler`);
  return { script: inputs.Script, handler: inputs.Handler };
}

/** The script `relPath` of `ssm-documents/automation-scripts/` as a step would carry it, and its handler. */
export function stepScriptFile(relPath: string, handler: string): StepScript {
  return { script: loadStepScript(relPath), handler };
}

/**
 * Calls the handler of `script` with `events` in python3 and the stub boto3. Returns what it
 * returned (parsed from JSON) and its boto3 calls; throws {@link PythonHandlerError} when the
 * handler raised, and a plain Error when python3 itself failed (a syntax error, say).
 */
export function runPythonHandler<R = Record<string, string>>(
  script: StepScript,
  events: Readonly<Record<string, unknown>>,
  responses: BotoResponses = {},
): ScriptRun<R> {
  const r = spawnSync('python3', ['-S', '-c', PY_HARNESS], {
    input: JSON.stringify({ script: script.script, handler: script.handler, events, responses }),
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`python3 failed (exit ${r.status}): ${r.stderr}`);
  const out = JSON.parse(r.stdout) as {
    result?: R;
    raised?: { type: string; message: string; traceback: string };
    calls: BotoCall[];
  };
  if (out.raised !== undefined) throw new PythonHandlerError(out.raised.type, out.raised.message, out.calls);
  return { result: out.result as R, calls: out.calls };
}

/** {@link runPythonHandler} on the script of step `stepName` of `doc`. */
export function runStepScript<R = Record<string, string>>(
  doc: AutomationDocumentContent,
  stepName: string,
  events: Readonly<Record<string, unknown>>,
  responses: BotoResponses = {},
): ScriptRun<R> {
  return runPythonHandler<R>(stepScript(doc, stepName), events, responses);
}

/** A {@link StepResult} with the boto3 calls the step's handler made. */
export interface ScriptStepResult extends StepResult {
  readonly calls: readonly BotoCall[];
}

/**
 * The step's result for {@link simulateAutomation}: runs its handler with `inputs.InputPayload`
 * (the resolved inputs the simulator passes) and maps the step's declared outputs whose Selector
 * is `$.Payload.<key>` to the returned values (as strings). A raised exception is a Failed step.
 */
export function executeScriptStep(
  doc: AutomationDocumentContent,
  stepName: string,
  inputs: unknown,
  responses: BotoResponses = {},
): ScriptStepResult {
  const payload = (inputs as { InputPayload?: Record<string, unknown> } | undefined)?.InputPayload ?? {};
  let run: ScriptRun<Record<string, unknown> | null>;
  try {
    run = runStepScript<Record<string, unknown> | null>(doc, stepName, payload, responses);
  } catch (err) {
    if (err instanceof PythonHandlerError) return { status: 'Failed', calls: err.calls };
    throw err;
  }
  const step = doc.mainSteps.find((s) => s.name === stepName);
  const declared = (step?.outputs ?? []) as Array<{ Name: string; Selector: string }>;
  const outputs: Record<string, string> = {};
  for (const { Name, Selector } of declared) {
    const key = /^\$\.Payload\.(\w+)$/.exec(Selector)?.[1];
    const value = key === undefined ? undefined : run.result?.[key];
    if (value !== undefined && value !== null) outputs[Name] = String(value);
  }
  return { status: 'Success', outputs, calls: run.calls };
}

const PY_HARNESS = `
import json, sys, time, traceback, types
fixture = json.load(sys.stdin)
calls = []
class ClientError(Exception):
    def __init__(self, code, op):
        super().__init__('An error occurred (%s) when calling the %s operation' % (code, op))
        self.response = {'Error': {'Code': code, 'Message': code}}
class Client:
    def __init__(self, service):
        self._service = service
    def __getattr__(self, op):
        def call(**kwargs):
            calls.append({'service': self._service, 'op': op, 'args': kwargs})
            queue = fixture['responses'].get(op) or [{'error': 'NotStubbed'}]
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
            if isinstance(answer, dict) and 'error' in answer:
                raise ClientError(answer['error'], op)
            return answer
        return call
boto3 = types.ModuleType('boto3')
boto3.client = lambda name, *args, **kwargs: Client(name)
sys.modules['boto3'] = boto3
time.sleep = lambda seconds: None
namespace = {}
exec(compile(fixture['script'], 'step-script', 'exec'), namespace)
try:
    result = namespace[fixture['handler']](fixture['events'], None)
except Exception as err:
    out = {'raised': {'type': type(err).__name__, 'message': str(err), 'traceback': traceback.format_exc()}}
else:
    out = {'result': result}
out['calls'] = calls
print(json.dumps(out, default=str))
`;
