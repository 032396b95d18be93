# SPDX-License-Identifier: Apache-2.0
"""The Debian bookworm tree the system test boots, made by debootstrap once and cached.

The cache lives under .build-system/ (or $BGSYNC_SYSTEM_CACHE), in a directory named after a
hash of what goes into it (suite, variant, mirror, package list): change the list and a new tree
is made; keep it and a run reuses the tree in seconds. The test never boots the cached tree
itself but a copy of it (cp --reflink=auto -a), so no run leaves anything behind for the next.
"""

import hashlib
import os
import pathlib
import re
import shutil
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
CACHE = pathlib.Path(os.environ.get("BGSYNC_SYSTEM_CACHE", ROOT / ".build-system"))
SUITE = "bookworm"
VARIANT = "minbase"
# A user session under systemd (issue 17), what the .debs depend on (dpkg -i resolves nothing),
# and what the test itself runs inside (procps: pgrep; iproute2: ip route, which the kernel
# network source reads as the agent does). polkitd, as on any desktop: without it logind refuses
# a user's sleep inhibitor (Permission denied), and the sleep step sees no lock.
PACKAGES = sorted([
    "systemd", "systemd-sysv", "dbus", "dbus-user-session", "libpam-systemd",
    "libdbus-1-3", "libsqlite3-0", "libnm0", "libglib2.0-0", "libcurl4", "libproxy1v5", "ca-certificates",
    "procps", "iproute2", "polkitd",
])


def mirror() -> str:
    """The Debian mirror apt uses here (first `deb.../debian` URI in /etc/apt/sources.list*)."""
    texts = []
    for path in [pathlib.Path("/etc/apt/sources.list"), *sorted(pathlib.Path("/etc/apt/sources.list.d").glob("*"))]:
        if path.is_file() and (path.suffix in (".list", ".sources") or path.name == "sources.list"):
            texts.append(path.read_text(errors="replace"))
    for text in texts:
        for match in re.finditer(r"(?:URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text, re.MULTILINE):
            uri = match.group(1)
            if re.search(r"/debian/?$", uri):
                return uri
    return "http://deb.debian.org/debian"


def key() -> str:
    text = "\n".join([SUITE, VARIANT, mirror(), *PACKAGES])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cached_tree(log=print) -> pathlib.Path:
    """The cached tree, made first when missing. A half-made tree (debootstrap failed or was
    killed) is never used: the tree is built beside its final name and renamed when complete."""
    final = CACHE / f"{SUITE}-{VARIANT}-{key()}"
    if (final / "etc" / "os-release").exists():
        return final
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    log(f"debootstrap {SUITE} ({VARIANT}) into {partial} from {mirror()}")
    result = subprocess.run(
        ["debootstrap", f"--variant={VARIANT}", f"--include={','.join(PACKAGES)}", SUITE, str(partial), mirror()],
        capture_output=True, text=True)
    if result.returncode != 0:
        output = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        raise RuntimeError(f"debootstrap failed ({result.returncode}):\n{output}")
    # Leave apt's downloads out of the cache: they are a copy of what was installed.
    for deb in (partial / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        deb.unlink()
    partial.rename(final)
    return final


if __name__ == "__main__":
    print(cached_tree())
