import boto3

from stemedb_automation import as_float, as_text, command_result, dig


def check(events, context):
    """Whether inodes are still exhausted after the host cleanup: 'true', 'false' or 'unknown'."""
    ssm = boto3.client('ssm')
    execution = ssm.get_automation_execution(AutomationExecutionId=events['executionId'])['AutomationExecution']
    result, note = command_result(ssm, execution, 'InodeCleanup', events['instanceId'], events['cleanupDocument'])
    free = as_float(dig(result, 'after', 'inodesFreePercent'))
    if free is None:
        exhausted = 'unknown'
    else:
        exhausted = 'true' if free < float(events['recoveredInodesFreePercent']) else 'false'
    return {
        'exhausted': exhausted,
        'inodesFreePercent': as_text(dig(result, 'after', 'inodesFreePercent')),
        'note': note,
    }
