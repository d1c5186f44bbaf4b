"""Idle worker processes kept ready, so a replica starting from zero does not wait for a new process.

A Ray worker process takes 1.5-2 s to start and import Ray and Serve; a replica can instead take an
idle worker that is already running when the two match: same job, no runtime env (replicas carry
none unless they need pip packages or env variables, see ``deployer.runtime_env``). Workers import
Serve's replica module before taking work (``RAY_preload_python_modules``, set in ``local``), and
Ray keeps idle workers up to ``RAY_num_workers_soft_limit``. This loop tops the idle pool up: a few
no-op tasks from the control plane's own job, which Ray runs on idle workers when there are
enough and otherwise on new ones, which then stay idle.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("fn.warm_pool")


def _noop() -> None:
    return None


def keep_workers_warm(idle: int, interval_s: float = 1.0) -> threading.Thread:
    """Start the background top-up loop (local platforms only: it places no tasks on other nodes)."""
    import ray

    # No task events: two tasks a second would each leave a record in the GCS (up to its cap, tens of MiB).
    task = ray.remote(num_cpus=0, max_retries=0)(_noop).options(enable_task_events=False)

    def loop() -> None:
        while ray.is_initialized():
            try:
                ray.get([task.remote() for _ in range(idle)], timeout=30)
            except Exception as exc:  # noqa: BLE001 - a slow or shutting-down cluster: try again later
                log.debug("warm pool top-up failed: %s", exc)
            time.sleep(interval_s)

    thread = threading.Thread(target=loop, name="fn-warm-pool", daemon=True)
    thread.start()
    return thread
