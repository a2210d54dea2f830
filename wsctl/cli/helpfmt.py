"""Help as people read it: placeholders in words, choices listed, summaries whole, and the
global options in every command's help.

Typer prints a parameter's Python type (`<str>`, `<list[str]>`, `<int range>`) and click cuts
each command's summary to fit 80 columns. `polish(root)` walks the command tree once, before the
first parse, and gives every parameter a placeholder that says what to type, every command a
"Global options" section (they work anywhere on the line), and every group whole summaries.
"""

# By parameter name: what to type. A choice is its values joined by |.
PLACEHOLDERS = {
    "profile": "PROFILE", "region": "REGION", "endpoint_url": "URL", "stack": "NAME", "stage": "NAME",
    "name": "NAME", "output": "text|json|jsonl", "auth": "jwt|none", "transport": "lean|boto3",
    "authorizer": "MODULE.FUNCTION", "handler": "MODULE.FUNCTION", "concurrency": "N", "connect_timeout": "SECONDS",
    "dynamodb_endpoint": "URL", "env_file": "FILE", "fault": "KIND=SHARE", "fault_seed": "N", "host": "ADDRESS",
    "identity_source": "SOURCE", "idle_timeout": "SECONDS", "integration_timeout": "SECONDS",
    "log_retention_days": "DAYS", "max_duration": "SECONDS", "max_environments": "N", "origin": "ORIGIN",
    "parameter_overrides": "KEY=VALUE", "ping_interval": "SECONDS", "routes": "FILE", "runtime": "RUNTIME",
    "segments": "N", "source": "DIR", "subprotocol": "PROTOCOL", "ttl": "DURATION", "ttl_seconds": "SECONDS",
    "header": "'NAME: VALUE'", "connection": "ID", "env": "KEY=VALUE", "event": "FILE", "file": "FILE",
    "count": "N", "limit": "N", "port": "PORT", "room": "ROOM", "send": "TEXT", "template": "FILE",
    "token": "TOKEN", "user": "USER", "wait": "SECONDS", "connection_id": "ID", "function": "FUNCTION",
    "message": "MESSAGE", "url": "URL", "out": "FILE",
}
BY_TYPE = {int: "N", float: "NUMBER", str: "TEXT"}
HIDDEN_GLOBALS = {"help", "version", "install_completion", "show_completion"}


def placeholder(param) -> str:
    """What to type for a parameter, in words."""
    if "--out" in getattr(param, "opts", ()):
        return "FILE"
    if param.name in PLACEHOLDERS:
        return PLACEHOLDERS[param.name]
    descriptor = getattr(param, "type_descriptor", None)
    choices = getattr(descriptor, "choices", None) if getattr(descriptor, "is_choice", False) else None
    if choices:
        return "|".join(str(getattr(c, "value", c)) for c in choices)
    annotation = getattr(descriptor, "annotation", str)
    for kind, word in BY_TYPE.items():
        if annotation is kind or str(annotation) == "list[%s]" % kind.__name__:
            return word
    return "VALUE"


def _no_type(self, ctx):
    """An argument shows its placeholder alone (Typer appends the Python type)."""
    return None


def _with_globals(self, ctx, formatter):
    """Every command but the root: its own options, then the root's (global) ones."""
    type(self).format_options(self, ctx, formatter)
    root = ctx.find_root()
    if root is ctx:
        return
    records = [param.get_help_record(root) for param in root.command.get_params(root)
               if param.name not in HIDDEN_GLOBALS]
    records = [record for record in records if record]
    if records:
        with formatter.section("Global options (anywhere on the line)"):
            formatter.write_dl(records)


def _whole_summaries(self, ctx, formatter):
    """A group lists its commands with their whole first sentence, wrapped, never cut with '...'."""
    rows = []
    for name in self.list_commands(ctx):
        command = self.get_command(ctx, name)
        if command is not None and not command.hidden:
            rows.append((name, command.get_short_help_str(limit=10_000)))
    if rows:
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def polish(command, root: bool = True) -> None:
    """Give the tree's parameters placeholders and its commands the formatting above (the
    methods are set on the objects Typer built, once)."""
    from types import MethodType

    if getattr(command, "_wsctl_polished", False):
        return
    command._wsctl_polished = True
    for param in command.params:
        takes_value = param.param_type_name == "argument" or not (getattr(param, "is_flag", False)
                                                                 or getattr(param, "count", False))
        if takes_value and param.metavar is None:
            param.metavar = placeholder(param)
        if param.param_type_name == "argument":
            param.display_type_rich = MethodType(_no_type, param)
    if not root:
        command.format_options = MethodType(_with_globals, command)
    if hasattr(command, "commands"):
        command.format_commands = MethodType(_whole_summaries, command)
        for sub in command.commands.values():
            polish(sub, root=False)


__all__ = ["polish", "placeholder"]
