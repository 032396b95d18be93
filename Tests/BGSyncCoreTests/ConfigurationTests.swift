// SPDX-License-Identifier: Apache-2.0
import BGSyncCore
import Testing

@Suite struct ConfigurationTests {
    static let defaults = AgentConfiguration()

    private func applied(_ text: String, path: String = "/etc/bgsync/bgsyncd.conf") -> (
        AgentConfiguration, [ConfigurationDiagnostic]
    ) {
        var configuration = AgentConfiguration()
        let diagnostics = configuration.apply(fileContents: text, path: path)
        return (configuration, diagnostics)
    }

    @Test func knownKeysListsEveryKey() {
        #expect(
            AgentConfiguration.knownKeys == [
                "sync.max-attempts", "sync.retry-initial-delay", "sync.retry-factor", "sync.retry-jitter",
                "sync.event-timeout", "sync.min-periodic-interval", "sync.event-stall-timeout", "sync.event-ceiling",
                "sync.interrupt-grace-period", "limits.registrations-per-app", "limits.concurrent-events",
                "power.battery-low-threshold", "paths.state-dir", "paths.plugin-dirs",
            ])
    }

    @Test func anEmptyFileChangesNothing() {
        let (configuration, diagnostics) = applied("")
        #expect(configuration == Self.defaults)
        #expect(diagnostics.isEmpty)
        #expect(configuration.stateDirectory == nil)
        #expect(configuration.pluginDirectories == nil)
    }

    @Test func everyKeySetsItsField() {
        let (configuration, diagnostics) = applied(
            """
            [sync]
            max-attempts=7
            retry-initial-delay=0.2
            retry-factor=2.5
            retry-jitter=0.1
            event-timeout=30
            min-periodic-interval=60
            event-stall-timeout=2min
            event-ceiling=2h
            interrupt-grace-period=0.5
            [limits]
            registrations-per-app=50
            concurrent-events=2
            [power]
            battery-low-threshold=35
            [paths]
            state-dir=/var/tmp/bgsync state
            plugin-dirs=/usr/lib/bgsync/handlers;/opt/handlers
            """)
        #expect(diagnostics == [])
        var expected = AgentConfiguration()
        expected.sync.maxAttempts = 7
        expected.sync.retryInitialDelay = 0.2
        expected.sync.retryFactor = 2.5
        expected.sync.retryJitter = 0.1
        expected.sync.eventTimeout = 30
        expected.sync.minPeriodicInterval = 60
        expected.sync.registrationsPerApp = 50
        expected.sync.concurrentEvents = 2
        expected.sync.eventStallTimeout = 120
        expected.sync.eventCeiling = 7200
        expected.sync.interruptGracePeriod = 0.5
        expected.sync.batteryLowThreshold = 35
        expected.stateDirectory = "/var/tmp/bgsync state"
        expected.pluginDirectories = ["/usr/lib/bgsync/handlers", "/opt/handlers"]
        #expect(configuration == expected)
    }

    @Test(
        arguments: [
            ("retry-initial-delay=0.05", \SyncSettings.retryInitialDelay, 0.05),
            ("retry-initial-delay=.5", \SyncSettings.retryInitialDelay, 0.5),
            ("retry-initial-delay=200ms", \SyncSettings.retryInitialDelay, 0.2),
            ("retry-initial-delay=5min", \SyncSettings.retryInitialDelay, 300),
            ("retry-initial-delay=2 h", \SyncSettings.retryInitialDelay, 7200),
            ("event-timeout=1.5s", \SyncSettings.eventTimeout, 1.5),
            ("min-periodic-interval=1d", \SyncSettings.minPeriodicInterval, 86400),
            ("retry-factor=1", \SyncSettings.retryFactor, 1),
            ("retry-factor=1e1", \SyncSettings.retryFactor, 10),
            ("retry-jitter=0", \SyncSettings.retryJitter, 0),
            ("retry-jitter=1", \SyncSettings.retryJitter, 1),
            ("retry-jitter=0.333", \SyncSettings.retryJitter, 0.333),
        ] as [(String, KeyPath<SyncSettings, Double> & Sendable, Double)])
    func fractionsAndUnits(line: String, field: KeyPath<SyncSettings, Double> & Sendable, expected: Double) {
        let (configuration, diagnostics) = applied("[sync]\n" + line)
        #expect(diagnostics == [])
        #expect(abs(configuration.sync[keyPath: field] - expected) < 1e-12)
    }

    @Test func commentsBlankLinesAndWhitespaceAreIgnored() {
        let (configuration, diagnostics) = applied(
            "\u{FEFF}# bgsyncd.conf\r\n\r\n; another comment\r\n   [ sync ]   \r\n\t max-attempts  =  9 \t\r\n  # max-attempts=1\r\n;max-attempts=2\r\n"
        )
        #expect(diagnostics == [])
        #expect(configuration.sync.maxAttempts == 9)
    }

    @Test func unknownKeysAndSectionsAreReportedWithTheirLines() {
        let (configuration, diagnostics) = applied(
            """
            [sync]
            max-attempt=5
            colour=blue
            concurrent-events=3
            [synk]
            max-attempts=8
            [network]
            metered=no
            """, path: "/home/u/.config/bgsync/bgsyncd.conf")
        #expect(diagnostics.map(\.line) == [2, 3, 4, 5, 7])
        #expect(diagnostics.allSatisfy { $0.file == "/home/u/.config/bgsync/bgsyncd.conf" })
        #expect(diagnostics[0].message == "unknown key 'max-attempt' in [sync]; did you mean 'max-attempts'?")
        #expect(diagnostics[1].message.hasPrefix("unknown key 'colour' in [sync]; the keys there are max-attempts, "))
        #expect(diagnostics[2].message == "unknown key 'concurrent-events' in [sync]; it belongs in [limits]")
        #expect(diagnostics[3].message == "unknown section [synk], its keys are ignored; did you mean [sync]?")
        #expect(
            diagnostics[4].message
                == "unknown section [network], its keys are ignored; the sections are [sync], [limits], [power], [paths]"
        )
        #expect(
            diagnostics[0].description
                == "/home/u/.config/bgsync/bgsyncd.conf:2: unknown key 'max-attempt' in [sync]; did you mean 'max-attempts'?"
        )
        // Keys under an unknown section are not applied, even known ones.
        #expect(configuration == Self.defaults)
    }

    @Test func keysAreCaseSensitiveButSuggestedCaseInsensitively() {
        let (_, diagnostics) = applied("[Sync]\n[sync]\nMax-Attempts=4")
        #expect(
            diagnostics.map(\.message) == [
                "unknown section [Sync], its keys are ignored; did you mean [sync]?",
                "unknown key 'Max-Attempts' in [sync]; did you mean 'max-attempts'?",
            ])
    }

    @Test(arguments: [
        ("sync", "max-attempts", "0"), ("sync", "max-attempts", "-3"), ("sync", "max-attempts", "2.5"),
        ("sync", "max-attempts", "101"), ("sync", "max-attempts", "many"),
        ("sync", "max-attempts", "99999999999999999999999"),
        ("sync", "retry-initial-delay", "0"), ("sync", "retry-initial-delay", "-1"),
        ("sync", "retry-initial-delay", "soon"),
        ("sync", "retry-initial-delay", "5 fortnights"), ("sync", "retry-initial-delay", "inf"),
        ("sync", "retry-initial-delay", "nan"),
        ("sync", "retry-initial-delay", "0x10"),
        ("sync", "retry-factor", "abc"), ("sync", "retry-factor", "0.5"), ("sync", "retry-factor", "1e400"),
        ("sync", "retry-jitter", "1.5"), ("sync", "retry-jitter", "-0.1"), ("sync", "retry-jitter", "10%"),
        ("sync", "event-timeout", "0"), ("sync", "min-periodic-interval", "-5min"),
        ("sync", "event-stall-timeout", "0"), ("sync", "event-ceiling", "never"),
        ("sync", "interrupt-grace-period", "-1"),
        ("power", "battery-low-threshold", "120"), ("power", "battery-low-threshold", "-5"),
        ("limits", "registrations-per-app", "0"), ("limits", "registrations-per-app", "1e3"),
        ("limits", "concurrent-events", "four"), ("limits", "concurrent-events", "-1"),
        ("paths", "state-dir", "bgsync"), ("paths", "state-dir", "~/.local/state/bgsync"),
        ("paths", "state-dir", "$XDG_STATE_HOME/bgsync"),
        ("paths", "plugin-dirs", "/usr/lib/bgsync;handlers"), ("paths", "plugin-dirs", "~/handlers"),
    ])
    func aBadValueIsReportedAndKeepsThePreviousValue(section: String, key: String, value: String) {
        let (configuration, diagnostics) = applied("[\(section)]\n\n\(key)=\(value)\n")
        #expect(configuration == Self.defaults)
        #expect(diagnostics.count == 1)
        #expect(diagnostics.first?.line == 3)
        #expect(diagnostics.first?.message.hasPrefix("\(key) must be") == true)
        if key != "plugin-dirs" {
            #expect(diagnostics.first?.message.contains("got '\(value)'") == true)
        }
    }

    @Test func messagesSayWhatIsAccepted() {
        let (_, diagnostics) = applied("[sync]\nretry-factor=abc\nmax-attempts=5 # five\n[paths]\nplugin-dirs=/a;b")
        #expect(
            diagnostics.map(\.message) == [
                "retry-factor must be a number ≥ 1, got 'abc'",
                "max-attempts must be a whole number from 1 to 100, got '5 # five' (comments go on their own line, starting with # or ;)",
                "plugin-dirs must be absolute paths separated by ';' (~ and $VARIABLES are not expanded); 'b' is not absolute",
            ])
    }

    @Test func aBadValueKeepsWhatAnEarlierFileSet() {
        var configuration = AgentConfiguration()
        #expect(configuration.apply(fileContents: "[sync]\nretry-factor=2", path: "/etc/bgsync/bgsyncd.conf").isEmpty)
        let diagnostics = configuration.apply(
            fileContents: "[sync]\nretry-factor=0", path: "/home/u/.config/bgsync/bgsyncd.conf")
        #expect(
            diagnostics.map(\.description) == [
                "/home/u/.config/bgsync/bgsyncd.conf:2: retry-factor must be a number ≥ 1, got '0'"
            ])
        #expect(configuration.sync.retryFactor == 2)
    }

    @Test func aLaterFileOverridesAnEarlierOneKeyByKey() {
        var configuration = AgentConfiguration()
        let system = """
            [sync]
            max-attempts=5
            event-timeout=60
            [paths]
            plugin-dirs=/usr/lib/bgsync/handlers
            """
        let user = """
            [sync]
            max-attempts=2
            [paths]
            state-dir=/srv/bgsync
            """
        #expect(configuration.apply(fileContents: system, path: "/etc/bgsync/bgsyncd.conf").isEmpty)
        #expect(configuration.apply(fileContents: user, path: "/home/u/.config/bgsync/bgsyncd.conf").isEmpty)
        #expect(configuration.sync.maxAttempts == 2)
        #expect(configuration.sync.eventTimeout == 60)
        #expect(configuration.pluginDirectories == ["/usr/lib/bgsync/handlers"])
        #expect(configuration.stateDirectory == "/srv/bgsync")
    }

    @Test func theLastAssignmentInAFileWins() {
        let (configuration, diagnostics) = applied(
            "[limits]\nconcurrent-events=2\n[sync]\n[limits]\nconcurrent-events=8")
        #expect(diagnostics.isEmpty)
        #expect(configuration.sync.concurrentEvents == 8)
    }

    @Test func anEmptyValueRestoresTheDefault() {
        var configuration = AgentConfiguration()
        _ = configuration.apply(
            fileContents: "[sync]\nretry-jitter=0.5\nmax-attempts=9\n[paths]\nstate-dir=/a\nplugin-dirs=/b",
            path: "a.conf")
        let diagnostics = configuration.apply(
            fileContents: "[sync]\nretry-jitter=\nmax-attempts =\n[paths]\nstate-dir=\nplugin-dirs= ; ", path: "b.conf")
        #expect(diagnostics.isEmpty)
        #expect(configuration == Self.defaults)
    }

    @Test func pluginDirectoriesAreTrimmedAndEmptyItemsDropped() {
        let (configuration, diagnostics) = applied("[paths]\nplugin-dirs = /opt/a ; /opt/b c ;;")
        #expect(diagnostics.isEmpty)
        #expect(configuration.pluginDirectories == ["/opt/a", "/opt/b c"])
    }

    @Test func malformedLinesAndKeysBeforeAnySectionAreReported() {
        let (configuration, diagnostics) = applied(
            """
            max-attempts=4
            retry=1
            [sync
            just some words
            =5
            []
            [sync]
            retry-factor=4
            """)
        #expect(
            diagnostics.map(\.description) == [
                "/etc/bgsync/bgsyncd.conf:1: 'max-attempts' comes before any section header; put it under [sync]",
                "/etc/bgsync/bgsyncd.conf:2: 'retry' comes before any section header; "
                    + "keys go under [sync], [limits], [power] or [paths]",
                "/etc/bgsync/bgsyncd.conf:3: malformed section header '[sync'; "
                    + "write it as [sync], [limits], [power] or [paths]",
                "/etc/bgsync/bgsyncd.conf:4: expected 'key=value', a [section] header or a comment (# or ;), got 'just some words'",
                "/etc/bgsync/bgsyncd.conf:5: '=5' has no key before '='",
                "/etc/bgsync/bgsyncd.conf:6: unknown section [], its keys are ignored; "
                    + "the sections are [sync], [limits], [power], [paths]",
            ])
        var expected = AgentConfiguration()
        expected.sync.retryFactor = 4
        #expect(configuration == expected)
    }

    @Test func oddInputNeverCrashes() {
        var generator = SystemRandomNumberGenerator()
        let pieces = [
            "[", "]", "=", "#", ";", "\n", "\r\n", " ", "sync", "paths", "limits", "max-attempts", "state-dir",
            "plugin-dirs", "1e309", "-", ".", "0", "\u{0}", "é", "🙂", "\u{FEFF}", "\r",
        ]
        for _ in 0..<300 {
            let text = (0..<Int.random(in: 0...40, using: &generator)).map { _ in
                pieces.randomElement(using: &generator)!
            }.joined()
            var configuration = AgentConfiguration()
            for diagnostic in configuration.apply(fileContents: text, path: "fuzz.conf") {
                #expect(diagnostic.line >= 1)
            }
        }
    }
}
