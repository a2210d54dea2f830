"""A trivial function for bench/lambda_environments.py (Python): it does nothing but read the
system-wide monotonic clock (CLOCK_MONOTONIC, the clock the benchmark's client reads too) and
return it, so a round trip can be split into "to the handler" and "back from the handler".

Invoked through Lambda's Invoke API it returns {"statusCode": 200, "body": "<ns>"}; on a
two-way WebSocket route API Gateway sends that body back to the sender as a frame."""

import time


def handler(event, context):
    return {"statusCode": 200, "body": str(time.clock_gettime_ns(time.CLOCK_MONOTONIC))}
