"""wsctl: build, deploy, operate and locally emulate API Gateway WebSocket APIs."""

__version__ = "0.1.0"
