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

fn parse(s: &str) -> Result<Parsed, ParseError> {
    parse_export(s.as_bytes(), DEFAULT_MAX_BYTES)
}

#[test]
fn every_export_generation() {
    for section in FAVORITE_SECTIONS {
        let p = parse(&export(section, TWO)).expect("parses");
        assert_eq!(p.entries, 2, "{section}");
        assert_eq!(p.section, Some(*section));
        assert_eq!(
            p.favorites[0].video_id.as_deref(),
            Some("7382011122233344556")
        );
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
    assert_eq!(p.favorites.len(), 2, "the repeat is merged");
    assert_eq!(
        p.favorites[0].favorited_at,
        Timestamp::parse_rfc3339("2024-06-03T00:00:00Z"),
        "newest date kept"
    );
    assert_eq!(p.favorites[1].video_id, None, "short links carry no id");
    assert_eq!(
        to_record(&p.favorites[1]).id,
        "https://vm.tiktok.com/ZMabc123/"
    );
}

#[test]
fn first_non_empty_list_wins() {
    let s = r#"{"Activity": {"Favorite Videos": {"FavoriteVideoList": [{"Date": "2020-01-01 00:00:00", "Link": "https://m.tiktok.com/v/6700000000000000001.html"}]}},
                "Likes and Favorites": {"Favorite Videos": {"FavoriteVideoList": null}}}"#;
    let p = parse(s).expect("parses");
    assert_eq!(p.section, Some("Activity"));
    assert_eq!(
        p.favorites[0].video_id.as_deref(),
        Some("6700000000000000001")
    );
}

#[test]
fn no_favourites_is_empty_not_an_error() {
    let p = parse(r#"{"Your Activity": {"Favorite Videos": {"FavoriteVideoList": []}}}"#)
        .expect("parses");
    assert_eq!((p.entries, p.favorites.len()), (0, 0));
    let p = parse(r#"{"Profile": {}}"#).expect("parses");
    assert_eq!(p.entries, 0);
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
    ] {
        assert_eq!(video_id(link).as_deref(), id, "{link}");
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
    let e = parse_export(full.as_bytes(), 100).expect_err("too large");
    assert!(matches!(e, ParseError::TooLarge { limit: 100 }), "{e}");
    assert!(matches!(parse(""), Err(ParseError::Truncated { .. })));
    assert!(matches!(
        parse("{} trailing"),
        Err(ParseError::Malformed(_))
    ));
}
