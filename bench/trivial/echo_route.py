"""An echo through the route response, for bench/autobahn.py: every frame goes to $default
(a two-way route, bench/trivial/autobahn-route.json) and the handler returns its body, which
API Gateway sends back to the sender. $connect and $disconnect just answer 200."""


def handler(event, context):
    if event["requestContext"]["routeKey"] in ("$connect", "$disconnect"):
        return {"statusCode": 200}
    return {"statusCode": 200, "body": event.get("body") or ""}
