import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ResolvedTemplate } from './support/resolved-template';
import { synthStack, TWO_NODES_FILE } from './support/synth';

const TARGET = { account: '111122223333', region: 'eu-west-1', stackName: 'StemeDB-Disk' } as const;

let template: Record<string, unknown>;
let resolved: ResolvedTemplate;

beforeAll(() => {
  const { template: t } = synthStack(JSON.parse(readFileSync(TWO_NODES_FILE, 'utf8')));
  template = t.toJSON() as Record<string, unknown>;
  resolved = new ResolvedTemplate(template, TARGET);
});

/** Every path in `v` where an unresolved intrinsic or pseudo parameter is left. */
function unresolvedIn(v: unknown, where = '', subPlaceholders = true): string[] {
  if (typeof v === 'string') {
    if (/AWS::(Partition|Region|AccountId|URLSuffix|StackName)/.test(v)) return [where];
    return subPlaceholders && /\$\{[^!]/.test(v) ? [where] : [];
  }
  if (Array.isArray(v)) return v.flatMap((x, i) => unresolvedIn(x, `${where}[${i}]`, subPlaceholders));
  if (v === null || typeof v !== 'object') return [];
  return Object.entries(v).flatMap(([k, x]) =>
    k === 'Ref' || k.startsWith('Fn::')
      ? [`${where}.${k}`]
      : unresolvedIn(x, `${where}.${k}`, subPlaceholders),
  );
}

function logicalIdOf(type: string, match: (p: Record<string, unknown>) => boolean): string {
  const resources = template.Resources as Record<
    string,
    { Type: string; Properties: Record<string, unknown> }
  >;
  const ids = Object.entries(resources)
    .filter(([, r]) => r.Type === type && match(r.Properties))
    .map(([id]) => id);
  expect(ids, type).toHaveLength(1);
  return ids[0] as string;
}

describe('ResolvedTemplate', () => {
  it('resolves the automation role name and ARN for the target region and account', () => {
    const role = resolved.roles().find((r) => r.roleName.startsWith('StemeDB-disk-automation-'));
    expect(role?.roleName).toBe('StemeDB-disk-automation-eu-west-1');
    expect(role?.arn).toBe('arn:aws:iam::111122223333:role/StemeDB-disk-automation-eu-west-1');
  });

  it('finds every IAM role of the template, each with its identity policies', () => {
    const resources = template.Resources as Record<string, { Type: string }>;
    const roleIds = Object.entries(resources)
      .filter(([, r]) => r.Type === 'AWS::IAM::Role')
      .map(([id]) => id)
      .sort();
    const roles = resolved.roles();
    expect(roles.map((r) => r.logicalId).sort()).toEqual(roleIds);
    expect(roleIds.length).toBeGreaterThanOrEqual(7);
    const lambdaRoles = roles.filter(
      (r) => r.logicalId.startsWith('Remediation') && r.logicalId.includes('Role'),
    );
    for (const r of lambdaRoles) expect(r.policies.length, r.logicalId).toBeGreaterThan(0);
    const dlm = roles.find((r) => r.logicalId.startsWith('SnapshotsRole'));
    expect(dlm?.awsManagedPolicyArns).toEqual([
      'arn:aws:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole',
    ]);
  });

  it('lists the per-node instance policies and the operator policy as unattached managed policies, with ARN = Ref', () => {
    const policies = resolved.managedPolicies();
    expect(policies.map((p) => p.name).sort()).toEqual([
      'StemeDB-node-db-1',
      'StemeDB-node-db-2',
      'StemeDB-operator',
    ]);
    const db1 = policies.find((p) => p.name === 'StemeDB-node-db-1');
    expect(db1?.arn).toBe('arn:aws:iam::111122223333:policy/StemeDB-node-db-1');
    expect(resolved.resource(db1?.logicalId as string).ref).toBe(db1?.arn);
  });

  it('gives each resource type the Ref and Arn CloudFormation returns', () => {
    const topic = resolved.resources('AWS::SNS::Topic')[0];
    expect(topic?.ref).toMatch(/^arn:aws:sns:eu-west-1:111122223333:/);
    expect(topic?.attributes.Arn).toBeUndefined();
    const queue = resolved.resources('AWS::SQS::Queue')[0];
    expect(queue?.ref).toBe(
      'https://sqs.eu-west-1.amazonaws.com/111122223333/StemeDB-disk-router-dead-letters',
    );
    expect(queue?.attributes.Arn).toBe('arn:aws:sqs:eu-west-1:111122223333:StemeDB-disk-router-dead-letters');
    const key = resolved.resources('AWS::KMS::Key')[0];
    expect(key?.ref).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(key?.attributes.Arn).toBe(`arn:aws:kms:eu-west-1:111122223333:key/${key?.ref}`);
    const doc = resolved.resource(
      logicalIdOf('AWS::SSM::Document', (p) => p.Name === 'StemeDB-ExpandVolume'),
    );
    expect(doc.ref).toBe('StemeDB-ExpandVolume');
    const fnId = logicalIdOf('AWS::Lambda::Function', (p) => p.FunctionName === 'StemeDB-expand-volume');
    expect(resolved.resource(fnId).ref).toBe('StemeDB-expand-volume');
    expect(resolved.resource(fnId).attributes.Arn).toBe(
      'arn:aws:lambda:eu-west-1:111122223333:function:StemeDB-expand-volume',
    );
    const alarm = resolved.resource(
      logicalIdOf('AWS::CloudWatch::Alarm', (p) => p.AlarmName === 'StemeDB-db-1-disk-critical'),
    );
    expect(alarm.ref).toBe('StemeDB-db-1-disk-critical');
    expect(alarm.attributes.Arn).toBe(
      'arn:aws:cloudwatch:eu-west-1:111122223333:alarm:StemeDB-db-1-disk-critical',
    );
  });

  it('generates deterministic lower-case bucket names, and takes physical IDs given for the target', () => {
    const bucket = resolved
      .resources('AWS::S3::Bucket')
      .find((b) => b.logicalId.startsWith('WalArchiveBucket'));
    expect(bucket?.ref).toMatch(/^stemedb-disk-walarchivebucket[0-9a-f]{8}-[0-9a-f]{8}$/);
    expect(bucket?.attributes.Arn).toBe(`arn:aws:s3:::${bucket?.ref}`);
    expect(new ResolvedTemplate(template, TARGET).resource(bucket?.logicalId as string).ref).toBe(
      bucket?.ref,
    );

    const volumeId = logicalIdOf('AWS::EC2::Volume', () => true);
    const withMoto = new ResolvedTemplate(template, TARGET, { [volumeId]: 'vol-0aaaabbbbccccdddd' });
    expect(withMoto.resource(volumeId).ref).toBe('vol-0aaaabbbbccccdddd');
    expect(() => new ResolvedTemplate(template, TARGET, { Nope: 'x' })).toThrow(/Nope/);
  });

  it('resolves the pseudo parameters and both Fn::Sub forms, Fn::Select and Fn::Split', () => {
    const cn = new ResolvedTemplate(template, { ...TARGET, partition: 'aws-cn', region: 'cn-north-1' });
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Fn::Sub placeholders, not a JS template
    const sub = 'x.${AWS::URLSuffix}/${AWS::StackName}/${!Literal}';
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Fn::Sub's escaped literal, as CloudFormation leaves it
    expect(cn.resolve({ 'Fn::Sub': sub })).toBe('x.amazonaws.com.cn/StemeDB-Disk/${Literal}');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Fn::Sub placeholders, not a JS template
    const withVars = '${A}-${AWS::Region}';
    expect(resolved.resolve({ 'Fn::Sub': [withVars, { A: { Ref: 'AWS::AccountId' } }] })).toBe(
      '111122223333-eu-west-1',
    );
    expect(resolved.resolve({ 'Fn::Select': [1, { 'Fn::Split': [':', 'a:b:c'] }] })).toBe('b');
  });

  it('names the logical ID or intrinsic it cannot resolve', () => {
    expect(() => resolved.resolve({ Ref: 'Missing' })).toThrow(/Ref Missing/);
    expect(() => resolved.resolve({ 'Fn::GetAtt': ['Missing', 'Arn'] })).toThrow(/Missing\.Arn/);
    const docId = logicalIdOf('AWS::SSM::Document', (p) => p.Name === 'StemeDB-ExpandVolume');
    expect(() => resolved.resolve({ 'Fn::GetAtt': [docId, 'Nope'] })).toThrow(new RegExp(`${docId}\\.Nope`));
    expect(() => resolved.resolve({ 'Fn::ImportValue': 'x' })).toThrow(/Fn::ImportValue/);
  });

  it('leaves no intrinsic unresolved in roles, managed policies and resource policies', () => {
    const all = {
      roles: resolved.roles(),
      managed: resolved.managedPolicies(),
      res: resolved.resourcePolicies(),
    };
    expect(unresolvedIn(all)).toEqual([]);
    expect(
      resolved
        .resourcePolicies()
        .map((p) => p.kind)
        .sort(),
    ).toEqual(['bucket', 'bucket', 'key', 'queue', 'topic']);
    // Every resource's properties too; scripts embedded in documents carry bash `${…}`, not Fn::Sub.
    expect(
      unresolvedIn(
        resolved.resources().map((r) => r.properties),
        '',
        false,
      ),
    ).toEqual([]);
  });
});
