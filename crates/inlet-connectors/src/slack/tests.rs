//! The Slack connector against the simulator: the `ok` envelope classified, the
//! first-sync window and `--full`, the non-Marketplace page size, verify's channel list.

use super::*;
use inlet_core::ManualClock;
use inlet_sim::slack::{SlackSim, SlackSimConfig};

const T0: i64 = 1_750_000_000_000;

async fn sim(non_marketplace: bool) -> (SlackSim, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp(T0)));
    let sim = SlackSim::start(SlackSimConfig {
        non_marketplace,
        bot_token: format!("xoxb-unit-{non_marketplace}-{}", std::process::id()),
        clock: clock.clone(),
        ..Default::default()
    })
    .await
    .expect("sim");
    (sim, clock)
}

fn connector(sim: &SlackSim, token: &str, tune: impl FnOnce(&mut SlackConfig)) -> SlackConnector {
    let mut cfg = SlackConfig {
        api_base: sim.api_base(),
        channels: sim.channel_ids(),
        ..Default::default()
    };
    tune(&mut cfg);
    let creds = SlackCredentials::token(token.to_string());
    SlackConnector::new(cfg, &creds, HttpConfig::default()).expect("connector")
}

fn messages() -> &'static StreamSpec {
    &streams::STREAMS[2]
}

#[test]
fn ts_strings_are_read_as_decimals() {
    assert_eq!(
        time_of_ts("1718800000.123456"),
        Some(Timestamp(1_718_800_000_123))
    );
    assert_eq!(time_of_ts("1718800000"), Some(Timestamp(1_718_800_000_000)));
    assert_eq!(time_of_ts("x.1"), None);
    assert_eq!(ts_of_ms(1_718_800_000_123), "1718800000.123000");
}

