//! TikTok import end to end, on SQLite and PostgreSQL: a 10,000-favourite export
//! imported twice with edits gives the exact diff; bad files change nothing.

mod common;

use common::*;
use inlet_connectors::tiktok::{self, ImportError, ParseError};
use inlet_core::{Clock, Connection, NewConnection, Store, SystemClock, Timestamp};
use std::collections::BTreeSet;
use std::io::Write;

const MAX: u64 = 64 << 20;

/// An export (2024+ layout) with favourites `ids` (dated by index).
fn export(ids: &[u64], layout: &str) -> String {
    let mut list = String::new();
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            list.push(',');
        }
        let day = 1 + (i % 28);
        let (d, l) = if i % 2 == 0 {
            ("Date", "Link")
        } else {
            ("date", "link")
        };
        list.push_str(&format!(
            r#"{{"{d}": "2024-05-{day:02} 10:00:{:02}", "{l}": "https://www.tiktokv.com/share/video/{id}/"}}"#,
            i % 60
        ));
    }
    format!(
        r#"{{"Profile And Settings": {{"Profile Info": {{"ProfileMap": {{"userName": "sim.user"}}}}}},
            "{layout}": {{"Favorite Videos": {{"FavoriteVideoList": [{list}]}},
              "Like List": {{"ItemFavoriteList": []}}}},
            "Your Activity": {{"Watch History": {{"VideoList": []}}}}}}"#
    )
}

async fn tiktok_connection(store: &dyn Store) -> Connection {
    let new = NewConnection {
        name: "tiktok".into(),
        workspace: "tests".into(),
        provider: "tiktok".into(),
        config: serde_json::json!({}),
        credentials: key().seal(b"{}", b"test").expect("seal"),
    };
    store
        .create_connection(&new, SystemClock.now())
        .await
        .expect("create")
}

async fn live_ids(store: &dyn Store, conn: i64) -> BTreeSet<String> {
    let spec = &tiktok::STREAMS[0];
    let mut out = BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let rows = store
            .export_page(conn, spec, after.as_deref(), 2000, false)
            .await
            .expect("export");
        let Some(last) = rows.last() else { break };
        after = Some(last.id.clone());
        out.extend(rows.into_iter().map(|r| r.id));
    }
    out
}

async fn import(
    store: &dyn Store,
    conn: &Connection,
    text: &str,
    force: bool,
) -> Result<tiktok::ImportOutcome, ImportError> {
    let bytes = std::sync::Arc::new(text.as_bytes().to_vec());
    tiktok::import(
        store,
        conn,
        move || Ok(std::io::Cursor::new(bytes.as_ref().clone())),
        MAX,
        (!force).then_some(0.5),
        Timestamp(SystemClock.now().0),
    )
    .await
}

