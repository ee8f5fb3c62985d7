"""CoalescingQueue: the Win32 host's deque + one-pending-wake-up logic, on any platform."""

from __future__ import annotations

import threading

import pytest

from asyncio_guest._core.wake_queue import CoalescingQueue


class Posts:
    """Counts wake-ups; ``sem`` lets a fake host thread sleep until one arrives."""

    def __init__(self) -> None:
        self.normal = 0
        self.busy = 0
        self.sem = threading.Semaphore(0)

    def post(self) -> None:
        self.normal += 1
        self.sem.release()

    def post_busy(self) -> None:
        self.busy += 1
        self.sem.release()


def test_many_submits_one_wakeup_then_drain_runs_all_in_order() -> None:
    posts = Posts()
    q = CoalescingQueue(posts.post)
    ran: list[int] = []
    for i in range(10_000):
        q.submit(lambda i=i: ran.append(i))
    assert posts.normal == 1
    assert q.pending
    q.drain()
    assert ran == list(range(10_000))
    # One wake-up ahead was sent because callbacks were queued behind the first.
    assert posts.normal == 2
    q.drain()  # that wake-up finds nothing
    assert not q.pending
    assert len(q) == 0


def test_single_callback_drain_sends_nothing_extra() -> None:
    posts = Posts()
    q = CoalescingQueue(posts.post)
    q.submit(lambda: None)
    q.drain()
    assert posts.normal == 1
    assert not q.pending


def test_no_lost_wakeup_with_racing_threads() -> None:
    """Workers submit while a host thread drains; every callback runs, none waits."""
    posts = Posts()
    q = CoalescingQueue(posts.post)
    n_workers, per_worker = 4, 20_000
    total = n_workers * per_worker
    ran = [0]
    host_ident: list[int] = []
    stuck: list[str] = []

    def count() -> None:
        ran[0] += 1

    def host() -> None:
        host_ident.append(threading.get_ident())
        while ran[0] < total:
            # A lost wake-up would leave callbacks queued and this thread asleep.
            if not posts.sem.acquire(timeout=10):
                stuck.append(f"host starved with {len(q)} queued, pending={q.pending}")
                return
            q.drain()

    h = threading.Thread(target=host)
    h.start()
    workers = [
        threading.Thread(target=lambda: [q.submit(count) for _ in range(per_worker)])
        for _ in range(n_workers)
    ]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    h.join()
    assert not stuck, stuck
    assert ran[0] == total
    assert posts.normal < total // 10  # coalesced


def test_submit_local_inside_a_drain_defers_to_post_busy() -> None:
    posts = Posts()
    q = CoalescingQueue(posts.post, posts.post_busy)
    ran: list[str] = []

    def tick() -> None:
        ran.append("tick")
        q.submit_local(lambda: ran.append("next"))
        assert posts.normal == 1  # not posted from inside the drain

    q.submit(tick)
    q.drain()
    assert ran == ["tick"]
    assert (posts.normal, posts.busy) == (1, 1)
    assert q.pending
    q.drain()
    assert ran == ["tick", "next"]
    assert not q.pending


def test_submit_local_outside_a_drain_posts() -> None:
    posts = Posts()
    q = CoalescingQueue(posts.post, posts.post_busy)
    q.submit_local(lambda: None)
    assert (posts.normal, posts.busy) == (1, 0)


def test_raising_callback_keeps_the_rest_reachable() -> None:
    posts = Posts()
    q = CoalescingQueue(posts.post)
    ran: list[int] = []

    def boom() -> None:
        raise ValueError("boom")

    q.submit(boom)
    q.submit(lambda: ran.append(1))
    with pytest.raises(ValueError, match="boom"):
        q.drain()
    assert q.pending  # a wake-up for what is left
    q.drain()
    assert ran == [1]


def test_nested_drain_in_a_modal_loop_keeps_order_and_keeps_going() -> None:
    """A callback that runs a nested loop: the next wake-up is dispatched inside it."""
    posts = Posts()
    q = CoalescingQueue(posts.post, posts.post_busy)
    ran: list[str] = []

    def modal() -> None:
        ran.append("modal-open")
        # The system's modal loop dispatches pending wake-ups to our window.
        assert q.pending, "callbacks are queued behind this one: a wake-up must be pending"
        while "b" not in ran:
            q.drain()
        ran.append("modal-closed")

    def a() -> None:
        ran.append("a")
        q.submit_local(lambda: ran.append("b"))  # the guest's next tick

    q.submit(modal)
    q.submit(a)
    q.drain()
    assert ran == ["modal-open", "a", "b", "modal-closed"]


def test_failed_post_clears_pending_so_the_next_submit_retries() -> None:
    calls: list[str] = []
    fail = [True]

    def post() -> None:
        calls.append("post")
        if fail[0]:
            raise OSError("queue full")

    q = CoalescingQueue(post)
    with pytest.raises(OSError, match="queue full"):
        q.submit(lambda: None)
    assert not q.pending
    fail[0] = False
    q.submit(lambda: None)
    assert q.pending
    assert calls == ["post", "post"]
    q.drain()
    assert len(q) == 0
