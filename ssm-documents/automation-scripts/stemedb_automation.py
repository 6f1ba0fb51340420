"""Helpers shared by the aws:executeScript steps of the StemeDB Automation documents.

A step script imports what it uses (`from stemedb_automation import error_code, last_json`); at
synth lib/automation-document.ts replaces that import with the definitions it names and the
helpers and modules those use, so each document carries only what its steps call (an
executeScript step is one script: it cannot import a module of ours at run time).

Layout the loader relies on: this docstring, then `import <module>` lines (standard library only:
the clients come from the caller), then top-level definitions (`def` or `NAME = ...`), each with
its comment lines just above it and nothing else at column 0 inside it.
"""
import datetime
import json
import re
import time


def error_code(err):
    """The AWS error code of a boto3 ClientError (response['Error']['Code']), else the exception's class name."""
    return getattr(err, 'response', {}).get('Error', {}).get('Code') or type(err).__name__


def command_invocation(ssm, command_id, instance_id):
    """GetCommandInvocation, asked up to 10 times 2 s apart while SSM does not know the invocation yet
    (eventual consistency right after the command ends); any other error is raised at once."""
    for _ in range(9):
        try:
            return ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        except Exception as err:
            if error_code(err) != 'InvocationDoesNotExist':
                raise
            time.sleep(2)
    return ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)


def last_json(text, numbers_as_text=True):
    """The JSON object on the last non-blank line of `text` (a host script's result), else None.
    Numbers with a fraction stay the text the host wrote (json's floats when not `numbers_as_text`)."""
    # Lines end at \n only: splitlines() also splits at U+2028, \x1c and more, which a JSON string may hold.
    for line in reversed((text or '').split('\n')):
        if line.strip():
            try:
                value = json.loads(line, parse_float=str if numbers_as_text else None)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def step_execution(execution, step_name):
    """The step `step_name` of a GetAutomationExecution result, or None when it has not run."""
    for step in execution.get('StepExecutions') or []:
        if step.get('StepName') == step_name:
            return step
    return None


def find_command_id(ssm, execution, step_name, instance_id, document):
    """The ID of the command that the aws:runCommand step `step_name` sent, '' when it sent none: its
    CommandId output, else (a failed step may record none) the newest command of `document` on the
    instance since the step started."""
    step = step_execution(execution, step_name)
    if step is None:
        return ''
    ids = (step.get('Outputs') or {}).get('CommandId') or []
    if ids and ids[0]:
        return ids[0]
    filters = [{'key': 'DocumentName', 'value': document}]
    started = step.get('ExecutionStartTime')
    if isinstance(started, datetime.datetime):
        since = started.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
        filters.append({'key': 'InvokedAfter', 'value': since})
    commands = ssm.list_commands(InstanceId=instance_id, Filters=filters).get('Commands') or []
    if commands:
        return max(commands, key=lambda c: str(c.get('RequestedDateTime'))).get('CommandId', '')
    return ''


def invocation_result(invocation, stderr_chars, label=''):
    """(the JSON result of a command invocation or None, a note on how it ended:
    '<label>command <Status>, exit code <N>', and when there is no JSON line, the last stderr line)."""
    note = label + 'command ' + str(invocation.get('Status')) + ', exit code ' + str(invocation.get('ResponseCode'))
    report = last_json(invocation.get('StandardOutputContent'))
    if report is None:
        errors = (invocation.get('StandardErrorContent') or '').strip().splitlines()
        note += ', no JSON result line' + (': ' + errors[-1][:stderr_chars] if errors else '')
    return report, note


def command_result(ssm, execution, step_name, instance_id, document, labelled=True, hint='', stderr_chars=300):
    """(the JSON result of the command the step `step_name` sent, or None; a note on how it ended). The note
    starts with the step name when `labelled`; `hint` follows 'sent no command'. Never raises for SSM."""
    try:
        command_id = find_command_id(ssm, execution, step_name, instance_id, document)
        if not command_id:
            return None, 'step ' + step_name + ' sent no command' + hint
        invocation = command_invocation(ssm, command_id, instance_id)
    except Exception as err:
        return None, 'cannot read the result of step ' + step_name + ': ' + error_code(err)
    return invocation_result(invocation, stderr_chars, step_name + ': ' if labelled else '')


def child_outcome(execution, step_name):
    """How a child automation step ended: 'Success', 'Failed', ... or 'not run', with its message."""
    step = step_execution(execution, step_name)
    if step is None:
        return 'not run', ''
    status = str(step.get('StepStatus') or 'unknown')
    child = ((step.get('Outputs') or {}).get('Status') or [''])[0]
    message = str(step.get('FailureMessage') or '')[:300]
    return status + (' (' + child + ')' if child and child != status else ''), message


def as_text(value):
    """A JSON value as output text: '' for null, 'true'/'false' for booleans, str() for the rest."""
    if value is None:
        return ''
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def dig(obj, *keys):
    """obj[k1][k2]..., None as soon as a level is missing or not an object."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def text_fields(obj, *keys):
    """{key: as_text(obj[key])} for each key, in order: same-named fields of a host result as output
    text, '' for a missing one (or all of them when obj is not an object)."""
    return {key: as_text(dig(obj, key)) for key in keys}

def as_float(value):
    """The number in `value`, or None when it is not one."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def safe_percent(value):
    """A percentage from the host, safe in an SNS Subject: up to 3 digits and 5 decimals (at most 9
    characters), '' when absent, 'unknown' when it is not a number. Host text is data, never a template."""
    text = as_text(value)
    if text == '':
        return ''
    m = re.fullmatch(r'([0-9]{1,3})(\.[0-9]+)?', text)
    return 'unknown' if m is None else m.group(1) + (m.group(2) or '')[:6]


def tag_map(resource):
    """The Tags of an EC2 resource as a dict."""
    return {t.get('Key'): t.get('Value', '') for t in resource.get('Tags') or []}
