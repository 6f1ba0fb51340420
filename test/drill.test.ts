/**
 * The drill (test/drill/) as integration tests: every scenario of `npm run drill`, on one shared
 * set-up (one synth with bundled Lambdas, one moto_server with authorization on, one SSM endpoint),
 * each scenario on a node and disk of its own. Plus the drill's own refusals: a parameter that
 * fails its pattern starts nothing, a denied call names principal, action and resource.
 */
import { SSMClient, StartAutomationExecutionCommand } from '@aws-sdk/client-ssm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Drill, PREFIX, REGION } from './drill/drill';
import { failedChecks, formatTimeline } from './drill/report';
import { SCENARIOS } from './drill/scenarios';

let drill: Drill | undefined;

function started(): Drill {
  if (drill === undefined) throw new Error('the drill did not start');
  return drill;
}

beforeAll(async () => {
  const missing = Drill.missingPrerequisite();
  if (missing !== undefined) throw new Error(missing);
  drill = await Drill.start({ nodes: SCENARIOS.map((s) => s.node), log: () => undefined });
}, 600_000);

afterAll(async () => {
  await drill?.stop();
});

describe('npm run drill', () => {
  for (const scenario of SCENARIOS) {
    test(`${scenario.name}: ${scenario.summary}`, async () => {
      const t = await scenario.run(started());
      expect(failedChecks(t), formatTimeline(t)).toEqual([]);
      expect(t.checks.length).toBeGreaterThan(2);
    }, 600_000);
  }
});

describe('the drill refuses as AWS would', () => {
  test('a parameter that fails its allowedPattern is rejected before any step runs', async () => {
    const d = started();
    const executions = d.automation.list().length;
    const commands = d.ledger.all().length;
    await expect(d.runDocument('ExpandVolume', { InstanceId: 'i-0123; reboot' })).rejects.toThrow(
      /InstanceId/,
    );
    await expect(d.runDocument('ExpandVolume', { InstanceId: 'i-0123; reboot' })).rejects.toMatchObject({
      name: 'InvalidAutomationExecutionParametersException',
    });
    expect(d.automation.list().length).toBe(executions);
    expect(d.ledger.all().length).toBe(commands);
  });

  test('a re-deploy with a change the drill cannot apply fails, naming it, and changes nothing', async () => {
    const d = started();
    const before = { resolved: d.resolved, evaluator: d.evaluator, config: d.deployedConfig, nodes: d.nodes };
    // An email subscription is a resource moto's account would need created: the drill refuses
    // rather than pretend to have deployed it.
    await expect(d.redeploy((c) => ({ ...c, notifyEmails: ['oncall@example.com'] }))).rejects.toThrow(
      /the drill cannot deploy added AWS::SNS::Subscription/,
    );
    expect(d.resolved).toBe(before.resolved);
    expect(d.evaluator).toBe(before.evaluator);
    expect(d.deployedConfig).toBe(before.config);
    expect(d.nodes).toBe(before.nodes);
  }, 120_000);

  test('a denied call names the principal, the action and the resource', async () => {
    const d = started();
    const verifier = [...d.account.principals.values()].find((p) => /VerifyArchive/i.test(p.name));
    if (verifier === undefined) throw new Error('no verify-archive role session');
    const ssm = new SSMClient({
      endpoint: d.endpoint?.endpoint,
      region: REGION,
      credentials: verifier.credentials,
      maxAttempts: 1,
    });
    const attempt = ssm.send(
      new StartAutomationExecutionCommand({ DocumentName: `${PREFIX}-ExpandVolume`, Parameters: {} }),
    );
    await expect(attempt).rejects.toMatchObject({ name: 'AccessDeniedException' });
    await expect(attempt).rejects.toThrow(
      new RegExp(
        `${verifier.name}.*ssm:StartAutomationExecution.*automation-definition/${PREFIX}-ExpandVolume`,
      ),
    );
  });
});
