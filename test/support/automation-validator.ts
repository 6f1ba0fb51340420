/**
 * Validates an SSM Automation document (schemaVersion 0.3, as an object) in two layers:
 *
 * 1. `schema`: AWS's published Automation schema (npm `aws-ssm-document-language-service`,
 *    `dist/schema.json`) with Ajv, corrected where it is stale (./automation-schema-extensions.ts).
 * 2. Checks a JSON schema cannot express:
 *    - `step-names`: step names are unique and valid;
 *    - `targets`: every nextStep, onFailure/onCancel `step:X`, branch NextStep and Default exists;
 *    - `references`: every `{{ x }}` resolves to a parameter, a step output (`{{ Step.Output }}`,
 *      the step's own `outputs` or the action's predefined ones), a declared variable, or a
 *      system variable (`automation:EXECUTION_ID`, `global:*`, `ssm:/...` in defaults);
 *      document `outputs` name existing step outputs;
 *    - `order`: a step reads another step's output only if every path to it passes that step's
 *      success (otherwise the reference cannot resolve at run time);
 *    - `flow`: every step is reachable from the first;
 *    - `parameters`: String parameters have an anchored allowedPattern or allowedValues, and a
 *      known default satisfies them.
 *
 * Also: {@link simulateAutomation}, which walks a document as Automation would for given step
 * results (branch conditions evaluated), so tests can assert the paths a document takes. Its
 * pieces ({@link interpolate}, {@link holds}, {@link PREDEFINED_OUTPUTS}) are shared with the local
 * Automation runner (./automation-runner.ts), which executes documents for real.
 */

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import Ajv, { type ValidateFunction } from 'ajv';
import { isAnchoredPattern, REPO_ROOT } from '../../lib/command-document';
import { automationSchemaDependencies, extendAutomationSchema } from './automation-schema-extensions';

export type AutomationCheck =
  | 'schema'
  | 'step-names'
  | 'targets'
  | 'references'
  | 'order'
  | 'flow'
  | 'parameters';

export interface AutomationProblem {
  readonly check: AutomationCheck;
  readonly message: string;
}

type Json = Record<string, unknown>;

