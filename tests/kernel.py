"""A real IPython kernel for tests, driven through jupyter_client the way a front end drives it.

The kernel runs this interpreter (a temporary kernelspec), with its own empty config folder so
no user setting or key leaks in, and every message a front end would receive is collected.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager, KernelManager
from nbclient import NotebookClient

KERNEL_NAME = "ipychat-test"


def make_kernelspec(root: Path) -> KernelSpecManager:
    """A kernelspec folder whose `ipychat-test` kernel runs `sys.executable`."""
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ipychat test",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    ksm = KernelSpecManager()
    ksm.kernel_dirs = [str(root / "kernels")]
    return ksm


def kernel_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IPYCHAT_", "OPENAI_"))}
    env["IPYCHAT_CONFIG"] = str(home / "ipychat-config.toml")
    env["IPYTHONDIR"] = str(home / "ipython")
    env.update(extra)
    return env


def execute_notebook(
    sources: list[str], home: Path, *, allow_errors: bool = False, **env: str
) -> nbformat.NotebookNode:
    """`sources` as a notebook run top to bottom by nbclient in the test kernel, working in
    `home`, as `jupyter execute` runs one: the executed notebook, to read or to save."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=make_kernelspec(home))
    resources = {"metadata": {"path": str(home)}}
    client = NotebookClient(nb, km=km, timeout=60, allow_errors=allow_errors, resources=resources)
    client.execute(env=kernel_env(home, **env))
    return nb


@dataclass
class Execution:
    """What a front end saw for one executed cell."""

    reply: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    wall: float = 0.0

    @property
    def status(self) -> str:
        return self.reply["content"]["status"]

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["msg_type"] in types]

    @property
    def stdout(self) -> str:
        return "".join(
            m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == "stdout"
        )

    @property
    def stderr(self) -> str:
        return "".join(
            m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == "stderr"
        )

    def bundles(self) -> list[dict[str, Any]]:
        """Every mime bundle shown or updated, in order."""
        return [
            m["content"]["data"]
            for m in self.of_type("display_data", "update_display_data", "execute_result")
        ]

    def text(self) -> str:
        """All output the front end got: streams, bundles, errors (to scan for leaks).

        The echo of the cell's own code (`execute_input`) is left out: it is input.
        """
        return json.dumps([m["content"] for m in self.messages if m["msg_type"] != "execute_input"])


class Kernel:
    """Start with `Kernel.start(tmp_path)`; `run(code)` returns an `Execution`."""

    def __init__(self, km: KernelManager) -> None:
        self.km = km
        self.client = km.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    @classmethod
    def start(cls, home: Path | None = None, **env: str) -> Kernel:
        home = home or Path(tempfile.mkdtemp(prefix="ipychat-kernel-"))
        km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=make_kernelspec(home))
        km.start_kernel(env=kernel_env(home, **env), cwd=str(home))
        return cls(km)

    def run(
        self,
        code: str,
        *,
        timeout: float = 60,
        on_message: Any = None,
        metadata: dict[str, Any] | None = None,
    ) -> Execution:
        """Execute `code`; `metadata` is the request's, as front ends send it (`cellId`)."""
        started = time.perf_counter()
        if metadata is None:
            msg_id = self.client.execute(code, allow_stdin=False)
        else:
            content = {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            }
            msg = self.client.session.msg("execute_request", content, metadata=metadata)
            self.client.shell_channel.send(msg)
            msg_id = msg["header"]["msg_id"]
        execution = Execution(reply={})
        deadline = time.monotonic() + timeout
        idle = False
        while not idle:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"cell did not finish in {timeout} s: {code[:80]!r}")
            try:
                msg = self.client.get_iopub_msg(timeout=remaining)
            except Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if on_message is not None:
                on_message(msg)
            if msg["msg_type"] == "status":
                idle = msg["content"]["execution_state"] == "idle"
                continue
            execution.messages.append(msg)
        execution.wall = time.perf_counter() - started
        while True:
            reply = self.client.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                execution.reply = reply
                return execution

    def value(self, expression: str) -> Any:
        """Evaluate in the kernel and bring the value back through JSON."""
        result = self.run(f"import json as _j; print(_j.dumps({expression}))")
        assert result.status == "ok", result.text()
        return json.loads(result.stdout)

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.km.shutdown_kernel(now=True)


def usage_error(result: Execution) -> str:
    """The one line a UsageError shows; fails if the cell raised anything else."""
    content = result.reply["content"]
    assert content["status"] == "error", result.text()
    assert content["ename"] == "UsageError", content
    assert content["traceback"] == [], "a UsageError shows no traceback"
    assert not result.of_type("error"), "no traceback message reaches the front end"
    lines = [line for line in result.stderr.splitlines() if line.startswith("UsageError")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def chat_kernel(home: Path, base_url: str, setup: str = "", **env: str) -> Kernel:
    """A kernel with ipychat loaded and pointed at `base_url` (plus any `setup` lines)."""
    kernel = Kernel.start(home, **env)
    result = kernel.run(f"%load_ext ipychat\n%chat_config base_url={base_url}\n{setup}")
    assert result.status == "ok", result.text()
    return kernel
