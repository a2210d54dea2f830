"""A CDK app's cloud assembly (`cdk.out`): which stack runs, and where its functions' code is.

`--template cdk.out` reads the assembly's `manifest.json` (and the nested assemblies that
Stages write, `assembly-*/manifest.json`): the only stack with a WebSocket API runs; with
several, they are listed and one is asked for. `--template cdk.out/Stack.template.json`
names one stack.

A synthesized function's `Code` points at S3 (the bootstrap bucket, key `<hash>.zip`). The
local copy is named by the resource's Metadata (`aws:asset:path` with `aws:asset:property:
Code`), which the CDK CLI asks the app to write; an assembly written by running the app
directly has no such metadata, and the stack's asset manifest (`<Stack>.assets.json`,
objectKey -> source.path) names it instead. As SAM CLI does, `Code` is replaced by that path
before the template is read; a zip asset is unpacked first (codezip). Everything else is the
CloudFormation reader's (template.py): CDK's generated logical ids and names, `CDKMetadata`,
IAM roles and permissions need nothing more. See reference formats-and-operators.md §1.
"""

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from . import cfn_yaml, codezip
from .model import ApiSpec
from .intrinsics import LAMBDA_FUNCTION, SAM_FUNCTION
from .template import read_document, read_text

MANIFEST = "manifest.json"
STACK = "aws:cloudformation:stack"
NESTED_ASSEMBLY = "cdk:cloud-assembly"
ASSET_MANIFEST = "cdk:asset-manifest"
CODE_PROPERTIES = {LAMBDA_FUNCTION: "Code", SAM_FUNCTION: "CodeUri"}


class ChooseStack(UsageError):
    """An assembly with several WebSocket stacks: the user picks one (`choices`: name -> template)."""

    def __init__(self, folder: Path, choices: dict):
        self.choices = choices
        listed = ", ".join("%s (--template %s)" % (name, path) for name, path in choices.items())
        super().__init__("%s holds %d stacks with a WebSocket API: %s; choose one" % (folder, len(choices), listed))


@dataclass(frozen=True)
class StackArtifact:
    name: str  # the display name the CDK CLI selects by (`Prod/Chat` for a stack in a Stage)
    stack_name: str  # CloudFormation's (AWS::StackName)
    template: Path
    asset_manifests: tuple[Path, ...]


def _json(path: Path) -> dict:
    document = cfn_yaml.load(read_text(path), str(path))
    if not isinstance(document, dict):
        raise UsageError("%s: not a JSON object" % path)
    return document


def artifacts(folder: Path) -> list[StackArtifact]:
    """Every stack of the assembly in `folder`, those of nested assemblies (Stages) included."""
    manifest = _json(folder / MANIFEST)
    entries = manifest.get("artifacts") or {}
    if not isinstance(entries, dict):
        raise UsageError("%s: artifacts must be a map" % (folder / MANIFEST))
    found = []
    for artifact_id, artifact in entries.items():
        if not isinstance(artifact, dict):
            continue
        properties = artifact.get("properties") or {}
        if artifact.get("type") == STACK and isinstance(properties.get("templateFile"), str):
            assets = [entries[d]["properties"]["file"] for d in artifact.get("dependencies") or []
                      if isinstance(entries.get(d), dict) and entries[d].get("type") == ASSET_MANIFEST
                      and isinstance((entries[d].get("properties") or {}).get("file"), str)]
            found.append(StackArtifact(str(artifact.get("displayName") or artifact_id),
                                       str(properties.get("stackName") or artifact.get("displayName") or
                                           artifact_id).replace("/", "-"),
                                       folder / properties["templateFile"], tuple(folder / a for a in assets)))
        elif artifact.get("type") == NESTED_ASSEMBLY and isinstance(properties.get("directoryName"), str):
            found += artifacts(folder / properties["directoryName"])
    return found


def has_websocket_api(document: dict) -> bool:
    for resource in (document.get("Resources") or {}).values():
        if not isinstance(resource, dict):
            continue
        kind = resource.get("Type")
        protocol = (resource.get("Properties") or {}).get("ProtocolType")
        if kind == "AWS::Serverless::WebSocketApi" or (kind == "AWS::ApiGatewayV2::Api" and protocol == "WEBSOCKET"):
            return True
    return False


