"""Read terraform/ offline: parse HCL with python-hcl2, evaluate the small expression subset
the templatefile() calls use, and render the .tftpl templates like Terraform would.

Templates in terraform/ are restricted (and checked) to plain ``${identifier}`` placeholders,
so rendering them needs no Terraform: every placeholder is replaced by the value the
templatefile() call passes, which is resolved through the module's variables, the values the
environment root (terraform/envs/prod) passes to that module, and the root's own locals and
variable defaults. Values known only after apply (other modules' outputs, resource
attributes, variables without defaults) become ``placeholder_for(expr)`` strings.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

OPTIONS = SerializationOptions(
    with_comments=False,
    explicit_blocks=False,
    strip_string_quotes=True,
    preserve_heredocs=False,
)

PLACEHOLDER_RE = re.compile(r"\$\{([^}]*)\}")
IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
TEMPLATEFILE_RE = re.compile(r'^\$\{templatefile\("\$\{path\.module\}/(?P<file>[^"]+)",\s*\{(?P<body>.*)\}\)\}$', re.S)


def placeholder_for(expr: str) -> str:
    """A stand-in for a value Terraform only knows at apply time."""
    return "unknown-" + re.sub(r"[^a-z0-9]+", "-", expr.lower()).strip("-")


def parse_file(path: Path) -> dict[str, Any]:
    with path.open() as fh:
        return hcl2.load(fh, serialization_options=OPTIONS)


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("${") and value.endswith("}")


def split_top_level(body: str, sep: str = ",") -> list[str]:
    """Split on *sep* outside brackets and string literals."""
    parts: list[str] = []
    depth = 0
    in_string = False
    current: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if in_string:
            current.append(ch)
            if ch == "\\" and i + 1 < len(body):
                current.append(body[i + 1])
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            current.append(ch)
        elif ch in "([{":
            depth += 1
            current.append(ch)
        elif ch in ")]}":
            depth -= 1
            current.append(ch)
        elif ch == sep and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


@dataclass
class Module:
    path: Path
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    def blocks(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """(file name, block) for every top-level block of *kind* (resource, variable, ...)."""
        out = []
        for name, parsed in self.files.items():
            for block in parsed.get(kind, []):
                out.append((name, block))
        return out

    @cached_property
    def variables(self) -> dict[str, dict[str, Any]]:
        return {k: v for _, block in self.blocks("variable") for k, v in block.items()}

    @cached_property
    def locals(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for _, block in self.blocks("locals"):
            out.update(block)
        return out

    @cached_property
    def outputs(self) -> dict[str, dict[str, Any]]:
        return {k: v for _, block in self.blocks("output") for k, v in block.items()}

    @cached_property
    def module_calls(self) -> dict[str, dict[str, Any]]:
        return {k: v for _, block in self.blocks("module") for k, v in block.items()}

    def resources(self, rtype: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        """(type, name, body) of every resource, optionally of one type."""
        out = []
        for _, block in self.blocks("resource"):
            for t, named in block.items():
                if rtype is None or t == rtype:
                    for name, body in named.items():
                        out.append((t, name, body))
        return out

    def resource(self, rtype: str, name: str) -> dict[str, Any]:
        for _t, n, body in self.resources(rtype):
            if n == name:
                return body
        raise KeyError(f"{rtype}.{name} not in {self.path}")

    def data(self, dtype: str, name: str) -> dict[str, Any]:
        for _, block in self.blocks("data"):
            if dtype in block and name in block[dtype]:
                return block[dtype][name]
        raise KeyError(f"data.{dtype}.{name} not in {self.path}")

    def terraform_blocks(self) -> list[dict[str, Any]]:
        return [block for _, block in self.blocks("terraform")]


class Terraform:
    """terraform/ as parsed HCL: modules/<name> and envs/<name>."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _load(self, path: Path) -> Module:
        module = Module(path)
        for tf_file in sorted(path.glob("*.tf")):
            module.files[tf_file.name] = parse_file(tf_file)
        assert module.files, f"no .tf files in {path}"
        return module

    @cached_property
    def modules(self) -> dict[str, Module]:
        return {p.name: self._load(p) for p in sorted((self.root / "modules").iterdir()) if p.is_dir()}

    @cached_property
    def envs(self) -> dict[str, Module]:
        return {p.name: self._load(p) for p in sorted((self.root / "envs").iterdir()) if p.is_dir()}

    @property
    def prod(self) -> Module:
        return self.envs["prod"]

    def all_modules(self) -> dict[str, Module]:
        out = {f"modules/{k}": v for k, v in self.modules.items()}
        out.update({f"envs/{k}": v for k, v in self.envs.items()})
        return out

    # --- evaluation ----------------------------------------------------------------------------

    def module_call(self, env: Module, module_name: str) -> dict[str, Any]:
        """The arguments *env* passes to modules/<module_name>."""
        for call in env.module_calls.values():
            if call.get("source") == f"../../modules/{module_name}":
                return call
        raise KeyError(f"{env.path} does not call modules/{module_name}")

    def resolve(self, expr: str, module: Module, call: dict[str, Any] | None, env: Module) -> Any:
        """Evaluate the expression subset used in templatefile() arguments."""
        expr = expr.strip()
        if expr.startswith('"') and expr.endswith('"'):
            return json.loads(expr)
        if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", expr):
            return json.loads(expr)
        m = re.fullmatch(r"jsonencode\((.*)\)", expr, re.S)
        if m:
            return json.dumps(self.resolve(m.group(1), module, call, env))
        m = re.fullmatch(r"(var|local)\.([a-z0-9_]+)((?:\.[a-z0-9_]+|\[\"[^\"]+\"\])*)", expr)
        if not m:
            return placeholder_for(expr)
        kind, name, path = m.groups()
        if kind == "local":
            value: Any = module.locals[name]
            scope_call = call
        elif call is not None and name in call:
            # The module input as the environment root passes it, evaluated in the root.
            value = call[name]
            module, scope_call = env, None
        else:
            value = module.variables[name].get("default", placeholder_for(f"var.{name}"))
            scope_call = call
        if is_expression(value):
            value = self.resolve(value[2:-1], module, scope_call, env)
        for key in re.findall(r"\.([a-z0-9_]+)|\[\"([^\"]+)\"\]", path):
            k = key[0] or key[1]
            if isinstance(value, str) and value.startswith("unknown-"):
                return placeholder_for(expr)
            value = value[k]
        return value

    def templatefile_calls(self, module_name: str) -> list[tuple[str, dict[str, str]]]:
        """(template file, {var: expression}) for every templatefile() in modules/<name>."""
        module = self.modules[module_name]
        calls: list[tuple[str, dict[str, str]]] = []

        def visit(value: Any) -> None:
            if isinstance(value, dict):
                for v in value.values():
                    visit(v)
            elif isinstance(value, list):
                for v in value:
                    visit(v)
            elif isinstance(value, str) and "templatefile(" in value:
                m = TEMPLATEFILE_RE.match(value)
                assert m, f"templatefile() call not in the supported form: {value[:120]}"
                items = {}
                for item in split_top_level(m.group("body")):
                    key, _, expr = item.partition("=")
                    items[key.strip()] = expr.strip()
                calls.append((m.group("file"), items))

        visit(module.locals)
        return calls

    def render(self, module_name: str, template: str, env_name: str = "prod", which: int = 0) -> str:
        """Render modules/<module_name>/<template> with the values of its *which*-th
        templatefile() call, as the environment root would."""
        env = self.envs[env_name]
        module = self.modules[module_name]
        call = self.module_call(env, module_name)
        matches = [items for file, items in self.templatefile_calls(module_name) if file == template]
        assert matches, f"no templatefile() call renders {template}"
        items = matches[which]
        values = {k: self.resolve(v, module, call, env) for k, v in items.items()}
        return render_template((self.root / "modules" / module_name / template).read_text(), values)


def template_placeholders(text: str) -> list[str]:
    return PLACEHOLDER_RE.findall(text)


def render_template(text: str, values: dict[str, Any]) -> str:
    """Terraform's templatefile() for templates made only of ${identifier} placeholders."""
    assert "%{" not in text, "template directives are not supported by the offline renderer"

    def substitute(m: re.Match[str]) -> str:
        name = m.group(1)
        assert IDENTIFIER_RE.match(name), f"only plain placeholders are allowed, got ${{{name}}}"
        assert name in values, f"templatefile() does not pass {name}"
        value = values[name]
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    return PLACEHOLDER_RE.sub(substitute, text)
