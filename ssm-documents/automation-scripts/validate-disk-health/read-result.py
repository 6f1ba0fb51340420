import re

import boto3

from stemedb_automation import command_invocation, error_code, find_command_id, invocation_result

# Room for the failed check names in the Subject "<prefix>-ValidateDiskHealth on <instance>:
# UNHEALTHY (<names>)" with a 20-character prefix and a 19-character instance ID (SNS: at most 100).
FAILED_ROOM = 24


def _command_result(events):
    """(the command's JSON result or None, a note on how it ended)."""
    ssm = boto3.client('ssm')
    try:
        execution = ssm.get_automation_execution(AutomationExecutionId=events['executionId'])['AutomationExecution']
        command_id = find_command_id(ssm, execution, events['stepName'], events['instanceId'], events['documentName'])
        if not command_id:
            return None, 'step ' + events['stepName'] + ' sent no command (instance not managed or offline?)'
        invocation = command_invocation(ssm, command_id, events['instanceId'])
    except Exception as err:
        return None, 'cannot read the command result: ' + error_code(err)
    return invocation_result(invocation, 500)


def _failed_checks(names):
    """The host's failed check names as data safe in an SNS Subject: each reduced to letters, digits,
    '_' and '-' (at most 16), joined by ', ', at most FAILED_ROOM characters ('+N more' for the rest)."""
    if not isinstance(names, list):
        names = [] if names is None or names == '' else [names]
    words = [re.sub(r'[^A-Za-z0-9_-]', '', str(n))[:16] or '?' for n in names]
    shown = []
    for i, word in enumerate(words):
        rest = len(words) - i - 1
        candidate = ', '.join(shown + [word]) + (', +' + str(rest) + ' more' if rest else '')
        if len(candidate) > FAILED_ROOM:
            return ', '.join(shown + ['+' + str(len(words) - i) + ' more'])
        shown.append(word)
    return ', '.join(shown)


def read_result(events, context):
    report, note = _command_result(events)
    if report is None or not isinstance(report.get('checks'), list):
        return {'healthy': 'unknown', 'failed': '', 'summary': '', 'note': note}
    lines = []
    for check in report['checks']:
        mark = 'OK  ' if check.get('ok') is True else 'FAIL'
        lines.append(mark + ' ' + str(check.get('name')) + ': ' + str(check.get('detail')))
    return {
        'healthy': 'true' if report.get('healthy') is True else 'false',
        'failed': _failed_checks(report.get('failed')),
        'summary': '\n'.join(lines),
        'note': note,
    }
