"""The shared scenario set, run on every host harness found (see ``harness.py``).

Each scenario is written once, against ``Harness``; ``HARNESSES`` collects the
harnesses of every ``harness_<host>.py`` module in this package whose toolkit
imports here. A scenario that needs widgets is generated only for harnesses
that have them. ``ASYNCIO_GUEST_REQUIRE_HOSTS=tk,qt,trio`` (CI) makes a missing
toolkit a failure instead of an absent parametrisation.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import pkgutil
from typing import Any

import pytest

from . import harness as harness_api
from .harness import WIDGETS, Harness


def _collect() -> tuple[list[Harness], list[str]]:
    found: list[Harness] = []
    modules: list[str] = []
    package = os.path.dirname(__file__)
    for info in pkgutil.iter_modules([package]):
        if info.name.startswith("harness_"):
            module = importlib.import_module(f"{__package__}.{info.name}")
            modules.append(info.name[len("harness_"):])
            found.extend(module.HARNESSES)
    return found, modules


HARNESSES, _MODULES = _collect()
REQUIRED = [h for h in os.environ.get("ASYNCIO_GUEST_REQUIRE_HOSTS", "").split(",") if h]


def _with(capability: str | None = None) -> list[Any]:
    chosen = [h for h in HARNESSES if capability is None or capability in h.capabilities]
    return [pytest.param(h, id=h.name) for h in chosen]


def test_required_hosts_are_here() -> None:
    """CI names the hosts it installed; each must have given a harness."""
    names = harness_api.describe(HARNESSES)
    def given(required: str) -> bool:
        return any(n == required or n.startswith((required + "-", required + "[")) for n in names)

    missing = [r for r in REQUIRED if not given(r)]
    assert not missing, f"no harness for {missing}; harnesses here: {names}"


@pytest.mark.parametrize("host", _with())
def test_timers_and_a_socket_round_trip(host: Harness) -> None:
    async def main() -> bytes:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.read(100))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping")
        data = await reader.read(100)
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return data

    assert host.run(main) == b"ping"


@pytest.mark.parametrize("host", _with())
def test_an_exception_in_main_surfaces_from_run(host: Harness) -> None:
    async def main() -> None:
        await asyncio.sleep(0.001)
        raise LookupError("from deep in a task")

    with pytest.raises(LookupError, match="from deep in a task"):
        host.run(main)


@pytest.mark.parametrize("host", _with(WIDGETS))
def test_a_real_click_starts_a_task_that_answers(host: Harness) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str] = loop.create_future()

        async def work() -> None:
            await asyncio.sleep(0.01)
            answer.set_result("done")

        button = host.make_button(lambda: asyncio.create_task(work()))
        host.call_soon_in_host(lambda: host.click(button))
        return await asyncio.wait_for(answer, 10)

    assert host.run(main) == "done"
