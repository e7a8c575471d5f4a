//! Credentials at rest: XChaCha20-Poly1305 with a random nonce per write and the row's
//! identity as associated data, so a sealed value copied to another row does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// Sealing failed or a sealed value did not open.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Wrong key, tampered data or a value moved from another row.
    #[error("credentials could not be decrypted (wrong INLET_SECRET_KEY or key file?)")]
    Open,
    /// The key is not 32 bytes of hex.
    #[error("secret key must be 64 hex characters (32 bytes)")]
    BadKey,
    /// The OS random source failed.
    #[error("no randomness available: {0}")]
    Random(String),
}

/// Seals and opens credentials with one 256-bit key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<key>)")
    }
}

impl SecretBox {
    /// From 32 raw key bytes.
    pub fn new(key: &[u8; 32]) -> Self {
        SecretBox {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// From 64 hex characters (surrounding white space ignored).
    pub fn from_hex(hex: &str) -> Result<Self, SecretError> {
        let hex = hex.trim();
        if hex.len() != 64 {
            return Err(SecretError::BadKey);
        }
        let mut key = [0u8; 32];
        for (i, b) in key.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or(SecretError::BadKey)?, 16)
                .map_err(|_| SecretError::BadKey)?;
        }
        Ok(SecretBox::new(&key))
    }

    /// A fresh random key, as 64 hex characters.
    pub fn generate_hex() -> Result<String, SecretError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| SecretError::Random(e.to_string()))?;
        Ok(key.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Encrypt `plain`, bound to `aad` (the row's identity).
    pub fn seal(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SecretError::Random(e.to_string()))?;
        let ct = self
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plain, aad })
            .map_err(|_| SecretError::Open)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypt what [`SecretBox::seal`] made with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SecretError> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != VERSION {
            return Err(SecretError::Open);
        }
        let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| SecretError::Open)?;
        self.cipher
            .decrypt(&nonce, Payload { msg: ct, aad })
            .map_err(|_| SecretError::Open)
    }
}

/// The known text a key check value seals, and the associated data it is sealed with.
const KEY_CHECK_TEXT: &[u8] = b"inlet credentials key check v1";
const KEY_CHECK_AAD: &[u8] = b"inlet:key-check";

impl SecretBox {
    /// A key check value for this key: a known text sealed with it, as hex. A database
    /// stores it next to the credentials the key sealed, so a different key is noticed
    /// before it seals anything (see [`SecretBox::matches_key_check`]). It reveals nothing
    /// about the key.
    pub fn key_check(&self) -> Result<String, SecretError> {
        let sealed = self.seal(KEY_CHECK_TEXT, KEY_CHECK_AAD)?;
        Ok(sealed.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Whether `check` (from [`SecretBox::key_check`]) was made with this key.
    pub fn matches_key_check(&self, check: &str) -> bool {
        let check = check.trim();
        if !check.len().is_multiple_of(2) {
            return false;
        }
        let bytes: Option<Vec<u8>> = (0..check.len())
            .step_by(2)
            .map(|i| {
                check
                    .get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect();
        bytes
            .and_then(|b| self.open(&b, KEY_CHECK_AAD).ok())
            .is_some_and(|plain| plain == KEY_CHECK_TEXT)
    }
}

/// The associated data that binds sealed credentials to their connection (by name), so
/// a sealed value copied to another connection's row does not open.
pub fn connection_aad(connection_name: &str) -> Vec<u8> {
    format!("inlet:connection:{connection_name}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_binds_to_row() {
        let b = SecretBox::from_hex(&SecretBox::generate_hex().unwrap()).unwrap();
        let s = b.seal(b"refresh-token-123", b"conn:a").unwrap();
        assert!(!s.windows(7).any(|w| w == b"refresh"), "plaintext leaked");
        assert_eq!(b.open(&s, b"conn:a").unwrap(), b"refresh-token-123");
        assert!(b.open(&s, b"conn:b").is_err());
        let other = SecretBox::from_hex(&SecretBox::generate_hex().unwrap()).unwrap();
        assert!(other.open(&s, b"conn:a").is_err());
        assert_ne!(
            s,
            b.seal(b"refresh-token-123", b"conn:a").unwrap(),
            "nonce must be random"
        );
        assert!(SecretBox::from_hex("zz").is_err());
    }

    #[test]
    fn key_check_tells_keys_apart() {
        let a = SecretBox::new(&[1u8; 32]);
        let b = SecretBox::new(&[2u8; 32]);
        let check = a.key_check().unwrap();
        assert!(a.matches_key_check(&check));
        assert!(!b.matches_key_check(&check));
        assert!(!a.matches_key_check("zz"));
        assert!(!a.matches_key_check(""));
        assert!(!a.matches_key_check(&check[..check.len() - 1]));
    }
}
