# SPDX-License-Identifier: Apache-2.0
"""One log voice (issue 17): the workers' lines read like the agent's own on a terminal or in a
file, and keep their `<N>` priority prefix when stderr is the journal (JOURNAL_STREAM names it),
for journald to read."""

import os
import re
import select
import subprocess
import time

from conftest import BIN, FAST_CONFIG, Client

APP = "org.example.Voice"


def agent_command(bus, tmp_path, plugin_dir):
    config = tmp_path / "bgsyncd.conf"
    config.write_text(FAST_CONFIG)
    return [str(BIN / "bgsyncd"), "--address", bus.address, "--config", str(config), "--state-dir",
            str(tmp_path / "state"), "--plugin-dir", str(plugin_dir), "--worker", str(BIN / "bgsync-worker"),
            "--network", "always-online", "--verbose"]


def read_until(fd, needle: bytes, timeout=20.0) -> bytes:
    """What the agent wrote to `fd` until `needle` appeared (bounded; never hangs the suite)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0, remaining))
        if not ready:
            raise AssertionError(f"no {needle!r} within {timeout} s; got:\n{seen.decode(errors='replace')}")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise AssertionError(f"the agent's output ended before {needle!r}:\n{seen.decode(errors='replace')}")
        seen += chunk
    return seen


def run_exec_event(bus, tmp_path, plugin_dir, journal: bool, tag="voice") -> list:
    """The agent's output lines around one exec event, with stderr a pipe that JOURNAL_STREAM
    names (as systemd names the journal's socket) or that it does not."""
    read_end, write_end = os.pipe()
    info = os.fstat(write_end)
    env = dict(os.environ)
    env.pop("JOURNAL_STREAM", None)
    if journal:
        env["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino}"
    agent = subprocess.Popen(agent_command(bus, tmp_path, plugin_dir), stdout=write_end, stderr=write_end, env=env)
    os.close(write_end)
    try:
        output = read_until(read_end, b"ready on")
        client = Client(bus)
        client.register(APP, tag, "exec", {"command": ["true"]})
        client.wait_finished(tag)
        output += read_until(read_end, b"started true as process")
        return output.decode(errors="replace").splitlines()
    finally:
        agent.terminate()
        agent.wait(timeout=20)
        os.close(read_end)


def test_on_a_terminal_worker_lines_read_like_the_agents(bus, tmp_path, plugin_dir):
    lines = run_exec_event(bus, tmp_path, plugin_dir, journal=False)
    worker = [line for line in lines if "handler exec: " in line and "started true" in line]
    assert worker, lines
    for line in worker:
        assert line.startswith("bgsync-worker[") and "]: debug: handler exec: org.example.Voice/voice: " in line, line
    assert not [line for line in lines if line.startswith("<")], lines
    assert any(line.startswith("bgsyncd[") and ": info: ready on" in line for line in lines)


def test_in_the_journal_every_line_keeps_its_priority_prefix(bus, tmp_path, plugin_dir):
    lines = run_exec_event(bus, tmp_path, plugin_dir, journal=True)
    assert any(line.startswith("<7>handler exec: org.example.Voice/voice: started true") for line in lines), lines
    assert any(line.startswith("<6>ready on") for line in lines), lines
    assert all(line.startswith("<") for line in lines if line), lines


def test_a_callers_tag_cannot_start_a_journal_line_of_its_own(bus, tmp_path, plugin_dir):
    lines = run_exec_event(bus, tmp_path, plugin_dir, journal=True, tag="x\n<0>FORGED by a caller")
    assert all(re.match(r"<[3-7]>", line) for line in lines if line), lines  # no <0> of the caller's
    assert any("x\\n<0>FORGED by a caller" in line for line in lines if line.startswith("<7>handler exec: ")), lines


def test_a_plugins_own_output_cannot_start_a_journal_line_of_its_own(bus, tmp_path, plugin_dir):
    """What a plugin prints (stdout, stderr, while loading and while handling) reaches the log a
    line at a time, escaped and under the worker's own prefix at notice: its <N> stays text."""
    read_end, write_end = os.pipe()
    info = os.fstat(write_end)
    env = dict(os.environ, JOURNAL_STREAM=f"{info.st_dev}:{info.st_ino}")
    agent = subprocess.Popen(agent_command(bus, tmp_path, plugin_dir), stdout=write_end, stderr=write_end, env=env)
    os.close(write_end)
    try:
        output = read_until(read_end, b"ready on")
        client = Client(bus)
        client.register(APP, "noisy", "noisy", {})
        client.wait_finished("noisy")
        output += read_until(read_end, b"no newline at the end")
    finally:
        agent.terminate()
        agent.wait(timeout=20)
        os.close(read_end)
    lines = output.decode(errors="replace").splitlines()
    assert all(re.match(r"<[3-7]>", line) for line in lines if line), lines  # no <0>, <1> or <2> of its own
    printed = [line for line in lines if "(output): " in line]
    for text in ["<0>FORGED while loading", "<1>FORGED on stdout", "<2>FORGED on stderr", "noisy: to stdout",
                 "noisy: \\x1b[31mred\\x1b[0m and a bell\\x07", "noisy: no newline at the end"]:
        assert any(line.startswith("<5>") and line.endswith(": " + text) for line in printed), (text, printed)
    # The 5000-byte line comes in pieces (the worker holds at most 4096 bytes of a line), none lost.
    pieces = [line.split("(output): ", 1)[1] for line in printed if line.split("(output): ", 1)[1].startswith("xx")]
    assert "".join(pieces) == "x" * 5000 and len(pieces) == 2, [len(piece) for piece in pieces]

