import { isAbsolute, join } from 'node:path';
import { Stack, Token } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { parse as parseYaml } from 'yaml';
import {
  AUTOMATION_PYTHON_RUNTIME,
  AUTOMATION_SCRIPTS_DIR,
  AutomationScriptError,
  loadStepScript,
  setScriptConstant,
} from './automation-script';
import { kebabCase, REPO_ROOT } from './command-document';
import {
  checkDocumentNaming,
  DocumentDefinitionError,
  readSourceFile,
  SsmDocument,
} from './ssm-document-resource';

/**
 * An SSM Automation document (schemaVersion 0.3) built from `ssm-documents/<kebab>.automation.yml`.
 *
 * Deploy-time values appear in the YAML as `${Placeholder}` tokens (letters and digits, starting
 * with a letter) inside string values; `substitutions` gives each one its value, which may be a
 * CDK token (a function name, a topic ARN). A placeholder with no value, or a value no placeholder
 * uses, is a synth error naming it, so the YAML and the stack cannot drift apart. `$${Name}`
 * stands for a literal `${Name}`. Runtime parameters stay `{{ Param }}` and are not touched.
 *
 * The YAML is parsed and substituted as an object (CfnDocument content must be an object; string
 * values are substituted one by one, so a value can never break the YAML around it). The document
 * is named `<prefix>-<name>` with `updateMethod: 'NewVersion'` (a fixed name needs it, or updates
 * fail). A parameter default that is fully known at synth must satisfy its own allowedPattern or
 * allowedValues.
 *
 * A few placeholders are built in ({@link SHARED_SUBSTITUTIONS}): values that are the same in
 * every document and every deployment, such as the pattern of the common `Reason` parameter, so
 * each is defined once. A document may use them without the caller passing them; a caller may
 * not pass them (one definition, no override). Placeholders substitute anywhere in a string,
 * `allowedPattern` and `allowedValues` included; a value is inserted as it is (not regex-escaped),
 * so a placeholder for a configured path belongs in `allowedValues`, not in a pattern.
 *
 * Python lives in files, never in the YAML: the `Script` of every `aws:executeScript` step is
 * `'${file:<path>.py}'`, a step script under `ssm-documents/automation-scripts/` (`scriptsDir`),
 * e.g. `Script: '${file:archive-wal/resolve-node.py}'`. After the placeholders are substituted,
 * each reference is replaced by the script's text with the shared helpers it imports inlined
 * (`lib/automation-script.ts`). An inline `Script`, a reference anywhere else, or a step script
 * the loader cannot read is a synth error naming the step.
 *
 * The failure tail is written once: a top-level `failureTail` with the `subject` and `message` of
 * the failure notification (placeholders and `{{ }}` references allowed, as in any step) makes the
 * loader append the last two steps of the document ({@link failureTailSteps}): `NotifyFailure`
 * (SNS Publish to `${TopicArn}`, with a `MessageId` output unless `messageIdOutput: false`, then
 * `FailExecution` whether or not the publish worked) and `FailExecution` (`fail-execution.py`,
 * which ends the execution Failed naming the document and the execution). Every step that should
 * notify a failure names `step:NotifyFailure` in its `onFailure`; a document with a failure tail
 * may not define steps of those two names itself.
 */

/** One parameter of an Automation document (the fields this construct checks). */
export interface AutomationDocumentParameter {
  readonly type: string;
  readonly description?: string;
  readonly default?: unknown;
  readonly allowedPattern?: string;
  readonly allowedValues?: readonly unknown[];
}

/** An Automation document's content as handed to `CfnDocument`. */
export interface AutomationDocumentContent {
  readonly schemaVersion: string;
  readonly description?: string;
  readonly assumeRole?: string;
  readonly parameters?: Readonly<Record<string, AutomationDocumentParameter>>;
  readonly mainSteps: readonly Readonly<Record<string, unknown>>[];
  readonly outputs?: readonly string[];
}

