//! The content-addressed blob store for attachments: the bytes of each attachment live in
//! `<root>/ab/cd/<blake3 hex>` where `ab` and `cd` are the first two byte pairs of the hash.
//!
//! A blob is written to a temporary file in its final directory, flushed, then renamed into
//! place, so a crash never leaves a partial blob under a hash name; the same bytes stored
//! twice are one file (the second write finds it and does nothing).

use inlet_core::BlobStore;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Blobs under one directory.
#[derive(Debug)]
pub struct FsBlobStore {
    root: PathBuf,
    seq: AtomicU64,
}

impl FsBlobStore {
    /// Blobs under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsBlobStore {
            root: root.into(),
            seq: AtomicU64::new(0),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob named `hash` (hex BLAKE3) lives.
    pub fn path_of(&self, hash: &str) -> PathBuf {
        let (a, b) = (
            hash.get(0..2).unwrap_or("00"),
            hash.get(2..4).unwrap_or("00"),
        );
        self.root.join(a).join(b).join(hash)
    }

    /// Store `bytes`; returns the hex BLAKE3 hash that names them.
    pub fn put_bytes(&self, bytes: &[u8]) -> std::io::Result<String> {
        let hash = blake3::hash(bytes).to_hex().to_string();
        let path = self.path_of(&hash);
        if path.exists() {
            return Ok(hash);
        }
        let dir = path.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(
            ".{hash}.{}.{}.tmp",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(hash)
    }
}

impl BlobStore for FsBlobStore {
    fn put(&self, bytes: &[u8]) -> Result<String, String> {
        self.put_bytes(bytes)
            .map_err(|e| format!("cannot write blob under {}: {e}", self.root.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_stored_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = FsBlobStore::new(dir.path().join("blobs"));
        let a = blobs.put_bytes(b"\x89PNG hello").expect("put");
        let b = blobs.put_bytes(b"\x89PNG hello").expect("put again");
        let c = blobs.put_bytes(b"other").expect("put other");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, blake3::hash(b"\x89PNG hello").to_hex().to_string());
        let p = blobs.path_of(&a);
        assert!(p.starts_with(dir.path().join("blobs").join(&a[0..2]).join(&a[2..4])));
        assert_eq!(std::fs::read(&p).expect("read"), b"\x89PNG hello");
        // Nothing else (no temporary files) is left behind.
        let files: Vec<_> = std::fs::read_dir(p.parent().expect("dir"))
            .expect("ls")
            .collect();
        assert_eq!(files.len(), 1);
    }
}
