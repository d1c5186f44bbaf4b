"""Worker: one plain Ray Serve instance (no platform), the baseline the suite compares against.

Run by the suite in its own process group, one Ray per variant, because the ``RAY_SERVE_*``
switches are read when Ray and Serve start: ``python bench/raw_serve.py MODE PORT TEMP_DIR``.
It starts Ray (``address="local"``, its own short temp dir), Serve on PORT, deploys the apps of
MODE, prints ``READY {json}`` and then answers one-line commands on stdin (``replicas APP``,
``deploy``); EOF, ``exit`` or SIGTERM shut Serve and Ray down.

MODE: ``noop`` / ``noop-moq`` (the no-op, Serve defaults / max_ongoing_requests=100, which also
deploys ``caller``, a handle-call loop), ``cold`` (a light and a heavy app at zero replicas),
``burst`` (a 0.2 s function at zero, at most 4 replicas), ``deploy`` (times serve.run itself), ``shop``
(functions/examples/webapp's FastAPI app through ``serve.ingress`` with its builder, one replica).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
import time
from typing import Any

import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import Response

KEY_HASH = hashlib.sha256(b"bench-key").hexdigest()
# Only a scheduling reservation (Ray does not cap CPU use), the platform's cpus=0.25; with Ray's default of 1
# CPU a replica, three replicas would not fit on a 2-core machine.
CPUS = {"ray_actor_options": {"num_cpus": 0.25}}
WEBAPP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "functions", "examples", "webapp")


def _authorized(request: Request) -> bool:
    return hashlib.sha256(request.headers.get("authorization", "")[7:].encode()).hexdigest() == KEY_HASH


def _times(imported_at: float, ready_at: float) -> dict[str, float]:
    import psutil

    return {"proc_created": psutil.Process().create_time(), "user_start": imported_at, "ready": ready_at}


class Noop:
    """The no-op: the same JSON in and out, the same bearer-key check as the floor app."""

    async def __call__(self, request: Request) -> Response:
        if not _authorized(request):
            return Response("{}", status_code=401)
        return Response(json.dumps(json.loads(await request.body())), media_type="application/json")

    async def call(self, x: int) -> dict[str, int]:
        return {"x": x}


class Caller:
    """Calls the no-op through a deployment handle n times; returns each call's milliseconds."""

    def __init__(self, noop: Any) -> None:
        self.noop = noop

    async def __call__(self, request: Request) -> Response:
        n = int(json.loads(await request.body())["n"])
        timings = []
        for _ in range(n):
            start = time.perf_counter()
            await self.noop.call.remote(x=1)
            timings.append((time.perf_counter() - start) * 1000)
        return Response(json.dumps(timings), media_type="application/json")


class Light:
    def __init__(self) -> None:
        self.times = _times(time.time(), time.time())

    async def __call__(self, request: Request) -> Response:
        return Response(json.dumps({"x": 1, "times": self.times}), media_type="application/json")


class Heavy:
    def __init__(self) -> None:
        started = time.time()
        import numpy as np
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper

        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=10)
        onnx.checker.check_model(model)
        self.session = ort.InferenceSession(model.SerializeToString())
        self.np = np
        self.times = _times(started, time.time())

    async def __call__(self, request: Request) -> Response:
        y = self.session.run(None, {"x": self.np.ones((1, 4), dtype=self.np.float32)})[0]
        return Response(json.dumps({"x": float(y[0][0]), "times": self.times}), media_type="application/json")


class Sleepy:
    async def __call__(self, request: Request) -> Response:
        import asyncio

        await asyncio.sleep(0.2)
        return Response('{"x": 1}', media_type="application/json")


def _apps(mode: str) -> list[Any]:
    from ray.serve.api import RunTarget

    dep: Any = lambda cls: serve.deployment(cls).options(**CPUS)  # noqa: E731
    at_zero = {"min_replicas": 0}
    if mode in {"noop", "noop-moq"}:
        opts = {"max_ongoing_requests": 100} if mode == "noop-moq" else {}
        noop = dep(Noop).options(name="noop", **opts)
        targets = [RunTarget(target=noop.bind(), name="noop", route_prefix="/noop")]
        if mode == "noop-moq":
            caller = dep(Caller).options(name="caller", max_ongoing_requests=100)
            targets.append(RunTarget(target=caller.bind(noop.options(name="callee").bind()), name="caller",
                                     route_prefix="/caller"))
        return targets
    if mode == "shop":  # the example web app, its builder run in the replica as @fn.asgi does
        from ray import cloudpickle  # Ray's own copy: the one that pickles deployments

        sys.path.insert(0, str(WEBAPP))
        import shop  # type: ignore[import-not-found]

        cloudpickle.register_pickle_by_value(shop)  # replicas have no path to it: shipped by value
        app = dep(serve.ingress(shop.shop)()).options(name="shop", max_ongoing_requests=100)
        return [RunTarget(target=app.bind(), name="shop", route_prefix="/shop")]
    if mode == "cold":
        return [RunTarget(target=dep(cls).options(name=name, autoscaling_config=at_zero).bind(), name=name,
                          route_prefix=f"/{name}") for name, cls in (("light", Light), ("heavy", Heavy))]
    if mode == "burst":
        burst = dep(Sleepy).options(name="burst", autoscaling_config={**at_zero, "max_replicas": 4})
        return [RunTarget(target=burst.bind(), name="burst", route_prefix="/burst")]
    return []


