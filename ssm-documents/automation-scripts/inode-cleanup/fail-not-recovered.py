def fail(events, context):
    raise Exception('inodes not recovered (' + (events['free'] or 'unknown') + '% free): ' + events['advice'])
