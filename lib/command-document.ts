import { readFileSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';
import type { Construct } from 'constructs';
import { parse as parseYaml } from 'yaml';
import {
  checkDocumentNaming,
  DocumentDefinitionError,
  readSourceFile,
  SsmDocument,
} from './ssm-document-resource';

/**
 * An SSM Command document built from two files: `ssm-documents/<kebab>.command.yml` (schema 2.2,
 * parameters, one `aws:runShellScript` step with `runCommand: []`) and
 * `ssm-documents/scripts/<kebab>.sh`, whose lines become `runCommand` at synth.
 *
 * Parameter rules enforced here (the contract in DESIGN.md):
 * - every parameter has an anchored `allowedPattern` (`^...$`, no top-level `|`) or `allowedValues`;
 * - patterns use only the regex subset that JavaScript, Java (the SSM service) and Go RE2 (the
 *   agent) all accept: no look-around, no back-references, no possessive/atomic groups;
 * - every String parameter has `interpolationType: ENV_VAR`, so the script reads `"$SSM_<Name>"`
 *   and no value is ever pasted into shell text; the script contains no `{{`;
 * - a default, when present, satisfies the parameter's own pattern or values.
 *
 * Shared shell helpers: a script may include a library from the `lib/` folder next to it with one
 * line of a fixed form (see `INCLUDE_LINE`), which sources the file when the script runs from the
 * repository. A document carries a single script, so at synth that line (and the shellcheck
 * directive just above it) is replaced by the library's text; see `inlineLibraries`.
 */

/** Repository root: `lib/..`. Relative definition and script paths resolve from here. */
export const REPO_ROOT = resolve(__dirname, '..');

/** One parameter of a Command document (the subset this project uses). */
export interface CommandDocumentParameter {
  readonly type: string;
  readonly description?: string;
  readonly default?: unknown;
  readonly allowedPattern?: string;
  readonly allowedValues?: readonly string[];
  readonly interpolationType?: string;
}

/** The `aws:runShellScript` step. */
export interface RunShellScriptStep {
  readonly action: string;
  readonly name: string;
  readonly precondition?: unknown;
  readonly inputs: {
    readonly runCommand: readonly string[];
    readonly timeoutSeconds?: number | string;
    readonly workingDirectory?: string;
  };
}

/** A Command document's content, as handed to `CfnDocument` (an object, not a string). */
export interface CommandDocumentContent {
  readonly schemaVersion: string;
  readonly description?: string;
  readonly parameters?: Readonly<Record<string, CommandDocumentParameter>>;
  readonly mainSteps: readonly RunShellScriptStep[];
}

/** Where a document's two source files are; relative paths resolve from the repository root. */
export interface CommandDocumentSources {
  /** @default `ssm-documents/<kebab-name>.command.yml` */
  readonly definitionFile?: string;
  /** @default `ssm-documents/scripts/<kebab-name>.sh` */
  readonly scriptFile?: string;
}

export interface CommandDocumentProps extends CommandDocumentSources {
  /** Name prefix of every deployed resource (config `prefix`), e.g. `StemeDB`. */
  readonly prefix: string;
  /** PascalCase document name, e.g. `ExpandVolume`; deployed as `<prefix>-Host-<name>`. */
  readonly name: string;
}

/** Thrown when a definition or script breaks the rules; `problems` lists each, naming the field. */
export class CommandDocumentError extends DocumentDefinitionError {}

const PARAMETER_NAME_PATTERN = /^[A-Za-z0-9]+$/;

/** `ExpandVolume` → `expand-volume`, `ArchiveWAL` → `archive-wal`. */
export function kebabCase(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1-$2')
    .toLowerCase();
}

/** The default definition and script paths (relative to the repository root) for a document name. */
export function defaultCommandDocumentFiles(name: string): Required<CommandDocumentSources> {
  const kebab = kebabCase(name);
  return {
    definitionFile: join('ssm-documents', `${kebab}.command.yml`),
    scriptFile: join('ssm-documents', 'scripts', `${kebab}.sh`),
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Regex features that one of JavaScript, Java and Go RE2 lacks or reads differently. */
const UNPORTABLE_REGEX: ReadonlyArray<readonly [RegExp, string]> = [
  [/\(\?[=!]/, 'look-ahead'],
  [/\(\?<[=!]/, 'look-behind'],
  [/\(\?>/, 'atomic group'],
  [/\\[1-9]/, 'back-reference'],
  [/\\k</, 'named back-reference'],
  [/[*+?}]\+/, 'possessive quantifier'],
  [/\\[zZA]/, 'anchor \\A/\\z/\\Z (write ^...$)'],
];

/**
 * True when `^` and `$` bind the whole value: the pattern starts with `^`, ends with an unescaped
 * `$`, and has no `|` outside parentheses and character classes (`^a|b$` is not anchored).
 */
export function isAnchoredPattern(pattern: string): boolean {
  if (!pattern.startsWith('^') || !pattern.endsWith('$')) return false;
  let depth = 0;
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      if (i === pattern.length - 2) return false; // the final `$` is escaped
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') inClass = true;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) return false;
  }
  return true;
}

function patternProblems(where: string, pattern: unknown): string[] {
  if (typeof pattern !== 'string') return [`${where}.allowedPattern must be a string`];
  const problems: string[] = [];
  if (!isAnchoredPattern(pattern)) {
    problems.push(
      `${where}.allowedPattern ${JSON.stringify(pattern)} must be anchored as ^...$ (no top-level |)`,
    );
  }
  for (const [re, what] of UNPORTABLE_REGEX) {
    if (re.test(pattern)) {
      problems.push(
        `${where}.allowedPattern ${JSON.stringify(pattern)} uses a ${what}, which the SSM agent (Go RE2) or service does not support`,
      );
    }
  }
  try {
    new RegExp(pattern);
  } catch (err) {
    problems.push(`${where}.allowedPattern does not compile: ${(err as Error).message}`);
  }
  return problems;
}

function parameterProblems(name: string, raw: unknown): string[] {
  const where = `parameters.${name}`;
  if (!PARAMETER_NAME_PATTERN.test(name))
    return [`${where}: a parameter name must match ${PARAMETER_NAME_PATTERN}`];
  if (!isRecord(raw)) return [`${where} must be a mapping`];
  const problems: string[] = [];
  const hasPattern = raw.allowedPattern !== undefined;
  const hasValues = raw.allowedValues !== undefined;
  if (!hasPattern && !hasValues) problems.push(`${where} needs an anchored allowedPattern or allowedValues`);
  if (hasPattern) problems.push(...patternProblems(where, raw.allowedPattern));
  if (hasValues) {
    const values = raw.allowedValues;
    if (!Array.isArray(values) || values.length === 0 || !values.every((v) => typeof v === 'string')) {
      problems.push(`${where}.allowedValues must be a non-empty list of strings`);
    }
  }
  if (raw.type === 'String' && raw.interpolationType !== 'ENV_VAR') {
    problems.push(`${where} is a String parameter and needs interpolationType: ENV_VAR`);
  }
  if (raw.default !== undefined && problems.length === 0) {
    const value = String(raw.default);
    if (hasPattern && typeof raw.allowedPattern === 'string' && !new RegExp(raw.allowedPattern).test(value)) {
      problems.push(`${where}.default ${JSON.stringify(value)} does not match its own allowedPattern`);
    }
    if (hasValues && Array.isArray(raw.allowedValues) && !raw.allowedValues.includes(value)) {
      problems.push(`${where}.default ${JSON.stringify(value)} is not one of its allowedValues`);
    }
  }
  return problems;
}

/**
 * Every way a definition (parsed YAML) and its script break the Command document rules.
 * Empty when the pair is valid. Each message names the field it is about.
 */
export function commandDocumentProblems(definition: unknown, script: string): string[] {
  if (!isRecord(definition)) return ['definition must be a YAML mapping'];
  const problems: string[] = [];
  if (definition.schemaVersion !== '2.2') {
    problems.push(`schemaVersion must be the string '2.2', got ${JSON.stringify(definition.schemaVersion)}`);
  }
  const parameters = definition.parameters ?? {};
  if (!isRecord(parameters)) problems.push('parameters must be a mapping');
  else for (const [name, raw] of Object.entries(parameters)) problems.push(...parameterProblems(name, raw));

  const steps = definition.mainSteps;
  if (!Array.isArray(steps) || steps.length !== 1) {
    problems.push('mainSteps must hold exactly one step (aws:runShellScript)');
  } else {
    const step: unknown = steps[0];
    if (!isRecord(step) || step.action !== 'aws:runShellScript') {
      problems.push('mainSteps[0].action must be aws:runShellScript');
    } else {
      if (typeof step.name !== 'string' || step.name === '') problems.push('mainSteps[0].name is required');
      const inputs = step.inputs;
      if (!isRecord(inputs) || !Array.isArray(inputs.runCommand) || inputs.runCommand.length !== 0) {
        problems.push('mainSteps[0].inputs.runCommand must be [] (filled from the script at synth)');
      }
    }
  }
  const labelled = problems.map((p) => `definitionFile: ${p}`);
  if (script.includes('{{')) {
    labelled.push('scriptFile: the script contains "{{": read parameters from "$SSM_<Name>" instead');
  }
  if (!script.startsWith('#!')) labelled.push('scriptFile: the script must start with a #! line');
  return labelled;
}

/** The marker every include line carries; a line holding it must be an exact `INCLUDE_LINE`. */
export const INCLUDE_MARKER = 'stemedb:inline';

/**
 * The one include form: `source "$(dirname "${BASH_SOURCE[0]}")/lib/<file>" # stemedb:inline lib/<file>`,
 * the same `<file>` twice, a plain name ending in `.sh` (no `/`, no leading dot).
 */
const INCLUDE_LINE =
  /^source "\$\(dirname "\$\{BASH_SOURCE\[0\]\}"\)\/lib\/([^"]*)" # stemedb:inline lib\/(\S*)$/;
const LIBRARY_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*\.sh$/;
/** The shellcheck directive written just above an include line (dropped with it). */
const INCLUDE_DIRECTIVE = /^# shellcheck source=lib\/\S+( disable=SC1091)?$/;
/** A line that sources a file next to the script (only the marked include line may). */
const SIBLING_SOURCE = /^\s*(source|\.)\s.*(BASH_SOURCE|\$0|\$\{0\}|[\s"'](\.\/)?lib\/)/;
/** What is dropped from a library: its `#!` line and top-level `set -...` lines (the script's own hold). */
const LIBRARY_SET_LINE = /^set\s+[-+][A-Za-z]/;

function includeError(name: string, message: string): CommandDocumentError {
  return new CommandDocumentError(`Command document ${name}: ${message}`, [message]);
}

/**
 * Replaces each include line of a script with the text of the library it names, which must be a
 * file directly in the `lib/` folder next to the script (for this project's scripts,
 * `ssm-documents/scripts/lib/`), also after resolving symlinks. The library's `#!` line, its
 * header (the comment lines it starts with) and top-level `set` lines are dropped, and so is the
 * `# shellcheck source=...` directive above the include line. A script without include lines is returned unchanged. Throws
 * `CommandDocumentError` naming the script file and line for a malformed include, a library that
 * is missing or outside `lib/`, a library that itself includes one, a sourced sibling file without
 * the marker, or a library containing `{{`.
 */
export function inlineLibraries(script: string, scriptFile: string, name = 'script'): string {
  const lines = script.replace(/\r\n/g, '\n').split('\n');
  if (!lines.some((line) => line.includes(INCLUDE_MARKER) || SIBLING_SOURCE.test(line))) return script;
  const libDir = join(dirname(scriptFile), 'lib');
  const out: string[] = [];
  lines.forEach((line, index) => {
    const where = `scriptFile ${scriptFile} line ${index + 1}`;
    if (!line.includes(INCLUDE_MARKER)) {
      if (SIBLING_SOURCE.test(line)) {
        throw includeError(
          name,
          `${where}: sources a file without the ${INCLUDE_MARKER} marker; on the host the document's script has no sibling files`,
        );
      }
      out.push(line);
      return;
    }
    const match = INCLUDE_LINE.exec(line);
    const file = match?.[1];
    if (match === null || file === undefined || file !== match[2] || !LIBRARY_NAME.test(file)) {
      throw includeError(
        name,
        `${where}: an include must read exactly source "$(dirname "\${BASH_SOURCE[0]}")/lib/<name>.sh" # ${INCLUDE_MARKER} lib/<name>.sh (the same plain file name of lib/ twice), got ${JSON.stringify(line)}`,
      );
    }
    let libText: string;
    try {
      const realDir = realpathSync(libDir);
      const realFile = realpathSync(join(libDir, file));
      if (!realFile.startsWith(realDir + sep)) {
        throw new Error(`it resolves to ${realFile}, outside ${realDir}`);
      }
      libText = readFileSync(realFile, 'utf8');
    } catch (err) {
      throw includeError(name, `${where}: cannot include lib/${file}: ${(err as Error).message}`);
    }
    const libLines = withoutHeader(
      scriptLines(libText).filter((l, i) => !(i === 0 && l.startsWith('#!')) && !LIBRARY_SET_LINE.test(l)),
    );
    const commands = libLines.filter((l) => !l.trimStart().startsWith('#'));
    if (commands.some((l) => l.includes(INCLUDE_MARKER) || SIBLING_SOURCE.test(l))) {
      throw includeError(name, `${where}: lib/${file} includes another library; libraries cannot nest`);
    }
    if (libLines.some((l) => l.includes('{{'))) {
      throw includeError(name, `${where}: lib/${file} contains "{{"; SSM would read it as a parameter`);
    }
    if (out.length > 0 && INCLUDE_DIRECTIVE.test(out[out.length - 1] ?? '')) out.pop();
    out.push(...libLines);
  });
  return out.join('\n');
}

/**
 * A library's lines without its header: the comment lines it starts with and the blank lines after
 * them (what the library is and how a script includes it, which means nothing on the host, and
 * would be carried in every document that includes it). Comments further down stay.
 */
function withoutHeader(lines: readonly string[]): string[] {
  let start = 0;
  while (start < lines.length && (lines[start] ?? '').startsWith('#')) start++;
  if (start === 0) return [...lines];
  while (start < lines.length && (lines[start] ?? '').trim() === '') start++;
  return lines.slice(start);
}

/** Splits a script into `runCommand` lines (no trailing empty line). */
export function scriptLines(script: string): string[] {
  const lines = script.replace(/\r\n/g, '\n').split('\n');
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function resolveFromRepo(path: string): string {
  return isAbsolute(path) ? path : join(REPO_ROOT, path);
}

/**
 * Reads a document's definition and script, checks them, and returns the content object with
 * `runCommand` filled from the script. Throws `CommandDocumentError` naming each problem.
 * Pure apart from reading the two files; the construct and the tests both use it.
 */
export function loadCommandDocumentContent(
  name: string,
  sources: CommandDocumentSources = {},
): CommandDocumentContent {
  const defaults = defaultCommandDocumentFiles(name);
  const definitionFile = resolveFromRepo(sources.definitionFile ?? defaults.definitionFile);
  const scriptFile = resolveFromRepo(sources.scriptFile ?? defaults.scriptFile);
  const fail = (message: string) =>
    new CommandDocumentError(`Command document ${name}: ${message}`, [message]);
  const definition = readSourceFile(
    'definitionFile',
    definitionFile,
    (text): unknown => parseYaml(text),
    fail,
  );
  const script = inlineLibraries(
    readSourceFile('scriptFile', scriptFile, (text) => text, fail),
    scriptFile,
    name,
  );
  const problems = commandDocumentProblems(definition, script);
  if (problems.length > 0) {
    throw new CommandDocumentError(
      `Command document ${name} is invalid (definitionFile ${definitionFile}, scriptFile ${scriptFile}): ${problems.join('; ')}`,
      problems,
    );
  }
  const doc = definition as unknown as CommandDocumentContent;
  const [step] = doc.mainSteps;
  if (step === undefined) throw new CommandDocumentError(`Command document ${name} has no step`, ['no step']);
  return {
    ...doc,
    mainSteps: [{ ...step, inputs: { ...step.inputs, runCommand: scriptLines(script) } }],
  };
}

/**
 * An SSM Command document `<prefix>-Host-<name>` made from a YAML definition and a shell script
 * (its content: `runCommand` filled from the script).
 */
export class CommandDocument extends SsmDocument<CommandDocumentContent> {
  constructor(scope: Construct, id: string, props: CommandDocumentProps) {
    checkDocumentNaming('CommandDocument', props);
    super(
      scope,
      id,
      'Command',
      `${props.prefix}-Host-${props.name}`,
      loadCommandDocumentContent(props.name, props),
    );
  }
}