export interface AutomationDocumentSources {
  /** @default `ssm-documents/<kebab-name>.automation.yml` (relative paths resolve from the repo root) */
  readonly definitionFile?: string;
  /** Value of each `${Placeholder}` in the YAML; values may be CDK tokens. @default {} */
  readonly substitutions?: Readonly<Record<string, string>>;
  /**
   * Folder the `${file:<path>.py}` step scripts resolve in (relative paths from the repo root).
   * @default `ssm-documents/automation-scripts`
   */
  readonly scriptsDir?: string;
}

export interface AutomationDocumentProps extends AutomationDocumentSources {
  /** Name prefix of every deployed resource (config `prefix`), e.g. `StemeDB`. */
  readonly prefix: string;
  /** PascalCase document name, e.g. `ExpandVolume`; deployed as `<prefix>-<name>`. */
  readonly name: string;
}

/** Thrown when a definition or its substitutions are wrong; `problems` names each. */
export class AutomationDocumentError extends DocumentDefinitionError {}

/**
 * The `Reason` parameter of every document that has one (`allowedPattern: '${ReasonPattern}'`,
 * with `maxChars: 256`): why the run was started, shown in its notifications and passed on to the
 * documents it starts. It admits the alarm router's text (`<prefix>-<node>-disk-<kind> in ALARM
 * since 2024-05-01T12:00:00Z`) and a plain sentence ("Disk filled by a bulk import, v2.3.1
 * cleanup."): words of ASCII letters, digits, ":", "," and "-", each starting with a letter or
 * digit, separated by single spaces, with single dots inside or at the end of a word. Nothing
 * else: no "/" or ".." (paths), no quote, "$", backtick, ";", "|", "&", "<", ">", "\\", "*", "?",
 * "!", "#", "~", "=" or "+" (shell), no "{", "}" or "%" (SSM {{ }} references, Python str.format
 * and %-formatting), no "@", "(", ")" or "_", no tab, newline or other control character, no
 * non-ASCII letter, no leading, trailing or double space. Anchored, no look-around (the SSM
 * service, the agent and the local runner read it alike); the 256-character cap is `maxChars`.
 */
export const REASON_PATTERN =
  '^([A-Za-z0-9][A-Za-z0-9:,-]*(\\.[A-Za-z0-9:,-]+)*\\.?( [A-Za-z0-9][A-Za-z0-9:,-]*(\\.[A-Za-z0-9:,-]+)*\\.?)*)?$';

/** Built-in placeholder values (see the module comment): the same in every document. */
export const SHARED_SUBSTITUTIONS: Readonly<Record<string, string>> = {
  ReasonPattern: REASON_PATTERN,
};

/** `${Name}` (group 2), or the escape `$${Name}` (group 1 is the extra `$`). */
const PLACEHOLDER = /(\$?)\$\{([A-Za-z][A-Za-z0-9]*)\}/g;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The default definition path (relative to the repository root) for a document name. */
export function defaultAutomationDefinitionFile(name: string): string {
  return join('ssm-documents', `${kebabCase(name)}.automation.yml`);
}

function mapStrings(value: unknown, fn: (s: string) => string): unknown {
  if (typeof value === 'string') return fn(value);
  if (Array.isArray(value)) return value.map((v) => mapStrings(v, fn));
  if (isRecord(value))
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapStrings(v, fn)]));
  return value;
}

/** Every `${Placeholder}` name used in the string values of a parsed document (escapes excluded). */
export function placeholdersIn(value: unknown): Set<string> {
  const found = new Set<string>();
  mapStrings(value, (s) => {
    for (const m of s.matchAll(PLACEHOLDER)) if (m[1] === '' && m[2] !== undefined) found.add(m[2]);
    return s;
  });
  return found;
}

/**
 * Replaces every `${Name}` in the string values of `value` with `substitutions[Name]` (one pass,
 * so a value is never substituted again). Throws AutomationDocumentError naming every unknown
 * placeholder and every unused substitution.
 */
