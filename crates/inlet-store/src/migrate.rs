//! Versioned, embedded, checksummed migrations.
//!
//! Adding a migration is one line: append `Migration::new(2, "name", include_str!(...))`
//! to the backend's list. At open, every migration newer than the database's is applied
//! in order, each in its own transaction, and recorded in `schema_migrations`.

use inlet_core::StoreError;

/// One schema migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Version, starting at 1, strictly increasing.
    pub version: i64,
    /// Short name (`init`).
    pub name: &'static str,
    /// The SQL script.
    pub sql: &'static str,
    /// Checksums of earlier texts of this script that a database may have recorded and
    /// that count as this version: the scripts that made record tables before those came
    /// from the stream specs (`Store::ensure_tables`). Tables an earlier text made are
    /// kept as they are and checked against the specs.
    pub earlier: &'static [&'static str],
}

impl Migration {
    const fn new(version: i64, name: &'static str, sql: &'static str) -> Self {
        Migration {
            version,
            name,
            sql,
            earlier: &[],
        }
    }

    const fn was(self, earlier: &'static [&'static str]) -> Self {
        Migration { earlier, ..self }
    }

    /// Whether a stored checksum is this script's or one of its earlier texts'.
    pub fn accepts(&self, checksum: &str) -> bool {
        self.checksum() == checksum || self.earlier.contains(&checksum)
    }

    /// Hex BLAKE3 of the script: a stored checksum that differs means the script was
    /// edited after it was applied.
    pub fn checksum(&self) -> String {
        blake3::hash(self.sql.as_bytes()).to_hex().to_string()
    }
}

/// SQLite migrations, in order.
pub static SQLITE_MIGRATIONS: &[Migration] = &[
    Migration::new(
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    )
    .was(&["06d829406906fc4ccf98afb3a4e601026ace5e42c640af8ae4dfaa13ad880142"]),
    Migration::new(
        2,
        "bulk_write_path",
        include_str!("../migrations/sqlite/0002_bulk_write_path.sql"),
    )
    .was(&["a7592560f220ce32e9bd9dbc8585dfe1c1eede65bcca206d6743d97c787070ec"]),
    Migration::new(
        3,
        "attachments",
        include_str!("../migrations/sqlite/0003_attachments.sql"),
    ),
    Migration::new(
        4,
        "reconcile_github_tiktok",
        include_str!("../migrations/sqlite/0004_reconcile_github_tiktok.sql"),
    )
    .was(&["0cb0b05686ad0ed8685af881019b86f47827994f71d5909057a9d81474f0d482"]),
    Migration::new(
        5,
        "parent_child_ebay",
        include_str!("../migrations/sqlite/0005_parent_child_ebay.sql"),
    )
    .was(&["f6ec4d630aa55871a2435ea168a0ba42715b6af23fcda6ebcc8050644c31d32a"]),
    Migration::new(
        6,
        "serve",
        include_str!("../migrations/sqlite/0006_serve.sql"),
    ),
    Migration::new(
        7,
        "run_quota",
        include_str!("../migrations/sqlite/0007_run_quota.sql"),
    ),
    Migration::new(
        8,
        "meta",
        include_str!("../migrations/sqlite/0008_meta.sql"),
    ),
    Migration::new(
        9,
        "staging_by_run",
        include_str!("../migrations/sqlite/0009_staging_by_run.sql"),
    ),
    Migration::new(
        10,
        "run_waiting",
        include_str!("../migrations/sqlite/0010_run_waiting.sql"),
    ),
    Migration::new(
        11,
        "workspaces",
        include_str!("../migrations/sqlite/0011_workspaces.sql"),
    ),
];

/// PostgreSQL migrations, in order.
pub static POSTGRES_MIGRATIONS: &[Migration] = &[
    Migration::new(
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    )
    .was(&["c5f3b7c6a4d818052d208f7f5b0d518ed8b7681cad8dc7972ca035716a971754"]),
    Migration::new(
        2,
        "bulk_write_path",
        include_str!("../migrations/postgres/0002_bulk_write_path.sql"),
    )
    .was(&["3e8ae5e221677647ab97196da414febf34b9f7398697b5834221ece6b90bdada"]),
    Migration::new(
        3,
        "attachments",
        include_str!("../migrations/postgres/0003_attachments.sql"),
    ),
    Migration::new(
        4,
        "reconcile_github_tiktok",
        include_str!("../migrations/postgres/0004_reconcile_github_tiktok.sql"),
    )
    .was(&["df4a9567c725535a3cf87fc29217123a964ad00cbc2fe8ee77021b10097aa0d3"]),
    Migration::new(
        5,
        "parent_child_ebay",
        include_str!("../migrations/postgres/0005_parent_child_ebay.sql"),
    )
    .was(&["1c86dbb1d7af6ab23bdde2e88120a769d61366775ae7b961fce1bc80d9593d73"]),
    Migration::new(
        6,
        "serve",
        include_str!("../migrations/postgres/0006_serve.sql"),
    ),
    Migration::new(
        7,
        "run_quota",
        include_str!("../migrations/postgres/0007_run_quota.sql"),
    ),
    Migration::new(
        8,
        "meta",
        include_str!("../migrations/postgres/0008_meta.sql"),
    ),
    Migration::new(
        9,
        "staging_by_run",
        include_str!("../migrations/postgres/0009_staging_by_run.sql"),
    ),
    Migration::new(
        10,
        "run_waiting",
        include_str!("../migrations/postgres/0010_run_waiting.sql"),
    ),
    Migration::new(
        11,
        "workspaces",
        include_str!("../migrations/postgres/0011_workspaces.sql"),
    ),
];

