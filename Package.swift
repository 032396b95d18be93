// swift-tools-version:6.2
// SPDX-License-Identifier: Apache-2.0
// bgsync: Background Sync for Linux desktop apps.
//
// Module map (each C library is touched by exactly one module):
//   BGSyncValue       pure: the one D-Bus/GVariant value type, its GVariant text (print, parse), JSON text
//   BGSyncCore        pure core: registrations, scheduling, configuration, errors; no I/O
//   MainLoop          a poll(2) loop: fds, timers, cross-thread posts
//   DBusKit           libdbus-1 wrapper (CDBus): marshals BGSyncValue values, knows nothing of sync
//   BGSyncStore       SQLite through GRDB
//   BGSyncNetwork     NetworkManager through libnm (CLibNM), kernel-route fallback
//   BGSyncWire        what the agent and bgsync-worker share, without Foundation: the protocol's
//                     frames and messages, the host's file functions (ConfinedFiles), log escaping
//   BGSyncWorkers     the agent's side of handler workers: spawning, the pool, time caps, probes
//   CBGSyncPlugin     the public plugin ABI header, bgsync-plugin.h
//   CLinux            Linux headers and system calls Swift cannot reach (prctl, openat2, pidfd_open, …)
//   CWorkerCancel     the worker's stop signal (SIGUSR1 → flag and eventfd)
//   CCurl             libcurl, with CCurlGlue: typed wrappers for its variadic calls (curl_easy_setopt…)
//   CProxy            libproxy: the desktop's proxy settings
//   BGSyncPower       UPower, power-profiles-daemon and logind's sleep over the system bus (DBusKit)
//   CSystemd          libsystemd's journal (sd_journal_sendv), used by BGSyncAgent's log handler
// Handlers (Plugins/) hold to the same rule: the notify handler reaches libdbus through DBusKit,
// and every handler's HTTP goes through BGSyncHandlerHTTP, the one module on CCurl and CProxy.
//   BGSyncAgent       wiring: the org.bgsync.Manager bus surface and the loop
//   BGSyncTestSupport fakes for the core's protocols
import PackageDescription

/// What the worker's modules are built with: no implicit import of _Concurrency and
/// _StringProcessing, which they do not use, so the worker does not load those libraries (and
/// libdispatch, which _Concurrency pulls in).
let workerLean: [SwiftSetting] = [
    .unsafeFlags([
        "-Xfrontend", "-disable-implicit-concurrency-module-import",
        "-Xfrontend", "-disable-implicit-string-processing-module-import",
    ])
]

/// Handler libraries export only `bgsync_plugin_entry` (see Plugins/HandlerKit/export.map).
let handlerExports: [LinkerSetting] = [
    .unsafeFlags(["-Xlinker", "--version-script=\(Context.packageDirectory)/Plugins/HandlerKit/export.map"])
]