def choose(folder: Path) -> StackArtifact:
    """The assembly's one stack with a WebSocket API (or its only stack, whose reading says what is missing)."""
    stacks = artifacts(folder)
    if not stacks:
        raise UsageError("%s: the cloud assembly has no stacks" % folder)
    websocket = [s for s in stacks if has_websocket_api(_json(s.template))]
    if len(websocket) == 1 or len(stacks) == 1:
        return (websocket or stacks)[0]
    if not websocket:
        raise UsageError("%s: none of its stacks (%s) has a WebSocket API (an AWS::ApiGatewayV2::Api with "
                         "ProtocolType WEBSOCKET)" % (folder, ", ".join(s.name for s in stacks)))
    raise ChooseStack(folder, {s.name: str(s.template) for s in websocket})


def artifact_for(template: Path) -> StackArtifact:
    """The stack a template file belongs to, from the manifest beside it; a template without one
    (copied out of its assembly) stands alone: its stack is named for the file."""
    folder = template.resolve().parent
    if (folder / MANIFEST).is_file():
        for stack in artifacts(folder):
            if stack.template.resolve() == template.resolve():
                return stack
    name = template.name.removesuffix(".json").removesuffix(".template")
    return StackArtifact(name, name, template, ())


def asset_index(manifests) -> dict:
    """objectKey -> the asset's local source (file assets of the stack's asset manifests)."""
    index = {}
    for manifest in manifests:
        if not manifest.is_file():
            continue
        for asset in (_json(manifest).get("files") or {}).values():
            source = (asset.get("source") or {}).get("path") if isinstance(asset, dict) else None
            if not isinstance(source, str):
                continue
            for destination in (asset.get("destinations") or {}).values():
                if isinstance(destination, dict) and isinstance(destination.get("objectKey"), str):
                    index[destination["objectKey"]] = manifest.parent / source
    return index


def localized(document: dict, name: str, base: Path, index: dict, cache: Path | None) -> dict:
    """The template with every function's S3 `Code` replaced by its local asset (a folder)."""
    resources = dict(document.get("Resources") or {})
    for logical_id, resource in resources.items():
        prop = CODE_PROPERTIES.get(resource.get("Type")) if isinstance(resource, dict) else None
        properties = resource.get("Properties") if prop else None
        if not isinstance(properties, dict):
            continue
        metadata = resource.get("Metadata") if isinstance(resource.get("Metadata"), dict) else {}
        code = properties.get(prop)
        source = None
        if metadata.get("aws:asset:property") == prop and isinstance(metadata.get("aws:asset:path"), str):
            source = base / metadata["aws:asset:path"]  # relative to the assembly, or absolute (no staging)
        elif isinstance(code, dict) and isinstance(code.get("S3Key"), str):
            source = index.get(code["S3Key"])
        if source is None:
            continue  # not an asset (inline, an image, a real bucket): the reader says what it is
        if source.is_file():
            if cache is None:
                raise UsageError("%s: %s.%s is a zip asset, and there is no folder to unpack it into"
                                 % (name, logical_id, prop))
            source = codezip.unpacked(source, cache, "%s: %s.%s" % (name, logical_id, prop))
        resources[logical_id] = dict(resource, Properties=dict(properties, **{prop: str(source)}))
    return dict(document, Resources=resources)


def is_cdk_template(path: Path, document: dict) -> bool:
    """A template the CDK synthesized: one of an assembly's, or one whose resources carry CDK metadata."""
    if path.name.endswith(".template.json") and (path.resolve().parent / MANIFEST).is_file():
        return True
    return any(isinstance(r, dict) and (r.get("Type") == "AWS::CDK::Metadata" or "aws:asset:path" in
                                        (r.get("Metadata") or {}) or "aws:cdk:path" in (r.get("Metadata") or {}))
               for r in (document.get("Resources") or {}).values())


def load_stack(path: Path, parameter_overrides: dict, *, api_id: str, cache: Path | None) -> ApiSpec:
    """`--template cdk.out` (the folder) or `--template cdk.out/Stack.template.json`."""
    stack = choose(path) if path.is_dir() else artifact_for(path)
    name = str(stack.template)
    document = _json(stack.template)
    if not isinstance(document.get("Resources"), dict):
        raise UsageError("%s: not a CloudFormation template (no Resources map)" % name)
    document = localized(document, name, stack.template.resolve().parent, asset_index(stack.asset_manifests), cache)
    return read_document(document, name, stack.template.resolve().parent, parameter_overrides,
                         stack_name=stack.stack_name, api_id=api_id,
                         origin="CDK stack %s (%s)" % (stack.name, name))
