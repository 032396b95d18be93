// SPDX-License-Identifier: Apache-2.0
import GRDB

/// The registrations table and its migrations. Never edit a shipped migration: add a new one.
enum StoreSchema {
    static let table = "registrations"

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        // A schema change must never erase anyone's registrations.
        migrator.eraseDatabaseOnSchemaChange = false
        migrator.registerMigration("v1: registrations") { db in
            // Enumerations are kept as their raw strings so that the file reads well in sqlite3.
            // Dates are Unix seconds (REAL). `options` was the JSON of Swift's synthesised Codable
            // of the option enum until v2.
            try db.execute(
                sql: """
                    CREATE TABLE registrations (
                        app_id TEXT NOT NULL,
                        kind TEXT NOT NULL CHECK (kind IN ('one-off', 'periodic')),
                        tag TEXT NOT NULL,
                        handler TEXT NOT NULL,
                        options TEXT NOT NULL,
                        network TEXT NOT NULL CHECK (network IN ('any', 'unmetered')),
                        max_attempts INTEGER NOT NULL CHECK (max_attempts >= 0),
                        attempts INTEGER NOT NULL CHECK (attempts >= 0),
                        state TEXT NOT NULL,
                        next_attempt REAL,
                        last_error TEXT NOT NULL DEFAULT '',
                        min_interval REAL,
                        interval_start REAL,
                        sequence INTEGER NOT NULL,
                        PRIMARY KEY (app_id, kind, tag)
                    )
                    """)
        }
        migrator.registerMigration("v2: options as GVariant text") { db in
            // `options` becomes one a{sv} in GVariant text, keys in byte order, as
            // g_variant_print(value, TRUE) writes it: `{'outbox': <'/home/u/outbox'>}`, or
            // `@a{sv} {}` for none. It reads in sqlite3 as gdbus and bgsyncctl print options, and
            // g_variant_parse reads it back with every type.
            try LegacyOptions.rewriteAsGVariantText(db)
        }
        migrator.registerMigration("conditions: power, expires_at, not_before") { db in
            // NULL: the option was not given (power then counts as 'any', except that a periodic
            // registration waits while the profile is power-saver).
            try db.execute(
                sql: """
                    ALTER TABLE registrations ADD COLUMN power TEXT
                        CHECK (power IS NULL OR power IN ('any', 'ac', 'battery-not-low'));
                    ALTER TABLE registrations ADD COLUMN expires_at REAL;
                    ALTER TABLE registrations ADD COLUMN not_before REAL;
                    """)
        }
        migrator.registerMigration("v3: confinement") { db in
            // Text a person can read in sqlite3: 'unconfined', or 'KIND:APP-ID:ROOT' (app ids have
            // no ':'; the root, last, may). Rows from before were all made unconfined (the
            // sandbox check ran at Register only), so that is what they stay.
            try db.execute(sql: "ALTER TABLE registrations ADD COLUMN confinement TEXT NOT NULL DEFAULT 'unconfined'")
        }
        migrator.registerMigration("v4: history") { db in
            // What each app did per day (UTC), for ListApps: bytes its events moved, and when its
            // last event of the day ended (Unix seconds) and how. Days before the 30 ListApps
            // sums are dropped at start, but for each app's latest.
            try db.execute(
                sql: """
                    CREATE TABLE history (
                        app_id TEXT NOT NULL,
                        day INTEGER NOT NULL,
                        bytes_sent INTEGER NOT NULL DEFAULT 0,
                        bytes_received INTEGER NOT NULL DEFAULT 0,
                        last_sync REAL NOT NULL,
                        last_outcome TEXT NOT NULL,
                        PRIMARY KEY (app_id, day)
                    )
                    """)
        }
        return migrator
    }
}
