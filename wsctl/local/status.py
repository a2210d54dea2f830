"""The document `wsctl --local status` shows: a running emulator as its state file and its own
views (functions, connections) describe it."""

from ..registry import count_live


def document(target) -> dict:
    """`wsctl --local status`: where the emulator listens, what it runs (each function with its
    routes and environments), and how many connections it holds."""
    state = target.local_state
    status = {"target": "local", "url": state["ws_url"], "tlsUrl": state.get("wss_url"),
              "managementEndpoint": state["management_endpoint"],
              "tlsManagementEndpoint": state.get("tls_management_endpoint"),
              "lambdaEndpoint": state.get("lambda_endpoint"), "caBundle": state.get("ca_bundle"),
              "dynamodbEndpoint": state["dynamodb_endpoint"], "dynamodbBackend": state.get("backend"),
              "api": state.get("origin"), "table": state.get("table"), "tables": state.get("tables"),
              "stage": state["stage"], "auth": state["auth"] if target.bundled else None, "pid": state["pid"],
              "name": state.get("name"), "project": state.get("project")}
    functions = target.local_view("functions") if "lambda_endpoint" in state else []
    routes = state.get("routes", {})
    for function in functions:
        function["routes"] = [key for key, name in routes.items() if name == function["name"]]
        if state.get("authorizer") == function["name"]:
            function["routes"].insert(0, "(authorizer)")
    status["functions"] = functions
    status["notEmulated"] = state.get("not_emulated", [])
    status["liveConnections"] = count_live(target) if target.bundled else len(target.local_view("connections"))
    return status


__all__ = ["document"]