/// A row of `schema_migrations`.
pub(crate) struct Applied {
    pub version: i64,
    pub checksum: String,
}

/// Check what the database has applied against what this binary knows; return the
/// migrations still to apply, in order.
pub(crate) fn pending(
    known: &'static [Migration],
    applied: &[Applied],
) -> Result<Vec<&'static Migration>, StoreError> {
    let newest = known.last().map_or(0, |m| m.version);
    for a in applied {
        let Some(m) = known.iter().find(|m| m.version == a.version) else {
            return Err(StoreError::Schema(format!(
                "the database has schema version {} but this inlet binary knows versions up \
                 to {newest}: upgrade inlet (or use a database made by this version)",
                a.version
            )));
        };
        if !m.accepts(&a.checksum) {
            return Err(StoreError::Schema(format!(
                "migration {:04}_{} was changed after it was applied: stored checksum {} \
                 differs from this binary's {}",
                m.version,
                m.name,
                a.checksum,
                m.checksum()
            )));
        }
    }
    Ok(known
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase() {
        // Strictly increasing (a number may be skipped by a branch that has not landed),
        // and the same versions on both backends.
        for list in [SQLITE_MIGRATIONS, POSTGRES_MIGRATIONS] {
            assert_eq!(list[0].version, 1);
            for w in list.windows(2) {
                assert!(
                    w[0].version < w[1].version,
                    "{} then {}",
                    w[0].version,
                    w[1].version
                );
            }
        }
        let versions = |l: &[Migration]| l.iter().map(|m| (m.version, m.name)).collect::<Vec<_>>();
        assert_eq!(versions(SQLITE_MIGRATIONS), versions(POSTGRES_MIGRATIONS));
    }

    #[test]
    fn detects_drift_and_newer() {
        let ok = Applied {
            version: 1,
            checksum: SQLITE_MIGRATIONS[0].checksum(),
        };
        // Version 1 applied: exactly the later ones are pending, in order.
        let later: Vec<i64> = SQLITE_MIGRATIONS[1..].iter().map(|m| m.version).collect();
        assert!(
            pending(SQLITE_MIGRATIONS, &[ok]).is_ok_and(|p| p
                .iter()
                .map(|m| m.version)
                .collect::<Vec<_>>()
                == later)
        );
        let bad = Applied {
            version: 1,
            checksum: "x".into(),
        };
        assert!(matches!(
            pending(SQLITE_MIGRATIONS, &[bad]),
            Err(StoreError::Schema(_))
        ));
        let newer = Applied {
            version: 99,
            checksum: "x".into(),
        };
        assert!(matches!(
            pending(SQLITE_MIGRATIONS, &[newer]),
            Err(StoreError::Schema(_))
        ));
        assert_eq!(
            pending(SQLITE_MIGRATIONS, &[]).map(|p| p.len()).ok(),
            Some(SQLITE_MIGRATIONS.len())
        );
    }

    #[test]
    fn earlier_texts_are_those_of_inlet_0_1() {
        // The scripts that made record tables are accepted as recorded by inlet 0.1
        // (tests/fixtures/v10 holds them); every other script is unchanged since.
        let old: [(&[Migration], [&str; 10]); 2] = [
            (
                SQLITE_MIGRATIONS,
                [
                    include_str!("../tests/fixtures/v10/sqlite/0001_init.sql"),
                    include_str!("../tests/fixtures/v10/sqlite/0002_bulk_write_path.sql"),
                    include_str!("../tests/fixtures/v10/sqlite/0003_attachments.sql"),
                    include_str!("../tests/fixtures/v10/sqlite/0004_reconcile_github_tiktok.sql"),
                    include_str!("../tests/fixtures/v10/sqlite/0005_parent_child_ebay.sql"),
                    include_str!("../tests/fixtures/v10/sqlite/0006_serve.sql"),
                    include_str!("../tests/fixtures/v10/sqlite/0007_run_quota.sql"),
                    include_str!("../tests/fixtures/v10/sqlite/0008_meta.sql"),
                    include_str!("../tests/fixtures/v10/sqlite/0009_staging_by_run.sql"),
                    include_str!("../tests/fixtures/v10/sqlite/0010_run_waiting.sql"),
                ],
            ),
            (
                POSTGRES_MIGRATIONS,
                [
                    include_str!("../tests/fixtures/v10/postgres/0001_init.sql"),
                    include_str!("../tests/fixtures/v10/postgres/0002_bulk_write_path.sql"),
                    include_str!("../tests/fixtures/v10/postgres/0003_attachments.sql"),
                    include_str!("../tests/fixtures/v10/postgres/0004_reconcile_github_tiktok.sql"),
                    include_str!("../tests/fixtures/v10/postgres/0005_parent_child_ebay.sql"),
                    include_str!("../tests/fixtures/v10/postgres/0006_serve.sql"),
                    include_str!("../tests/fixtures/v10/postgres/0007_run_quota.sql"),
                    include_str!("../tests/fixtures/v10/postgres/0008_meta.sql"),
                    include_str!("../tests/fixtures/v10/postgres/0009_staging_by_run.sql"),
                    include_str!("../tests/fixtures/v10/postgres/0010_run_waiting.sql"),
                ],
            ),
        ];
        for (list, scripts) in old {
            for (m, sql) in list.iter().zip(scripts) {
                let sum = blake3::hash(sql.as_bytes()).to_hex().to_string();
                assert!(m.accepts(&sum), "{:04}_{}", m.version, m.name);
                assert_eq!(
                    m.sql == sql,
                    m.earlier.is_empty(),
                    "{:04}_{}: an edited script names its earlier text",
                    m.version,
                    m.name
                );
            }
        }
        assert!(!SQLITE_MIGRATIONS[0].accepts("x"));
    }
}