#[test]
fn messages_map_to_columns() {
    let raw = r#"{"type":"message","user":"U1","text":"hi","ts":"1718800200.000300","thread_ts":"1718800200.000300","reply_count":2,"latest_reply":"1718800500.000500","edited":{"user":"U1","ts":"1718800300.000000"}}"#;
    let r = map_message(raw, "C1").expect("maps");
    assert_eq!(r.id, "C1:1718800200.000300");
    assert_eq!(r.values[6], Value::Int(2));
    assert_eq!(r.values[8], Value::Time(Timestamp(1_718_800_300_000)));
    assert_eq!(r.raw, raw);
    assert!(map_message(r#"{"text":"no ts"}"#, "C1").is_err());
}

#[tokio::test]
async fn ok_false_is_classified() {
    let (sim, _) = sim(false).await;
    let bad = connector(&sim, "xoxb-unknown", |_| {});
    let e = bad.auth_test().await.expect_err("invalid_auth");
    assert!(
        matches!(&e, ConnectorError::NeedsReauth(m) if m.contains("invalid_auth")),
        "{e}"
    );
    let good = connector(&sim, &sim.bot_token(), |c| c.first_sync_hours = 0);
    assert_eq!(good.auth_test().await.expect("auth"), "Sim Team/inletbot");
    let e = good
        .fetch_listing(messages(), "C0NOPE", None, None)
        .await
        .expect_err("channel_not_found");
    assert!(
        matches!(&e, ConnectorError::Provider(m) if m.contains("channel_not_found")),
        "{e}"
    );
    // A thread gone meanwhile has no replies; a message without replies costs no call.
    let ch = sim.channel_ids()[0].clone();
    let page = good
        .fetch_listing(messages(), &ch, None, None)
        .await
        .expect("history");
    let plain = page
        .records
        .iter()
        .find(|r| r.values[6] == Value::Null)
        .expect("a plain message");
    let threaded = page
        .records
        .iter()
        .find(|r| r.values[6] != Value::Null)
        .expect("a thread")
        .clone();
    let before = sim.method_count("conversations.replies");
    let none = good
        .fetch_children(messages(), plain, None)
        .await
        .expect("no replies");
    assert!(none.records.is_empty());
    assert_eq!(sim.method_count("conversations.replies"), before);
    let replies = good
        .fetch_children(messages(), &threaded, None)
        .await
        .expect("replies");
    assert_eq!(replies.records.len(), 4, "the parent is left out");
    let ts = threaded.values[1].as_text().expect("ts").to_string();
    assert!(sim.delete(&ch, &ts));
    for r in sim
        .truth_replies(&ch)
        .iter()
        .filter(|r| r.json["thread_ts"] == ts.as_str())
    {
        assert!(sim.delete(&ch, &r.ts));
    }
    let gone = good
        .fetch_children(messages(), &threaded, None)
        .await
        .expect("thread_not_found is no replies");
    assert!(gone.records.is_empty());
    sim.revoke(&sim.bot_token());
    let e = good.auth_test().await.expect_err("token_revoked");
    assert!(matches!(e, ConnectorError::NeedsReauth(_)), "{e}");
}

#[tokio::test]
async fn since_is_oldest_and_non_marketplace_page() {
    let (sim, _) = sim(true).await;
    let ch = sim.channel_ids()[0].clone();
    let c = connector(&sim, &sim.bot_token(), |cfg| cfg.non_marketplace = true);
    let since = Timestamp(T0 - 7 * 24 * 3_600_000);
    let page = c
        .fetch_listing(messages(), &ch, Some(since), None)
        .await
        .expect("history");
    let q = &sim.requests()[0].query;
    assert!(q.contains("limit=15"), "{q}");
    assert!(q.contains(&format!("oldest={}", ts_of_ms(since.0))), "{q}");
    assert!(q.contains("inclusive=true"), "{q}");
    assert!(page.records.len() <= 15);
    assert!(page.records.iter().all(|r| r.sort_ts >= Some(since)));
    assert_eq!(sim.rate_limit_violations(), 0);
    // A resumed page keeps its listing's window (a Marketplace app, 15 per page).
    let (sim, _) = self::sim(false).await;
    let c = connector(&sim, &sim.bot_token(), |cfg| cfg.page_size = 15);
    let page = c
        .fetch_listing(messages(), &ch, Some(since), None)
        .await
        .expect("history");
    let next = page.next.clone().expect("more than 15 messages");
    c.fetch_listing(messages(), &ch, None, Some(&next))
        .await
        .expect("page 2");
    let q = &sim.requests()[1].query;
    assert!(q.contains(&format!("oldest={}", ts_of_ms(since.0))), "{q}");
    assert!(q.contains("cursor="), "{q}");
    // Without `since` (a full run) everything is read.
    c.fetch_listing(messages(), &ch, None, None)
        .await
        .expect("history");
    let q = &sim.requests()[2].query;
    assert!(!q.contains("oldest="), "{q}");
    // The first-sync window is the engine's, per channel.
    let fam = &c.families()[0];
    assert!(fam.listing_cursors);
    assert_eq!(fam.first_window_secs, Some(24 * 3600));
    let all = connector(&sim, &sim.bot_token(), |cfg| cfg.first_sync_hours = 0);
    assert_eq!(all.families()[0].first_window_secs, None);
    assert_eq!(sim.rate_limit_violations(), 0);
}

#[tokio::test]
async fn verify_lists_channels_to_pick_from() {
    let (sim, _) = sim(false).await;
    let creds = serde_json::json!({"token": sim.bot_token()});
    let cfg = serde_json::json!({"api_base": sim.api_base()});
    let e = provider::verify_typed::<SlackConnector>(cfg, creds.clone(), HttpConfig::default())
        .await
        .expect_err("no channel chosen");
    let msg = e.to_string();
    assert!(
        msg.contains("--channel") && msg.contains("C0SIM0000 #channel-0"),
        "{msg}"
    );
    let ch = sim.channel_ids()[1].clone();
    let cfg = serde_json::json!({"api_base": sim.api_base(), "channels": [ch]});
    let ok = provider::verify_typed::<SlackConnector>(cfg, creds.clone(), HttpConfig::default())
        .await
        .expect("verified");
    assert_eq!(ok.account.as_deref(), Some("Sim Team/inletbot"));
    let cfg = serde_json::json!({"api_base": sim.api_base(), "channels": ["C0MISSING"]});
    let e = provider::verify_typed::<SlackConnector>(cfg, creds, HttpConfig::default())
        .await
        .expect_err("unknown channel");
    assert!(e.to_string().contains("C0MISSING"), "{e}");
}