let package = Package(
    name: "bgsync",
    products: [
        .executable(name: "bgsyncd", targets: ["bgsyncd"]),
        .executable(name: "bgsyncctl", targets: ["bgsyncctl"]),
        .executable(name: "bgsync-worker", targets: ["bgsync-worker"]),
        .library(name: "bgsync-handler-exec", type: .dynamic, targets: ["ExecHandlerPlugin"]),
        .library(name: "bgsync-handler-upload", type: .dynamic, targets: ["UploadHandlerPlugin"]),
        .library(name: "bgsync-handler-settings", type: .dynamic, targets: ["SettingsHandlerPlugin"]),
        .library(name: "bgsync-handler-notify", type: .dynamic, targets: ["NotifyHandlerPlugin"]),
        .library(name: "bgsync-handler-fetch", type: .dynamic, targets: ["FetchHandlerPlugin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
    ],
    targets: [
        // Pure core.
        .target(name: "BGSyncValue", swiftSettings: workerLean),
        .target(name: "BGSyncCore", dependencies: ["BGSyncValue"]),
        .target(name: "MainLoop", dependencies: ["CLinux"]),
        // bgsync-worker links only this, BGSyncValue and C: no Foundation, whose libraries (ICU
        // among them) were most of an idle worker's memory.
        .target(
            name: "BGSyncWire", dependencies: ["BGSyncValue", "CBGSyncPlugin", "CLinux"], swiftSettings: workerLean),

        // C libraries, one module each.
        .systemLibrary(name: "CDBus", pkgConfig: "dbus-1", providers: [.apt(["libdbus-1-dev"])]),
        .systemLibrary(name: "CLibNM", pkgConfig: "libnm", providers: [.apt(["libnm-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // Swift cannot call C variadics: curl_easy_setopt and friends get one typed wrapper each.
        .target(name: "CCurlGlue", dependencies: ["CCurl"]),
        .systemLibrary(name: "CProxy", pkgConfig: "libproxy-1.0", providers: [.apt(["libproxy-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .target(name: "CBGSyncPlugin"),
        .target(name: "CLinux"),
        .target(name: "CWorkerCancel"),
        .target(name: "CBGSyncInterface", cSettings: [.unsafeFlags(["-std=c23"])]),

        // Platform modules.
        .target(name: "DBusKit", dependencies: ["BGSyncValue", "CDBus", "MainLoop"]),
        .target(
            name: "BGSyncStore",
            dependencies: ["BGSyncCore", "BGSyncValue", .product(name: "GRDB", package: "GRDB.swift")]),
        .target(
            name: "BGSyncNetwork",
            dependencies: ["BGSyncCore", "CLibNM", "MainLoop", .product(name: "Logging", package: "swift-log")]),
        .target(
            name: "BGSyncPower",
            dependencies: [
                "BGSyncCore", "BGSyncValue", "DBusKit", "MainLoop", .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "BGSyncWorkers",
            dependencies: [
                "BGSyncCore", "BGSyncWire", "MainLoop", "CLinux", .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "BGSyncAgent",
            dependencies: [
                "BGSyncCore", "BGSyncStore", "BGSyncNetwork", "BGSyncPower", "BGSyncWire", "BGSyncWorkers",
                "BGSyncValue",
                "DBusKit",
                "MainLoop", "CBGSyncInterface", "CLinux", "CSystemd",
                .product(name: "Logging", package: "swift-log"),
            ]),

        // Executables.
        .executableTarget(
            name: "bgsyncd",
            dependencies: [
                "BGSyncAgent", "BGSyncNetwork", "BGSyncPower",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(
            name: "bgsyncctl",
            dependencies: [
                "BGSyncValue", "DBusKit", "MainLoop", "CBGSyncInterface",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(
            name: "bgsync-worker",
            dependencies: ["BGSyncValue", "BGSyncWire", "CBGSyncPlugin", "CLinux", "CWorkerCancel"],
            swiftSettings: workerLean),

        // Handlers shipped with bgsync. They see only the C header, never the agent.
        // Each handler is a plain Swift type (tested directly) plus a one-line C export target,
        // kept apart so the tests can link all handlers without clashing `bgsync_plugin_entry`s.
        .target(
            name: "BGSyncHandlerKit", dependencies: ["BGSyncValue", "CBGSyncPlugin"], path: "Plugins/HandlerKit/Kit"),
        // HTTP on libcurl, without Foundation (FoundationNetworking's URLSession held whole bodies
        // in memory, and loading it made a worker's first event slow).
        .target(
            name: "BGSyncHandlerHTTP", dependencies: ["CCurl", "CCurlGlue", "CProxy"], path: "Plugins/HandlerKit/HTTP",
            swiftSettings: workerLean),
        .target(name: "CExecSpawn", path: "Plugins/exec/Spawn"),
        .target(name: "ExecHandler", dependencies: ["BGSyncHandlerKit", "CExecSpawn"], path: "Plugins/exec/Handler"),
        .target(
            name: "ExecHandlerPlugin", dependencies: ["ExecHandler"], path: "Plugins/exec/Export",
            linkerSettings: handlerExports),
        .target(
            name: "UploadHandler", dependencies: ["BGSyncHandlerKit", "BGSyncHandlerHTTP"],
            path: "Plugins/upload/Handler"),
        .target(
            name: "UploadHandlerPlugin", dependencies: ["UploadHandler"], path: "Plugins/upload/Export",
            linkerSettings: handlerExports),
        .target(
            name: "SettingsHandler", dependencies: ["BGSyncHandlerKit", "BGSyncHandlerHTTP"],
            path: "Plugins/settings/Handler"),
        .target(
            name: "SettingsHandlerPlugin", dependencies: ["SettingsHandler"], path: "Plugins/settings/Export",
            linkerSettings: handlerExports),
        .target(
            name: "FetchHandler", dependencies: ["BGSyncHandlerKit", "BGSyncHandlerHTTP"],
            path: "Plugins/fetch/Handler"),
        .target(
            name: "FetchHandlerPlugin", dependencies: ["FetchHandler"], path: "Plugins/fetch/Export",
            linkerSettings: handlerExports),
        // notify reaches libdbus through DBusKit, keeping the one-module-per-C-library rule.
        .target(name: "NotifyHandler", dependencies: ["BGSyncHandlerKit", "DBusKit"], path: "Plugins/notify/Handler"),
        .target(
            name: "NotifyHandlerPlugin", dependencies: ["NotifyHandler"], path: "Plugins/notify/Export",
            linkerSettings: handlerExports),

        // make bench: the figures of BENCHMARKS.md.
        .executableTarget(
            name: "BGSyncBench",
            dependencies: [
                "BGSyncValue", "DBusKit", "MainLoop", .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Benchmarks/BGSyncBench"),

        // Test doubles and tests. TestKit: the one way tests start child processes and private buses.
        .target(name: "BGSyncTestSupport", dependencies: ["BGSyncCore"]),
        .target(
            name: "TestKit", dependencies: ["MainLoop", .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestKit"),
        // What the handler tests share: helper scripts, a loopback HTTP server, events whose files
        // the worker's own ConfinedFiles opens.
        .target(
            name: "HandlerTestKit",
            dependencies: [
                "BGSyncHandlerKit", "BGSyncHandlerHTTP", "BGSyncValue", "BGSyncWire", "CBGSyncPlugin", "TestKit",
            ],
            path: "Tests/HandlerTestKit", exclude: ["http_server.py", "exec_worker.py"]),
        .testTarget(name: "BGSyncValueTests", dependencies: ["BGSyncValue", "TestKit"], exclude: ["glib_variant.py"]),
        .testTarget(name: "BGSyncCoreTests", dependencies: ["BGSyncCore", "BGSyncTestSupport"]),
        .testTarget(name: "MainLoopTests", dependencies: ["MainLoop"]),
        .testTarget(name: "BGSyncWireTests", dependencies: ["BGSyncWire", "BGSyncValue", "CBGSyncPlugin", "TestKit"]),
        .testTarget(
            name: "BGSyncStoreTests",
            dependencies: [
                "BGSyncStore", "BGSyncCore", "BGSyncTestSupport", "TestKit", "store-crash-child",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]),
        // Killed with SIGKILL mid-write by BGSyncStoreTests; found next to the test bundle.
        .executableTarget(
            name: "store-crash-child", dependencies: ["BGSyncStore", "BGSyncCore"], path: "Tests/StoreCrashChild"),
        .testTarget(name: "DBusKitTests", dependencies: ["DBusKit", "MainLoop", "TestKit"]),
        // bgsyncctl, run as a program against a stand-in agent.
        .testTarget(name: "BGSyncCtlTests", dependencies: ["DBusKit", "MainLoop", "TestKit"]),
        .testTarget(
            name: "BGSyncAgentTests",
            dependencies: ["BGSyncAgent", "BGSyncCore", "BGSyncTestSupport", "DBusKit", "MainLoop", "TestKit"]),
        .testTarget(
            name: "BGSyncWorkersTests",
            dependencies: [
                "BGSyncWorkers", "BGSyncCore", "BGSyncWire", "MainLoop", "TestKit",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "BGSyncPowerTests",
            dependencies: [
                "BGSyncPower", "BGSyncCore", "DBusKit", "MainLoop", "TestKit",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "BGSyncNetworkTests",
            dependencies: [
                "BGSyncNetwork", "BGSyncCore", "MainLoop", "TestKit", .product(name: "Logging", package: "swift-log"),
            ]),
        // The handlers' tests, one target per module; what they share is in HandlerTestKit.
        .testTarget(
            name: "BGSyncHandlerKitTests",
            dependencies: [
                "BGSyncHandlerKit", "BGSyncValue", "CBGSyncPlugin", "HandlerTestKit",
                // SandboxedFileTests: HandlerFiles on the worker's ConfinedFiles, driven by these two.
                "UploadHandler", "SettingsHandler",
            ]),
        .testTarget(name: "BGSyncHandlerHTTPTests", dependencies: ["BGSyncHandlerHTTP", "HandlerTestKit"]),
        .testTarget(
            name: "ExecHandlerTests",
            dependencies: ["ExecHandler", "BGSyncHandlerKit", "BGSyncValue", "HandlerTestKit"]),
        .testTarget(
            name: "UploadHandlerTests",
            dependencies: ["UploadHandler", "BGSyncHandlerKit", "BGSyncValue", "HandlerTestKit"]),
        .testTarget(
            name: "SettingsHandlerTests", dependencies: ["SettingsHandler", "BGSyncHandlerKit", "HandlerTestKit"]),
        // fetch against http_server.py's scripted answers; nginx and hostile servers are in
        // Tests/integration/test_fetch_handler.py, through the real agent.
        .testTarget(
            name: "FetchHandlerTests",
            dependencies: ["FetchHandler", "BGSyncHandlerKit", "BGSyncValue", "HandlerTestKit"]),
        // notify: python-dbusmock's notification daemon on a PrivateBus of each test's own.
        .testTarget(
            name: "NotifyHandlerTests",
            dependencies: ["NotifyHandler", "BGSyncHandlerKit", "BGSyncValue", "HandlerTestKit", "TestKit"]),
    ],
    swiftLanguageModes: [.v6]
)
