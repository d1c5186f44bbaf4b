"""FunctionSpec: every option of ``@fn.function`` / ``@fn.model``, validated once, here."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._errors import SpecError

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
# Routes the platform serves itself on the function endpoint address.
RESERVED_NAMES = frozenset({"flows", "jobs", "search", "healthz", "v1"})
POOL_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
MAX_GPUS = 8
ARTIFACT_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
SECRET_NAME_PATTERN = NAME_PATTERN
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
MAX_SECRETS = 20
# A route is static segments, then optional {parameters} filled from the rest of the path.
ROUTE_PATTERN = r"^(/[a-z][a-z0-9-]{0,62})+(/\{[a-z_][a-z0-9_]{0,62}\})*$"
PLATFORM_ROUTES = frozenset({"flows", "jobs", "healthz", "v1"})

# One line per option: what it means and an example. The one source of each option's text: it is the
# field's description, shown after any error on that option and in docs/sdk.md (options_table()).
_HINTS: dict[str, str] = {
    "name": "lowercase letters, digits and '-', starting with a letter, at most 63 characters, e.g. name='resize-image'; "
            "the HTTP route is /<name>",
    "pool": "a node pool: 'cpu', 'gpu', 'api' or another pool your cluster declares, e.g. pool='gpu'",
    "cpus": "CPU cores per replica, > 0, fractions allowed, e.g. cpus=0.5",
    "gpus": f"GPUs per replica, 0 to {MAX_GPUS}, a fraction below 1 or a whole number, e.g. gpus=0.5",
    "memory_mb": "memory per replica in MiB, a whole number > 0, e.g. memory_mb=2048",
    "min_replicas": "replicas kept running at zero load, a whole number >= 0 (0 scales to zero)",
    "max_replicas": "the most replicas autoscaling may start, a whole number >= 1 and >= min_replicas",
    "target_concurrency": "in-flight requests per replica that autoscaling aims for, > 0, e.g. target_concurrency=2",
    "max_concurrency": "the most in-flight requests one replica accepts, a whole number >= target_concurrency",
    "max_queued": "the most calls one caller (a gateway, a flow, another function) queues for the function beyond "
                  "what its replicas take; more get 503 with Retry-After instead of waiting, 1-100000",
    "idle_timeout_s": "seconds at zero load before scaling to zero, >= 0, e.g. idle_timeout_s=60",
    "timeout_s": "seconds one call may run before the caller gets 504, > 0 and <= 86400",
    "requirements": "pip requirement strings, installed per replica on top of the platform's environment (the "
                    "project's requirements.txt is added), e.g. requirements=['numpy>=2']; a set the pool's "
                    "environment already meets is not installed again",
    "env": "environment variables for the replicas, a dict of str to str; stored and shown in plain text, so "
           "never put a password or token here: use secrets",
    "secrets": f"names of secrets ('fnctl secrets set NAME KEY=-') whose keys become environment variables of "
               f"the replicas before the module is imported, at most {MAX_SECRETS}, e.g. secrets=['openai']",
    "public": "True to serve HTTP without an API key",
    "internal": "True for a step or store that only other functions (fn.call inside the cluster) and flows call: "
                "it gets no HTTP route, and an HTTP request for it (fn.call from outside the cluster too) gets the "
                "404 of a function that does not exist; not with public or route",
    "artifacts": "model files stored beside the bundle: a dict of name to a file path relative to the declaring "
                 "module, e.g. artifacts={'model': 'models/encoder.onnx'}; read with fn.artifact('model'). fnctl deploy "
                 "uploads each once by sha256, replicas fetch it once per node (hash-verified); a new file is a new version",
    "max_batch_size": "concurrent calls merged into one call of the function, 1 to 4096 (1: no batching); every "
                      "parameter must then be a list and the result one item per input, e.g. def embed(texts: "
                      "list[str]) -> list[list[float]]; callers still pass one value",
    "max_wait_ms": "milliseconds a batch waits to fill up before it runs, 0 to 10000, e.g. max_wait_ms=10",
    "retries": "times a job (fn.spawn, POST /jobs/<name>) is tried again after the function raised or ran past "
               "timeout_s, 0 to 100; one that fails every attempt is kept as a dead letter ('fnctl jobs ls --failed'); "
               "plain calls are never retried, e.g. retries=3",
    "retry_backoff_s": "seconds before a job's first retry, doubling for each next one (at most an hour), 0 to 3600, "
                       "e.g. retry_backoff_s=5",
    "callback_url": "an http(s) URL that every job of this function POSTs its final state to, signed (Fn-Signature; "
                    "fn.verify_webhook), unless the job names its own, e.g. callback_url='https://example.com/hooks/fn'",
    "job_concurrency": "the most jobs of this function running at once, 1 to 10000; more wait queued, e.g. "
                       "job_concurrency=8",
    "schedule": "run the function on a schedule, as a job with no arguments: fn.Cron('*/5 * * * *', tz='Europe/Berlin') "
                "or fn.Period(seconds=30); one run per tick across control-plane restarts ('fnctl schedules ls')",
    "route": "an extra HTTP path, served beside /<name>, with optional {parameters} from the rest of the path, "
             "e.g. route='/search/{collection}'",
}


class FunctionSpec(BaseModel):
    """The declared shape of one deployable function; the registry stores it as JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description=_HINTS['name'])
    kind: Literal["function", "model", "asgi"] = "function"
    entrypoint: str = Field(default="", description="module:qualname inside the bundle")
    pool: str = Field(default="cpu", pattern=POOL_PATTERN, description=_HINTS['pool'])
    cpus: float = Field(default=0.25, gt=0, le=512, description=_HINTS['cpus'])
    gpus: float = Field(default=0, ge=0, le=MAX_GPUS, description=_HINTS['gpus'])
    memory_mb: int | None = Field(default=None, gt=0, description=_HINTS['memory_mb'])
    min_replicas: int = Field(default=0, ge=0, le=1000, description=_HINTS['min_replicas'])
    max_replicas: int = Field(default=4, ge=1, le=1000, description=_HINTS['max_replicas'])
    target_concurrency: float = Field(default=2, gt=0, description=_HINTS['target_concurrency'])
    max_concurrency: int = Field(default=100, ge=1, le=10000, description=_HINTS['max_concurrency'])
    max_queued: int = Field(default=200, ge=1, le=100_000, description=_HINTS['max_queued'])
    idle_timeout_s: float = Field(default=60, ge=0, le=86400, description=_HINTS['idle_timeout_s'])
    timeout_s: float = Field(default=300, gt=0, le=86400, description=_HINTS['timeout_s'])
    requirements: tuple[str, ...] = Field(default=(), description=_HINTS['requirements'])
    env: dict[str, str] = Field(default_factory=dict, description=_HINTS['env'])
    secrets: tuple[str, ...] = Field(default=(), max_length=MAX_SECRETS, description=_HINTS['secrets'])
    public: bool = Field(default=False, description=_HINTS['public'])
    internal: bool = Field(default=False, description=_HINTS['internal'])
    artifacts: dict[str, str] = Field(default_factory=dict, description=_HINTS['artifacts'])
    max_batch_size: int = Field(default=1, ge=1, le=4096, description=_HINTS['max_batch_size'])
    max_wait_ms: float = Field(default=10, ge=0, le=10000, description=_HINTS['max_wait_ms'])
    route: str | None = Field(default=None, pattern=ROUTE_PATTERN, description=_HINTS['route'])
    retries: int = Field(default=0, ge=0, le=100, description=_HINTS['retries'])
    retry_backoff_s: float = Field(default=1.0, ge=0, le=3600, description=_HINTS['retry_backoff_s'])
    callback_url: str | None = Field(default=None, max_length=2048, description=_HINTS['callback_url'])
    job_concurrency: int = Field(default=32, ge=1, le=10_000, description=_HINTS['job_concurrency'])
    schedule: dict[str, Any] | None = Field(default=None, description=_HINTS['schedule'])

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_NAMES:
            raise ValueError(f"{value!r} is reserved for the platform's own routes ({', '.join(sorted(RESERVED_NAMES))})")
        return value

    @field_validator("gpus")
    @classmethod
    def _whole_gpus_above_one(cls, value: float) -> float:
        if value > 1 and value != int(value):
            raise ValueError("above 1 must be a whole number")
        return value

    @field_validator("requirements")
    @classmethod
    def _requirements_not_blank(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not item.strip() or item.strip().startswith("-"):
                raise ValueError(f"{item!r} is not a requirement (pip options are not allowed)")
        return tuple(item.strip() for item in value)

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.fullmatch(ENV_NAME_PATTERN, key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
        return value

    @field_validator("secrets", mode="before")
    @classmethod
    def _secrets_a_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # tuple("abc") would silently become three secrets
            raise ValueError(f"must be a list of secret names, e.g. secrets=[{value!r}]")
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not re.fullmatch(SECRET_NAME_PATTERN, name):
                raise ValueError(f"secret name {name!r} must be lowercase letters, digits and '-', starting with a "
                                 f"letter, at most 63 characters")
        repeated = sorted({name for name in value if value.count(name) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repr(n) for n in repeated)} is named more than once")
        return value

    @field_validator("artifacts")
    @classmethod
    def _artifact_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for name, path in value.items():
            if not re.fullmatch(ARTIFACT_NAME_PATTERN, name):
                raise ValueError(f"artifact name {name!r} must be lowercase letters, digits, '_' or '-'")
            parts = path.replace("\\", "/").split("/")
            if not path or path.startswith("/") or ".." in parts:
                raise ValueError(f"artifact {name!r}: {path!r} must be a relative path inside the project (no '..')")
        return value

    @field_validator("route")
    @classmethod
    def _route_not_platform(cls, value: str | None) -> str | None:
        if value is not None and value.split("/")[1] in PLATFORM_ROUTES:
            raise ValueError(f"/{value.split('/')[1]} is the platform's own route")
        return value

    @field_validator("callback_url")
    @classmethod
    def _callback_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_callback_url(value)
        return value

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule(cls, value: Any) -> Any:
        from ._schedule import Cron, Period, schedule_from_json, schedule_to_json

        if value is None:
            return None
        if isinstance(value, Cron | Period):
            return schedule_to_json(value)
        if isinstance(value, dict):
            return schedule_to_json(schedule_from_json(value))
        raise ValueError(f"must be fn.Cron('*/5 * * * *') or fn.Period(seconds=30), not a {type(value).__name__}")

    @property
    def route_root(self) -> str | None:
        """The route's first segment: no function may be named after it."""
        return self.route.split("/")[1] if self.route else None

    @property
    def route_params(self) -> tuple[str, ...]:
        if self.route is None:
            return ()
        return tuple(part[1:-1] for part in self.route.split("/") if part.startswith("{"))

    @model_validator(mode="after")
    def _cross_field(self) -> FunctionSpec:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas}); "
                f"raise max_replicas or lower min_replicas"
            )
        if self.max_concurrency < self.target_concurrency:
            raise ValueError(
                f"max_concurrency ({self.max_concurrency}) must be >= target_concurrency "
                f"({self.target_concurrency}); raise max_concurrency or lower target_concurrency"
            )
        if self.kind == "asgi":
            _check_app_options(self)
        if self.internal and (self.public or self.route):
            other = "public=True" if self.public else f"route={self.route!r}"
            raise ValueError(
                f"internal=True and {other} contradict each other: an internal function has no HTTP endpoint; "
                f"drop internal=True to serve it over HTTP, or drop {other.split('=')[0]}"
            )
        return self


