#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A stand-in worker for the exec test: loads libbgsync-handler-exec.so through the C ABI with a
minimal host table (ctypes), and handles one event whose command is argv[2:]. The test kills
this process with SIGKILL to check the command dies with it.

The host table is the ABI's first form (it ends at `log`, as a bgsync-worker from before growth 1
passes it), while the plugin is of growth 1: it runs, through init_with_data/handle_with_data.

usage: exec_worker.py LIBRARY PROGRAM [ARG...]
"""
import ctypes
import signal
import sys
import time

# Foundation's Process starts us with most signals blocked; the command must not inherit that.
signal.pthread_sigmask(signal.SIG_SETMASK, [])

library = ctypes.CDLL(sys.argv[1])
argv = [a.encode() for a in sys.argv[2:]]
keep = []  # C strings and callbacks must outlive the calls


def c(text):
    s = ctypes.c_char_p(text)
    keep.append(s)
    return ctypes.cast(s, ctypes.c_void_p).value


def gvariant_strv(items):
    """An `as` as g_variant_print writes it, for plain items (no quotes or controls)."""
    return ("[" + ", ".join("'" + i.decode().replace("\\", "\\\\") + "'" for i in items) + "]").encode()


P = ctypes.c_void_p
STR = ctypes.CFUNCTYPE(P, P)
STR_NAME = ctypes.CFUNCTYPE(P, P, ctypes.c_char_p)
fields = {
    "app_id": STR(lambda e: c(b"org.example.App")),
    "tag": STR(lambda e: c(b"orphan")),
    "attempt": ctypes.CFUNCTYPE(ctypes.c_uint32, P)(lambda e: 1),
    "last_chance": ctypes.CFUNCTYPE(ctypes.c_bool, P)(lambda e: False),
    "deadline": ctypes.CFUNCTYPE(ctypes.c_double, P)(lambda e: time.time() + 120),
    "periodic": ctypes.CFUNCTYPE(ctypes.c_bool, P)(lambda e: False),
    "option_count": ctypes.CFUNCTYPE(ctypes.c_size_t, P)(lambda e: 1),
    "option_name": ctypes.CFUNCTYPE(P, P, ctypes.c_size_t)(lambda e, i: c(b"command")),
    "option_type": STR_NAME(lambda e, n: c(b"as") if n == b"command" else None),
    "option_strv_length": ctypes.CFUNCTYPE(ctypes.c_size_t, P, ctypes.c_char_p)(
        lambda e, n: len(argv) if n == b"command" else 0),
    "option_strv_item": ctypes.CFUNCTYPE(P, P, ctypes.c_char_p, ctypes.c_size_t)(lambda e, n, i: c(argv[i])),
    # GVariant text, as the worker prints options (HandlerKit reads each option this way).
    "option_text": STR_NAME(lambda e, n: c(gvariant_strv(argv)) if n == b"command" else None),
    "log": ctypes.CFUNCTYPE(None, P, ctypes.c_int, ctypes.c_char_p)(lambda e, p, m: None),
}
order = ["app_id", "tag", "attempt", "last_chance", "deadline", "periodic", "option_count", "option_name",
         "option_type", "option_string", "option_bool", "option_int", "option_double", "option_strv_length",
         "option_strv_item", "option_dict_length", "option_dict_key", "option_dict_value", "option_bytes",
         "option_text", "log"]


class Host(ctypes.Structure):
    _fields_ = [("abi_version", ctypes.c_uint32), ("struct_size", ctypes.c_uint32)] + [(n, P) for n in order]


class Result(ctypes.Structure):
    _fields_ = [("abi_version", ctypes.c_uint32), ("struct_size", ctypes.c_uint32), ("status", ctypes.c_uint32),
                ("retry_after", ctypes.c_double), ("detail", ctypes.c_char * 256)]


class Plugin(ctypes.Structure):
    _fields_ = [("abi_version", ctypes.c_uint32), ("struct_size", ctypes.c_uint32), ("name", ctypes.c_char_p),
                ("description", ctypes.c_char_p), ("sandbox_safe", ctypes.c_bool),
                ("init", P), ("handle", P),
                # growth 1
                ("init_with_data", ctypes.CFUNCTYPE(ctypes.c_bool, P, ctypes.POINTER(P))),
                ("handle_with_data", ctypes.CFUNCTYPE(None, P, P, P, P)), ("deinit", P),
                ("path_options", P), ("url_options", P)]


host = Host(1, ctypes.sizeof(Host), *[ctypes.cast(fields[n], P).value if n in fields else None for n in order])
entry = library.bgsync_plugin_entry
entry.restype = ctypes.POINTER(Plugin)
entry.argtypes = [ctypes.c_uint32]
plugin = entry(1).contents
assert plugin.struct_size >= ctypes.sizeof(Plugin)
data = P()
assert plugin.init_with_data(ctypes.addressof(host), ctypes.byref(data))
result = Result(1, ctypes.sizeof(Result), 2, 0.0, b"")
plugin.handle_with_data(ctypes.addressof(host), data, None, ctypes.addressof(result))
print(result.status, result.detail.decode(), flush=True)
