/**
 * The Python of the Automation documents, `ssm-documents/automation-scripts/`: the shared helpers'
 * unit tests in the real python3; pyright over every script as synthesized (so each step carries
 * every helper it calls); one file per step and no helper defined twice; every synthesized
 * document within SSM's 64 KB; and the loader's rules for `${file:...}` scripts, helper inlining
 * and the failure tail (lib/automation-script.ts, lib/automation-document.ts).
 */
import { spawnSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import {
  type AutomationDocumentContent,
  AutomationDocumentError,
  FAILURE_TAIL_STEP_NAMES,
  failureTailSteps,
  loadAutomationDocumentContent,
} from '../lib/automation-document';
import {
  AUTOMATION_PYTHON_RUNTIME,
  AUTOMATION_SCRIPTS_DIR,
  AutomationScriptError,
  HELPERS_MODULE,
  loadStepScript,
  setScriptConstant,
} from '../lib/automation-script';
import { REPO_ROOT } from '../lib/command-document';
import { PythonHandlerError, runPythonHandler, stepScriptFile } from './support/automation-python';
import { ResolvedTemplate } from './support/resolved-template';
import { synthStack, TWO_NODES_FILE } from './support/synth';

const DOCUMENTS_DIR = join(REPO_ROOT, 'ssm-documents');
const PYRIGHT = join(REPO_ROOT, 'node_modules', 'pyright', 'index.js');
const TARGET = { account: '111122223333', region: 'eu-west-1', stackName: 'StemeDB-Disk' } as const;
/** CreateDocument: "The content of the document must not exceed 64KB" (runtime parameters included). */
const SSM_DOCUMENT_MAX_BYTES = 64 * 1024;
/** Kept free for the runtime parameter values, which count against the same quota. */
const RUNTIME_PARAMETER_ROOM = 16 * 1024;

const automationFiles = readdirSync(DOCUMENTS_DIR)
  .filter((f) => f.endsWith('.automation.yml'))
  .sort();

interface RawStep {
  name: string;
  action: string;
  inputs?: { Script?: unknown; Handler?: unknown; Runtime?: unknown };
}

function rawDocument(file: string): { mainSteps: RawStep[]; failureTail?: unknown } {
  return parseYaml(readFileSync(join(DOCUMENTS_DIR, file), 'utf8')) as {
    mainSteps: RawStep[];
    failureTail?: unknown;
  };
}

/** Every `.py` under the scripts folder (relative paths), type declarations excluded. */
function pythonFiles(dir = AUTOMATION_SCRIPTS_DIR): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.py') && !f.startsWith('typings/') && !f.includes('__pycache__'))
    .sort();
}

function run(command: string, args: readonly string[], cwd = REPO_ROOT) {
  return spawnSync(command, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
  });
}

