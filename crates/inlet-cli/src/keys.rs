//! The key that seals credentials at rest: `INLET_SECRET_KEY` (64 hex characters), or a
//! key file created with mode 0600 the first time credentials are written.
//!
//! A database remembers which key its credentials are sealed with: a *key check value*
//! (a known text sealed with the key, in `inlet_meta`). A key that does not open it is
//! refused before it opens or seals anything, so one database never ends up holding
//! credentials sealed with two keys. Databases made before the check value existed adopt
//! it on the first open whose key opens their stored credentials.

use crate::settings::{Settings, Target, target};
use anyhow::{Context, Result, bail};
use inlet_core::Store;
use inlet_core::secrets::SecretBox;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The `inlet_meta` entry holding the key check value.
const KEY_CHECK: &str = "credentials_key_check";

/// Where the key came from, for messages.
enum Source {
    Env,
    File(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Env => f.write_str("INLET_SECRET_KEY"),
            Source::File(p) => write!(f, "the key file {}", p.display()),
        }
    }
}

/// The key for `store`'s credentials, checked against the database's key check value.
/// `create` (a command about to seal credentials) makes a new key file when there is no
/// key — unless the database already holds sealed credentials, which a new key could
/// never open.
pub async fn for_store(store: &dyn Store, settings: &Settings, create: bool) -> Result<SecretBox> {
    let key_file = &settings.key_file;
    let stored_check = store.meta_get(KEY_CHECK).await?;
    let (key, source) = match read(key_file)? {
        Some(found) => found,
        None => {
            let sealed = store
                .list_connections()
                .await?
                .iter()
                .filter(|c| !c.credentials.is_empty())
                .count();
            if !create {
                bail!(
                    "no credentials key: set INLET_SECRET_KEY or restore the key file {}{}",
                    key_file.display(),
                    legacy_hint(settings)
                );
            }
            if stored_check.is_some() || sealed > 0 {
                bail!(
                    "no credentials key at {}, and the database {} already holds credentials sealed with a key \
                     ({sealed} connection(s)): refusing to create a new key that could not open them; \
                     set INLET_SECRET_KEY, or INLET_KEY_FILE to the original key file{}",
                    key_file.display(),
                    store.location(),
                    legacy_hint(settings)
                );
            }
            let hex = SecretBox::generate_hex()?;
            match write_private(key_file, &hex) {
                Ok(()) => {
                    eprintln!(
                        "Created the credentials key {} (keep it: without it stored credentials cannot be read).",
                        key_file.display()
                    );
                    (
                        SecretBox::from_hex(&hex)?,
                        Source::File(key_file.to_path_buf()),
                    )
                }
                // Another inlet process created it a moment ago: use that one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(key_file)?
                    .with_context(|| format!("key file {} vanished", key_file.display()))?,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot create key file {}", key_file.display()));
                }
            }
        }
    };
    check(store, &key, &source, stored_check, create).await?;
    Ok(key)
}

/// Refuse `key` unless it is the database's key; adopt the check value when the database
/// has none yet and the key is known to be right (it opened stored credentials) or is
/// about to seal the first ones.
async fn check(
    store: &dyn Store,
    key: &SecretBox,
    source: &Source,
    stored: Option<String>,
    create: bool,
) -> Result<()> {
    let mismatch = || {
        anyhow::anyhow!(
            "the credentials key from {source} is not the key the credentials in {} are sealed with \
             (its key check value does not match): use the original key (INLET_SECRET_KEY or \
             INLET_KEY_FILE); nothing was read or written with this one",
            store.location()
        )
    };
    if let Some(check) = stored {
        return if key.matches_key_check(&check) {
            Ok(())
        } else {
            Err(mismatch())
        };
    }
    let conns = store.list_connections().await?;
    let sealed: Vec<_> = conns.iter().filter(|c| !c.credentials.is_empty()).collect();
    if !sealed.is_empty() {
        let opens = sealed
            .iter()
            .any(|c| key.open(&c.credentials, &aad(&c.name)).is_ok());
        if !opens {
            return Err(mismatch());
        }
    } else if !create {
        return Ok(());
    }
    let check = key.key_check()?;
    let now = store.meta_init(KEY_CHECK, &check).await?;
    if now != check && !key.matches_key_check(&now) {
        // Another process adopted a different key in the meantime.
        return Err(mismatch());
    }
    Ok(())
}

/// The key from `INLET_SECRET_KEY` or the key file; `None` when neither exists.
fn read(key_file: &Path) -> Result<Option<(SecretBox, Source)>> {
    if let Ok(hex) = std::env::var("INLET_SECRET_KEY") {
        let key = SecretBox::from_hex(&hex).context("INLET_SECRET_KEY is invalid")?;
        return Ok(Some((key, Source::Env)));
    }
    if key_file.as_os_str().is_empty() {
        bail!(
            "no place for the PostgreSQL credentials key: neither XDG_CONFIG_HOME nor HOME is set; set INLET_SECRET_KEY or INLET_KEY_FILE"
        );
    }
    match std::fs::read_to_string(key_file) {
        Ok(hex) => {
            warn_if_readable(key_file);
            let key = SecretBox::from_hex(&hex)
                .with_context(|| format!("key file {} is invalid", key_file.display()))?;
            Ok(Some((key, Source::File(key_file.to_path_buf()))))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read key file {}", key_file.display())),
    }
}

/// The PostgreSQL key file used to default to `./inlet.key`, wherever inlet was started.
fn legacy_hint(settings: &Settings) -> String {
    let legacy = Path::new("inlet.key");
    let pg = matches!(target(&settings.database_url), Ok(Target::Postgres));
    if pg && settings.key_file != legacy && legacy.is_file() {
        format!(
            " (./inlet.key exists: the key file of older versions for PostgreSQL; move it to {} or set INLET_KEY_FILE=./inlet.key)",
            settings.key_file.display()
        )
    } else {
        String::new()
    }
}

/// Warn (once per process, on stderr) when the key file can be read by other users.
fn warn_if_readable(key_file: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        static WARNED: std::sync::Once = std::sync::Once::new();
        if let Ok(meta) = std::fs::metadata(key_file) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                WARNED.call_once(|| {
                    eprintln!(
                        "warning: the credentials key file {} can be read or changed by other users (mode {mode:04o}): run `chmod 600 {}`",
                        key_file.display(),
                        key_file.display()
                    );
                });
            }
        }
    }
    #[cfg(not(unix))]
    let _ = key_file;
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir)?;
    }
    // Written in full under a temporary name, then linked into place: the link fails if
    // another process made the key meanwhile, and nobody ever reads a half-written key.
    let tmp = PathBuf::from(format!("{}.{}.tmp", path.display(), std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let linked = opts
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(contents.as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        // A file system without hard links: create the key in place.
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists && !path.exists() => {
            let mut f = opts.open(path)?;
            f.write_all(contents.as_bytes())?;
            f.sync_all()
        }
        other => other,
    }
}

/// The associated data binding sealed credentials to their connection.
pub fn aad(connection_name: &str) -> Vec<u8> {
    inlet_core::secrets::connection_aad(connection_name)
}