export function substitutePlaceholders(
  value: unknown,
  substitutions: Readonly<Record<string, string>>,
): unknown {
  const used = placeholdersIn(value);
  const problems: string[] = [];
  for (const name of used) {
    if (!Object.hasOwn(substitutions, name)) problems.push(`placeholder \${${name}} has no substitution`);
  }
  for (const name of Object.keys(substitutions)) {
    if (!used.has(name)) problems.push(`substitution ${name} is not used by any \${${name}} placeholder`);
  }
  if (problems.length > 0) throw new AutomationDocumentError(problems.join('; '), problems);
  return mapStrings(value, (s) =>
    s.replace(PLACEHOLDER, (whole, dollar: string, name: string) =>
      dollar === '$' ? whole.slice(1) : (substitutions[name] as string),
    ),
  );
}

function defaultProblems(name: string, p: unknown): string[] {
  if (!isRecord(p) || p.default === undefined) return [];
  const value = p.default;
  if (typeof value === 'string' && Token.isUnresolved(value)) return [];
  const shown = JSON.stringify(value);
  if (typeof p.allowedPattern === 'string' && !new RegExp(p.allowedPattern).test(String(value))) {
    return [`parameters.${name}.default ${shown} does not match its allowedPattern ${p.allowedPattern}`];
  }
  if (Array.isArray(p.allowedValues) && !p.allowedValues.includes(value)) {
    return [`parameters.${name}.default ${shown} is not one of its allowedValues`];
  }
  return [];
}

/** `'${file:<path>}'`, the whole `Script` of an `aws:executeScript` step (group 1: the path). */
const SCRIPT_FILE_REFERENCE = /^\$\{file:([^}]*)\}$/;
const SCRIPT_FILE_MARKER = '${file:';

/** The failure notification of a document (its top-level `failureTail`). */
export interface FailureTail {
  /** Subject of the SNS notification. */
  readonly subject: string;
  /** Message of the SNS notification. */
  readonly message: string;
  /** Whether NotifyFailure declares its `MessageId` output. @default true */
  readonly messageIdOutput?: boolean;
}

/** The names of the two steps {@link failureTailSteps} writes. */
export const FAILURE_TAIL_STEP_NAMES = ['NotifyFailure', 'FailExecution'] as const;

/** The step script of FailExecution, and the constant the loader sets to the document's name. */
const FAIL_EXECUTION_SCRIPT = 'fail-execution.py';
const FAIL_EXECUTION_DOCUMENT_CONSTANT = 'DOCUMENT';

/**
 * The two last steps of a document that has a failure tail: NotifyFailure publishes `tail` to the
 * topic and goes on to FailExecution even when the publish fails; FailExecution ends the execution
 * Failed with `<name> failed; see the first failed step of execution <id>`. `TopicArn` is left
 * as the `${TopicArn}` placeholder, substituted with the rest of the document.
 */
export function failureTailSteps(
  name: string,
  tail: FailureTail,
  scriptsDir: string = AUTOMATION_SCRIPTS_DIR,
): Record<string, unknown>[] {
  const script = setScriptConstant(
    loadStepScript(FAIL_EXECUTION_SCRIPT, scriptsDir),
    FAIL_EXECUTION_DOCUMENT_CONSTANT,
    name,
    FAIL_EXECUTION_SCRIPT,
  );
  return [
    {
      name: 'NotifyFailure',
      action: 'aws:executeAwsApi',
      onFailure: 'step:FailExecution',
      timeoutSeconds: 60,
      inputs: {
        Service: 'sns',
        Api: 'Publish',
        TopicArn: `$\{TopicArn}`,
        Subject: tail.subject,
        Message: tail.message,
      },
      ...(tail.messageIdOutput === false
        ? {}
        : { outputs: [{ Name: 'MessageId', Selector: '$.MessageId', Type: 'String' }] }),
      nextStep: 'FailExecution',
    },
    {
      name: 'FailExecution',
      description: 'Ends the execution Failed after the failure was notified.',
      action: 'aws:executeScript',
      timeoutSeconds: 60,
      inputs: {
        Runtime: AUTOMATION_PYTHON_RUNTIME,
        Handler: 'fail',
        InputPayload: { execution: '{{ automation:EXECUTION_ID }}' },
        Script: script,
      },
      isEnd: true,
    },
  ];
}

