import re

import boto3

from stemedb_automation import as_text, command_invocation, last_json, text_fields

# Advice per section; {doc} and {prefix} are filled by _fill (one pass, values never read as templates).
ADVICE = {
    'EmergencyCleanup': 'Runbook §1 Emergency Cleanup: the disk is above the emergency level. Run {doc} now (old WAL is deleted only when a newer backup covers it); if the disk is still above 95% used afterwards, run {prefix}-ExpandVolume at once.',
    'WalCleanup': 'Runbook §2 WAL Cleanup: WAL segments use the most space. Run {doc} to set WAL retention, or {prefix}-ArchiveWal to archive old segments to S3 and delete only the verified ones.',
    'CompactDatabase': 'Runbook §3 Compaction: the database uses the most space. Run {doc} in a low-traffic period (compaction is I/O intensive); if it frees nothing, the growth is legitimate: run {prefix}-ExpandVolume.',
    'InodeCleanup': 'Runbook §4 Inode Exhaustion: the filesystem is out of inodes. Run {doc} (temporary and empty files, small WAL segments); if no inodes can be freed, the volume needs a new filesystem or a larger volume.',
    'ExpandVolume': 'Runbook §5 Volume Expansion: normal growth, no cleanup option applies. Run {doc}.',
}
SUBJECT_MAX = 100


def _fill(template, values):
    """`template` (this script's own text) with each {name} replaced by values[name] in one pass."""
    return re.sub(r'\{([a-z]+)\}', lambda m: values[m.group(1)], template)


def _one_line(value):
    """Host text as one line of printable ASCII: whitespace and control characters become one space, other characters '?'."""
    chars = (c if ' ' <= c <= '~' else ' ' if c.isspace() or ord(c) < 32 or ord(c) == 127 else '?' for c in as_text(value))
    return ' '.join(''.join(chars).split())


def _subject(*candidates):
    """The first candidate that is a valid SNS Subject as one line of printable ASCII (at most SUBJECT_MAX characters), else the last one cut."""
    subject = ''
    for text in candidates:
        subject = _one_line(text)
        if len(subject) <= SUBJECT_MAX:
            return subject
    return subject[:SUBJECT_MAX - 3] + '...'


def read_diagnosis(events, context):
    ssm = boto3.client('ssm')
    invocation = command_invocation(ssm, events['commandId'], events['instanceId'])
    report = last_json(invocation.get('StandardOutputContent'))
    if report is None or not report.get('suggestedSection'):
        raise Exception('the disk report has no JSON result line with suggestedSection (command status '
                        + as_text(invocation.get('Status')) + ')')
    prefix = events['prefix']
    # Host text is data: one line, at most 64 characters; a known section is one word and passes unchanged.
    section = _one_line(report['suggestedSection'])[:64]
    document = prefix + '-' + section
    if section in ADVICE:
        advice = _fill(ADVICE[section], {'doc': document, 'prefix': prefix})
    else:
        advice = 'Unknown section ' + section + '.'
    if report.get('recovered') is True:
        advice = ('The disk meets the runbook Validation levels (used below the recovered level, inodes free): '
                  'no remediation is needed now. Were it needed: ' + advice)
    figures = _fill('used {u}% of {size} bytes ({avail} available); inodes {ifree} free of {itotal} ({ipct}%); '
                    'WAL {wal} bytes in {segs} segments (oldest {age} days); DB {db} bytes; other {other} bytes', {
        'u': as_text(report.get('usedPercent')), 'size': as_text(report.get('sizeBytes')),
        'avail': as_text(report.get('availBytes')), 'ifree': as_text(report.get('inodesFree')),
        'itotal': as_text(report.get('inodesTotal')), 'ipct': as_text(report.get('inodesFreePercent')),
        'wal': as_text(report.get('walBytes')), 'segs': as_text(report.get('walSegments')),
        'age': as_text(report.get('oldestWalAgeDays')) or 'n/a', 'db': as_text(report.get('dbBytes')),
        'other': as_text(report.get('otherBytes'))})
    head = ('URGENT ' if section == 'EmergencyCleanup' else '') + prefix + '-DiagnoseDiskFull on ' + events['instanceId'] + ': run '
    return {
        'suggestedSection': section,
        'nextDocument': document,
        'subject': _subject(head + document, head + section),
        'recovered': as_text(report.get('recovered') is True),
        **text_fields(
            report,
            'usedPercent',
            'freePercent',
            'availBytes',
            'sizeBytes',
            'inodesFreePercent',
            'walBytes',
            'dbBytes',
            'otherBytes',
        ),
        'reasons': '; '.join(as_text(r) for r in report.get('reasons') or []),
        'warnings': '; '.join(as_text(w) for w in report.get('warnings') or []),
        'figures': figures,
        'advice': advice,
    }
