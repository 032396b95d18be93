# SPDX-License-Identifier: Apache-2.0
"""The packaging's texts agree with the code and with each other. Fast: no build, no root.

Run alone with `/usr/bin/python3 -m pytest -q Tests/packaging/test_docs.py`; `make deb-check`
runs it with the slow package test.
"""

import configparser
import ctypes
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAN = ROOT / "packaging" / "man"
MAN_PAGES = sorted(MAN.glob("*.[1-8]"))
INTERFACE_XML = ROOT / "dbus" / "org.bgsync.Manager.xml"


def unescape(roff: str) -> str:
    """roff source with the escapes our pages use undone, enough to search it or compile it."""
    return roff.replace("\\-", "-").replace("\\e", "\\").replace("\\(dq", '"')


def roff_text(page: Path) -> str:
    return unescape(page.read_text())


def examples(page: Path) -> list[str]:
    """The .EX/.EE blocks of a page, unescaped."""
    return [unescape(block) for block in re.findall(r"^\.EX\n(.*?)^\.EE$", page.read_text(), re.S | re.M)]


@pytest.mark.parametrize("page", MAN_PAGES, ids=lambda p: p.name)
def test_man_page_renders_without_warnings(page):
    result = subprocess.run(
        ["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z", str(page)],
        capture_output=True, text=True, env={**os.environ, "LC_ALL": "C.UTF-8", "MANWIDTH": "80"},
    )
    assert result.returncode == 0 and result.stderr == "", f"{page.name}: {result.stderr}"


def test_every_member_of_the_interface_is_documented_in_bgsyncd_8():
    if not INTERFACE_XML.exists():
        pytest.skip("dbus/org.bgsync.Manager.xml is not written yet (the agent's task)")
    page = roff_text(MAN / "bgsyncd.8")
    documented = page.split(".SH D-BUS INTERFACE", 1)[1].split("\n.SH ", 1)[0]
    missing = []
    for interface in ET.parse(INTERFACE_XML).getroot().iter("interface"):
        if interface.get("name") != "org.bgsync.Manager":
            continue
        for member in interface:
            name = member.get("name")
            if member.tag in ("method", "signal", "property") and name not in documented:
                missing.append(f"{member.tag} {name}")
    assert not missing, f"bgsyncd(8) does not describe: {', '.join(missing)}"


def test_every_configuration_key_is_documented_with_its_default():
    conf = (ROOT / "packaging" / "bgsyncd.conf").read_text()
    page = roff_text(MAN / "bgsyncd.conf.5")
    # The shipped file has every key commented out at its default: read it uncommented.
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(re.sub(r"^#(?=[a-z-]+=)", "", conf, flags=re.M))
    assert parser.sections() == ["sync", "limits", "power", "paths"]
    for section in parser.sections():
        assert f".SH [{section}]" in page, f"bgsyncd.conf(5) has no section [{section}]"
        body = page.split(f".SH [{section}]", 1)[1].split("\n.SH ", 1)[0]
        for key, value in parser.items(section):
            entry = re.search(rf"^\.BR {re.escape(key)} =.*?(?=^\.TP|\Z)", body, re.S | re.M)
            assert entry, f"bgsyncd.conf(5) does not describe {key} under [{section}]"
            if value:
                assert f"Default: {value}" in entry.group(0), f"bgsyncd.conf(5) gives another default for {key} than {value}"


def test_the_example_plugin_in_bgsync_plugin_7_builds_and_loads(tmp_path):
    source = next(block for block in examples(MAN / "bgsync-plugin.7") if "#include <bgsync-plugin.h>" in block)
    (tmp_path / "wait-for-file.c").write_text(source)
    library = tmp_path / "wait-for-file.so"
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra", "-Werror",
         f"-I{ROOT / 'Sources' / 'CBGSyncPlugin' / 'include'}", "-o", str(library), str(tmp_path / "wait-for-file.c")],
        check=True,
    )
    entry = ctypes.CDLL(str(library)).bgsync_plugin_entry
    entry.restype = ctypes.POINTER(ctypes.c_uint32 * 2)
    entry.argtypes = [ctypes.c_uint32]
    assert entry(1), "bgsync_plugin_entry(1) returned NULL"
    assert not entry(2), "bgsync_plugin_entry accepted an ABI version it does not know"


def test_activation_files_name_the_same_bus_name_program_and_unit():
    service = configparser.ConfigParser(interpolation=None)
    service.optionxform = str
    service.read(ROOT / "dbus" / "org.bgsync.service")
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str
    unit.read(ROOT / "packaging" / "bgsyncd.service")
    activation = service["D-BUS Service"]
    assert activation["Name"] == "org.bgsync"
    assert activation["SystemdService"] == "bgsyncd.service"
    assert unit["Service"]["Type"] == "dbus"
    assert unit["Service"]["BusName"] == activation["Name"]
    assert unit["Service"]["ExecStart"] == activation["Exec"] == "/usr/bin/bgsyncd"
    assert unit["Install"]["WantedBy"] == "default.target"


def test_every_source_file_names_its_licence():
    """Apache-2.0 (LICENSE) in an SPDX line at the top of each source file; scripts/add-spdx
    writes the missing ones (the integrator ran it once over the tree; new files need it too)."""
    result = subprocess.run([ROOT / "scripts" / "add-spdx", "--check"], capture_output=True, text=True)
    assert result.returncode == 0, f"files without an SPDX line (run scripts/add-spdx):\n{result.stdout}"
    assert (ROOT / "LICENSE").read_text().split()[:3] == ["Apache", "License", "Version"]
