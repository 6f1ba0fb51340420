def fail(events, context):
    message = 'volume not expanded: ' + events['status'] + ': ' + events['reason']
    if events.get('retryAfter'):
        message += ' (retry after ' + events['retryAfter'] + ')'
    raise Exception(message)
