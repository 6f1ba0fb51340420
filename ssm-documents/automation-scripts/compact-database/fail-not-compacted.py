def fail(events, context):
    raise Exception('not compacted: ' + events['status'] + ': ' + events['reason'])