function failureTailProblems(tail: unknown): string[] {
  if (!isRecord(tail)) return ['failureTail must be a mapping with subject and message'];
  const problems: string[] = [];
  for (const key of Object.keys(tail)) {
    if (!['subject', 'message', 'messageIdOutput'].includes(key))
      problems.push(`failureTail.${key} is not known (subject, message, messageIdOutput)`);
  }
  for (const key of ['subject', 'message']) {
    if (typeof tail[key] !== 'string' || tail[key] === '')
      problems.push(`failureTail.${key} must be a non-empty string`);
  }
  if (tail.messageIdOutput !== undefined && typeof tail.messageIdOutput !== 'boolean')
    problems.push('failureTail.messageIdOutput must be true or false');
  return problems;
}

/** Where each step's `${file:...}` Script points, and every misplaced or inline Script. */
function scriptReferences(steps: readonly unknown[]): {
  references: Map<number, string>;
  problems: string[];
} {
  const references = new Map<number, string>();
  const problems: string[] = [];
  steps.forEach((step, index) => {
    if (!isRecord(step)) return;
    const where = `mainSteps[${index}] (${String(step.name)})`;
    const inputs = isRecord(step.inputs) ? step.inputs : {};
    if (step.action === 'aws:executeScript') {
      const match = typeof inputs.Script === 'string' ? SCRIPT_FILE_REFERENCE.exec(inputs.Script) : null;
      if (match === null) {
        problems.push(
          `${where}.inputs.Script must be '\${file:<path>.py}', a step script in the scripts folder (Python is never inline)`,
        );
      } else references.set(index, match[1] as string);
    }
    mapStrings(step, (s) => {
      if (s.includes(SCRIPT_FILE_MARKER) && !(step.action === 'aws:executeScript' && s === inputs.Script))
        problems.push(
          `${where}: ${JSON.stringify(s.slice(0, 80))} names a script file outside inputs.Script`,
        );
      return s;
    });
  });
  return { references, problems };
}

/**
 * Reads a definition, appends its failure tail, substitutes its placeholders, inlines its step
 * scripts and checks the basics (schemaVersion 0.3, steps present, defaults valid). The
 * construct and the tests both use it.
 */
