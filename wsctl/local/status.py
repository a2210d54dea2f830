"""The document `wsctl --local status` shows: a running emulator as its state file and its own
views (functions, connections) describe it."""


def document(target) -> dict:
    """`wsctl --local status`: where the emulator listens, what it runs (each function with its
    routes and environments), and how many connections it holds."""
    state = target.state
    status = {"target": "local", "url": state.ws_url, "tlsUrl": state.wss_url,
              "managementEndpoint": state.management_endpoint,
              "tlsManagementEndpoint": state.tls_management_endpoint,
              "lambdaEndpoint": state.lambda_endpoint, "caBundle": state.ca_bundle,
              "dynamodbEndpoint": state.dynamodb_endpoint, "dynamodbBackend": state.backend,
              "api": state.origin, "table": state.table, "tables": list(state.tables),
              "stage": state.stage, "auth": state.auth if state.bundled else None, "pid": state.pid,
              "name": state.name, "project": state.project}
    functions = target.view("functions")
    for function in functions:
        function["routes"] = [key for key, name in state.routes.items() if name == function["name"]]
        if state.authorizer == function["name"]:
            function["routes"].insert(0, "(authorizer)")
    status["functions"] = functions
    status["notEmulated"] = list(state.not_emulated)
    status["inFlight"] = target.view("gateway")
    gateway = len(target.gateway_connections())
    status["liveConnections"] = gateway
    if target.has_registry():
        status["registry"] = target.registry.describe()
        status["registryEntries"] = target.reader().count_live()
        if state.bundled:
            status["liveConnections"] = status["registryEntries"]
    return status


__all__ = ["document"]
