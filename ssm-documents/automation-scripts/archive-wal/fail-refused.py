def fail(events, context):
    raise Exception('verification refused, nothing deleted: ' + events['reason'])
