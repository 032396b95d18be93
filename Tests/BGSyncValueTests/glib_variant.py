# SPDX-License-Identifier: Apache-2.0
"""GLib's own GVariant text, for BGSyncValueTests: reads lines `TYPE<TAB>TEXT` (TYPE may be
empty: parse without a type) on stdin, answers each with `OK<TAB>TYPE<TAB>g_variant_print(v, TRUE)`
or `ERR<TAB>message` on stdout, in order."""
import sys

import gi

gi.require_version("GLib", "2.0")
from gi.repository import GLib  # noqa: E402

out = sys.stdout.buffer
for raw in sys.stdin.buffer.read().split(b"\n"):
    if not raw:
        continue
    type_string, text = raw.decode("utf-8").split("\t", 1)
    try:
        wanted = GLib.VariantType.new(type_string) if type_string else None
        value = GLib.Variant.parse(wanted, text, None, None)
        answer = "OK\t" + value.get_type_string() + "\t" + value.print_(True)
    except Exception as error:  # GLib.Error: the parse failed
        answer = "ERR\t" + str(error).replace("\n", " ")
    out.write(answer.encode("utf-8") + b"\n")
out.flush()
