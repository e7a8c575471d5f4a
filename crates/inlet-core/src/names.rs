//! The one rule for connection (and workspace) names, shared by the CLI and the HTTP API, and the safe
//! way to print a name read from an older database that predates the rule.

use std::borrow::Cow;

/// Longest connection name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Why a connection name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, or only white space.
    #[error("a connection name must not be empty")]
    Empty,
    /// Longer than [`MAX_NAME_CHARS`].
    #[error("a connection name must be at most {MAX_NAME_CHARS} characters (this one has {0})")]
    TooLong(usize),
    /// An integer: numbers address connections by id.
    #[error("a connection name must not be a number (numbers address connections by id)")]
    Number,
    /// A control or invisible formatting character (newline, tab, U+202E, ...).
    #[error(
        "a connection name must not contain control or invisible formatting characters (found {0})"
    )]
    Control(String),
    /// White space at either end.
    #[error("a connection name must not start or end with white space")]
    Padded,
}

/// Check a new connection's name: 1 to 200 characters, not an integer, no white space at
/// either end, and no control characters (C0, DEL, C1: newline, tab, escape, ...), Unicode
/// format characters (bidirectional overrides such as U+202E, zero-width characters, the
/// byte order mark, ...) or line/paragraph separators — a name is printed in status lines
/// and logs, where such characters would forge or hide text.
pub fn validate_connection_name(name: &str) -> Result<(), NameError> {
    if name.trim().is_empty() {
        return Err(NameError::Empty);
    }
    let n = name.chars().count();
    if n > MAX_NAME_CHARS {
        return Err(NameError::TooLong(n));
    }
    if let Some(c) = name.chars().find(|c| is_unsafe_char(*c)) {
        return Err(NameError::Control(format!("U+{:04X}", c as u32)));
    }
    if name.trim() != name {
        return Err(NameError::Padded);
    }
    if name.parse::<i64>().is_ok() {
        return Err(NameError::Number);
    }
    Ok(())
}

/// Why a workspace name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkspaceNameError {
    /// Empty, or only white space.
    #[error("a workspace name must not be empty")]
    Empty,
    /// Longer than [`MAX_NAME_CHARS`].
    #[error("a workspace name must be at most {MAX_NAME_CHARS} characters (this one has {0})")]
    TooLong(usize),
    /// A control or invisible formatting character.
    #[error(
        "a workspace name must not contain control or invisible formatting characters (found {0})"
    )]
    Control(String),
    /// White space at either end.
    #[error("a workspace name must not start or end with white space")]
    Padded,
}

/// Check a new workspace's name: the connection name rule ([`validate_connection_name`])
/// except that a number is allowed (workspaces are only addressed by name).
pub fn validate_workspace_name(name: &str) -> Result<(), WorkspaceNameError> {
    match validate_connection_name(name) {
        Ok(()) | Err(NameError::Number) => Ok(()),
        Err(NameError::Empty) => Err(WorkspaceNameError::Empty),
        Err(NameError::TooLong(n)) => Err(WorkspaceNameError::TooLong(n)),
        Err(NameError::Control(c)) => Err(WorkspaceNameError::Control(c)),
        Err(NameError::Padded) => Err(WorkspaceNameError::Padded),
    }
}

/// A control character, a Unicode format character (general category Cf) or a line or
/// paragraph separator.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c as u32,
            0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F)
}

/// `text` with every character [`is_unsafe_char`] refuses written as `\n`, `\t`, `\r` or
/// `\u{...}`, so printing it can neither break a line nor reorder or hide what follows.
/// Backslashes are left alone; text without such characters is returned as it is.
pub fn escape_unsafe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_names() {
        for ok in ["r1", "my reddit", "shop-eu", "Zoë", "42a", "a.b_c", "名前"] {
            assert_eq!(validate_connection_name(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(validate_connection_name(""), Err(NameError::Empty));
        assert_eq!(validate_connection_name("  "), Err(NameError::Empty));
        assert_eq!(validate_connection_name("42"), Err(NameError::Number));
        assert_eq!(validate_connection_name("-7"), Err(NameError::Number));
        assert_eq!(validate_connection_name(" a"), Err(NameError::Padded));
        assert!(matches!(
            validate_connection_name(&"x".repeat(201)),
            Err(NameError::TooLong(201))
        ));
        assert_eq!(validate_connection_name(&"é".repeat(200)), Ok(()));
        for bad in [
            "a\nb",
            "a\tb",
            "a\rb",
            "a\u{1b}[31m",
            "a\u{7f}",
            "a\u{85}",
            "evil\u{202e}gpj",
            "a\u{200b}b",
            "a\u{2066}b",
            "\u{feff}a",
            "a\u{2028}b",
            "a\u{e0041}",
        ] {
            assert!(
                matches!(validate_connection_name(bad), Err(NameError::Control(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn workspace_names_follow_the_rule_but_may_be_numbers() {
        assert_eq!(validate_workspace_name("acme"), Ok(()));
        assert_eq!(validate_workspace_name("42"), Ok(()));
        assert_eq!(validate_workspace_name(""), Err(WorkspaceNameError::Empty));
        assert_eq!(
            validate_workspace_name("a "),
            Err(WorkspaceNameError::Padded)
        );
        assert!(matches!(
            validate_workspace_name("a\nb"),
            Err(WorkspaceNameError::Control(_))
        ));
    }

    #[test]
    fn escapes_what_the_rule_refuses() {
        assert!(matches!(escape_unsafe("plain name"), Cow::Borrowed(_)));
        assert_eq!(escape_unsafe("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(escape_unsafe("evil\u{202e}gpj"), "evil\\u{202e}gpj");
        assert_eq!(escape_unsafe("x\u{1b}[31m"), "x\\u{1b}[31m");
        assert!(
            !escape_unsafe("a\u{2028}b\u{feff}")
                .chars()
                .any(is_unsafe_char)
        );
    }
}