async fn two_imports_exact_diff(db: &TestDb) {
    let store = db.store().await;
    let conn = tiktok_connection(&*store).await;
    let base = 7_300_000_000_000_000_000u64;
    let first: Vec<u64> = (0..10_000).map(|i| base + i * 7).collect();
    let out = import(
        &*store,
        &conn,
        &export(&first, "Likes and Favorites"),
        false,
    )
    .await
    .expect("import");
    assert_eq!((out.processed, out.new, out.removed), (10_000, 10_000, 0));
    let want: BTreeSet<String> = first.iter().map(|i| i.to_string()).collect();
    assert_eq!(live_ids(&*store, conn.id).await, want);

    // Second export (older layout): 300 unfavourited, 500 new, one repeat entry.
    let mut second: Vec<u64> = first[300..].to_vec();
    second.extend((0..500).map(|i| base + 1_000_000 + i));
    second.push(first[400]);
    let out = import(&*store, &conn, &export(&second, "Activity"), false)
        .await
        .expect("import");
    assert_eq!(
        (out.processed, out.new, out.removed),
        (10_201, 500, 300),
        "exact diff"
    );
    let want: BTreeSet<String> = second.iter().map(|i| i.to_string()).collect();
    assert_eq!(live_ids(&*store, conn.id).await, want);
    assert_eq!(want.len(), 10_200);

    // The same file again: nothing changes.
    let out = import(&*store, &conn, &export(&second, "Activity"), false)
        .await
        .expect("import");
    assert_eq!((out.new, out.removed), (0, 0));

    // Re-favourited videos come back (revived, not new, not duplicated).
    let mut third = second.clone();
    third.extend(&first[..50]);
    let out = import(&*store, &conn, &export(&third, "Your Activity"), false)
        .await
        .expect("import");
    assert_eq!((out.new, out.removed), (0, 0));
    let want: BTreeSet<String> = third.iter().map(|i| i.to_string()).collect();
    assert_eq!(live_ids(&*store, conn.id).await, want);
    let state = store.sync_state(conn.id, "favorites").await.expect("state");
    assert_eq!(state.sync_count, 4);
    assert!(state.last_reconciled_at.is_some());

    // Bad files are rejected with a named reason, and nothing changes.
    let before = live_ids(&*store, conn.id).await;
    let good = export(&first, "Likes and Favorites");
    let cut = &good[..good.len() * 2 / 3];
    let e = import(&*store, &conn, cut, true)
        .await
        .expect_err("truncated");
    assert!(
        matches!(e, ImportError::Parse(ParseError::Truncated { .. })),
        "{e}"
    );
    let e = import(&*store, &conn, r#"{"kind": "Listing", "data": {}}"#, true)
        .await
        .expect_err("wrong file");
    assert!(e.to_string().contains("not a TikTok data export"), "{e}");
    let broken = good.replacen("\"Link\": \"https", "\"Link\": 17, \"x\": \"https", 1);
    let e = import(&*store, &conn, &broken, true)
        .await
        .expect_err("bad entry");
    assert!(e.to_string().contains("entry 1 of"), "{e}");
    assert_eq!(live_ids(&*store, conn.id).await, before, "nothing changed");

    // An export with no favourites would remove everything: the valve stops it.
    let empty = export(&[], "Likes and Favorites");
    let e = import(&*store, &conn, &empty, false)
        .await
        .expect_err("valve");
    assert!(
        matches!(
            e,
            ImportError::Refused {
                removed: 10_250,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(live_ids(&*store, conn.id).await, before, "nothing changed");
    let out = import(&*store, &conn, &empty, true).await.expect("forced");
    assert_eq!(out.removed, 10_250);
    assert!(live_ids(&*store, conn.id).await.is_empty());
}
both_backends!(tiktok_import_twice_exact_diff, two_imports_exact_diff);

/// The CLI: `inlet import tiktok FILE --json` prints `{processed, new, removed}`; a bad
/// file is one clear error line and leaves no database behind.
#[test]
fn cli_import_prints_counts() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("inlet.db");
    let file = dir.path().join("user_data_tiktok.json");
    let ids: Vec<u64> = (0..25).map(|i| 7_382_011_122_233_344_000 + i).collect();
    std::fs::File::create(&file)
        .and_then(|mut f| f.write_all(export(&ids, "Likes and Favorites").as_bytes()))
        .expect("write");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"Activity\": {\"Favorite Videos\": ").expect("write");
    let inlet = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_inlet"))
            .args(args)
            .env("INLET_DATABASE_URL", &db)
            .env("INLET_KEY_FILE", dir.path().join("key"))
            .current_dir(dir.path())
            .output()
            .expect("run inlet")
    };
    let out = inlet(&["import", "tiktok", bad.to_str().expect("path")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("truncated"), "{err}");
    assert!(!db.exists(), "a rejected file creates nothing");

    let out = inlet(&["import", "tiktok", file.to_str().expect("path"), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"processed": 25, "new": 25, "removed": 0, "skipped": 0, "unresolved": 0})
    );
    let out = inlet(&["import", "tiktok", file.to_str().expect("path")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("25 processed, 0 new, 0 removed"), "{text}");

    // No favourites list anywhere: refused, naming where it was looked for; nothing changes.
    let none = dir.path().join("no_favourites.json");
    std::fs::write(
        &none,
        r#"{"Profile": {"Profile Information": {"ProfileMap": {"userName": "x"}}}}"#,
    )
    .expect("write");
    let out = inlet(&["import", "tiktok", none.to_str().expect("path"), "--force"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no favourites list")
            && err.contains("\"Likes and Favorites/Favorite Videos/FavoriteVideoList\""),
        "{err}"
    );
    let out = inlet(&["import", "tiktok", file.to_str().expect("path"), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (v["new"].as_u64(), v["removed"].as_u64()),
        (Some(0), Some(0))
    );

    let out = inlet(&["purge", "--older-than", "30d", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["purged"], 0);
    let out = inlet(&["purge", "--older-than", "soon"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--older-than"));
}

/// The quirks of real exports, end to end: a byte order mark, entries without a video
/// (skipped), short links (unresolved), an empty link, a file with no favourites list
/// (refused even with --force), repeats across chunks (newest date kept).
async fn export_quirks(db: &TestDb) {
    let store = db.store().await;
    let conn = tiktok_connection(&*store).await;
    let base = 7_300_000_000_000_000_000u64;
    // More than one chunk, the first id repeated at the end with a newer date.
    let n = tiktok::CHUNK as u64 + 10;
    let ids: Vec<u64> = (0..n).map(|i| base + i).collect();
    let mut text = export(&ids, "Likes and Favorites");
    let extra = format!(
        r#",{{"Date": "2024-07-01 00:00:00", "Link": "https://www.tiktokv.com/share/video/{base}/"}},
            {{"Date": "2024-01-01 00:00:00", "Link": "https://www.tiktokv.com/share/video/{}/"}},
            {{"Date": "2024-06-01 00:00:00", "Link": "N/A"}},
            {{"Date": "2024-06-01 00:00:00", "Link": "https://www.tiktok.com/@some.user"}},
            {{"Date": "2024-06-01 00:00:00", "Link": "https://www.tiktok.com/tag/cats"}},
            {{"Date": "2024-06-01 00:00:00", "Link": "https://www.tiktok.com/@a/video/notanumber"}},
            {{"Date": "2024-06-01 00:00:00", "Link": ""}},
            {{"Date": "2024-06-01 00:00:00", "Link": "https://vm.tiktok.com/ZMabc123/"}},
            {{"Date": "2024-06-01 00:00:00", "Link": "https://vt.tiktok.com/ZSabc123/"}}]}}"#,
        base + 1
    );
    text = text.replacen("]}", &extra, 1);
    let with_bom = format!("\u{feff}{text}");
    let out = import(&*store, &conn, &with_bom, false)
        .await
        .expect("a BOM, empty and odd links are no reason to refuse the file");
    assert_eq!(
        out,
        tiktok::ImportOutcome {
            processed: n + 9,
            new: n,
            removed: 0,
            skipped: 5,
            unresolved: 2,
        }
    );
    let want: BTreeSet<String> = ids.iter().map(|i| i.to_string()).collect();
    assert_eq!(
        live_ids(&*store, conn.id).await,
        want,
        "only videos are stored"
    );
    let rows = store
        .export_page(conn.id, &tiktok::STREAMS[0], None, 2, false)
        .await
        .expect("export");
    let first = rows
        .iter()
        .find(|r| r.id == base.to_string())
        .expect("first");
    assert!(
        first.raw.contains("2024-07-01 00:00:00"),
        "the newest date of a repeat is kept: {}",
        first.raw
    );
    let second = rows
        .iter()
        .find(|r| r.id == (base + 1).to_string())
        .expect("second");
    assert!(
        !second.raw.contains("2024-01-01"),
        "an older repeat does not overwrite: {}",
        second.raw
    );

    // No favourites list at any known place: refused even when forced, nothing changes.
    for file in [
        r#"{"Profile": {"Profile Information": {"ProfileMap": {"userName": "x"}}}}"#,
        r#"{"Likes and Favorites": {"Like List": {"ItemFavoriteList": []}}}"#,
    ] {
        let e = import(&*store, &conn, file, true)
            .await
            .expect_err("no favourites list");
        assert!(
            matches!(e, ImportError::Parse(ParseError::NoFavorites)),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("\"Activity/Favorite Videos/FavoriteVideoList\""),
            "{e}"
        );
    }
    assert_eq!(live_ids(&*store, conn.id).await, want, "nothing changed");

    // A file that goes bad after chunks were handed to the store (here: cut between the
    // check and the import) changes nothing either.
    let other: Vec<u64> = (0..n).map(|i| base + 50_000_000 + i).collect();
    let good = export(&other, "Activity");
    let scan = tiktok::check(
        {
            let g = good.clone().into_bytes();
            move || Ok(std::io::Cursor::new(g))
        },
        MAX,
    )
    .await
    .expect("good");
    let cut = good.as_bytes()[..good.len() - 300].to_vec();
    let e = tiktok::apply(
        &*store,
        &conn,
        &scan,
        move || Ok(std::io::Cursor::new(cut)),
        MAX,
        None,
        Timestamp(SystemClock.now().0),
    )
    .await
    .expect_err("cut");
    assert!(
        matches!(e, ImportError::Parse(ParseError::Truncated { .. })),
        "{e}"
    );
    assert_eq!(live_ids(&*store, conn.id).await, want, "nothing changed");
    let state = store.sync_state(conn.id, "favorites").await.expect("state");
    assert_eq!(state.sync_count, 1);
}
both_backends!(tiktok_import_export_quirks, export_quirks);
