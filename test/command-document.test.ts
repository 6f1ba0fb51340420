import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { FILE_OWNERS } from '../contracts/sections';
import {
  CommandDocument,
  defaultCommandDocumentFiles,
  isAnchoredPattern,
  kebabCase,
  loadCommandDocumentContent,
  REPO_ROOT,
} from '../lib/command-document';
import {
  checkCommandParameters,
  ParameterValidationError,
  runCommandDocument,
  synthesizeCommandDocument,
} from './support/command-document-runner';

let dir: string;
let fixtureCount = 0;

const SCRIPT = [
  '#!/usr/bin/env bash',
  '# Usage: reads SSM_Word and SSM_Mode; prints {"word":...,"mode":...}',
  'set -euo pipefail',
  'echo "progress on stderr" >&2',
  'if [[ -n "$SSM_Marker" ]]; then touch "$SSM_Marker"; fi',
  'env | grep -c "^SSM_" >&2 || true',
  'printf \'{"word":"%s","mode":"%s","cwd":"%s"}\\n\' "$SSM_Word" "$SSM_Mode" "$PWD"',
  'if [[ -v EXIT_WITH ]]; then exit "$EXIT_WITH"; fi',
  '',
].join('\n');

function definition(
  overrides: Record<string, unknown> = {},
  parameters: Record<string, unknown> = {},
): unknown {
  return {
    schemaVersion: '2.2',
    description: 'fixture',
    parameters: {
      Word: { type: 'String', allowedPattern: '^[a-z]{1,10}$', interpolationType: 'ENV_VAR' },
      Mode: {
        type: 'String',
        default: 'false',
        allowedValues: ['true', 'false'],
        interpolationType: 'ENV_VAR',
      },
      Marker: {
        type: 'String',
        default: '',
        allowedPattern: '^(/tmp/[a-z0-9-]+)?$',
        interpolationType: 'ENV_VAR',
      },
      ...parameters,
    },
    mainSteps: [{ action: 'aws:runShellScript', name: 'run', inputs: { runCommand: [] } }],
    ...overrides,
  };
}

/** Writes a definition + script pair and returns their paths. */
function fixture(def: unknown, script = SCRIPT): { definitionFile: string; scriptFile: string } {
  fixtureCount++;
  const definitionFile = join(dir, `f${fixtureCount}.command.yml`);
  const scriptFile = join(dir, `f${fixtureCount}.sh`);
  writeFileSync(definitionFile, stringify(def));
  writeFileSync(scriptFile, script);
  return { definitionFile, scriptFile };
}

