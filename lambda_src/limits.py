"""The AWS limits and defaults the deployed handler needs itself, each defined once.

The handler is deployed alone and cannot import wsctl, so these live here;
wsctl/limits.py re-exports them beside the rest of API Gateway's and Lambda's.
"""

MAX_CONNECTION_S = 2 * 60 * 60  # API Gateway closes a WebSocket connection after 2 hours at most
MAX_MESSAGE_BYTES = 128 * 1024  # API Gateway: one message either way, PostToConnection's too (botocore does not check)
DEFAULT_TTL_SECONDS = MAX_CONNECTION_S + 300  # a registry entry outlives the longest connection by 5 minutes
