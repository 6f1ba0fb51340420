import boto3

from stemedb_automation import as_float, as_text, child_outcome, command_result, dig, safe_percent, text_fields


def summarize(events, context):
    ssm = boto3.client('ssm')
    instance_id = events['instanceId']
    prefix = events['prefix']
    execution = ssm.get_automation_execution(AutomationExecutionId=events['executionId'])['AutomationExecution']
    cleanup, cleanup_note = command_result(ssm, execution, 'InodeCleanup', instance_id, events['cleanupDocument'])
    report, report_note = command_result(ssm, execution, 'DiskReportAfter', instance_id, events['reportDocument'])
    archive_status, archive_message = child_outcome(execution, 'ArchiveWal')
    before = safe_percent(dig(cleanup, 'before', 'inodesFreePercent'))
    after = dig(report, 'inodesFreePercent')
    if after is None:
        after = dig(cleanup, 'after', 'inodesFreePercent')
    after = safe_percent(after)
    level = float(events['recoveredInodesFreePercent'])
    free = as_float(after)
    if free is None:
        recovered = 'unknown'
        advice = ('The free inodes after the cleanup are unknown. Check by hand (df -i ' + events['mountPoint'] + ').')
    elif free > level:
        recovered = 'true'
        advice = 'More than ' + events['recoveredInodesFreePercent'] + '% of inodes free. Confirm with ' + prefix + '-ValidateDiskHealth.'
    else:
        recovered = 'false'
        advice = ('Inodes still exhausted. Runbook §4 "If failed": the inode ratio can only grow by recreating the '
                  'filesystem, so migrate to a new volume made with more inodes (' + prefix + '-AddDataVolume, §5B), '
                  'and look at the busiest directories below for what creates so many files.')
    lines = []
    for d in dig(cleanup, 'allowedDirs') or []:
        lines.append(as_text(dig(d, 'dir')) + ': ' + as_text(dig(d, 'status')) + ', ' + as_text(dig(d, 'deleted')) + ' deleted, '
                     + as_text(dig(d, 'skippedOpen')) + ' open and ' + as_text(dig(d, 'skippedRecent')) + ' recent kept')
    busiest = dig(cleanup, 'busiestDirs') or []
    if busiest:
        lines.append('Busiest directories: ' + ', '.join(
            as_text(dig(b, 'dir')) + ' (' + as_text(dig(b, 'entries')) + ')' for b in busiest[:5]))
    lines.append('WAL (small segments archived to S3, verified, then deleted; ' + prefix + '-ArchiveWal): ' + archive_status
                 + ((': ' + archive_message) if archive_message else ''))
    return {
        'cleanupStatus': as_text(dig(cleanup, 'status')) or 'unknown',
        **text_fields(cleanup, 'filesDeleted', 'inodesFreed'),
        'inodesFreePercentBefore': before,
        'inodesFreePercentAfter': after,
        'archiveWal': archive_status,
        'recovered': recovered,
        'summary': '\n'.join(lines),
        'advice': advice,
        'note': cleanup_note + '; ' + report_note,
    }
