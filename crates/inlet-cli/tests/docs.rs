//! The documentation names every table column users can query: a stream spec and
//! docs/tables.md may not drift apart.

use inlet_connectors::reddit::streams::{CONVERSATIONS, STREAMS};

#[test]
fn tables_doc_names_every_column() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/tables.md");
    let doc = std::fs::read_to_string(path).expect("docs/tables.md");
    let mut missing = Vec::new();
    let all = STREAMS
        .iter()
        .chain(&inlet_connectors::github::streams::STREAMS)
        .chain(&inlet_connectors::tiktok::STREAMS);
    for spec in all {
        if !doc.contains(&format!("## {}", spec.table)) {
            missing.push(spec.table.to_string());
        }
        for c in spec.columns {
            if !doc.contains(&format!("| `{}` |", c.name)) {
                missing.push(format!("{}.{}", spec.table, c.name));
            }
        }
    }
    for c in CONVERSATIONS.columns {
        if !doc.contains(&format!("| `{}` |", c.column.name)) {
            missing.push(format!("{}.{}", CONVERSATIONS.table, c.column.name));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/tables.md does not document: {missing:?}"
    );
}

#[test]
fn tables_doc_names_every_ebay_column() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/tables.md");
    let doc = std::fs::read_to_string(path).expect("docs/tables.md");
    let mut missing = Vec::new();
    for spec in &inlet_connectors::ebay::streams::STREAMS {
        if !doc.contains(&format!("## {}", spec.table)) {
            missing.push(spec.table.to_string());
        }
        for c in spec.columns {
            if !doc.contains(&format!("| `{}` |", c.name)) {
                missing.push(format!("{}.{}", spec.table, c.name));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/tables.md does not document: {missing:?}"
    );
}
