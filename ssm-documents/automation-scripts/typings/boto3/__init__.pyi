# Type declarations for the one boto3 function the step scripts call. boto3 ships no types, and
# its typed stubs (boto3-stubs) are not on the npm registry or in Debian, so a client is Any here:
# pyright checks everything else, and test/permissions.test.ts checks every client call against
# botocore's service models (the operation exists) and the synthesized IAM policies.
from typing import Any

def client(service_name: str, *args: Any, **kwargs: Any) -> Any: ...
