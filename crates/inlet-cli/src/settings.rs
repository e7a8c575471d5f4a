//! Settings: defaults, then the config file, then the environment, then flags.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The default SQLite database.
pub const DEFAULT_DATABASE: &str = "inlet.db";

/// `inlet.toml`: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// `sqlite:PATH`, a plain path, or `postgres://...`.
    pub database_url: Option<String>,
    /// Where the credentials key lives (when `INLET_SECRET_KEY` is not set).
    pub key_file: Option<PathBuf>,
    /// `[attachments]`: downloading images linked from synced records.
    pub attachments: Option<crate::attachments::AttachmentSettings>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The database URL.
    pub database_url: String,
    /// The key file.
    pub key_file: PathBuf,
    /// Attachment downloads (`[attachments]`, then `INLET_ATTACHMENTS_*`).
    pub attachments: crate::attachments::AttachmentSettings,
}

/// Where a database URL points.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL server.
    Postgres,
}

/// Classify a database URL with `inlet_store`'s own parser (the one `inlet_store::open`
/// uses), to check it before anything is opened or created.
pub fn target(url: &str) -> Result<Target> {
    Ok(match inlet_store::parse_database_url(url)? {
        inlet_store::DatabaseTarget::Postgres(_) => Target::Postgres,
        inlet_store::DatabaseTarget::Sqlite(path) => Target::Sqlite(path),
    })
}

impl Settings {
    /// Resolve: `config` is `--config` (must exist when given); `./inlet.toml` is read
    /// when present; `database_url` is the flag or `INLET_DATABASE_URL`.
    pub fn resolve(config: Option<&Path>, database_url: Option<String>) -> Result<Settings> {
        let file = match config {
            Some(p) => read_file(p)?,
            None if Path::new("inlet.toml").exists() => read_file(Path::new("inlet.toml"))?,
            None => FileSettings::default(),
        };
        let database_url = database_url
            .or(file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE.into());
        let key_file = match (std::env::var_os("INLET_KEY_FILE"), file.key_file) {
            (Some(p), _) => PathBuf::from(p),
            (None, Some(p)) => p,
            (None, None) => match target(&database_url)? {
                Target::Sqlite(p) => PathBuf::from(format!("{}.key", p.display())),
                Target::Postgres => default_pg_key_file(),
            },
        };
        let attachments = file
            .attachments
            .unwrap_or_default()
            .resolve(&database_url)?;
        Ok(Settings {
            database_url,
            key_file,
            attachments,
        })
    }
}

/// The key file for a PostgreSQL database when none is configured: one per user, in the
/// user's configuration directory (`$XDG_CONFIG_HOME/inlet/inlet.key`, by default
/// `~/.config/inlet/inlet.key`), so it does not depend on the working directory. Empty
/// when neither `XDG_CONFIG_HOME` nor `HOME` is set.
pub fn default_pg_key_file() -> PathBuf {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").and_then(absolute) {
        return dir.join("inlet").join("inlet.key");
    }
    match std::env::var_os("HOME").and_then(absolute) {
        Some(home) => home.join(".config").join("inlet").join("inlet.key"),
        // No place: an empty path, refused by `keys` only when a key file is needed (so
        // commands that need no key still work).
        None => PathBuf::new(),
    }
}

fn read_file(p: &Path) -> Result<FileSettings> {
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("cannot read config file {}", p.display()))?;
    toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("config file {} is invalid: {}", p.display(), e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_urls() {
        assert_eq!(
            target("inlet.db").unwrap(),
            Target::Sqlite("inlet.db".into())
        );
        assert_eq!(
            target("sqlite:/tmp/a.db").unwrap(),
            Target::Sqlite("/tmp/a.db".into())
        );
        assert_eq!(
            target("sqlite:///tmp/a.db").unwrap(),
            Target::Sqlite("/tmp/a.db".into())
        );
        assert_eq!(target("postgres://u@h/db").unwrap(), Target::Postgres);
        assert!(target("mysql://x").is_err());
        assert!(target("").is_err());
    }
}