function build(
  sources: { definitionFile: string; scriptFile: string },
  prefix = 'StemeDB',
  name = 'Fixture',
) {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'S', { env: { account: '111122223333', region: 'eu-west-1' } });
  const doc = new CommandDocument(stack, 'Doc', { prefix, name, ...sources });
  return { stack, doc };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'command-document-test-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('CommandDocument construct', () => {
  it('synthesizes a Command document named <prefix>-Host-<name> with NewVersion updates', () => {
    const { stack } = build(fixture(definition()));
    Template.fromStack(stack).hasResourceProperties('AWS::SSM::Document', {
      Name: 'StemeDB-Host-Fixture',
      DocumentType: 'Command',
      DocumentFormat: 'JSON',
      UpdateMethod: 'NewVersion',
      Content: Match.objectLike({ schemaVersion: '2.2' }),
    });
  });

  it('embeds the script lines as runCommand in an object, not a string', () => {
    const { stack } = build(fixture(definition()));
    const [resource] = Object.values(Template.fromStack(stack).findResources('AWS::SSM::Document'));
    const content = resource?.Properties.Content;
    expect(typeof content).toBe('object');
    expect(content.mainSteps[0].inputs.runCommand).toEqual(SCRIPT.split('\n').slice(0, -1));
  });

  it('exposes the document name and an ssm document ARN', () => {
    const { stack, doc } = build(fixture(definition()), 'Acme', 'DiskThing');
    expect(doc.documentName).toBe('Acme-Host-DiskThing');
    expect(stack.resolve(doc.documentArn)).toEqual({
      'Fn::Join': [
        '',
        ['arn:', { Ref: 'AWS::Partition' }, ':ssm:eu-west-1:111122223333:document/Acme-Host-DiskThing'],
      ],
    });
  });

  it('defaults the files to ssm-documents/<kebab>.command.yml and scripts/<kebab>.sh', () => {
    expect(kebabCase('GrowFilesystem')).toBe('grow-filesystem');
    expect(kebabCase('DeleteArchivedWal')).toBe('delete-archived-wal');
    expect(kebabCase('ArchiveWAL')).toBe('archive-wal');
    expect(defaultCommandDocumentFiles('DiskReport')).toEqual({
      definitionFile: 'ssm-documents/disk-report.command.yml',
      scriptFile: 'ssm-documents/scripts/disk-report.sh',
    });
  });

  it.each([
    ['schemaVersion', definition({ schemaVersion: '2.0' }), /schemaVersion must be the string '2.2'/],
    [
      'a parameter without pattern or values',
      definition({}, { Free: { type: 'String', interpolationType: 'ENV_VAR' } }),
      /parameters\.Free needs an anchored allowedPattern or allowedValues/,
    ],
    [
      'an unanchored pattern',
      definition({}, { P: { type: 'String', allowedPattern: '[a-z]+', interpolationType: 'ENV_VAR' } }),
      /parameters\.P\.allowedPattern .* must be anchored/,
    ],
    [
      'a top-level alternation',
      definition({}, { P: { type: 'String', allowedPattern: '^a|b$', interpolationType: 'ENV_VAR' } }),
      /parameters\.P\.allowedPattern .* must be anchored/,
    ],
    [
      'a look-ahead (not in Go RE2)',
      definition(
        {},
        { P: { type: 'String', allowedPattern: '^(?!x)[a-z]+$', interpolationType: 'ENV_VAR' } },
      ),
      /parameters\.P\.allowedPattern .* look-ahead/,
    ],
    [
      'a String without ENV_VAR',
      definition({}, { P: { type: 'String', allowedPattern: '^[a-z]+$' } }),
      /parameters\.P is a String parameter and needs interpolationType: ENV_VAR/,
    ],
    [
      'a default outside its pattern',
      definition(
        {},
        { P: { type: 'String', default: 'X', allowedPattern: '^[a-z]+$', interpolationType: 'ENV_VAR' } },
      ),
      /parameters\.P\.default "X" does not match/,
    ],
    [
      'two steps',
      definition({
        mainSteps: [
          { action: 'aws:runShellScript', name: 'a', inputs: { runCommand: [] } },
          { action: 'aws:runShellScript', name: 'b', inputs: { runCommand: [] } },
        ],
      }),
      /exactly one step/,
    ],
    [
      'another action',
      definition({
        mainSteps: [{ action: 'aws:runPowerShellScript', name: 'a', inputs: { runCommand: [] } }],
      }),
      /action must be aws:runShellScript/,
    ],
    [
      'commands written in the YAML',
      definition({
        mainSteps: [{ action: 'aws:runShellScript', name: 'a', inputs: { runCommand: ['rm -rf /'] } }],
      }),
      /runCommand must be \[\]/,
    ],
  ])('rejects %s with an error that names the field', (_what, def, message) => {
    expect(() => build(fixture(def))).toThrow(message);
  });

  it('rejects a script containing {{ and names scriptFile', () => {
    expect(() => build(fixture(definition(), '#!/usr/bin/env bash\necho {{ Word }}\n'))).toThrow(
      /scriptFile: .*"\{\{"/,
    );
  });

  it('rejects a missing script file and names scriptFile', () => {
    const sources = fixture(definition());
    expect(() => build({ ...sources, scriptFile: join(dir, 'absent.sh') })).toThrow(
      /scriptFile .*absent\.sh/,
    );
  });

  it('rejects a prefix that SSM reserves and names the prop', () => {
    expect(() => build(fixture(definition()), 'AwsThing')).toThrow(/prefix "AwsThing" is invalid/);
  });

  it('recognizes anchored patterns', () => {
    expect(isAnchoredPattern('^(a|b)$')).toBe(true);
    expect(isAnchoredPattern('^[|]$')).toBe(true);
    expect(isAnchoredPattern('^a\\$')).toBe(false);
    expect(isAnchoredPattern('^a|b$')).toBe(false);
  });

  it('loads the same content without a stack as the construct synthesizes', () => {
    const sources = fixture(definition());
    expect(synthesizeCommandDocument('Fixture', sources)).toEqual(
      loadCommandDocumentContent('Fixture', sources),
    );
  });
});