/** A plain object (not null, not an array). */
export function isRecord(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The published schema file, resolved through node_modules. */
export function publishedSchemaPath(): string {
  return createRequire(join(REPO_ROOT, 'package.json')).resolve(
    'aws-ssm-document-language-service/dist/schema.json',
  );
}

let compiled: ValidateFunction | undefined;

function schemaValidator(): ValidateFunction {
  if (compiled) return compiled;
  const published = JSON.parse(readFileSync(publishedSchemaPath(), 'utf8')) as Json;
  // strict: false: the schema carries editor keywords (defaultSnippets). unicodeRegExp: false:
  // its patterns (`^{{[ ]{0,1}...}}$`) are valid ECMAScript only without the u flag.
  const ajv = new Ajv({ strict: false, allErrors: true, unicodeRegExp: false });
  for (const dep of automationSchemaDependencies()) ajv.addSchema(dep);
  compiled = ajv.compile(extendAutomationSchema(published));
  return compiled;
}

export function schemaProblems(doc: unknown): AutomationProblem[] {
  const validate = schemaValidator();
  if (validate(doc)) return [];
  const seen = new Set<string>();
  const problems: AutomationProblem[] = [];
  for (const e of validate.errors ?? []) {
    // if/then and oneOf wrappers repeat the inner errors; keep the informative ones.
    if (e.keyword === 'if' || e.keyword === 'oneOf' || e.keyword === 'allOf') continue;
    const detail = e.params && Object.keys(e.params).length > 0 ? ` ${JSON.stringify(e.params)}` : '';
    const message = `${e.instancePath || '/'} ${e.message ?? e.keyword}${detail}`;
    if (!seen.has(message)) {
      seen.add(message);
      problems.push({ check: 'schema', message });
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// The document as a graph

interface Step {
  readonly index: number;
  readonly name: string;
  readonly action: string;
  readonly raw: Json;
}

function stepsOf(doc: unknown): Step[] {
  if (!isRecord(doc) || !Array.isArray(doc.mainSteps)) return [];
  return doc.mainSteps.map((raw, index) => {
    const r = isRecord(raw) ? raw : {};
    return {
      index,
      name: typeof r.name === 'string' ? r.name : `#${index}`,
      action: typeof r.action === 'string' ? r.action : '',
      raw: r,
    };
  });
}

/** `X` of an `onFailure`/`onCancel` value `step:X`; undefined for Abort, Continue and the rest. */
export function stepTarget(value: unknown): string | undefined {
  return typeof value === 'string' && value.startsWith('step:') ? value.slice('step:'.length) : undefined;
}

interface Edges {
  /** Where the step goes when it succeeds (branch choices and Default, nextStep, or the next step). */
  readonly success: string[];
  /** Where it goes when it fails (onFailure step:X, or Continue) or is cancelled (onCancel step:X). */
  readonly failure: string[];
}

function choiceTargets(step: Step): { targets: string[]; hasDefault: boolean } {
  const inputs = isRecord(step.raw.inputs) ? step.raw.inputs : {};
  const targets: string[] = [];
  if (Array.isArray(inputs.Choices)) {
    for (const c of inputs.Choices)
      if (isRecord(c) && typeof c.NextStep === 'string') targets.push(c.NextStep);
  }
  const hasDefault = typeof inputs.Default === 'string';
  if (hasDefault) targets.push(inputs.Default as string);
  return { targets, hasDefault };
}

function edgesOf(steps: readonly Step[], step: Step): Edges {
  const next = steps[step.index + 1]?.name;
  const isEnd = step.raw.isEnd === true || step.raw.isEnd === 'true';
  let success: string[];
  if (step.action === 'aws:branch') {
    const { targets, hasDefault } = choiceTargets(step);
    success = hasDefault || next === undefined ? targets : [...targets, next];
  } else if (isEnd) {
    success = [];
  } else if (typeof step.raw.nextStep === 'string') {
    success = [step.raw.nextStep];
  } else {
    success = next === undefined ? [] : [next];
  }
  const failure: string[] = [];
  const onFailure = step.raw.onFailure;
  const failTarget = stepTarget(onFailure);
  if (failTarget !== undefined) failure.push(failTarget);
  else if (onFailure === 'Continue') failure.push(...success);
  const cancelTarget = stepTarget(step.raw.onCancel);
  if (cancelTarget !== undefined) failure.push(cancelTarget);
  return { success, failure };
}

function reachable(steps: readonly Step[], skipSuccessOf?: string): Set<string> {
  const byName = new Map(steps.map((s) => [s.name, s]));
  const first = steps[0];
  const seen = new Set<string>();
  if (first === undefined) return seen;
  const queue = [first.name];
  while (queue.length > 0) {
    const name = queue.pop() as string;
    if (seen.has(name)) continue;
    seen.add(name);
    const step = byName.get(name);
    if (step === undefined) continue;
    const { success, failure } = edgesOf(steps, step);
    // From the skipped step only its failure edges lead on (Continue included: it failed).
    queue.push(...(name === skipSuccessOf ? failure : [...success, ...failure]));
  }
  return seen;
}

export function stepNameProblems(doc: unknown): AutomationProblem[] {
  const problems: AutomationProblem[] = [];
  const seen = new Set<string>();
  for (const s of stepsOf(doc)) {
    if (!/^[A-Za-z0-9_]{1,128}$/.test(s.name)) {
      problems.push({
        check: 'step-names',
        message: `mainSteps[${s.index}].name ${JSON.stringify(s.name)} is not a valid step name`,
      });
    }
    if (seen.has(s.name)) {
      problems.push({ check: 'step-names', message: `step name ${s.name} is used more than once` });
    }
    seen.add(s.name);
  }
  return problems;
}

export function targetProblems(doc: unknown): AutomationProblem[] {
  const steps = stepsOf(doc);
  const names = new Set(steps.map((s) => s.name));
  const problems: AutomationProblem[] = [];
  const check = (where: string, target: string | undefined): void => {
    if (target !== undefined && !names.has(target)) {
      problems.push({
        check: 'targets',
        message: `${where} names step ${JSON.stringify(target)}, which does not exist`,
      });
    }
  };
  for (const s of steps) {
    if (typeof s.raw.nextStep === 'string') check(`${s.name}.nextStep`, s.raw.nextStep);
    check(`${s.name}.onFailure`, stepTarget(s.raw.onFailure));
    check(`${s.name}.onCancel`, stepTarget(s.raw.onCancel));
    if (s.action === 'aws:branch') {
      const inputs = isRecord(s.raw.inputs) ? s.raw.inputs : {};
      if (Array.isArray(inputs.Choices)) {
        inputs.Choices.forEach((c, i) => {
          if (isRecord(c))
            check(
              `${s.name}.inputs.Choices[${i}].NextStep`,
              typeof c.NextStep === 'string' ? c.NextStep : undefined,
            );
        });
      }
      if (typeof inputs.Default === 'string') check(`${s.name}.inputs.Default`, inputs.Default);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// References

/** Outputs an action provides without an `outputs` section (AWS actions reference). */
export const PREDEFINED_OUTPUTS: Readonly<Record<string, readonly string[]>> = {
  'aws:runCommand': ['CommandId', 'Status', 'ResponseCode', 'Output'],
  'aws:invokeLambdaFunction': ['StatusCode', 'FunctionError', 'LogResult', 'ExecutedVersion', 'Payload'],
  'aws:executeAutomation': ['ExecutionId', 'Status', 'Output'],
  'aws:executeScript': ['OutputPayload'],
  'aws:createImage': ['ImageId', 'ImageState'],
  'aws:copyImage': ['ImageId', 'ImageState'],
  'aws:runInstances': ['InstanceIds'],
  'aws:createStack': ['StackId', 'StackStatus', 'StackStatusReason'],
  'aws:approve': ['ApprovalStatus', 'ApproverDecisions'],
  'aws:executeStateMachine': ['executionArn', 'input', 'output'],
  'aws:loop': ['CurrentIteration', 'CurrentIteratorValue'],
};

/** A `{{ name }}` reference (group 1: the name, trimmed). */
const REFERENCE = /\{\{\s*([^{}]*?)\s*\}\}/g;
/** A string that is exactly one `{{ name }}` reference. */
const WHOLE_REFERENCE = /^\{\{\s*([^{}]*?)\s*\}\}$/;

interface Reference {
  readonly name: string;
  readonly where: string;
}

/** Every `{{ x }}` in the string values under `value`, skipping `description` fields. */
function referencesIn(value: unknown, where: string, out: Reference[]): void {
  if (typeof value === 'string') {
    for (const m of value.matchAll(REFERENCE)) out.push({ name: m[1] ?? '', where });
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => {
      referencesIn(v, `${where}[${i}]`, out);
    });
  } else if (isRecord(value)) {
    for (const [k, v] of Object.entries(value))
      if (k !== 'description') referencesIn(v, `${where}.${k}`, out);
  }
}

function stepOutputs(step: Step): Set<string> {
  const custom = Array.isArray(step.raw.outputs)
    ? step.raw.outputs.flatMap((o) => (isRecord(o) && typeof o.Name === 'string' ? [o.Name] : []))
    : [];
  return new Set([...(PREDEFINED_OUTPUTS[step.action] ?? []), ...custom]);
}

type Resolution =
  | { readonly ok: true; readonly step?: string }
  | { readonly ok: false; readonly why: string };

function resolve(doc: Json, steps: readonly Step[], name: string, inDefault: boolean): Resolution {
  const params = isRecord(doc.parameters) ? doc.parameters : {};
  const variables = isRecord(doc.variables) ? doc.variables : {};
  if (name === 'automation:EXECUTION_ID') return { ok: true };
  if (/^global:[A-Z_]+$/.test(name)) return { ok: true };
  if (inDefault && /^ssm:\/?[A-Za-z0-9_.\-/]+$/.test(name)) return { ok: true };
  if (name.startsWith('variable:')) {
    return Object.hasOwn(variables, name.slice('variable:'.length))
      ? { ok: true }
      : { ok: false, why: 'no such variable' };
  }
  if (/^[A-Za-z0-9_]+$/.test(name)) {
    return Object.hasOwn(params, name) ? { ok: true } : { ok: false, why: 'no such parameter' };
  }
  const m = /^([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)$/.exec(name);
  if (m !== null) {
    const [, stepName, output] = m as unknown as [string, string, string];
    const step = steps.find((s) => s.name === stepName);
    if (step === undefined) return { ok: false, why: `no step ${stepName}` };
    if (!stepOutputs(step).has(output)) return { ok: false, why: `step ${stepName} has no output ${output}` };
    return { ok: true, step: stepName };
  }
  return { ok: false, why: 'not a parameter, step output or system variable' };
}

export function referenceProblems(doc: unknown): AutomationProblem[] {
  if (!isRecord(doc)) return [];
  const steps = stepsOf(doc);
  const problems: AutomationProblem[] = [];
  const refs: Reference[] = [];
  for (const s of steps) referencesIn(s.raw, `mainSteps[${s.index}](${s.name})`, refs);
  if (typeof doc.assumeRole === 'string') referencesIn(doc.assumeRole, 'assumeRole', refs);
  for (const r of refs) {
    const res = resolve(doc, steps, r.name, false);
    if (!res.ok) problems.push({ check: 'references', message: `{{ ${r.name} }} in ${r.where}: ${res.why}` });
  }
  if (isRecord(doc.parameters)) {
    for (const [p, def] of Object.entries(doc.parameters)) {
      const defaults: Reference[] = [];
      if (isRecord(def)) referencesIn(def.default, `parameters.${p}.default`, defaults);
      for (const r of defaults) {
        const res = resolve(doc, steps, r.name, true);
        if (!res.ok || res.step !== undefined) {
          problems.push({
            check: 'references',
            message: `{{ ${r.name} }} in ${r.where}: a default may name only ssm: parameters or system variables`,
          });
        }
      }
    }
  }
  if (Array.isArray(doc.outputs)) {
    doc.outputs.forEach((o, i) => {
      const res =
        typeof o === 'string' ? resolve(doc, steps, o, false) : { ok: false as const, why: 'not a string' };
      if (!res.ok || res.step === undefined) {
        problems.push({
          check: 'references',
          message: `outputs[${i}] ${JSON.stringify(o)} is not <Step>.<Output> of an existing step output`,
        });
      }
    });
  }
  return problems;
}

/** Step-output references that can be reached without the producing step having succeeded. */
export function orderProblems(doc: unknown): AutomationProblem[] {
  if (!isRecord(doc)) return [];
  const steps = stepsOf(doc);
  const problems: AutomationProblem[] = [];
  const cache = new Map<string, Set<string>>();
  for (const s of steps) {
    const refs: Reference[] = [];
    referencesIn(s.raw, s.name, refs);
    for (const r of refs) {
      const res = resolve(doc, steps, r.name, false);
      if (!res.ok || res.step === undefined) continue;
      let without = cache.get(res.step);
      if (without === undefined) {
        without = reachable(steps, res.step);
        cache.set(res.step, without);
      }
      if (without.has(s.name)) {
        problems.push({
          check: 'order',
          message: `step ${s.name} reads {{ ${r.name} }}, but can run without step ${res.step} having succeeded`,
        });
      }
    }
  }
  return problems;
}

export function flowProblems(doc: unknown): AutomationProblem[] {
  const steps = stepsOf(doc);
  const seen = reachable(steps);
  return steps
    .filter((s) => !seen.has(s.name))
    .map((s) => ({
      check: 'flow' as const,
      message: `step ${s.name} can never run (no path from ${steps[0]?.name} reaches it)`,
    }));
}

export function parameterProblems(doc: unknown): AutomationProblem[] {
  if (!isRecord(doc) || !isRecord(doc.parameters)) return [];
  const problems: AutomationProblem[] = [];
  for (const [name, p] of Object.entries(doc.parameters)) {
    if (!isRecord(p) || p.type !== 'String') continue;
    const pattern = p.allowedPattern;
    const values = p.allowedValues;
    if (pattern === undefined && values === undefined) {
      problems.push({
        check: 'parameters',
        message: `parameters.${name} needs an anchored allowedPattern or allowedValues`,
      });
      continue;
    }
    if (typeof pattern === 'string') {
      if (!isAnchoredPattern(pattern)) {
        problems.push({
          check: 'parameters',
          message: `parameters.${name}.allowedPattern ${JSON.stringify(pattern)} is not anchored as ^...$`,
        });
        continue;
      }
      if (
        typeof p.default === 'string' &&
        !p.default.includes('{{') &&
        !new RegExp(pattern).test(p.default)
      ) {
        problems.push({
          check: 'parameters',
          message: `parameters.${name}.default ${JSON.stringify(p.default)} does not match its allowedPattern`,
        });
      }
    }
    if (Array.isArray(values) && p.default !== undefined && !values.includes(p.default)) {
      problems.push({
        check: 'parameters',
        message: `parameters.${name}.default ${JSON.stringify(p.default)} is not one of its allowedValues`,
      });
    }
  }
  return problems;
}

/** Every problem of an Automation document; empty when it is valid. */
export function validateAutomationDocument(doc: unknown): AutomationProblem[] {
  return [
    ...schemaProblems(doc),
    ...stepNameProblems(doc),
    ...targetProblems(doc),
    ...referenceProblems(doc),
    ...orderProblems(doc),
    ...flowProblems(doc),
    ...parameterProblems(doc),
  ];
}

// ---------------------------------------------------------------------------------------------
// Walking a document

/** What a step did, for {@link simulateAutomation}. */
export interface StepResult {
  readonly status: 'Success' | 'Failed';
  /** Output values by output name (as strings, as Automation compares them). */
  readonly outputs?: Readonly<Record<string, string>>;
}

export interface Simulation {
  /** Step names in the order they ran. */
  readonly path: readonly string[];
  /** Success unless a critical step failed (even when its failure was handled). */
  readonly status: 'Success' | 'Failed';
  /** The inputs each step ran with, `{{ }}` resolved. */
  readonly inputs: Readonly<Record<string, unknown>>;
}

/** A value as it reads inside a longer string: strings as they are, numbers and booleans as text, the rest as JSON. */
export function referenceText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || value === undefined || value === null)
    return String(value);
  return JSON.stringify(value);
}

/**
 * Replaces every `{{ name }}` in the string values under `value` with `lookup(name)`. A string
 * that is exactly one reference becomes the looked-up value itself (a list stays a list, a number
 * a number), and an array element that is exactly one reference to a list is spread into the
 * array (`InstanceIds: ['{{ Ids }}']`), as Automation does; inside a longer string a value reads
 * as {@link referenceText}. With a lookup that returns strings, every reference is a plain
 * string substitution.
 */
export function interpolate(value: unknown, lookup: (name: string) => unknown): unknown {
  if (typeof value === 'string') {
    const whole = WHOLE_REFERENCE.exec(value);
    if (whole !== null) return lookup(whole[1] ?? '');
    return value.replace(REFERENCE, (_, name: string) => referenceText(lookup(name)));
  }
  if (Array.isArray(value)) {
    return value.flatMap((v) => {
      const resolved = interpolate(v, lookup);
      return typeof v === 'string' && WHOLE_REFERENCE.test(v) && Array.isArray(resolved)
        ? resolved
        : [resolved];
    });
  }
  if (isRecord(value))
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, lookup)]));
  return value;
}

/**
 * Whether an aws:branch choice holds: And, Or, Not, and the string, numeric and boolean
 * operators on its `Variable` (references resolved with `lookup`, which may throw).
 */
export function holds(condition: unknown, lookup: (name: string) => unknown): boolean {
  if (!isRecord(condition)) return false;
  if (Array.isArray(condition.And)) return condition.And.every((c) => holds(c, lookup));
  if (Array.isArray(condition.Or)) return condition.Or.some((c) => holds(c, lookup));
  if (isRecord(condition.Not)) return !holds(condition.Not, lookup);
  const variable = referenceText(interpolate(condition.Variable, lookup));
  if (typeof condition.StringEquals === 'string') return variable === condition.StringEquals;
  if (typeof condition.EqualsIgnoreCase === 'string')
    return variable.toLowerCase() === condition.EqualsIgnoreCase.toLowerCase();
  if (typeof condition.StartsWith === 'string') return variable.startsWith(condition.StartsWith);
  if (typeof condition.EndsWith === 'string') return variable.endsWith(condition.EndsWith);
  if (typeof condition.Contains === 'string') return variable.includes(condition.Contains);
  if (condition.BooleanEquals !== undefined) return variable === String(condition.BooleanEquals);
  const n = Number(variable);
  if (condition.NumericEquals !== undefined) return n === Number(condition.NumericEquals);
  if (condition.NumericGreater !== undefined) return n > Number(condition.NumericGreater);
  if (condition.NumericLesser !== undefined) return n < Number(condition.NumericLesser);
  if (condition.NumericGreaterOrEquals !== undefined) return n >= Number(condition.NumericGreaterOrEquals);
  if (condition.NumericLesserOrEquals !== undefined) return n <= Number(condition.NumericLesserOrEquals);
  return false;
}

/**
 * Walks `doc` as Automation would: parameters (defaults applied), step results from `run`
 * (called for every non-branch step), branches evaluated on the values seen so far. Throws when
 * a reference cannot be resolved at that point, or after `maxSteps` steps (a loop).
 */
export function simulateAutomation(
  doc: unknown,
  parameters: Readonly<Record<string, string>>,
  run: (step: string, inputs: unknown) => StepResult,
  maxSteps = 100,
): Simulation {
  if (!isRecord(doc)) throw new Error('not a document');
  const steps = stepsOf(doc);
  const byName = new Map(steps.map((s) => [s.name, s]));
  const params: Record<string, string> = {};
  for (const [name, p] of Object.entries(isRecord(doc.parameters) ? doc.parameters : {})) {
    const given = parameters[name];
    if (given !== undefined) params[name] = given;
    else if (isRecord(p) && p.default !== undefined) params[name] = String(p.default);
  }
  const outputs = new Map<string, string>();
  const lookup = (name: string): string => {
    if (name === 'automation:EXECUTION_ID') return '00000000-0000-0000-0000-000000000000';
    const v = Object.hasOwn(params, name) ? params[name] : outputs.get(name);
    if (v === undefined) throw new Error(`{{ ${name} }} cannot be resolved here`);
    return v;
  };
  const path: string[] = [];
  const inputs: Record<string, unknown> = {};
  let status: 'Success' | 'Failed' = 'Success';
  let current: Step | undefined = steps[0];
  while (current !== undefined) {
    if (path.length >= maxSteps) throw new Error(`more than ${maxSteps} steps: ${path.join(' → ')}`);
    path.push(current.name);
    const next = steps[current.index + 1];
    if (current.action === 'aws:branch') {
      const raw = isRecord(current.raw.inputs) ? current.raw.inputs : {};
      const choices = Array.isArray(raw.Choices) ? raw.Choices : [];
      const chosen = choices.find((c) => holds(c, lookup));
      const target = isRecord(chosen) ? chosen.NextStep : raw.Default;
      current = typeof target === 'string' ? byName.get(target) : next;
      continue;
    }
    const resolved = interpolate(current.raw.inputs, lookup);
    inputs[current.name] = resolved;
    const result = run(current.name, resolved);
    if (result.status === 'Success') {
      for (const [k, v] of Object.entries(result.outputs ?? {})) outputs.set(`${current.name}.${k}`, v);
      const isEnd = current.raw.isEnd === true || current.raw.isEnd === 'true';
      current = isEnd
        ? undefined
        : typeof current.raw.nextStep === 'string'
          ? byName.get(current.raw.nextStep)
          : next;
      continue;
    }
    const critical = !(current.raw.isCritical === false || current.raw.isCritical === 'false');
    if (critical) status = 'Failed';
    const onFailure = current.raw.onFailure;
    const target = stepTarget(onFailure);
    if (target !== undefined) current = byName.get(target);
    else if (onFailure === 'Continue') {
      current = typeof current.raw.nextStep === 'string' ? byName.get(current.raw.nextStep) : next;
    } else {
      current = undefined;
      status = 'Failed';
    }
  }
  return { path, status, inputs };
}
