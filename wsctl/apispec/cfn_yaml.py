"""Load a CloudFormation/SAM template (YAML with short-form tags, or JSON) into plain dicts and lists.

Short forms become CloudFormation's long forms: `!Ref x` -> {"Ref": x}, `!Condition c` ->
{"Condition": c}, `!GetAtt a.b` -> {"Fn::GetAtt": ["a", "b"]} (split on the first dot),
any other `!Name v` -> {"Fn::Name": v}. YAML dates stay strings, as in SAM CLI.

Why PyYAML with our own loader rather than cfn-flip (`cfn_tools.load_yaml`): cfn-flip's last
release is 1.3.0 (2021) and it pulls in Click and six; it loses tags nested in `!GetAtt [a, !Ref b]`
(it takes the raw node values) and turns `2010-09-09` into a datetime.date. A private
`yaml.SafeLoader` subclass is ~60 lines, keeps nested tags, keeps dates as strings, rejects
duplicate keys, and never touches the global SafeLoader that other code in the process uses.
"""

import json

import yaml

from ..errors import UsageError

_BARE = ("Ref", "Condition")  # the two tags whose long form has no "Fn::" prefix


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's tags; registered on this class only."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, "duplicate key %r" % key_node.value, key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _tag(loader, suffix, node):
    name = suffix if suffix in _BARE else "Fn::" + suffix
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if name == "Fn::GetAtt" and isinstance(value, str):
        resource, dot, attribute = value.partition(".")
        if not (resource and dot and attribute):
            raise yaml.constructor.ConstructorError(
                None, None, "!GetAtt %r needs the form Resource.Attribute" % value, node.start_mark)
        value = [resource, attribute]
    return {name: value}


def _timestamp_as_string(loader, node):
    return loader.construct_scalar(node)


_CfnLoader.add_multi_constructor("!", _tag)
_CfnLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_string)


def load(text: str, name: str):
    """Parse a template's text; `name` (the file) prefixes any error, which is one line."""
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError as error:
            line = getattr(error, "lineno", None)
            where = "line %d: " % line if line else ""
            raise UsageError("%s: %sbad JSON: %s" % (name, where, getattr(error, "msg", error))) from None
    try:
        return yaml.load(text, Loader=_CfnLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = "line %d: " % (mark.line + 1) if mark else ""
        problem = " ".join(str(error.problem or error.context or "unreadable").split())
        raise UsageError("%s: %sbad YAML: %s" % (name, where, problem)) from None
    except yaml.YAMLError as error:
        raise UsageError("%s: bad YAML: %s" % (name, " ".join(str(error).split()))) from None