describe('the shared helpers (stemedb_automation.py) in the real python3', () => {
  const version = run('python3', ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])']).stdout.trim();

  it(`runs python3 ${version}, not newer than the documents' ${AUTOMATION_PYTHON_RUNTIME}`, () => {
    const [major, minor] = version.split('.').map(Number);
    const [rtMajor, rtMinor] = AUTOMATION_PYTHON_RUNTIME.replace('python', '').split('.').map(Number);
    expect(major).toBe(rtMajor);
    expect(minor).toBeLessThanOrEqual(rtMinor as number);
  });

  it('passes its unit tests (each helper, failed commands, missing output, malformed JSON)', () => {
    const r = run('python3', [
      '-B',
      '-m',
      'unittest',
      'discover',
      '-s',
      AUTOMATION_SCRIPTS_DIR,
      '-p',
      'test_*.py',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const ran = Number(/Ran (\d+) tests?/.exec(r.stderr)?.[1]);
    expect(ran).toBeGreaterThanOrEqual(36);
    expect(r.stderr).toMatch(/\nOK\s*$/);
  }, 60_000);
});

describe('the step scripts in the tree', () => {
  const references = automationFiles.flatMap((file) =>
    rawDocument(file)
      .mainSteps.filter((s) => s.action === 'aws:executeScript')
      .map((s) => ({
        file,
        step: s.name,
        handler: String(s.inputs?.Handler),
        script: /^\$\{file:(.+)\}$/.exec(String(s.inputs?.Script))?.[1],
      })),
  );
  const stepScripts = pythonFiles().filter(
    (f) =>
      f !== `${HELPERS_MODULE}.py` && !f.split('/').pop()?.startsWith('test_') && f !== 'fail-execution.py',
  );

  it('has no Python inline in any YAML: every aws:executeScript Script names a file', () => {
    expect(references.length).toBeGreaterThanOrEqual(20);
    expect(references.filter((r) => r.script === undefined)).toEqual([]);
  });

  it('gives every step its own file, <document>/<step>.py, and leaves no file unused', () => {
    const kebab = (s: string) => s.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
    for (const r of references)
      expect(r.script, `${r.file} ${r.step}`).toBe(
        `${r.file.replace('.automation.yml', '')}/${kebab(r.step)}.py`,
      );
    expect(references.map((r) => r.script).sort()).toEqual(stepScripts);
  });

  it('writes the failure tail once: FailExecution is fail-execution.py for every document with a failureTail', () => {
    const withTail = automationFiles.filter((f) => rawDocument(f).failureTail !== undefined);
    expect(withTail.length).toBeGreaterThanOrEqual(9);
    for (const file of withTail)
      expect(rawDocument(file).mainSteps.map((s) => s.name)).not.toEqual(
        expect.arrayContaining([...FAILURE_TAIL_STEP_NAMES]),
      );
  });

  it('defines no helper twice: a function outside the helpers module is its step’s handler or lives in one file', () => {
    const defs = (file: string): string[] =>
      [...readFileSync(join(AUTOMATION_SCRIPTS_DIR, file), 'utf8').matchAll(/^def (\w+)/gm)].map(
        (m) => m[1] as string,
      );
    const helpers = new Set(defs(`${HELPERS_MODULE}.py`));
    const handlers = new Map(references.map((r) => [r.script, r.handler]));
    const where = new Map<string, string[]>();
    for (const file of [...stepScripts, 'fail-execution.py']) {
      for (const name of defs(file)) {
        expect(helpers.has(name), `${file} defines ${name}, a helper of ${HELPERS_MODULE}.py`).toBe(false);
        if (name === (handlers.get(file) ?? 'fail')) continue;
        where.set(name, [...(where.get(name) ?? []), file]);
      }
    }
    expect([...where].filter(([, files]) => files.length > 1)).toEqual([]);
  });

  it('type-checks with the pyright config on the SSM runtime’s Python version', () => {
    const config = JSON.parse(readFileSync(join(REPO_ROOT, 'pyrightconfig.json'), 'utf8')) as {
      pythonVersion: string;
    };
    expect(`python${config.pythonVersion}`).toBe(AUTOMATION_PYTHON_RUNTIME);
    for (const r of automationFiles.flatMap((f) => rawDocument(f).mainSteps))
      if (r.action === 'aws:executeScript') expect(r.inputs?.Runtime, r.name).toBe(AUTOMATION_PYTHON_RUNTIME);
  });
});

describe('the Automation documents as synthesized', () => {
  let documents: { name: string; content: AutomationDocumentContent }[];
  let scratch: string;

  beforeAll(() => {
    const { template } = synthStack(JSON.parse(readFileSync(TWO_NODES_FILE, 'utf8')));
    documents = new ResolvedTemplate(template.toJSON(), TARGET)
      .resources('AWS::SSM::Document')
      .filter((d) => d.properties.DocumentType === 'Automation')
      .map((d) => ({
        name: String(d.properties.Name),
        content: d.properties.Content as AutomationDocumentContent,
      }));
    scratch = mkdtempSync(join(tmpdir(), 'automation-scripts-'));
  }, 120_000);

  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('holds every document of the tree', () => {
    expect(documents).toHaveLength(automationFiles.length);
  });

  it('keeps each document within SSM’s 64 KB, with 16 KB left for its runtime parameters', () => {
    const sizes = Object.fromEntries(
      documents.map((d) => [d.name, Buffer.byteLength(JSON.stringify(d.content), 'utf8')]),
    );
    for (const [name, bytes] of Object.entries(sizes))
      expect(bytes, `${name}: ${bytes} bytes`).toBeLessThanOrEqual(
        SSM_DOCUMENT_MAX_BYTES - RUNTIME_PARAMETER_ROOM,
      );
    // The runtime values fit the room: Reason (the one free text) is capped at 256 characters and
    // every other parameter by its pattern or values; no document has more than 20 parameters.
    for (const d of documents)
      expect(Object.keys(d.content.parameters ?? {}).length, d.name).toBeLessThanOrEqual(20);
  });

  it('passes pyright as deployed: every helper a step calls is inlined, and nothing else is wrong', () => {
    let count = 0;
    for (const d of documents) {
      for (const step of d.content.mainSteps) {
        if (step.action !== 'aws:executeScript') continue;
        const script = (step.inputs as { Script: string }).Script;
        writeFileSync(join(scratch, `${d.name.replace(/-/g, '_')}__${String(step.name)}.py`), `${script}\n`);
        count += 1;
      }
    }
    const config = JSON.parse(readFileSync(join(REPO_ROOT, 'pyrightconfig.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    writeFileSync(
      join(scratch, 'pyrightconfig.json'),
      JSON.stringify({
        ...config,
        include: ['.'],
        extraPaths: [],
        stubPath: join(AUTOMATION_SCRIPTS_DIR, 'typings'),
      }),
    );
    const r = run(process.execPath, [PYRIGHT, '-p', scratch], scratch);
    expect(r.stdout, r.stderr).toMatch(/\b0 errors, 0 warnings/);
    expect(r.status).toBe(0);
    expect(count).toBeGreaterThanOrEqual(29);
  }, 120_000);

  it('imports nothing of the repository at run time: the helpers module is inlined, never imported', () => {
    for (const d of documents)
      for (const step of d.content.mainSteps)
        if (step.action === 'aws:executeScript')
          expect((step.inputs as { Script: string }).Script, `${d.name} ${String(step.name)}`).not.toMatch(
            new RegExp(`\\b${HELPERS_MODULE}\\b`),
          );
  });
});

// ---------------------------------------------------------------------------------------------
// The loader

describe('loadStepScript', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'step-scripts-'));
    put(`${HELPERS_MODULE}.py`, HELPERS);
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function put(file: string, text: string): void {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), text);
  }

  const HELPERS = [
    '"""Helpers for the tests."""',
    'import json',
    'import time',
    '',
    'LIMIT = 3',
    '',
    '',
    'def outer(value):',
    '    """Calls inner; names unused in its docstring only."""',
    '    # a comment that names unused',
    '    return inner(value)[:LIMIT]',
    '',
    '',
    '# inner is here',
    'def inner(value):',
    '    return json.dumps(value)',
    '',
    '',
    'def unused():',
    '    time.sleep(1)',
    '    return {',
    '        "a": 1,',
    '}',
    '',
  ].join('\n');

  // [the test's name, the script file, what it holds, what loadStepScript makes of it]
  it.each([
    [
      'inlines the imported helper, the helpers and modules it uses, and nothing else',
      'doc/step.py',
      'import re\n\nimport boto3\n\nfrom stemedb_automation import outer\n\n\ndef handler(events, context):\n    return {"out": outer(events["v"]), "re": bool(re)}\n',
      [
        'import json',
        'import re',
        '',
        'import boto3',
        '',
        '',
        'LIMIT = 3',
        '',
        '',
        'def outer(value):',
        '    return inner(value)[:LIMIT]',
        '',
        '',
        'def inner(value):',
        '    return json.dumps(value)',
        '',
        '',
        'def handler(events, context):',
        '    return {"out": outer(events["v"]), "re": bool(re)}',
      ].join('\n'),
    ],
    [
      'keeps a script without helpers as written, its module docstring dropped',
      'doc/plain.py',
      '"""What the file is."""\n\nimport boto3\n\nX = 1  # kept\n\n\ndef fail(events, context):\n    raise Exception("no")\n',
      'import boto3\n\nX = 1  # kept\n\n\ndef fail(events, context):\n    raise Exception("no")',
    ],
  ])('%s', (_name, file, source, loaded) => {
    put(file, source);
    expect(loadStepScript(file, dir)).toBe(loaded);
  });

  it('runs the inlined script as python3 would in SSM', () => {
    put(
      'doc/runs.py',
      'from stemedb_automation import (\n    outer,\n)\n\n\ndef handler(events, context):\n    return {"out": outer(events["v"])}\n',
    );
    const script = loadStepScript('doc/runs.py', dir);
    expect(script.startsWith('import json\n\n\nLIMIT = 3')).toBe(true);
    expect(runPythonHandler({ script, handler: 'handler' }, { v: 'abcdef' }).result).toEqual({ out: '"ab' });
  });

  it.each([
    ['../escape.py', /is not a path of lower-case segments/],
    ['/etc/passwd.py', /is not a path of lower-case segments/],
    ['doc/Step.py', /is not a path of lower-case segments/],
    ['doc/step.sh', /is not a path of lower-case segments/],
    ['doc/missing.py', /script file doc\/missing\.py: ENOENT/],
    [`${HELPERS_MODULE}.py`, /is the helpers module or a test/],
    ['test_stemedb_automation.py', /is the helpers module or a test/],
  ])('refuses the script file %s', (file, message) => {
    expect(() => loadStepScript(file, dir)).toThrow(message);
  });

  it('refuses a script file that resolves outside the folder', () => {
    const outside = mkdtempSync(join(tmpdir(), 'outside-'));
    try {
      writeFileSync(join(outside, 'x.py'), 'def h(e, c):\n    return {}\n');
      symlinkSync(join(outside, 'x.py'), join(dir, 'link.py'));
      expect(() => loadStepScript('link.py', dir)).toThrow(/resolves to .*, outside/);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it.each([
    [
      'an unknown helper',
      'from stemedb_automation import nope\n',
      /imports nope, which stemedb_automation\.py does not define/,
    ],
    ['the module itself', 'import stemedb_automation\n', /import the helpers by name/],
    ['a renamed helper', 'from stemedb_automation import outer as o\n', /under their own names/],
    ['a star import', 'from stemedb_automation import *\n', /import the names one by one/],
    ['two imports', 'from stemedb_automation import outer\nfrom stemedb_automation import inner\n', /once/],
    ['an import below the top', 'X = 1\nfrom stemedb_automation import outer\n', /only at the top/],
    [
      'a helper it defines too',
      'from stemedb_automation import outer\n\n\ndef inner(v):\n    return v\n',
      /defines inner, which it also gets/,
    ],
    ['an SSM reference', 'X = "{{ InstanceId }}"\n', /contains "\{\{"/],
    ['a placeholder', `X = "$\{Prefix}"\n`, /contains "\$\{": deploy-time values/],
  ])('refuses a step script with %s', (_what, text, message) => {
    put('bad/step.py', text);
    expect(() => loadStepScript('bad/step.py', dir)).toThrow(message);
  });

  it('names the file and line of a helpers module it cannot split into definitions', () => {
    const other = mkdtempSync(join(tmpdir(), 'bad-helpers-'));
    try {
      writeFileSync(join(other, 'step.py'), 'from stemedb_automation import a\n');
      writeFileSync(
        join(other, `${HELPERS_MODULE}.py`),
        'import json\n\n\ndef a():\n    return 1\n\n\nprint(a())\n',
      );
      expect(() => loadStepScript('step.py', other)).toThrow(
        /stemedb_automation\.py line 8: a top-level line must start a def, a class or a NAME = \.\.\. constant/,
      );
      writeFileSync(
        join(other, `${HELPERS_MODULE}.py`),
        "def a():\n    return '''\n    # not a comment\n    '''\n",
      );
      expect(() => loadStepScript('step.py', other)).toThrow(
        /line 1: a helper holds no triple-quoted string/,
      );
      writeFileSync(join(other, `${HELPERS_MODULE}.py`), 'import boto3\n\n\ndef a():\n    return 1\n');
      expect(() => loadStepScript('step.py', other)).toThrow(
        /imports boto3: helpers import the standard library only/,
      );
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('sets a constant line, and refuses a script without exactly one', () => {
    expect(setScriptConstant("A = ''\nB = ''", 'A', 'ExpandVolume', 'f.py')).toBe(
      "A = 'ExpandVolume'\nB = ''",
    );
    expect(() => setScriptConstant("B = ''", 'A', 'x', 'f.py')).toThrow(
      /expected exactly one line A = '', found 0/,
    );
    expect(() => setScriptConstant("A = ''", 'A', "x'y", 'f.py')).toThrow(/must be plain text/);
  });

  it('loads every step script of the tree, each without the helpers’ docstrings and comments', () => {
    for (const file of pythonFiles().filter((f) => !f.startsWith('test_') && f !== `${HELPERS_MODULE}.py`)) {
      const script = loadStepScript(file);
      expect(script, file).not.toMatch(/^from stemedb_automation|"""Helpers shared/m);
    }
  });
});

describe('an Automation document’s scripts and failure tail', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'automation-tail-'));
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:t';

  function document(extra: Record<string, unknown> = {}, steps: unknown[] = []): Record<string, unknown> {
    return {
      schemaVersion: '0.3',
      parameters: { InstanceId: { type: 'String', allowedPattern: '^i-[0-9a-f]{8}$' } },
      mainSteps: [
        {
          name: 'Resolve',
          action: 'aws:executeScript',
          onFailure: 'step:NotifyFailure',
          inputs: {
            Runtime: AUTOMATION_PYTHON_RUNTIME,
            Handler: 'resolve',
            InputPayload: { node: '', instanceId: '{{ InstanceId }}' },
            Script: `$\{file:archive-wal/resolve-node.py}`,
          },
          nextStep: 'Notify',
        },
        {
          name: 'Notify',
          action: 'aws:executeAwsApi',
          inputs: { Service: 'sns', Api: 'Publish', TopicArn: `$\{TopicArn}`, Message: `$\{Prefix} ok` },
          isEnd: true,
        },
        ...steps,
      ],
      failureTail: { subject: `$\{Prefix}-Test FAILED on {{ InstanceId }}`, message: 'It failed.' },
      ...extra,
    };
  }

  function load(doc: unknown, name = 'TestDocument'): AutomationDocumentContent {
    const file = join(dir, `${name}.automation.yml`);
    writeFileSync(file, stringify(doc));
    return loadAutomationDocumentContent(name, {
      definitionFile: file,
      substitutions: { Prefix: 'StemeDB', TopicArn: TOPIC },
    });
  }

  it('inlines the step script and appends NotifyFailure and FailExecution, wired as every document had them', () => {
    const content = load(document());
    expect((content.mainSteps[0]?.inputs as { Script?: string } | undefined)?.Script).toBe(
      loadStepScript('archive-wal/resolve-node.py'),
    );
    const [notify, fail] = content.mainSteps.slice(2);
    const { Script: script, ...failInputs } = (fail?.inputs ?? {}) as Record<string, unknown>;
    expect([notify, { ...fail, inputs: failInputs }]).toEqual(
      parseYaml(readFileSync(join(__dirname, 'fixtures', 'failure-tail.yml'), 'utf8')),
    );
    expect(content.mainSteps).toHaveLength(4);
    expect(script).toEqual(expect.stringContaining("DOCUMENT = 'TestDocument'"));
    expect(Object.keys(content)).not.toContain('failureTail');
  });

  it('ends the execution Failed naming the document and the execution', () => {
    const [, fail] = failureTailSteps('ExpandVolume', { subject: 's', message: 'm' });
    const script = String((fail?.inputs as { Script?: string } | undefined)?.Script);
    try {
      runPythonHandler({ script, handler: 'fail' }, { execution: 'exec-1' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(PythonHandlerError);
      expect((err as PythonHandlerError).message).toBe(
        'Exception: ExpandVolume failed; see the first failed step of execution exec-1',
      );
    }
  });

  it('leaves out the MessageId output when asked', () => {
    const tail = { subject: 's', message: 'm', messageIdOutput: false };
    const content = load(document({ failureTail: tail }));
    expect(content.mainSteps.find((s) => s.name === 'NotifyFailure')).not.toHaveProperty('outputs');
  });

  it.each([
    [
      'an inline Script',
      { Script: 'def resolve(e, c):\n    return {}' },
      /inputs\.Script must be '\$\{file:<path>\.py\}'/,
    ],
    [
      'a missing script file',
      { Script: `$\{file:archive-wal/nope.py}` },
      /Resolve\)\.inputs\.Script: script file archive-wal\/nope\.py: ENOENT/,
    ],
  ])('refuses %s, naming the step', (_what, inputs, message) => {
    const doc = document();
    const [resolve] = doc.mainSteps as { inputs: Record<string, unknown> }[];
    Object.assign(resolve?.inputs ?? {}, inputs);
    expect(() => load(doc)).toThrow(message);
  });

  it('refuses a script file named anywhere but an executeScript Script', () => {
    const doc = document();
    const [, notify] = doc.mainSteps as { inputs: Record<string, unknown> }[];
    if (notify !== undefined) notify.inputs.Message = `$\{file:archive-wal/resolve-node.py}`;
    expect(() => load(doc)).toThrow(
      /mainSteps\[1\] \(Notify\): .* names a script file outside inputs\.Script/,
    );
  });

  it('refuses a script file named in the description', () => {
    expect(() => load(document({ description: `see $\{file:archive-wal/resolve-node.py}` }))).toThrow(
      /names a script file outside an aws:executeScript step's Script/,
    );
  });

  it.each([
    ['an unknown key', { subject: 's', message: 'm', topic: 'x' }, /failureTail\.topic is not known/],
    ['no message', { subject: 's' }, /failureTail\.message must be a non-empty string/],
    [
      'a non-boolean messageIdOutput',
      { subject: 's', message: 'm', messageIdOutput: 'no' },
      /messageIdOutput must be true or false/,
    ],
    ['a list', ['s'], /failureTail must be a mapping/],
  ])('refuses a failureTail with %s', (_what, tail, message) => {
    expect(() => load(document({ failureTail: tail }))).toThrow(message);
  });

  it('refuses a document that writes a tail step itself as well', () => {
    const own = { name: 'FailExecution', action: 'aws:branch', inputs: { Choices: [], Default: 'Notify' } };
    try {
      load(document({}, [own]));
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(AutomationDocumentError);
      expect((err as AutomationDocumentError).problems).toEqual([
        'step FailExecution is written by failureTail; remove it from mainSteps',
      ]);
    }
  });

  it('runs a step script straight from its file as the document carries it', () => {
    const run = runPythonHandler(
      stepScriptFile('archive-wal/resolve-node.py', 'resolve'),
      { node: '', instanceId: 'i-0123456789abcdef0' },
      { describe_tags: [{ Tags: [{ Key: 'stemedb:node', Value: 'db-1' }] }] },
    );
    expect(run.result).toEqual({ node: 'db-1', prefix: 'wal/db-1/' });
    expect(run.calls.map((c) => `${c.service}.${c.op}`)).toEqual(['ec2.describe_tags']);
  });

  it('keeps every script error an AutomationScriptError with the file named', () => {
    expect(() => loadStepScript('nope/nope.py')).toThrow(AutomationScriptError);
    expect(relative(REPO_ROOT, AUTOMATION_SCRIPTS_DIR)).toBe(join('ssm-documents', 'automation-scripts'));
  });
});
