//! The image host simulator: deterministic bytes per URL from a few distinct images,
//! per-URL and per-host faults, request counts and the in-flight peak.

use inlet_sim::images::{MediaSim, MediaSimConfig};
use std::time::Duration;

async fn get(base: &str, path: &str) -> (u16, String, Vec<u8>) {
    let r = reqwest::get(format!("{base}{path}"))
        .await
        .expect("request");
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ct, r.bytes().await.expect("body").to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_images_and_faults() {
    let media = MediaSim::start(MediaSimConfig::default())
        .await
        .expect("start");
    let base = media.base();
    let (s, ct, a) = get(&base, "i.redd.it/abc.png").await;
    assert_eq!((s, ct.as_str()), (200, "image/png"));
    assert!(a.starts_with(b"\x89PNG"));
    assert_eq!(
        Some(a.clone()),
        media.bytes_for("https://i.redd.it/abc.png")
    );
    let (_, _, again) = get(&base, "i.redd.it/abc.png").await;
    assert_eq!(a, again, "deterministic per URL");
    // The query is part of the URL's identity (signed preview links).
    let q = "preview.redd.it/p.jpg?width=640&format=pjpg&s=ff";
    let (s, ct, b) = get(&base, q).await;
    assert_eq!((s, ct.as_str()), (200, "image/jpeg"));
    assert_eq!(Some(b), media.bytes_for(&format!("https://{q}")));
    // Many URLs, few distinct images.
    let mut distinct = std::collections::BTreeSet::new();
    for i in 0..40 {
        distinct.insert(
            media
                .bytes_for(&format!("https://i.redd.it/{i}.jpg"))
                .expect("bytes"),
        );
    }
    assert!((2..=5).contains(&distinct.len()), "{}", distinct.len());

    media.set_not_found("https://i.redd.it/gone.png");
    media.set_content_type("https://i.redd.it/page.png", "text/html; charset=utf-8");
    media.set_oversize("https://i.redd.it/huge.png", 300_000);
    media.set_host_down("i.imgur.com", true);
    assert_eq!(get(&base, "i.redd.it/gone.png").await.0, 404);
    assert_eq!(media.bytes_for("https://i.redd.it/gone.png"), None);
    assert!(
        get(&base, "i.redd.it/page.png")
            .await
            .1
            .starts_with("text/html")
    );
    assert_eq!(get(&base, "i.redd.it/huge.png").await.2.len(), 300_000);
    assert_eq!(get(&base, "i.imgur.com/x.jpg").await.0, 503);
    media.set_host_down("i.imgur.com", false);
    assert_eq!(get(&base, "i.imgur.com/x.jpg").await.0, 200);
    assert_eq!(media.requests_for("https://i.redd.it/abc.png"), 2);
    assert_eq!(media.request_count(), 8);
    let other = format!("{}x", base.trim_end_matches("media/"));
    assert_eq!(
        reqwest::get(other).await.expect("req").status().as_u16(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_requests_in_flight() {
    let media = MediaSim::start(MediaSimConfig {
        delay: Duration::from_millis(100),
        ..Default::default()
    })
    .await
    .expect("start");
    let base = media.base();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..3 {
        let url = format!("{base}i.redd.it/{i}.png");
        set.spawn(async move { reqwest::get(url).await.map(|r| r.status().as_u16()) });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(r.expect("join").expect("request"), 200);
    }
    assert_eq!(media.max_in_flight(), 3);
    get(&base, "i.redd.it/seq.png").await;
    assert_eq!(
        media.max_in_flight(),
        3,
        "a later lone request does not raise the peak"
    );
}
