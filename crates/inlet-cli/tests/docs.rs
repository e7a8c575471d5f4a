//! The documentation names every table column users can query: the stream specs of
//! every provider in the registry and docs/tables.md may not drift apart.

mod common;

use inlet_connectors::provider::REGISTRY;

/// Tables and columns (derived tables included) of every registered provider that
/// docs/tables.md does not name.
fn undocumented() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/tables.md");
    let doc = std::fs::read_to_string(path).expect("docs/tables.md");
    REGISTRY
        .iter()
        .flat_map(|def| common::undocumented_columns(def.streams, &doc))
        .collect()
}

#[test]
fn tables_doc_names_every_column() {
    let missing = undocumented();
    assert!(
        missing.is_empty(),
        "docs/tables.md does not document: {missing:?}"
    );
    // The walk reaches every provider's tables, eBay's and the derived ones included.
    let tables: Vec<&str> = REGISTRY.iter().flat_map(|d| d.tables()).collect();
    for t in [
        "reddit_messages",
        "reddit_conversations",
        "github_stars",
        "tiktok_favorites",
        "ebay_conversations",
        "ebay_messages",
    ] {
        assert!(tables.contains(&t), "{t} not in {tables:?}");
    }
}