/** An include line sourcing `path` whose marker names `marker`. */
function includeLine(path: string, marker = path): string {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash expansion, not a template
  const here = '$(dirname "${BASH_SOURCE[0]}")';
  return `source "${here}/${path}" # stemedb:inline ${marker}`;
}

const INCLUDE = `# shellcheck source=lib/common.sh disable=SC1091\n${includeLine('lib/common.sh')}`;

/** A fixture script whose include line is `include` (the lines around it are plain commands). */
function scriptWith(include: string): string {
  return ['#!/usr/bin/env bash', 'set -euo pipefail', 'SCRIPT_NAME=fixture', include, 'log "hi"', ''].join(
    '\n',
  );
}

describe('shared shell libraries (stemedb:inline)', () => {
  const runCommandOf = (content: ReturnType<typeof loadCommandDocumentContent>) =>
    content.mainSteps[0]?.inputs.runCommand ?? [];

  it('replaces the include line of a real script with the functions of lib/common.sh and no source line', () => {
    const library = readFileSync(join(REPO_ROOT, 'ssm-documents', 'scripts', 'lib', 'common.sh'), 'utf8');
    const functions = [...library.matchAll(/^([a-z_]+)\(\) \{/gm)].map((m) => m[1]);
    expect(functions).toContain('json_str');
    const lines = runCommandOf(loadCommandDocumentContent('DiskReport'));
    const defined = lines.flatMap((l) => /^([a-z_]+)\(\) \{/.exec(l)?.[1] ?? []);
    expect(defined).toEqual(expect.arrayContaining(functions));
    expect(lines.filter((l) => /^\s*(source|\.) /.test(l))).toEqual([]);
    expect(lines.some((l) => l.includes('stemedb:inline') || l.startsWith('# shellcheck source='))).toBe(
      false,
    );
    expect(lines.join('\n')).not.toContain('{{');
    expect(lines[0]).toBe('#!/usr/bin/env bash');
  });

  it('inlines a fixture library in place, without its #! and set lines, and the script runs', async () => {
    const sources = fixture(definition(), scriptWith(INCLUDE));
    mkdirSync(join(dir, 'lib'), { recursive: true });
    writeFileSync(
      join(dir, 'lib', 'common.sh'),
      '#!/usr/bin/env bash\nset -euo pipefail\nlog() { printf \'%s: %s\\n\' "$SCRIPT_NAME" "$*"; }\n',
    );
    const content = loadCommandDocumentContent('Fixture', sources);
    expect(runCommandOf(content)).toEqual([
      '#!/usr/bin/env bash',
      'set -euo pipefail',
      'SCRIPT_NAME=fixture',
      'log() { printf \'%s: %s\\n\' "$SCRIPT_NAME" "$*"; }',
      'log "hi"',
    ]);
    const r = await runCommandDocument(content, { Word: 'x' });
    expect(r.stdout).toBe('fixture: hi\n');
  });

  it("drops a library's header comment and keeps the comments above its functions", () => {
    const sources = fixture(definition(), scriptWith(INCLUDE));
    mkdirSync(join(dir, 'lib'), { recursive: true });
    writeFileSync(
      join(dir, 'lib', 'common.sh'),
      '# shellcheck shell=bash\n# lib/common.sh: what it is.\n#\n# How a script includes it.\n\n# Logs.\nlog() { :; }\n',
    );
    expect(runCommandOf(loadCommandDocumentContent('Fixture', sources))).toEqual([
      '#!/usr/bin/env bash',
      'set -euo pipefail',
      'SCRIPT_NAME=fixture',
      '# Logs.',
      'log() { :; }',
      'log "hi"',
    ]);
  });

  it.each([
    ['an unknown library', includeLine('lib/nope.sh')],
    ['a path out of lib/', includeLine('lib/../f1.sh')],
    ['a marker naming another file', includeLine('lib/a.sh', 'lib/b.sh')],
    ['an absolute path', 'source /etc/profile # stemedb:inline /etc/profile'],
    ['a sibling sourced without the marker', includeLine('lib/common.sh').replace(/ #.*$/, '')],
  ])('refuses %s, naming the script and the line', (_what, include) => {
    const sources = fixture(definition(), scriptWith(include));
    expect(() => loadCommandDocumentContent('Fixture', sources)).toThrow(
      new RegExp(`scriptFile ${sources.scriptFile.replace(/[.]/g, '\\.')} line 4: `),
    );
  });

  it('refuses a library in lib/ that is a symlink to a file outside lib/', () => {
    const sources = fixture(definition(), scriptWith(INCLUDE.replaceAll('common.sh', 'escape.sh')));
    mkdirSync(join(dir, 'lib'), { recursive: true });
    writeFileSync(join(dir, 'outside.sh'), 'log() { :; }\n');
    symlinkSync(join(dir, 'outside.sh'), join(dir, 'lib', 'escape.sh'));
    expect(() => loadCommandDocumentContent('Fixture', sources)).toThrow(
      /line 5: cannot include lib\/escape\.sh: .*outside/,
    );
  });

  it('refuses a library containing {{', () => {
    const sources = fixture(definition(), scriptWith(INCLUDE.replaceAll('common.sh', 'braces.sh')));
    mkdirSync(join(dir, 'lib'), { recursive: true });
    writeFileSync(join(dir, 'lib', 'braces.sh'), 'log() { echo "{{ Word }}"; }\n');
    expect(() => loadCommandDocumentContent('Fixture', sources)).toThrow(
      /line 5: lib\/braces\.sh contains "\{\{"/,
    );
  });

  it('leaves a script without include lines unchanged', () => {
    const content = loadCommandDocumentContent('Fixture', fixture(definition()));
    expect(runCommandOf(content)).toEqual(SCRIPT.split('\n').slice(0, -1));
  });
});

describe('runCommandDocument (local SSM agent)', () => {
  let content: ReturnType<typeof synthesizeCommandDocument>;
  beforeAll(() => {
    content = synthesizeCommandDocument('Fixture', fixture(definition()));
  });

  it('exports parameters as SSM_<Name> with defaults applied and returns the last JSON line', async () => {
    const r = await runCommandDocument(content, { Word: 'hello' });
    expect(r.exitCode).toBe(0);
    expect(r.lastJson).toMatchObject({ word: 'hello', mode: 'false' });
    expect(r.ssmEnv).toEqual({ SSM_Word: 'hello', SSM_Mode: 'false', SSM_Marker: '' });
    expect(r.stderr).toContain('progress on stderr');
  });

  it('does not pass inherited SSM_ variables through', async () => {
    process.env.SSM_Leaked = 'x';
    try {
      const r = await runCommandDocument(content, { Word: 'hello' });
      expect(r.stderr).toContain('\n3\n');
    } finally {
      delete process.env.SSM_Leaked;
    }
  });

  it('passes extra environment and a working directory', async () => {
    const r = await runCommandDocument(content, { Word: 'x' }, { env: { EXIT_WITH: '3' }, cwd: dir });
    expect(r.exitCode).toBe(3);
    expect(r.lastJson?.cwd).toBe(dir);
  });

  it.each([
    [{ Word: 'hello', Extra: 'x' }, /Extra: unknown parameter/],
    [{}, /Word: required parameter is missing/],
    [{ Word: 'a;b' }, /Word: "a;b" fails allowedPattern/],
    [{ Word: 'abc\n' }, /fails allowedPattern/],
    [{ Word: 'abc', Mode: 'yes' }, /Mode: "yes" is not one of/],
  ])('rejects %j before running anything', async (params, message) => {
    const marker = `/tmp/cdt-never-${process.pid}-${fixtureCount++}`;
    await expect(runCommandDocument(content, { ...params, Marker: marker })).rejects.toThrow(message);
    await expect(runCommandDocument(content, { ...params, Marker: marker })).rejects.toBeInstanceOf(
      ParameterValidationError,
    );
    expect(existsSync(marker)).toBe(false);
  });

  it('reports parameter problems as data without running', () => {
    expect(checkCommandParameters(content, { Word: 'A' })).toEqual({
      ok: false,
      problems: ['Word: "A" fails allowedPattern ^[a-z]{1,10}$'],
    });
  });

  it('kills a script that outlives its timeout', async () => {
    const slow = synthesizeCommandDocument(
      'Slow',
      fixture(definition({ parameters: {} }), '#!/usr/bin/env bash\nsleep 30\n'),
    );
    const r = await runCommandDocument(slow, {}, { timeoutMs: 300 });
    expect(r.timedOut).toBe(true);
    expect(r.exitCode).not.toBe(0);
  });
});

describe('the input patterns the host scripts share (scripts/lib/common.sh)', () => {
  const scriptsDir = join(REPO_ROOT, 'ssm-documents', 'scripts');
  // The patterns as bash holds them after sourcing the library (composed ones expanded).
  const shared = new Map(
    execFileSync(
      'bash',
      [
        '-c',
        'source "$1"; for v in $(compgen -v | grep "_RE$"); do declare -n p=$v; printf "%s\\t%s\\n" "$v" "$p"; done',
        'bash',
        join(scriptsDir, 'lib', 'common.sh'),
      ],
      { encoding: 'utf8' },
    )
      .trim()
      .split('\n')
      .map((line) => line.split('\t') as [string, string]),
  );
  // Every Command document the stack deploys: the sections' and the prevention's.
  const documents: readonly string[] = FILE_OWNERS.flatMap((o) => o.commands);
  const allowedPatterns = (document: string): Record<string, string | undefined> => {
    const { definitionFile } = defaultCommandDocumentFiles(document);
    const definition = parseYaml(readFileSync(join(REPO_ROOT, definitionFile), 'utf8')) as {
      parameters?: Record<string, { allowedPattern?: string }>;
    };
    return Object.fromEntries(
      Object.entries(definition.parameters ?? {}).map(([name, p]) => [name, p.allowedPattern]),
    );
  };

  it('defines the ten patterns, each the allowedPattern of some Command document parameter', () => {
    expect([...shared.keys()].sort()).toEqual(
      [
        'BASE_URL_RE',
        'DIR_RE',
        'HEALTH_TIMEOUT_RE',
        'HEALTH_URL_RE',
        'MOUNT_POINT_RE',
        'OPTIONAL_DIR_RE',
        'PATH_SEGMENT_RE',
        'PERCENT_RE',
        'PLAIN_PATH_RE',
        'SERVICE_RE',
      ].sort(),
    );
    const declared = new Set(documents.flatMap((d) => Object.values(allowedPatterns(d))));
    for (const [name, pattern] of shared) {
      if (name !== 'PATH_SEGMENT_RE') expect(declared.has(pattern), name).toBe(true);
    }
  });

  it.each(documents)('%s: its script reads each parameter with the pattern it declares', (document) => {
    const declared = allowedPatterns(document);
    const { scriptFile } = defaultCommandDocumentFiles(document);
    const reads = [
      ...readFileSync(join(REPO_ROOT, scriptFile), 'utf8').matchAll(/^\s*param \w+ (\w+) "\$(\w+_RE)"/gm),
    ].filter(([, , re]) => shared.has(re as string));
    for (const [, parameter, re] of reads) {
      expect(declared[parameter as string], `${document} ${parameter} read with ${re}`).toBe(
        shared.get(re as string),
      );
    }
  });
});
