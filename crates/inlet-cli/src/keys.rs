//! The key that seals credentials at rest: `INLET_SECRET_KEY` (64 hex characters), or a
//! key file created with mode 0600 the first time credentials are written.

use anyhow::{Context, Result, bail};
use inlet_core::secrets::SecretBox;
use std::io::Write;
use std::path::Path;

/// Load the key; `create` makes a new key file when there is none.
pub fn load(key_file: &Path, create: bool) -> Result<SecretBox> {
    if let Ok(hex) = std::env::var("INLET_SECRET_KEY") {
        return SecretBox::from_hex(&hex).context("INLET_SECRET_KEY is invalid");
    }
    match std::fs::read_to_string(key_file) {
        Ok(hex) => SecretBox::from_hex(&hex)
            .with_context(|| format!("key file {} is invalid", key_file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let hex = SecretBox::generate_hex()?;
            write_private(key_file, &hex)?;
            eprintln!(
                "Created the credentials key {} (keep it: without it stored credentials cannot be read).",
                key_file.display()
            );
            Ok(SecretBox::from_hex(&hex)?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no credentials key: set INLET_SECRET_KEY or restore the key file {}",
            key_file.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot read key file {}", key_file.display())),
    }
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create key file {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// The associated data binding sealed credentials to their connection.
pub fn aad(connection_name: &str) -> Vec<u8> {
    inlet_core::secrets::connection_aad(connection_name)
}
