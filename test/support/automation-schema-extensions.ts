/**
 * Where AWS's published Automation schema (npm `aws-ssm-document-language-service`,
 * `dist/schema.json`, "JSON schema for AWS Automation Documents", schemaVersion 0.3 only) is
 * stale or checks nothing, these extensions correct it. Each one says what is wrong and why.
 * They are applied to a deep copy; the package's file is never modified.
 */

type Schema = Record<string, unknown>;

function isRecord(v: unknown): v is Schema {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function at(schema: Schema, ...path: string[]): Schema {
  let node: unknown = schema;
  for (const key of path) {
    if (!isRecord(node) || !isRecord(node[key])) {
      throw new Error(`automation schema: ${path.join('.')} not found; the package's schema.json changed`);
    }
    node = node[key];
  }
  return node as Schema;
}

/** The `if: {properties: {action: {const}}}` branch of mainSteps.items.allOf for one action. */
function actionBranch(steps: Schema, action: string): Schema {
  const allOf = steps.allOf;
  if (!Array.isArray(allOf)) throw new Error('automation schema: mainSteps.items.allOf is not a list');
  for (const branch of allOf) {
    if (!isRecord(branch)) continue;
    const actionConst = (
      ((branch.if as Schema | undefined)?.properties as Schema | undefined)?.action as Schema | undefined
    )?.const;
    if (actionConst === action) return branch;
  }
  throw new Error(`automation schema: no allOf branch for ${action}`);
}

/** One condition of an aws:branch choice: a variable compared with one operator. */
const OPERATORS = [
  'StringEquals',
  'EqualsIgnoreCase',
  'StartsWith',
  'EndsWith',
  'Contains',
  'NumericEquals',
  'NumericGreater',
  'NumericLesser',
  'NumericGreaterOrEquals',
  'NumericLesserOrEquals',
  'BooleanEquals',
] as const;

const REFERENCE = '^\\{\\{ ?[A-Za-z0-9_.:/-]+ ?\\}\\}$';

/** `$id` of the branch-condition schema, which {@link automationSchemaDependencies} registers. */
export const BRANCH_CONDITION_ID = 'stemedb-automation-branch-condition';

/** A condition: `Variable` + exactly one operator, or `And`/`Or` of conditions, or `Not` of one. */
function conditionSchema(): Schema {
  const operatorProps = Object.fromEntries(
    OPERATORS.map((op) => [
      op,
      op.startsWith('Numeric')
        ? { type: ['number', 'string'] }
        : op === 'BooleanEquals'
          ? { type: ['boolean', 'string'] }
          : { type: 'string' },
    ]),
  );
  return {
    $id: BRANCH_CONDITION_ID,
    type: 'object',
    oneOf: [
      {
        required: ['Variable'],
        properties: { Variable: { type: 'string', pattern: REFERENCE }, ...operatorProps },
        additionalProperties: false,
        minProperties: 2,
        maxProperties: 2,
      },
      {
        required: ['And'],
        properties: { And: { type: 'array', minItems: 2, items: { $ref: BRANCH_CONDITION_ID } } },
        additionalProperties: false,
      },
      {
        required: ['Or'],
        properties: { Or: { type: 'array', minItems: 2, items: { $ref: BRANCH_CONDITION_ID } } },
        additionalProperties: false,
      },
      {
        required: ['Not'],
        properties: { Not: { $ref: BRANCH_CONDITION_ID } },
        additionalProperties: false,
      },
    ],
  };
}

/** Returns a corrected deep copy of the published Automation schema. */
export function extendAutomationSchema(published: Schema): Schema {
  const schema = structuredClone(published);
  const steps = at(schema, 'properties', 'mainSteps', 'items');
  const stepProps = at(steps, 'properties');

  // 1. Actions added after the schema was published: aws:loop (2023) and aws:updateVariable (2024,
  //    with the `variables` section). The published enum rejects them.
  const action = at(stepProps, 'action');
  const actions = action.enum;
  if (!Array.isArray(actions)) throw new Error('automation schema: action.enum is not a list');
  action.enum = [...new Set([...actions, 'aws:loop', 'aws:updateVariable'])];

  // 2. `onCancel` (Abort or step:<name>) is a documented step property the schema does not list;
  //    with additionalProperties: false it rejects every step that uses it.
  stepProps.onCancel = { type: 'string', pattern: '^(Abort|step:[A-Za-z0-9_]+)$' };

  // 3. The aws:waitForAwsResourceProperty branch is keyed on a misspelt action
  //    ("aws:waitForAwsResourceProperties"), so that action's inputs are never checked.
  const waitBranch = actionBranch(steps, 'aws:waitForAwsResourceProperties');
  at(waitBranch, 'if', 'properties', 'action').const = 'aws:waitForAwsResourceProperty';

  // 4. aws:executeScript runtimes: the schema allows only python3.6, python3.7 and
  //    "PowerShell Core 6.0". AWS no longer accepts runbooks with Python 3.6-3.8 (since
  //    2024-12-04) and recommends python3.11; PowerShell 7.x replaced Core 6.0.
  const runtime = at(
    actionBranch(steps, 'aws:executeScript'),
    'then',
    'properties',
    'inputs',
    'properties',
    'Runtime',
  );
  runtime.oneOf = [
    { enum: ['python3.9', 'python3.10', 'python3.11', 'PowerShell 7.0', 'PowerShell 7.4'] },
    { pattern: '^{{[ ]{0,1}[a-zA-Z_.]+[ ]{0,1}}}$' },
  ];

  // 5. aws:branch choices: the schema wraps each choice in a `branchConditional` object that no
  //    real document has, as a one-element tuple, so it checks nothing. Real choices are
  //    {NextStep, Variable, <operator>} or {NextStep, And|Or|Not}; Default names a step.
  const branchInputs = at(actionBranch(steps, 'aws:branch'), 'then', 'properties', 'inputs');
  const condition = conditionSchema();
  branchInputs.required = ['Choices'];
  branchInputs.additionalProperties = false;
  branchInputs.properties = {
    Choices: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['NextStep'],
        properties: { NextStep: { type: 'string', pattern: '^[A-Za-z0-9_]+$' } },
        // Apart from NextStep, a choice is exactly one condition.
        allOf: [conditionWithExtra(condition, 'NextStep')],
      },
    },
    Default: { type: 'string', pattern: '^[A-Za-z0-9_]+$' },
  };

  // 6. Parameter types added for Automation after the schema was published (AWS-specific
  //    parameter types, validated by the service).
  const paramType = at(schema, 'properties', 'parameters', 'patternProperties', '^.*$', 'properties', 'type');
  const types = paramType.enum;
  if (!Array.isArray(types)) throw new Error('automation schema: parameter type enum is not a list');
  paramType.enum = [
    ...new Set([
      ...types,
      'AWS::EC2::Instance::Id',
      'List<AWS::EC2::Instance::Id>',
      'AWS::IAM::Role::Arn',
      'AWS::S3::Bucket::Name',
      'List<AWS::S3::Bucket::Name>',
    ]),
  ];

  // 7. The top-level `variables` section (runtime variables for aws:updateVariable) is missing;
  //    additionalProperties: false rejects it.
  at(schema, 'properties').variables = {
    type: 'object',
    patternProperties: {
      '^[A-Za-z0-9_]+$': {
        type: 'object',
        required: ['type'],
        properties: { type: { type: 'string' }, default: {}, description: { type: 'string' } },
      },
    },
    additionalProperties: false,
  };

  // 8. A step's `outputs` entries need Name and Selector (AWS: both required); the schema requires
  //    neither, so a misspelt key passes.
  const outputItems = at(stepProps, 'outputs', 'items');
  outputItems.required = ['Name', 'Selector'];
  outputItems.additionalProperties = false;

  return schema;
}

/** Schemas the extended schema refers to by `$id`; add them to Ajv before compiling it. */
export function automationSchemaDependencies(): Schema[] {
  return [conditionSchema()];
}

/**
 * The condition schema for an object that also carries `key` (a choice's NextStep): the same
 * alternatives, each allowing that one extra property.
 */
function conditionWithExtra(condition: Schema, key: string): Schema {
  const alternatives = condition.oneOf as Schema[];
  return {
    oneOf: alternatives.map((alt) => {
      const props = { ...(alt.properties as Schema), [key]: {} };
      const max = typeof alt.maxProperties === 'number' ? { maxProperties: alt.maxProperties + 1 } : {};
      const min = typeof alt.minProperties === 'number' ? { minProperties: alt.minProperties + 1 } : {};
      return { ...alt, properties: props, ...max, ...min };
    }),
  };
}
