//! The API applies the one connection-name rule the CLI applies
//! (`inlet_core::validate_connection_name`), on SQLite and PostgreSQL.

mod common;

use common::{TestDb, env};
use inlet_sim::reddit::RedditSimConfig;
use serde_json::Value;

both_backends!(api_applies_the_one_name_rule);
async fn api_applies_the_one_name_rule(db: &TestDb) {
    let e = env(
        db,
        RedditSimConfig {
            messages: 5,
            saved: 1,
            ..Default::default()
        },
        false,
    )
    .await;
    for bad in [
        "a\nforged line",
        "tab\there",
        "evil\u{202e}gpj.exe",
        "zero\u{200b}width",
        "bell\u{7}",
        "42",
        "",
        " padded ",
    ] {
        assert!(
            inlet_core::validate_connection_name(bad).is_err(),
            "{bad:?}"
        );
        let r = e
            .post("/v1/connections")
            .json(&e.new_connection(bad))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400, "{bad:?} was accepted");
        let body = r.text().await.expect("body");
        assert!(body.contains("name"), "{bad:?}: {body}");
    }
    let listed: Value = e
        .get("/v1/connections")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(
        listed["connections"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
    // What the CLI accepts, the API accepts.
    for ok in ["shop-eu", "Zoë's inbox", "42a"] {
        assert!(inlet_core::validate_connection_name(ok).is_ok());
        e.create(ok).await;
    }
}
