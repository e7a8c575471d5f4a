//! API keys: `ik_` + 64 hex characters of randomness, shown once; stored as a BLAKE3
//! hash with a short prefix to tell keys apart.

/// A newly made key.
#[derive(Debug)]
pub struct NewKey {
    /// The key itself: print once, never store.
    pub key: String,
    /// Its first characters, safe to show.
    pub prefix: String,
    /// Hex BLAKE3 of the key, what the store keeps.
    pub hash: String,
}

/// A new random key.
pub fn generate() -> Result<NewKey, getrandom::Error> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw)?;
    let key = format!(
        "ik_{}",
        raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    Ok(NewKey {
        prefix: key[..9].to_string(),
        hash: hash(&key),
        key,
    })
}

/// The stored form of a key.
pub fn hash(key: &str) -> String {
    blake3::hash(key.as_bytes()).to_hex().to_string()
}
