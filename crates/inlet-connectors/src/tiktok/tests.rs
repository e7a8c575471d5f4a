use super::*;

fn export(section: &str, list: &str) -> String {
    format!(
        r#"{{"Profile And Settings": {{"Profile Info": {{"ProfileMap": {{"userName": "sim.user"}}}}}},
            "{section}": {{"Favorite Videos": {{"FavoriteVideoList": {list}}},
                "Like List": {{"ItemFavoriteList": [{{"date": "2024-06-18 10:00:00", "link": "https://www.tiktokv.com/share/video/7381000000000000001/"}}]}}}},
            "Your Activity": {{"Watch History": {{"VideoList": [{{"Date": "2024-06-19 21:13:50", "Link": "https://www.tiktokv.com/share/video/1/"}}]}}}}}}"#
    )
}

const TWO: &str = r#"[
    {"Date": "2024-06-19 21:14:03", "Link": "https://www.tiktokv.com/share/video/7382011122233344556/"},
    {"Date": "2024-06-02 08:00:41", "Link": "https://www.tiktokv.com/share/video/7375500011122233344/"}
]"#;

/// What the export holds: the scan, and the favourites of the chosen list in file order.
#[derive(Debug)]
struct Parsed {
    entries: u64,
    section: Option<&'static str>,
    favorites: Vec<Favorite>,
    scan: Scan,
}

fn parse(s: &str) -> Result<Parsed, ParseError> {
    let scan = scan_export(s.as_bytes(), DEFAULT_MAX_BYTES)?;
    let mut favorites = Vec::new();
    read_favorites(s.as_bytes(), DEFAULT_MAX_BYTES, scan.section, &mut |e| {
        if let Entry::Favorite(f) = e {
            favorites.push(f);
        }
        Ok(())
    })?;
    Ok(Parsed {
        entries: scan.entries,
        section: Some(scan.section),
        favorites,
        scan,
    })
}

#[test]
fn every_export_generation() {
    for section in FAVORITE_SECTIONS {
        let p = parse(&export(section, TWO)).expect("parses");
        assert_eq!(p.entries, 2, "{section}");
        assert_eq!(p.section, Some(*section));
        assert_eq!(p.favorites[0].video_id, "7382011122233344556");
        assert_eq!(
            p.favorites[0].favorited_at,
            Timestamp::parse_rfc3339("2024-06-19T21:14:03Z")
        );
    }
}

#[test]
fn key_variants_and_repeats() {
    let list = r#"[
        {"date": "2024-06-01 00:00:00", "link": "https://www.tiktok.com/@a.b/video/7234567890123456789?is_from_webapp=1"},
        {"Date": "2024-06-03 00:00:00", "VideoLink": "https://www.tiktok.com/@a.b/video/7234567890123456789"},
        {"DATE": null, "LINK": "https://vm.tiktok.com/ZMabc123/"}
    ]"#;
    let p = parse(&export("Likes and Favorites", list)).expect("parses");
    assert_eq!(p.entries, 3);
    assert_eq!(
        (p.scan.favorites, p.scan.unresolved, p.scan.skipped),
        (2, 1, 0),
        "short links are unresolved, not favourites"
    );
    assert_eq!(p.favorites.len(), 2, "repeats are merged by the import");
    assert_eq!(to_record(&p.favorites[1]).id, "7234567890123456789");
}

/// Entries that name no video are counted and skipped, not stored under their link, and
/// an empty link does not reject the file.
#[test]
fn entries_without_a_video_are_skipped() {
    let list = r#"[
        {"Date": "2024-06-01 00:00:00", "Link": "https://www.tiktokv.com/share/video/7382011122233344556/"},
        {"Date": "2024-06-01 00:00:01", "Link": "N/A"},
        {"Date": "2024-06-01 00:00:02", "Link": "https://www.tiktok.com/@some.user"},
        {"Date": "2024-06-01 00:00:03", "Link": "https://www.tiktok.com/tag/cats"},
        {"Date": "2024-06-01 00:00:04", "Link": "https://www.tiktok.com/@a/video/notanumber"},
        {"Date": "2024-06-01 00:00:05", "Link": ""},
        {"Date": "2024-06-01 00:00:06", "Link": null},
        {"Date": "2024-06-01 00:00:07", "Link": "https://vt.tiktok.com/ZSabc123/"},
        {"Date": "2024-06-01 00:00:08", "Link": "vm.tiktok.com/ZMabc123"}
    ]"#;
    let p = parse(&export("Likes and Favorites", list)).expect("an empty Link is skipped");
    assert_eq!(
        (
            p.scan.entries,
            p.scan.favorites,
            p.scan.skipped,
            p.scan.unresolved
        ),
        (9, 1, 6, 2)
    );
    assert_eq!(p.favorites.len(), 1);
    assert_eq!(p.favorites[0].video_id, "7382011122233344556");
}

/// A UTF-8 byte order mark before the JSON is dropped.
#[test]
fn byte_order_mark_is_stripped() {
    let with_bom = format!("\u{feff}{}", export("Activity", TWO));
    let p = parse(&with_bom).expect("a BOM is no reason to refuse the file");
    assert_eq!((p.entries, p.favorites.len()), (2, 2));
    // Short inputs around the BOM still read right.
    assert!(matches!(
        parse("\u{feff}"),
        Err(ParseError::Truncated { .. })
    ));
    assert!(matches!(
        parse("\u{feff}[]"),
        Err(ParseError::NotAnExport(_))
    ));
}

