def fail(events, context):
    raise Exception('disk not healthy: failed checks: ' + events['failed'])