def _timed_deploys() -> dict[str, float]:
    """serve.run until RUNNING: a new app, the same app again, then 50 new apps at zero at once."""
    from ray.serve.api import RunTarget

    dep: Any = lambda cls: serve.deployment(cls).options(**CPUS)  # noqa: E731
    out = {}
    start = time.perf_counter()
    serve.run(dep(Light).options(name="fresh", autoscaling_config={"min_replicas": 0}).bind(), name="fresh",
              route_prefix="/fresh")
    out["first_s"] = time.perf_counter() - start
    start = time.perf_counter()
    serve.run(dep(Light).options(name="fresh", autoscaling_config={"min_replicas": 0}).bind(), name="fresh",
              route_prefix="/fresh")
    out["unchanged_s"] = time.perf_counter() - start
    targets = [RunTarget(target=dep(Light).options(name=f"f{i}", autoscaling_config={"min_replicas": 0}).bind(),
                         name=f"f{i}", route_prefix=f"/f{i}") for i in range(50)]
    start = time.perf_counter()
    serve.run_many(targets)
    out["fifty_s"] = time.perf_counter() - start
    return out


def _http_url(port: int, app: str) -> str:
    """Where a client sends requests: the replica's own port under direct ingress, else Serve's port."""
    from ray.serve._private.constants import RAY_SERVE_ENABLE_DIRECT_INGRESS, RAY_SERVE_ENABLE_HA_PROXY
    from ray.serve.context import _get_global_client

    if not RAY_SERVE_ENABLE_DIRECT_INGRESS or RAY_SERVE_ENABLE_HA_PROXY:
        return f"http://127.0.0.1:{port}/{app}"
    controller: Any = _get_global_client()._controller  # type: ignore[union-attr]
    for _ in range(100):
        groups = ray.get(controller.get_target_groups.remote(app))
        targets = [t for g in groups if str(g.protocol).upper().endswith("HTTP") for t in g.targets]
        if targets and targets[0].port != port:
            return f"http://127.0.0.1:{targets[0].port}/{app}"
        time.sleep(0.2)
    raise SystemExit(f"no direct-ingress target for {app}: {groups}")


def _replicas(app: str) -> list[dict[str, Any]]:
    from ray.serve.context import _get_global_client

    details = _get_global_client().get_serve_details()  # type: ignore[union-attr]
    deployment = details["applications"].get(app, {}).get("deployments", {}).get(app, {})
    return [{"state": r.get("state"), "start_time_s": r.get("start_time_s"), "pid": r.get("pid")}
            for r in deployment.get("replicas", [])]


def main() -> None:
    mode, port, temp_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    parent = os.getppid()

    def orphaned() -> None:  # the suite died: stop rather than keep a Ray cluster running
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=orphaned, daemon=True).start()
    ray.init(address="local", _temp_dir=temp_dir, include_dashboard=False, num_cpus=os.cpu_count(),
             log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        info: dict[str, Any] = {}
        if mode == "deploy":
            info = _timed_deploys()
        else:
            serve.run_many(_apps(mode))
            if mode == "shop":
                info["url"] = _http_url(port, "shop")
            if mode.startswith("noop"):
                info["url"] = _http_url(port, "noop")
                info["caller_url"] = f"http://127.0.0.1:{port}/caller"
            info["base"] = f"http://127.0.0.1:{port}"
        print("READY " + json.dumps(info), flush=True)
        for line in sys.stdin:
            command, _, arg = line.strip().partition(" ")
            if command == "exit":
                break
            if command == "replicas":
                print(json.dumps(_replicas(arg)), flush=True)
    finally:
        try:
            serve.shutdown()  # type: ignore[no-untyped-call]
        finally:
            ray.shutdown()


if __name__ == "__main__":
    main()