#[test]
fn first_non_empty_list_wins() {
    let s = r#"{"Activity": {"Favorite Videos": {"FavoriteVideoList": [{"Date": "2020-01-01 00:00:00", "Link": "https://m.tiktok.com/v/6700000000000000001.html"}]}},
                "Likes and Favorites": {"Favorite Videos": {"FavoriteVideoList": null}}}"#;
    let p = parse(s).expect("parses");
    assert_eq!(p.section, Some("Activity"));
    assert_eq!(p.favorites[0].video_id, "6700000000000000001");
}

#[test]
fn an_empty_list_is_empty_but_no_list_is_refused() {
    let p = parse(r#"{"Your Activity": {"Favorite Videos": {"FavoriteVideoList": []}}}"#)
        .expect("parses");
    assert_eq!((p.entries, p.favorites.len()), (0, 0));
    assert_eq!(p.section, Some("Your Activity"));
    let p = parse(r#"{"Activity": {"Favorite Videos": {"FavoriteVideoList": null}}}"#)
        .expect("a null list is an empty one");
    assert_eq!(p.entries, 0);
    // No favourites list at any known place: importing it as empty would remove every
    // stored favourite.
    for file in [
        r#"{"Profile": {}}"#,
        r#"{"Likes and Favorites": {"Like List": {"ItemFavoriteList": []}}}"#,
        r#"{"Your Activity": {"Favorite Videos": {"SomethingElse": []}}}"#,
    ] {
        let e = parse(file).expect_err("no favourites list");
        assert!(matches!(e, ParseError::NoFavorites), "{file}: {e}");
        let m = e.to_string();
        for path in [
            "\"Likes and Favorites/Favorite Videos/FavoriteVideoList\"",
            "\"Your Activity/Favorite Videos/FavoriteVideoList\"",
            "\"Ads and data/Favorite Videos/FavoriteVideoList\"",
            "\"Activity/Favorite Videos/FavoriteVideoList\"",
        ] {
            assert!(m.contains(path), "{m}");
        }
    }
}

#[test]
fn link_shapes() {
    for (link, id) in [
        (
            "https://www.tiktokv.com/share/video/7234567890123456789/",
            Some("7234567890123456789"),
        ),
        (
            "https://www.tiktok.com/@some.user/video/7234567890123456789?x=1",
            Some("7234567890123456789"),
        ),
        (
            "https://www.tiktok.com/@some.user/photo/7234567890123456789",
            Some("7234567890123456789"),
        ),
        (
            "https://m.tiktok.com/v/7234567890123456789.html",
            Some("7234567890123456789"),
        ),
        (
            "https://www.tiktok.com/embed/v2/7234567890123456789",
            Some("7234567890123456789"),
        ),
        ("https://vt.tiktok.com/ZSabc123/", None),
        ("https://www.tiktok.com/@a/video/notanumber", None),
        (
            "https://www.tiktok.com/@a/video/123456789012345678901",
            None,
        ),
        ("N/A", None),
    ] {
        assert_eq!(video_id(link).as_deref(), id, "{link}");
    }
    for (link, short) in [
        ("https://vm.tiktok.com/ZMabc123/", true),
        ("http://VT.tiktok.com/ZSabc123", true),
        ("vm.tiktok.com/x", true),
        ("https://www.tiktok.com/@vm.tiktok.com", false),
        ("https://vm.tiktok.com.evil/ZM", false),
        ("N/A", false),
    ] {
        assert_eq!(is_short_link(link), short, "{link}");
    }
}

#[test]
fn bad_files_are_named() {
    let full = export("Likes and Favorites", TWO);
    let cut = &full[..full.len() / 2];
    assert!(
        matches!(parse(cut), Err(ParseError::Truncated { .. })),
        "{:?}",
        parse(cut).err()
    );
    assert!(matches!(
        parse("{\"Profile\": [1,]}"),
        Err(ParseError::Malformed(_))
    ));
    assert!(matches!(parse("[1, 2]"), Err(ParseError::NotAnExport(_))));
    let e = parse(r#"{"name": "x", "version": 3}"#).expect_err("foreign");
    assert!(e.to_string().contains("not a TikTok data export"), "{e}");
    assert!(e.to_string().contains("\"name\""), "{e}");
    let e =
        parse(&export("Activity", r#"[{"Date": "2024-06-01 00:00:00"}]"#)).expect_err("no link");
    assert!(
        e.to_string()
            .contains("entry 1 of Activity/Favorite Videos/FavoriteVideoList has no Link"),
        "{e}"
    );
    let e = parse(&export(
        "Activity",
        r#"[{"Date": "yesterday", "Link": "https://x/video/1"}]"#,
    ))
    .expect_err("date");
    assert!(e.to_string().contains("yesterday"), "{e}");
    let e = parse(&export("Activity", r#"{"a": 1}"#)).expect_err("not a list");
    assert!(
        e.to_string().contains("FavoriteVideoList to be a list"),
        "{e}"
    );
    let e = scan_export(full.as_bytes(), 100).expect_err("too large");
    assert!(matches!(e, ParseError::TooLarge { limit: 100 }), "{e}");
    assert!(matches!(parse(""), Err(ParseError::Truncated { .. })));
    assert!(matches!(
        parse("{} trailing"),
        Err(ParseError::Malformed(_))
    ));
}
