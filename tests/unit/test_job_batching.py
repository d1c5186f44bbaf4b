"""Group commit (jobs/batching.py): writes that arrive while one is in progress share the next transaction, each
caller gets its own result only once it is written, and a failed write fails every caller in it."""

from __future__ import annotations

import asyncio
import threading

from fnplatform.storage.group_commit import MAX_BATCH, GroupCommit


def test_concurrent_writes_share_transactions_and_each_gets_its_result() -> None:
    batches: list[list[int]] = []
    gate = threading.Event()

    def write_many(items: list[int]) -> list[int]:
        if not batches:
            gate.wait(5)  # the first transaction is slow: the others queue up behind it
        batches.append(items)
        return [item * 10 for item in items]

    async def main() -> list[int]:
        group: GroupCommit[int, int] = GroupCommit(write_many)
        first = asyncio.ensure_future(group.write(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(group.write(i)) for i in range(1, 101)]
        await asyncio.sleep(0.05)
        gate.set()
        return [await first, *[await r for r in rest]]

    assert asyncio.run(main()) == [i * 10 for i in range(101)]
    assert batches[0] == [0] and batches[1] == list(range(1, 101))  # 101 writes in 2 transactions


def test_a_batch_is_at_most_max_batch_items() -> None:
    sizes: list[int] = []

    def write_many(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return items

    async def main() -> None:
        group: GroupCommit[int, int] = GroupCommit(write_many)
        await asyncio.gather(*(group.write(i) for i in range(MAX_BATCH * 2 + 3)))

    asyncio.run(main())
    assert max(sizes) <= MAX_BATCH and sum(sizes) == MAX_BATCH * 2 + 3


def test_a_failed_transaction_fails_each_of_its_callers_and_the_next_one_still_runs() -> None:
    calls = 0

    def write_many(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database is locked")
        return items

    async def main() -> tuple[BaseException | int, int]:
        group: GroupCommit[int, int] = GroupCommit(write_many)
        failed = await asyncio.gather(group.write(1), return_exceptions=True)
        return failed[0], await group.write(2)

    failed, written = asyncio.run(main())
    assert isinstance(failed, RuntimeError) and written == 2


def test_submit_many_writes_the_batch_and_falls_back_to_one_by_one_on_a_taken_id(tmp_path: object) -> None:
    from pathlib import Path

    from fnplatform.storage.jobs import JobStore, NewJob

    store = JobStore(f"sqlite:///{Path(str(tmp_path)) / 'r.db'}")
    first, created = store.submit(NewJob(function="f", arguments="{}", owner="k", id="job-taken"))
    assert created
    results = store.submit_many([NewJob(function="f", arguments='{"a": 1}', owner="k"),
                                 NewJob(function="f", arguments="{}", owner="k", id="job-taken"),
                                 NewJob(function="f", arguments='{"a": 2}', owner="k")])
    assert [created for _, created in results] == [True, False, True]
    assert results[1][0].id == first.id
    assert store.unfinished(owner="k") == 3
    assert store.finish_many([]) == []
