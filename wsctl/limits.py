"""API Gateway's and Lambda's documented limits, and wsctl's own defaults: one home for each.

Code that needs one of these imports it from here. The deployed handler
(lambda_src) cannot import wsctl, so the facts it needs itself are defined in
lambda_src/limits.py and re-exported below, never restated.
"""

from lambda_src import limits as _handler

# -- API Gateway, WebSocket APIs -------------------------------------------------------------
MAX_FRAME_BYTES = 32 * 1024  # one frame; a longer one closes the connection with 1009
MAX_MESSAGE_BYTES = _handler.MAX_MESSAGE_BYTES  # one message either way, and PostToConnection's Data: 128 KB
IDLE_TIMEOUT_S = 10 * 60  # a connection without a data frame for 10 minutes is closed
MAX_CONNECTION_S = _handler.MAX_CONNECTION_S  # a connection is closed after 2 hours
ACCOUNT_RATE = 10_000  # requests a second over every API of an account in a region, shared (can be raised)
ACCOUNT_BURST = 5_000
INTEGRATION_TIMEOUT_MS = 29_000  # an integration answers within 50 ms to 29 s (29 s unless set lower)
MIN_INTEGRATION_TIMEOUT_MS = 50
INTEGRATION_TIMEOUT_S = INTEGRATION_TIMEOUT_MS // 1000
MAX_URL_BYTES = 4096  # a WebSocket URL
MAX_HANDSHAKE_HEADER_BYTES = 10 * 1024  # the handshake's request line and headers together

# -- Lambda ------------------------------------------------------------------------------------
DEFAULT_TIMEOUT_S = 3.0  # a function's timeout when it names none (CloudFormation's and SAM's too)
DEFAULT_MEMORY_MB = 128  # a function's memory when it names none (CloudFormation's and SAM's too)
MAX_TIMEOUT_S = 900  # a function runs 15 minutes at most
INIT_TIMEOUT_S = 10.0  # the init phase: the runtime's start and the function's module code
MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024  # a RequestResponse invocation's request, and its response
MAX_ASYNC_PAYLOAD_BYTES = 1024 * 1024  # an Event invocation's request
MAX_RUNTIME_RESPONSE_BYTES = MAX_SYNC_PAYLOAD_BYTES + 100  # a Runtime API response (RAPID's MaxPayloadSize)
LOG_TAIL_BYTES = 4096  # Invoke with LogType Tail returns the last 4 KB of the log

# -- CloudWatch Logs ---------------------------------------------------------------------------
# The retention periods PutRetentionPolicy accepts, in days (its retentionInDays documentation).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)

# -- wsctl's own API (lambda_src) as deployed, and as the emulator runs it ----------------------
HANDLER = "lambda_src.app.handler"  # Lambda's handler setting: module and function in the bundle
HANDLER_RUNTIME = "python3.12"  # the runtime the bundle is built for (it brings boto3)
HANDLER_ARCHITECTURE = "arm64"  # the bundle is pure Python (lambda_src and PyJWT): any architecture runs it
HANDLER_MEMORY_MB = 256  # wsctl's choice, twice Lambda's default (CPU comes in proportion to memory)
HANDLER_TIMEOUT_S = INTEGRATION_TIMEOUT_S  # a route's answer is of no use once API Gateway stops waiting
DEFAULT_TTL_SECONDS = _handler.DEFAULT_TTL_SECONDS  # a registry entry's lifetime: 2 hours and 5 minutes
DEFAULT_LOG_RETENTION_DAYS = 14  # the function's CloudWatch log group
# The stage's default route throttling (`deploy --throttle`): a tenth of the account's rate, so that one
# stage (or one client flooding it) cannot take every API's share; AWS's own ratio of burst to rate.
STAGE_RATE = ACCOUNT_RATE // 10
STAGE_BURST = STAGE_RATE * ACCOUNT_BURST // ACCOUNT_RATE
STAGE_THROTTLE = (float(STAGE_RATE), STAGE_BURST)  # (rate, burst) the stage gets unless --throttle says
# API Gateway answers 401 without invoking the authorizer when any identity source is missing, and
# the token may come in the query string or the Authorization header: Host is in every handshake.
HOST_IDENTITY_SOURCES = ("route.request.header.Host",)

# -- wsctl's operating defaults ------------------------------------------------------------------
# Requests in flight. Far from the region (20-80 ms), a broadcast's time is N x RTT / in flight:
# 256 keeps a laptop's fan-out near its CPU floor at 20 ms (64 would need four times as long).
DEFAULT_CONCURRENCY = 256

# -- the local emulator ------------------------------------------------------------------------
LOCAL_REGION = "us-east-1"  # the emulator's region, in its ARNs, events and functions' environment
LOCAL_ACCOUNT_ID = "123456789012"  # the emulator's account id (AWS's documentation example)
LOCAL_KEY = "local"  # the access key id, secret key and session token of the emulator's callers and functions
DEFAULT_MAX_ENVIRONMENTS = 10  # execution environments per function (concurrent invocations) unless it says