export function loadAutomationDocumentContent(
  name: string,
  sources: AutomationDocumentSources = {},
): AutomationDocumentContent {
  const file = sources.definitionFile ?? defaultAutomationDefinitionFile(name);
  const path = isAbsolute(file) ? file : join(REPO_ROOT, file);
  let parsed = readSourceFile(
    'definitionFile',
    path,
    (text): unknown => parseYaml(text),
    (message) => new AutomationDocumentError(`Automation document ${name}: ${message}`, [message]),
  );
  const scriptsDir = sources.scriptsDir ?? AUTOMATION_SCRIPTS_DIR;
  const invalid = (problems: string[]): AutomationDocumentError =>
    new AutomationDocumentError(
      `Automation document ${name} is invalid (definitionFile ${path}): ${problems.join('; ')}`,
      problems,
    );
  let references = new Map<number, string>();
  if (isRecord(parsed) && Array.isArray(parsed.mainSteps)) {
    const found = scriptReferences(parsed.mainSteps);
    const problems = [...found.problems];
    references = found.references;
    const { failureTail, ...rest } = parsed;
    if (failureTail !== undefined) {
      problems.push(...failureTailProblems(failureTail));
      for (const step of parsed.mainSteps) {
        if (isRecord(step) && FAILURE_TAIL_STEP_NAMES.some((n) => n === step.name))
          problems.push(`step ${String(step.name)} is written by failureTail; remove it from mainSteps`);
      }
    }
    if (problems.length > 0) throw invalid(problems);
    if (failureTail !== undefined) {
      let tail: Record<string, unknown>[];
      try {
        tail = failureTailSteps(name, failureTail as FailureTail, scriptsDir);
      } catch (err) {
        if (!(err instanceof AutomationScriptError)) throw err;
        throw invalid([`failureTail: ${err.problem}`]);
      }
      parsed = { ...rest, mainSteps: [...parsed.mainSteps, ...tail] };
    }
  }
  const given = sources.substitutions ?? {};
  const shared = Object.keys(given).filter((k) => Object.hasOwn(SHARED_SUBSTITUTIONS, k));
  if (shared.length > 0) {
    const message = `substitutions ${shared.join(', ')} are built in (SHARED_SUBSTITUTIONS) and cannot be passed`;
    throw new AutomationDocumentError(`Automation document ${name}: ${message}`, [message]);
  }
  const used = placeholdersIn(parsed);
  const builtIn = Object.entries(SHARED_SUBSTITUTIONS).filter(([k]) => used.has(k));
  let content: unknown;
  try {
    content = substitutePlaceholders(parsed, { ...Object.fromEntries(builtIn), ...given });
  } catch (err) {
    if (!(err instanceof AutomationDocumentError)) throw err;
    throw new AutomationDocumentError(
      `Automation document ${name} (definitionFile ${path}): ${err.message}`,
      err.problems,
    );
  }
  const problems: string[] = [];
  if (!isRecord(content)) {
    problems.push('the definition must be a YAML mapping');
  } else {
    if (content.schemaVersion !== '0.3') {
      problems.push(`schemaVersion must be the string '0.3', got ${JSON.stringify(content.schemaVersion)}`);
    }
    if (!Array.isArray(content.mainSteps) || content.mainSteps.length === 0) {
      problems.push('mainSteps must be a non-empty list');
    }
    if (content.parameters !== undefined && !isRecord(content.parameters)) {
      problems.push('parameters must be a mapping');
    } else if (isRecord(content.parameters)) {
      for (const [p, def] of Object.entries(content.parameters)) problems.push(...defaultProblems(p, def));
    }
  }
  if (problems.length > 0) throw invalid(problems);
  const doc = content as Record<string, unknown> & { mainSteps: Record<string, unknown>[] };
  const mainSteps = doc.mainSteps.map((step, index) => {
    const file = references.get(index);
    if (file === undefined) return step;
    let script: string;
    try {
      script = loadStepScript(file, scriptsDir);
    } catch (err) {
      if (!(err instanceof AutomationScriptError)) throw err;
      throw invalid([`mainSteps[${index}] (${String(step.name)}).inputs.Script: ${err.problem}`]);
    }
    return { ...step, inputs: { ...(step.inputs as Record<string, unknown>), Script: script } };
  });
  const result = { ...doc, mainSteps };
  const stray: string[] = [];
  mapStrings(result, (str) => {
    if (str.includes(SCRIPT_FILE_MARKER)) stray.push(JSON.stringify(str.slice(0, 80)));
    return str;
  });
  if (stray.length > 0)
    throw invalid(stray.map((t) => `${t} names a script file outside an aws:executeScript step's Script`));
  return result as unknown as AutomationDocumentContent;
}

/**
 * An SSM Automation document `<prefix>-<name>` from a YAML definition with `${Placeholder}` values
 * (its content: placeholders substituted; may hold CDK tokens).
 */
export class AutomationDocument extends SsmDocument<AutomationDocumentContent> {
  /**
   * `arn:<partition>:ssm:<region>:<account>:automation-definition/<documentName>:$DEFAULT`, the
   * resource StartAutomationExecution (and aws:executeAutomation) is authorized on.
   */
  public readonly automationDefinitionArn: string;

  constructor(scope: Construct, id: string, props: AutomationDocumentProps) {
    checkDocumentNaming('AutomationDocument', props);
    super(
      scope,
      id,
      'Automation',
      `${props.prefix}-${props.name}`,
      loadAutomationDocumentContent(props.name, props),
    );
    this.automationDefinitionArn = Stack.of(this).formatArn({
      service: 'ssm',
      resource: 'automation-definition',
      resourceName: `${this.documentName}:$DEFAULT`,
    });
  }
}
