"""The README's two commands: arguments reach the right program, and a taken port gets a hint, not a traceback.

Kept cheap: the environment is already synced, so `uv sync` is quick, and the
commands stop before any real work (collection only, or the port check).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """The scripts' environment with this uv on PATH (`uv run` names itself in $UV), so they install nothing."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if not uv:
        reason = "uv not found (run the tests with `uv run`)"
        if os.environ.get("GONGJI_STRICT") == "1":
            pytest.fail(f"{reason} (GONGJI_STRICT=1)")
        pytest.skip(f"{reason}; set GONGJI_STRICT=1 to fail instead")
    return {
        **os.environ,
        "PATH": f"{Path(uv).parent}{os.pathsep}{os.environ['PATH']}",
        "GONGJI_VAR_DIR": str(tmp_path / "var"),
    }


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something is listening on, as when one run.sh is already serving."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def assert_port_hint(result: subprocess.CompletedProcess[str], port: int, retry: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"端口 {port} 已被占用" in result.stderr and f"Port {port} on 127.0.0.1 is already in use" in result.stderr
    suggested = {int(found) for found in re.findall(re.escape(retry) + r" (\d+)", result.stderr)}
    assert len(suggested) == 1 and port not in suggested, result.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", suggested.pop()))  # the suggested port is really free


def test_test_sh_passes_its_arguments_to_pytest_only(env):
    result = run(["bash", "scripts/test.sh", "--co", "-q", "tests/core/test_money.py"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tests/core/test_money.py::" in result.stdout
    assert re.search(r"\d+ tests? collected", result.stdout)


def test_a_second_run_sh_on_a_taken_port_says_which_port_to_use(env, taken_port):
    result = run(["bash", "scripts/run.sh", "--port", str(taken_port)], env)
    assert_port_hint(result, taken_port, "bash scripts/run.sh --port")
    assert not (Path(env["GONGJI_VAR_DIR"])).exists()  # refused before any demo data was written


def test_serve_on_a_taken_port_says_which_port_to_use(env, taken_port):
    result = run([str(Path(sys.executable).parent / "gongji"), "serve", "--port", str(taken_port)], env)
    assert_port_hint(result, taken_port, "gongji serve --port")