def _check_app_options(spec: FunctionSpec) -> None:
    """A web app (``@fn.asgi``) answers HTTP itself: options that shape one call's arguments do not apply."""
    for option, set_to in (("max_batch_size", spec.max_batch_size > 1), ("route", spec.route is not None),
                           ("schedule", spec.schedule is not None), ("internal", spec.internal)):
        if set_to:
            raise ValueError(f"{option} does not apply to @fn.asgi: the app serves every path under /{spec.name}/ "
                             f"itself and is reached over HTTP only; drop {option}=")


def check_callback_url(url: str) -> str:
    """The shape of a webhook target (the platform checks where it resolves to when the job is accepted and sent)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a URL: {exc}") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"{url!r} must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials (user:password@); the platform signs each delivery instead")
    return url


def build_spec(where: str, **options: Any) -> FunctionSpec:
    """Validate *options* into a spec, raising one SpecError that names every bad option."""
    try:
        return FunctionSpec(**options)
    except ValidationError as exc:
        raise SpecError(format_validation_error(where, exc, options)) from None


def format_validation_error(where: str, exc: ValidationError, given: dict[str, Any]) -> str:
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        field = loc[0] if loc else ""
        msg = str(error["msg"]).removeprefix("Value error, ")
        if not field:
            lines.append(f"{where}: {msg}")
        elif error["type"] == "extra_forbidden":
            known = ", ".join(sorted(k for k in FunctionSpec.model_fields if k not in {"kind", "entrypoint"}))
            lines.append(f"{where}: unknown option {field!r}. Allowed options: {known}")
        else:
            value = given.get(field, error.get("input"))
            hint = _description(field)
            line = f"{where}: {field}={value!r} is invalid: {msg}"
            lines.append(f"{line} ({hint})" if hint else line)
    return "\n".join(lines)


def default_name(python_name: str) -> str:
    """``resize_image`` -> ``resize-image``: the default function name."""
    return python_name.strip("_").replace("_", "-").lower()


def _description(field: str) -> str | None:
    info = FunctionSpec.model_fields.get(field)
    return info.description if info is not None else None


def options_table() -> str:
    """The options of ``@fn.function`` / ``@fn.model`` as a Markdown table, from the fields themselves."""
    rows = ["| option | default | meaning |", "|---|---|---|"]
    for name, info in FunctionSpec.model_fields.items():
        if name in {"kind", "entrypoint"}:
            continue
        default = info.get_default(call_default_factory=True)
        shown = "the function's name, `_` → `-`" if name == "name" else (
            "none" if default in (None, (), {}) else f"`{default!r}`")
        rows.append(f"| `{name}` | {shown} | {info.description} |")
    return "\n".join(rows) + "\n"
