import re

import boto3

from stemedb_automation import command_invocation, error_code, last_json, step_execution


def _host_result(events):
    """The MigrateDataVolume command's JSON result, or None, and a note on how it ended."""
    ssm = boto3.client('ssm')
    try:
        execution = ssm.get_automation_execution(AutomationExecutionId=events['executionId'])['AutomationExecution']
        step = step_execution(execution, 'Migrate')
        if step is None:
            return None, 'the host phases did not run (the attachment failed)'
        ids = (step.get('Outputs') or {}).get('CommandId') or []
        if not ids or not ids[0]:
            return None, 'step Migrate sent no command: ' + str(step.get('FailureMessage') or '')[:300]
        invocation = command_invocation(ssm, ids[0], events['instanceId'])
    except Exception as err:
        return None, 'cannot read the host result: ' + error_code(err)
    note = 'command ' + str(invocation.get('Status')) + ', exit code ' + str(invocation.get('ResponseCode'))
    return last_json(invocation.get('StandardOutputContent'), numbers_as_text=False), note


def mark_failed(events, context):
    result, note = _host_result(events)
    # Host output is data: the status goes into a tag value, so only a short word of [a-z-].
    status = str((result or {}).get('status') or 'unknown')
    status = status if re.fullmatch(r'[a-z][a-z-]{0,19}', status) else 'unknown'
    reason = str((result or {}).get('reason') or note)
    if events['volumeId']:
        value = re.sub(r'[^A-Za-z0-9 _.:/=+@-]', ' ', status + ': ' + reason)[:255]
        boto3.client('ec2').create_tags(Resources=[events['volumeId']], Tags=[
            {'Key': 'stemedb:managed', 'Value': 'migration-failed'},
            {'Key': 'stemedb:migration-result', 'Value': value},
        ])
    return {
        'status': status,
        'reason': reason[:1000],
        'rolledBack': str((result or {}).get('rolledBack', 'unknown')).lower(),
        'rollbackHealthy': str((result or {}).get('rollbackHealthy', 'unknown')).lower(),
        'note': note,
    }
