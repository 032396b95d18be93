# SPDX-License-Identifier: Apache-2.0
"""Resumable uploads (the upload handler's option `resumable`) through the real agent and worker:
to tuspyserver (tus 1.0.0, from PyPI) and to our draft-ietf-httpbis-resumable-upload server, with
the link cut mid-transfer, the worker and the agent killed, the file replaced between attempts,
and a server that claims bytes it was never sent. What a user sees: the file arrives whole (the
server's sha256 is the file's), a file cut a few times costs few more bytes than its size, and
attempts that moved bytes forward are not spent."""

import os
import signal

import pytest

from conftest import Client, wait_until
from resumable_servers import IetfServer, Relay, TusServer, children, sha256

APP = "org.example.Photos"
SIZE = 4 * 1024 * 1024
# Retries a second apart (a server may finish with a cut request a moment after the cut, as
# tuspyserver does: it stores what arrived when it notices). max-attempts stays the default 3.
CONFIG = """\
[sync]
retry-initial-delay=1
retry-factor=1
event-timeout=60
"""


def photo(outbox, name="0001.jpg", seed=b"photo"):
    outbox.mkdir(exist_ok=True)
    path = outbox / name
    block = seed * (4096 // len(seed) + 1)
    data = bytearray(os.urandom(SIZE))
    data[:len(block[:4096])] = block[:4096]
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def tus(tmp_path):
    server = TusServer(tmp_path / "tus-files")
    yield server
    server.stop()


@pytest.fixture
def ietf():
    server = IetfServer()
    yield server
    server.stop()


def wait(client, agent, count, timeout=60):
    """The registration's SyncFinished signals once there are `count`; the agent's log if not."""
    try:
        return client.wait_finished("photos", count=count, timeout=timeout)
    except AssertionError as error:
        raise AssertionError(f"{error}; finished: {client.finished_for('photos')}\n{agent.log_text()[-4000:]}")


def register(client, outbox, url, resumable):
    client.register(APP, "photos", "upload", {"outbox": str(outbox), "url": url, "resumable": resumable})


def test_tus_upload_cut_three_times_arrives_whole_without_spending_attempts(agent_factory, bus, tus, tmp_path):
    relay = Relay(tus.port, cut_after=SIZE // 4, cuts=3)
    try:
        agent = agent_factory(config=CONFIG).start()
        client = Client(bus)
        outbox = tmp_path / "outbox"
        digest = sha256(photo(outbox))
        register(client, outbox, tus.url(relay.port), "tus")
        finished = wait(client, agent, 4, 60)
        # Three cuts, then the rest: four attempts where three are allowed, none of them spent.
        assert [f[2] for f in finished] == ["retry-scheduled"] * 3 + ["succeeded"]
        assert [s[2] for s in client.started if s[1] == "photos"] == [1, 1, 1, 1]
        assert relay.cut == 3
        assert tus.uploads() == [digest]
        assert list(outbox.iterdir()) == []
        print(f"{relay.sent} bytes on the wire for a {SIZE}-byte file, {relay.cut} cuts")
        assert relay.sent <= 1.05 * SIZE, f"{relay.sent} bytes sent for a {SIZE}-byte file"
    finally:
        relay.stop()


def test_without_resumable_the_same_cuts_spend_the_attempts(agent_factory, bus, ietf, tmp_path):
    # The control: the same cuts without a resume fail the registration after three attempts.
    relay = Relay(ietf.port, cut_after=SIZE // 4, cuts=3)
    try:
        agent = agent_factory(config=CONFIG).start()
        client = Client(bus)
        outbox = tmp_path / "outbox"
        photo(outbox)
        client.register(APP, "photos", "upload", {"outbox": str(outbox), "url": ietf.url(relay.port)})
        finished = wait(client, agent, 3, 60)
        assert [f[2] for f in finished] == ["retry-scheduled", "retry-scheduled", "failed"]
        assert (outbox / "0001.jpg").exists()
    finally:
        relay.stop()


def test_tus_resumes_after_the_worker_is_killed_mid_transfer(agent_factory, bus, tus, tmp_path):
    relay = Relay(tus.port, pause_after=SIZE // 3)
    try:
        agent = agent_factory(config=CONFIG).start()
        client = Client(bus)
        outbox = tmp_path / "outbox"
        digest = sha256(photo(outbox))
        register(client, outbox, tus.url(relay.port), "tus")
        relay.wait_paused()
        workers = children(agent.process.pid)
        assert workers, "no worker running the upload"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        relay.release()
        wait_until(lambda: any(f[2] == "succeeded" for f in client.finished_for("photos")), 60, "the upload")
        finished = client.finished_for("photos")
        assert finished[0][2:] == ("retry-scheduled", "crashed")
        # The server may still hold the killed request's lock a moment (tuspyserver answers 503).
        assert all(f[2] == "retry-scheduled" for f in finished[1:-1]) and finished[-1][2:] == ("succeeded", "sent 1 file")
        assert tus.uploads() == [digest]
        print(f"{relay.sent} bytes on the wire for a {SIZE}-byte file, {relay.cut} cuts")
        assert relay.sent <= 1.05 * SIZE, f"{relay.sent} bytes sent for a {SIZE}-byte file"
    finally:
        relay.stop()


def test_tus_resumes_after_the_agent_is_killed_and_restarted(agent_factory, bus, tus, tmp_path):
    relay = Relay(tus.port, pause_after=SIZE // 3)
    try:
        agent = agent_factory(config=CONFIG).start()
        client = Client(bus)
        outbox = tmp_path / "outbox"
        digest = sha256(photo(outbox))
        register(client, outbox, tus.url(relay.port), "tus")
        relay.wait_paused()
        workers = children(agent.process.pid)
        agent.kill(signal.SIGKILL)  # its workers die with it (PR_SET_PDEATHSIG)
        for pid in workers:
            wait_until(lambda: not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2],
                       10, "the worker to die with the agent")
        relay.release()
        agent.start()
        # The registration was kept; the restarted agent runs it and the upload resumes.
        wait_until(lambda: tus.uploads() == [digest] and not (outbox / "0001.jpg").exists(), 60,
                   "the upload to finish after the restart")
        print(f"{relay.sent} bytes on the wire for a {SIZE}-byte file, {relay.cut} cuts")
        assert relay.sent <= 1.05 * SIZE, f"{relay.sent} bytes sent for a {SIZE}-byte file"
        # The state is the agent's, not the app's: nothing was written into the app's outbox.
        assert list(outbox.iterdir()) == []
        assert list((agent.state_dir / "handlers" / "upload").iterdir()) == []
    finally:
        relay.stop()


def test_a_file_replaced_between_attempts_is_sent_from_the_start(agent_factory, bus, tus, tmp_path):
    relay = Relay(tus.port, cut_after=SIZE // 2, cuts=1)
    try:
        agent = agent_factory(config=CONFIG.replace("retry-initial-delay=1", "retry-initial-delay=3")).start()
        client = Client(bus)
        outbox = tmp_path / "outbox"
        photo(outbox)
        register(client, outbox, tus.url(relay.port), "tus")
        assert wait(client, agent, 1, 30)[0][2] == "retry-scheduled"
        # The app replaces the photo (a new edit) before the retry: written aside, renamed in.
        new = photo(outbox, ".0001.jpg.part", seed=b"edited")
        os.rename(new, outbox / "0001.jpg")
        digest = sha256(outbox / "0001.jpg")
        finished = wait(client, agent, 2, 30)
        assert finished[1][2] == "succeeded"
        # The new file went whole, from byte 0, as a new upload; never the old one's tail.
        assert digest in tus.uploads()
        assert relay.sent >= SIZE // 2 + SIZE
    finally:
        relay.stop()


def test_ietf_draft_upload_cut_resumes_from_the_104_location(agent_factory, bus, ietf, tmp_path):
    relay = Relay(ietf.port, cut_after=SIZE // 3, cuts=2)
    try:
        agent = agent_factory(config=CONFIG).start()
        client = Client(bus)
        outbox = tmp_path / "outbox"
        digest = sha256(photo(outbox))
        register(client, outbox, ietf.url(relay.port), "ietf")
        finished = wait(client, agent, 3, 60)
        assert [f[2] for f in finished] == ["retry-scheduled", "retry-scheduled", "succeeded"]
        assert [s[2] for s in client.started if s[1] == "photos"] == [1, 1, 1]
        assert ietf.uploads() == [digest]
        assert ietf.store.posts == 1, "resumed with HEAD and PATCH, not a new POST"
        print(f"{relay.sent} bytes on the wire for a {SIZE}-byte file, {relay.cut} cuts")
        assert relay.sent <= 1.05 * SIZE, f"{relay.sent} bytes sent for a {SIZE}-byte file"
    finally:
        relay.stop()


def test_a_server_offset_beyond_what_was_sent_starts_the_upload_over(agent_factory, bus, ietf, tmp_path):
    relay = Relay(ietf.port, cut_after=SIZE // 3, cuts=1)
    ietf.store.lie_once = True
    try:
        agent = agent_factory(config=CONFIG).start()
        client = Client(bus)
        outbox = tmp_path / "outbox"
        digest = sha256(photo(outbox))
        register(client, outbox, ietf.url(relay.port), "ietf")
        finished = wait(client, agent, 2, 60)
        assert finished[-1][2] == "succeeded"
        # Not a byte skipped: the client started over with a new POST, and that upload is whole.
        assert ietf.store.posts == 2
        assert digest in ietf.uploads()
    finally:
        relay.stop()
