//! Small dependency-free helpers: a seeded RNG, base36, percent/base64 decoding, query parsing.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// SplitMix64: tiny, fast, good enough for deterministic simulation data.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator derived from a seed and two stream selectors.
    pub(crate) fn derive(seed: u64, salt: u64, index: u64) -> Self {
        Rng(mix(
            seed ^ mix(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ mix(index))
        ))
    }

    /// Next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n > 0`; returns 0 for `n == 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The SplitMix64 finaliser: a strong 64-bit hash of `z`.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Appends the lowercase base36 form of `v` to `out`.
pub(crate) fn push_base36(out: &mut String, mut v: u64) {
    let mut tmp = [0u8; 16];
    let mut n = 0;
    loop {
        let d = (v % 36) as u8;
        tmp[n] = if d < 10 { b'0' + d } else { b'a' + d - 10 };
        n += 1;
        v /= 36;
        if v == 0 {
            break;
        }
    }
    for &b in tmp[..n].iter().rev() {
        out.push(b as char);
    }
}

/// Lowercase base36 form of `v`.
pub(crate) fn base36(v: u64) -> String {
    let mut s = String::with_capacity(8);
    push_base36(&mut s, v);
    s
}

/// Parses lowercase/uppercase base36; `None` when empty, invalid or overflowing.
pub(crate) fn parse_base36(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 12 {
        return None;
    }
    let mut v: u64 = 0;
    for c in s.bytes() {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'z' => c - b'a' + 10,
            b'A'..=b'Z' => c - b'A' + 10,
            _ => return None,
        };
        v = v.checked_mul(36)?.checked_add(d as u64)?;
    }
    Some(v)
}

/// Splits a fullname like `t4_abc` into (`"t4"`, id value).
pub(crate) fn parse_fullname(s: &str) -> Option<(&str, u64)> {
    let (kind, id) = s.split_once('_')?;
    Some((kind, parse_base36(id)?))
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space); `None` on bad escapes
/// or invalid UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hi = (hex[0] as char).to_digit(16)?;
                let lo = (hex[1] as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Parses `a=1&b=2` into decoded pairs; `None` if any part is malformed.
pub(crate) fn parse_form(s: &str) -> Option<Vec<(String, String)>> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

/// Decodes standard base64 (padding optional); `None` on invalid input.
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Locks a mutex, ignoring poisoning (the simulator's state stays usable after a panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Read-locks, ignoring poisoning.
pub(crate) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

/// Write-locks, ignoring poisoning.
pub(crate) fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_roundtrip() {
        for v in [
            0u64,
            35,
            36,
            0x2000_0000,
            0x3000_0000 + 12345,
            u32::MAX as u64,
        ] {
            assert_eq!(parse_base36(&base36(v)), Some(v));
        }
        assert_eq!(base36(35), "z");
        assert_eq!(parse_fullname("t4_10"), Some(("t4", 36)));
        assert_eq!(parse_fullname("t4_"), None);
    }

    #[test]
    fn decoders() {
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(
            base64_decode("aWQ6c2VjcmV0").as_deref(),
            Some(&b"id:secret"[..])
        );
        assert_eq!(base64_decode("aWQ6").as_deref(), Some(&b"id:"[..]));
    }
}
