//! Which backend a database URL names, and how to show a URL without its password.

use inlet_core::StoreError;
use std::path::PathBuf;

/// A parsed database location.
#[derive(Debug, PartialEq)]
pub enum Target {
    /// A PostgreSQL server, by its URL.
    Postgres(String),
    /// A SQLite file.
    Sqlite(PathBuf),
}

/// Decide the backend of `url` (see [`crate::open`]). The one database-URL parser: the
/// CLI classifies a URL with it before anything is opened, so every command refuses the
/// same URLs with the same words.
pub fn parse(url: &str) -> Result<Target, StoreError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(StoreError::Unavailable("empty database URL".into()));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Target::Postgres(url.to_string()));
    }
    let path = match url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        Some(path) => path,
        None if scheme(url).is_some() => return Err(unsupported(url)),
        None => url,
    };
    if path.is_empty() || path.contains('?') {
        return Err(StoreError::Unavailable(format!(
            "bad SQLite URL {url:?}: expected sqlite://PATH (no query options)"
        )));
    }
    Ok(Target::Sqlite(PathBuf::from(path)))
}

/// The scheme of `s` when it looks like `scheme:...` (two or more characters, so a
/// Windows drive letter is not taken for one).
fn scheme(s: &str) -> Option<&str> {
    let (head, _) = s.split_once(':')?;
    let mut chars = head.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    (head.len() >= 2 && first_ok && rest_ok).then_some(head)
}

fn unsupported(url: &str) -> StoreError {
    let scheme = scheme(url).unwrap_or_default();
    StoreError::Unavailable(format!(
        "unsupported database URL scheme {scheme:?} in {:?}: use postgres://, postgresql://, \
         sqlite://PATH or a file path",
        redact_url(url)
    ))
}

/// `url` with its password (in the user info or a `password=` option) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    format!("{scheme}://{authority}{}", redact_query(tail))
}

fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_backends() {
        assert!(matches!(
            parse("postgres://u@h/db"),
            Ok(Target::Postgres(_))
        ));
        assert!(matches!(
            parse("postgresql://u@h/db"),
            Ok(Target::Postgres(_))
        ));
        assert_eq!(
            parse("sqlite:///tmp/a.db").ok(),
            Some(Target::Sqlite("/tmp/a.db".into()))
        );
        assert_eq!(
            parse("sqlite:a.db").ok(),
            Some(Target::Sqlite("a.db".into()))
        );
        assert_eq!(
            parse("./x/a.db").ok(),
            Some(Target::Sqlite("./x/a.db".into()))
        );
        assert_eq!(
            parse("C:\\x.db").ok(),
            Some(Target::Sqlite("C:\\x.db".into()))
        );
        for bad in [
            "mysql://x",
            "bad://",
            "bad:x",
            "",
            "sqlite://",
            "sqlite://a.db?mode=rwc",
        ] {
            assert!(
                matches!(parse(bad), Err(StoreError::Unavailable(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=pw"),
            "postgres://h/db?user=u&password=***"
        );
        assert_eq!(redact_url("postgres://u:p@ss@h"), "postgres://u:***@h");
    }
}
