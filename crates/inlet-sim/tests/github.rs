//! The GitHub simulator keeps the documented contract (shared/providers/github.md).

use inlet_sim::github::{GithubSim, GithubSimConfig, STAR_MEDIA_TYPE};

async fn get(
    sim: &GithubSim,
    path_query: &str,
    token: Option<&str>,
    accept: Option<&str>,
    etag: Option<&str>,
) -> reqwest::Response {
    let mut rb = reqwest::Client::new()
        .get(format!("{}{path_query}", sim.api_base()))
        .header("user-agent", "inlet-tests");
    if let Some(t) = token {
        rb = rb.header("authorization", format!("Bearer {t}"));
    }
    if let Some(a) = accept {
        rb = rb.header("accept", a);
    }
    if let Some(e) = etag {
        rb = rb.header("if-none-match", e);
    }
    rb.send().await.expect("request")
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[tokio::test]
async fn pages_media_types_and_auth() {
    let sim = GithubSim::start(GithubSimConfig {
        stars: 5,
        ..Default::default()
    })
    .await
    .expect("sim");
    let t = sim.token().to_string();
    let r = get(&sim, "/user/starred", Some("nope"), None, None).await;
    assert_eq!(r.status(), 401);
    let r = get(&sim, "/user/starred?per_page=2", Some(&t), None, None).await;
    assert_eq!(r.status(), 200);
    let link = header(&r, "link").expect("link");
    assert!(
        link.contains("page=2>; rel=\"next\"") && link.contains("page=3>; rel=\"last\""),
        "{link}"
    );
    let bare: serde_json::Value = r.json().await.expect("json");
    assert!(bare[0]["full_name"].is_string() && bare[0].get("starred_at").is_none());
    let r = get(
        &sim,
        "/user/starred?per_page=2&page=3",
        Some(&t),
        Some(STAR_MEDIA_TYPE),
        None,
    )
    .await;
    let link = header(&r, "link").expect("link");
    assert!(
        !link.contains("rel=\"next\"") && link.contains("rel=\"prev\""),
        "{link}"
    );
    let star: serde_json::Value = r.json().await.expect("json");
    assert_eq!(star.as_array().map(Vec::len), Some(1));
    assert!(star[0]["starred_at"].is_string() && star[0]["repo"]["id"].is_u64());
    let r = get(&sim, "/user/starred?per_page=100", Some(&t), None, None).await;
    assert!(
        header(&r, "link").is_none(),
        "a single page has no Link header"
    );
    sim.shutdown();
}

#[tokio::test]
async fn etag_304_is_free_and_changes_with_the_page() {
    let sim = GithubSim::start(GithubSimConfig {
        stars: 30,
        ..Default::default()
    })
    .await
    .expect("sim");
    let t = sim.token().to_string();
    let q = "/user/starred?per_page=10";
    let r = get(&sim, q, Some(&t), Some(STAR_MEDIA_TYPE), None).await;
    let etag = header(&r, "etag").expect("etag");
    assert!(etag.starts_with("W/\""));
    assert_eq!(sim.budget_used(), 1);
    let r = get(&sim, q, Some(&t), Some(STAR_MEDIA_TYPE), Some(&etag)).await;
    assert_eq!(r.status(), 304);
    assert_eq!(header(&r, "x-ratelimit-remaining").as_deref(), Some("4999"));
    assert_eq!(sim.budget_used(), 1, "304 costs nothing");
    // An unstar on a later page leaves page 1's ETag alone; a new star changes it.
    let ids = sim.starred_ids();
    assert!(sim.unstar(ids[25]));
    let r = get(&sim, q, Some(&t), Some(STAR_MEDIA_TYPE), Some(&etag)).await;
    assert_eq!(r.status(), 304);
    sim.star_new();
    let r = get(&sim, q, Some(&t), Some(STAR_MEDIA_TYPE), Some(&etag)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(sim.budget_used(), 2);
    sim.shutdown();
}

#[tokio::test]
async fn limits_and_faults() {
    let sim = GithubSim::start(GithubSimConfig {
        stars: 3,
        rate_limit: 2,
        ..Default::default()
    })
    .await
    .expect("sim");
    let t = sim.token().to_string();
    sim.secondary_limit_next(1, 7);
    let r = get(&sim, "/user/starred", Some(&t), None, None).await;
    assert_eq!(r.status(), 403);
    assert_eq!(header(&r, "retry-after").as_deref(), Some("7"));
    assert!(
        r.text()
            .await
            .expect("body")
            .contains("secondary rate limit")
    );
    sim.bad_gateway_next(1);
    assert_eq!(
        get(&sim, "/user/starred", Some(&t), None, None)
            .await
            .status(),
        502
    );
    for _ in 0..2 {
        assert_eq!(
            get(&sim, "/user/starred", Some(&t), None, None)
                .await
                .status(),
            200
        );
    }
    let r = get(&sim, "/user/starred", Some(&t), None, None).await;
    assert_eq!(r.status(), 403);
    assert_eq!(header(&r, "x-ratelimit-remaining").as_deref(), Some("0"));
    assert!(header(&r, "x-ratelimit-reset").is_some_and(|v| v.parse::<i64>().is_ok()));
    assert_eq!(sim.rate_limit_violations(), 1);
    assert_eq!(sim.requests().len(), 5);
    sim.shutdown();
}
