// A trivial function for bench/lambda_environments.py (Node, ES module): it reads the
// system-wide monotonic clock (process.hrtime is CLOCK_MONOTONIC on Linux, the clock the
// benchmark's client reads too) and returns it, so a round trip can be split into "to the
// handler" and "back from the handler". No import: its cold start is the runtime's own.
export const handler = async () => ({ statusCode: 200, body: String(process.hrtime.bigint()) })
