# SPDX-License-Identifier: Apache-2.0
"""The real-NetworkManager harness (netns.py) does what the agent's end-to-end tests rely on.

Run as root: /usr/bin/python3 -m pytest Tests/integration/test_network_real_nm.py
"""

import http.server
import os
import subprocess
import threading
import time

import pytest

from netns import NetworkNamespace, real_networkmanager, skip_reason  # noqa: F401  (the fixture)


@pytest.fixture
def host_http_server(real_networkmanager):
    """A real HTTP server in the root namespace on the veth host end; yields its URL."""
    server = http.server.ThreadingHTTPServer((real_networkmanager.HOST_IP, 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{real_networkmanager.HOST_IP}:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def fetch_from_namespace(nm, url):
    """Whether a request from inside the namespace reaches the URL (curl, two seconds)."""
    curl = nm.run_in_ns(["curl", "-sf", "-o", "/dev/null", "--max-time", "2", url],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return curl.wait(timeout=10) == 0


def test_networkmanager_is_connected_global_in_the_namespace(real_networkmanager):
    nm = real_networkmanager
    assert nm.state() == "connected"  # connected-global: not "connected (site only)"
    # NetworkManager manages the veth with the static profile, default route included.
    routes = nm.run_in_ns(["ip", "route", "show", "default"], stdout=subprocess.PIPE, text=True)
    out, _ = routes.communicate(timeout=10)
    assert f"default via {nm.HOST_IP}" in out


def test_host_end_is_reachable_from_the_namespace(real_networkmanager, host_http_server):
    assert fetch_from_namespace(real_networkmanager, host_http_server)


def test_offline_and_online_toggle_within_seconds(real_networkmanager, host_http_server):
    nm = real_networkmanager
    started = time.monotonic()
    nm.offline()
    assert nm.state() == "asleep"
    assert not fetch_from_namespace(nm, host_http_server)  # really offline: address and route gone
    nm.online()
    assert nm.state() == "connected"
    assert fetch_from_namespace(nm, host_http_server)
    assert time.monotonic() - started < 15


def test_run_in_ns_sees_the_private_system_bus(real_networkmanager):
    nm = real_networkmanager
    child = nm.run_in_ns(["nmcli", "-t", "-f", "STATE", "general"], stdout=subprocess.PIPE, text=True)
    out, _ = child.communicate(timeout=10)
    assert out.strip() == "connected"


SWIFT_TEST_BINARY = os.environ.get(
    "BGSYNC_TEST_BINARY",
    os.path.join(os.path.dirname(__file__), "..", "..", ".build", "debug", "bgsyncPackageTests.xctest"))


def test_swift_monitor_follows_the_real_networkmanager(real_networkmanager):
    """BGSyncNetwork's monitor (libnm) against this NetworkManager: online, off, on."""
    if not os.path.exists(SWIFT_TEST_BINARY):
        pytest.skip(f"Swift test binary not built ({SWIFT_TEST_BINARY}); run swift build --build-tests")
    child = real_networkmanager.run_in_ns(
        [SWIFT_TEST_BINARY, "--testing-library", "swift-testing", "--filter", "followsARealNetworkManager"],
        env={"BGSYNC_REAL_NM": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0, out
    assert "followsARealNetworkManager() passed" in out, out


def test_cleanup_removes_everything_even_when_the_test_fails():
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with pytest.raises(RuntimeError):
        with NetworkNamespace() as nm:
            name, host_if, tmpdir = nm.name, nm.host_if, nm.tmpdir
            processes = [nm._nm, nm._dbus, nm.run_in_ns(["sleep", "600"])]
            raise RuntimeError("the test failed")
    assert name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert subprocess.run(["ip", "link", "show", host_if], capture_output=True).returncode != 0
    assert not os.path.exists(tmpdir)
    assert all(process.poll() is not None for process in processes)
