"""FailExecution, the last step of every document's failure tail: it ends the execution Failed after
NotifyFailure. lib/automation-document.ts (failureTailSteps) writes the document's name into
DOCUMENT at synth."""

DOCUMENT = ''


def fail(events, context):
    raise Exception(DOCUMENT + ' failed; see the first failed step of execution ' + events['execution'])
