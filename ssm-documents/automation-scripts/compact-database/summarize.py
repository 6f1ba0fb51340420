import re

import boto3

from stemedb_automation import as_text, command_result, text_fields


def _next(prefix, status, compaction, report):
    """(document to run next or '', advice) after the compaction, following the runbook."""
    section = as_text((report or {}).get('suggestedSection'))
    recovered = (report or {}).get('recovered') is True
    if status == 'compacted':
        if compaction.get('nextSection') == 'ExpandVolume':
            return prefix + '-ExpandVolume', ('The compaction freed no space: the database growth is legitimate '
                                              '(runbook §3, If failed). Run ' + prefix + '-ExpandVolume.')
        if recovered:
            return prefix + '-ValidateDiskHealth', 'The disk now meets the Validation levels. Confirm with ' + prefix + '-ValidateDiskHealth.'
        if section == 'CompactDatabase':
            return prefix + '-ExpandVolume', ('The database still uses the most space after the compaction: the '
                                              'growth is legitimate. Run ' + prefix + '-ExpandVolume.')
        if section:
            return prefix + '-' + section, 'Still short of space; the diagnosis now points to ' + prefix + '-' + section + '.'
        return prefix + '-DiagnoseDiskFull', 'The disk report after the compaction is missing. Run ' + prefix + '-DiagnoseDiskFull.'
    if status == 'dry-run':
        return prefix + '-CompactDatabase', 'Dry run: nothing was compacted. Run ' + prefix + '-CompactDatabase with DryRun=false to compact.'
    if status == 'refused':
        target = 'ExpandVolume' if section in ('', 'CompactDatabase') else section
        return prefix + '-' + target, ('Compaction needs free space first. The diagnosis points to '
                                       + prefix + '-' + target + '; run it, then compact again if still needed.')
    if status == 'timeout':
        return '', ('The compaction did not finish in time; the server may still be compacting. Watch '
                    'stemedb_compaction_progress on /metrics, then run ' + prefix + '-ValidateDiskHealth.')
    return '', 'See the output of step Compact; the runbook §3 steps can be run by hand.'


def _result(ssm, execution, events, step, document):
    return command_result(ssm, execution, events[step], events['instanceId'], events[document],
                          labelled=False, hint=' (instance not managed or offline?)', stderr_chars=500)


def summarize(events, context):
    ssm = boto3.client('ssm')
    prefix = events['prefix']
    execution = ssm.get_automation_execution(AutomationExecutionId=events['executionId'])['AutomationExecution']
    compaction, compaction_note = _result(ssm, execution, events, 'compactStep', 'compactDocument')
    report, report_note = _result(ssm, execution, events, 'reportStep', 'reportDocument')
    compaction = compaction or {}
    # The host's status word is data: it reaches the SNS Subject, so anything but a short
    # lower-case word (compacted, dry-run, refused, failed, timeout) reads as unknown.
    status = as_text(compaction.get('status'))
    if not re.fullmatch(r'[a-z][a-z-]{0,23}', status):
        status = 'unknown'
    next_document, advice = _next(prefix, status, compaction, report)
    return {
        'status': status,
        'reason': as_text(compaction.get('reason')) or compaction_note,
        **text_fields(
            compaction,
            'dbBytesBefore',
            'dbBytesAfter',
            'dbBytesFreed',
            'availBytesBefore',
            'availBytesAfter',
            'fsBytesFreed',
            'usedPercentBefore',
        ),
        'usedPercentAfter': as_text((report or {}).get('usedPercent')) or as_text(compaction.get('usedPercentAfter')),
        'durationSeconds': as_text(compaction.get('durationSeconds')),
        'recovered': as_text((report or {}).get('recovered')),
        'suggestedSection': as_text((report or {}).get('suggestedSection')),
        'nextDocument': next_document,
        'advice': advice,
        'note': compaction_note + '; disk report: ' + report_note,
    }
