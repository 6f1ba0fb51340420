import boto3

from stemedb_automation import as_text, child_outcome, command_result, dig, safe_percent, text_fields


def _human(n):
    try:
        value = float(n)
    except (TypeError, ValueError):
        return '?'
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if abs(value) < 1024:
            return ('%.0f ' if unit == 'B' else '%.1f ') % value + unit
        value /= 1024
    return '%.1f TiB' % value


def _step_line(label, step):
    if not isinstance(step, dict):
        return label + ': no result'
    line = label + ': ' + as_text(step.get('status')) + ', ' + as_text(step.get('deleted')) + ' deleted (' + _human(step.get('bytesFreed')) + ')'
    if step.get('keptCount'):
        line += ', ' + as_text(step.get('keptCount')) + ' kept'
    return line


def summarize(events, context):
    ssm = boto3.client('ssm')
    instance_id = events['instanceId']
    dry_run = events['dryRun'] == 'true'
    execution = ssm.get_automation_execution(AutomationExecutionId=events['executionId'])['AutomationExecution']
    start, _ = command_result(ssm, execution, 'DiskReportBefore', instance_id, events['reportDocument'])
    cleanup, cleanup_note = command_result(ssm, execution, 'HostCleanup', instance_id, events['cleanupDocument'])
    if dry_run:
        health, health_note = None, 'Validate: skipped in a dry run (it writes a test record)'
    else:
        health, health_note = command_result(ssm, execution, 'Validate', instance_id, events['validateDocument'])
    report, report_note = command_result(ssm, execution, 'DiskReportAfter', instance_id, events['reportDocument'])
    archive_status, archive_message = child_outcome(execution, 'ArchiveWal')

    used_before = dig(start, 'usedPercent')
    if used_before is None:
        used_before = dig(cleanup, 'before', 'usedPercent')
    used_after = dig(report, 'usedPercent')
    if used_after is None:
        used_after = dig(cleanup, 'after', 'usedPercent')
    used_before, used_after = safe_percent(used_before), safe_percent(used_after)
    try:
        escalate = 'true' if float(used_after) > float(events['escalateUsedPercent']) else 'false'
    except (TypeError, ValueError):
        escalate = 'unknown'

    prefix = events['prefix']
    if escalate == 'true':
        advice = ('Still above ' + events['escalateUsedPercent'] + '% used after the cleanup: runbook §1 "If failed" '
                  'says proceed to §5 Volume Expansion immediately (' + prefix + '-ExpandVolume).')
    elif escalate == 'false':
        advice = ('At or below ' + events['escalateUsedPercent'] + '% used. Find the cause: run '
                  + prefix + '-DiagnoseDiskFull, then ' + prefix + '-ValidateDiskHealth once below the Validation levels.')
    else:
        advice = ('The disk usage after the cleanup is unknown (no disk report and no cleanup result). Check the node '
                  'by hand (df -h ' + events['mountPoint'] + ') and run ' + prefix + '-ExpandVolume if it is still above '
                  + events['escalateUsedPercent'] + '% used.')

    steps = dig(cleanup, 'steps') or {}
    service = dig(cleanup, 'service') or {}
    lines = [
        'WAL (archived to S3, verified, then deleted; ' + prefix + '-ArchiveWal): ' + archive_status
        + ((': ' + archive_message) if archive_message else ''),
        _step_line('Old backups in ' + as_text(dig(steps, 'backups', 'dir')), steps.get('backups')),
        'Journal (' + as_text(dig(steps, 'journal', 'command')) + '): ' + as_text(dig(steps, 'journal', 'status'))
        + ', ' + _human(dig(steps, 'journal', 'bytesFreed')) + ' freed',
        _step_line('Core dumps in ' + as_text(dig(steps, 'coreDumps', 'dir')), steps.get('coreDumps')),
        'Service ' + as_text(service.get('name')) + ': ' + as_text(service.get('action')) + ', healthy: ' + as_text(service.get('healthy')),
    ]
    for problem in dig(cleanup, 'problems') or []:
        lines.append('Problem: ' + as_text(problem))
    if health is not None:
        failed = ', '.join(as_text(name) for name in health.get('failed') or [])
        lines.append('Validation: healthy ' + as_text(health.get('healthy')) + (', failed checks: ' + failed if failed else ''))
    return {
        'cleanupStatus': as_text(dig(cleanup, 'status')) or 'unknown',
        **text_fields(cleanup, 'bytesFreed', 'availBytesFreed'),
        'usedPercentBefore': used_before,
        'usedPercentAfter': used_after,
        'archiveWal': archive_status,
        'healthy': as_text(dig(health, 'healthy')) or 'unknown',
        'escalate': escalate,
        'summary': '\n'.join(lines),
        'advice': advice,
        'note': '; '.join([cleanup_note, health_note, report_note]),
    }
