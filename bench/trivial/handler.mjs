// The trivial handler for bench/vs_serverless_offline.py, Node version (an ES module exporting
// `handler`): the same routes as handler.py, posting back through @connections with the AWS SDK
// v3 management client. It runs in wsctl's Node execution environments (`--source bench/trivial
// --handler handler.handler --runtime nodejs20.x`, the SDK from the copy wsctl installs) and in
// serverless-offline's process (--useInProcess, the SDK from bench/.scratch/sls/node_modules).
// The endpoint: ECHO_MANAGEMENT_ENDPOINT when set (serverless-offline), else the SDK's own
// AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI, which wsctl local up gives every function.
import { ApiGatewayManagementApiClient, PostToConnectionCommand } from "@aws-sdk/client-apigatewaymanagementapi"

let client = null

function management() {
  if (client === null) {
    client = new ApiGatewayManagementApiClient({
      region: "us-east-1",
      endpoint: process.env.ECHO_MANAGEMENT_ENDPOINT,
    })
  }
  return client
}

export async function handler(event) {
  const { routeKey, connectionId } = event.requestContext
  if (routeKey === "echo") {
    await management().send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: event.body ?? "" }))
  } else if (routeKey === "$default") {
    await management().send(new PostToConnectionCommand({
      ConnectionId: connectionId, Data: JSON.stringify({ connectionId }),
    }))
  }
  return { statusCode: 200 }
}
