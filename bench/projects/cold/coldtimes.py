"""When this replica's process was created, when user code started, when it was ready (epoch seconds)."""

import time


def replica_times(user_start: float, ready: float) -> dict[str, float]:
    import psutil

    return {"proc_created": psutil.Process().create_time(), "user_start": user_start, "ready": ready, "now": time.time()}
