//! The schedule over a controllable clock: intervals, spread, backoff, skipped states.

use super::*;
use crate::worker::Outcome;
use inlet_core::{Clock, ManualClock};

const T0: i64 = 1_700_000_000_000;
const MIN: i64 = 60_000;

/// Reddit every 10 minutes (its registry default), every other provider every 15.
fn reddit_every_10_min() -> ScheduleConfig {
    ScheduleConfig::with_intervals_min([("reddit", 10)])
}

fn conn(id: i64, provider: &str, status: ConnectionStatus) -> Connection {
    Connection {
        id,
        name: format!("c{id}"),
        workspace: "w".into(),
        provider: provider.into(),
        config: serde_json::json!({}),
        credentials: vec![],
        status,
        status_detail: None,
        created_at: Timestamp(T0),
        updated_at: Timestamp(T0),
    }
}

/// Drive the scheduler second by second for `secs`; every due connection finishes at
/// once with `outcome(id)`. Returns the (id, due, fired-at) of every start.
fn drive(
    s: &mut Scheduler,
    conns: &[Connection],
    clock: &ManualClock,
    secs: i64,
    outcome: impl Fn(i64) -> Outcome,
) -> Vec<(i64, i64, i64)> {
    let mut fired = vec![];
    for _ in 0..secs {
        let now = clock.now();
        for (id, due) in s.due(conns, now) {
            fired.push((id, due.0, now.0));
            let c = conns.iter().find(|c| c.id == id).expect("known");
            s.finished(id, &c.provider, outcome(id), now);
        }
        clock.advance_ms(1000);
    }
    fired
}

#[test]
fn hundred_connections_keep_their_interval_and_are_spread() {
    let clock = ManualClock::new(Timestamp(T0));
    let mut s = Scheduler::new(reddit_every_10_min());
    let conns: Vec<Connection> = (1..=100)
        .map(|i| {
            conn(
                i,
                if i % 2 == 0 { "reddit" } else { "slack" },
                ConnectionStatus::Active,
            )
        })
        .collect();
    let fired = drive(&mut s, &conns, &clock, 45 * 60, |_| Outcome::Success);
    for c in &conns {
        let times: Vec<i64> = fired.iter().filter(|f| f.0 == c.id).map(|f| f.2).collect();
        let want = if c.provider == "reddit" {
            10 * MIN
        } else {
            15 * MIN
        };
        assert!(times.len() >= 3, "{} fired {} times", c.id, times.len());
        // The first run comes within one interval of start (at the tick after its slot),
        // then exactly every interval.
        assert!(times[0] - T0 <= want);
        for w in times.windows(2) {
            assert_eq!(w[1] - w[0], want, "connection {}", c.id);
        }
        // Started on time: ticks are one second apart.
        assert!(
            fired
                .iter()
                .filter(|f| f.0 == c.id)
                .all(|f| f.2 - f.1 < 1000)
        );
    }
    // Spread: in the first 10 minutes the 50 Reddit connections start in many different
    // seconds, never more than a few in one.
    let mut per_sec = std::collections::HashMap::new();
    for f in fired.iter().filter(|f| f.2 < T0 + 10 * MIN) {
        *per_sec.entry(f.2).or_insert(0) += 1;
    }
    assert!(
        per_sec.len() > 60,
        "only {} distinct start seconds",
        per_sec.len()
    );
    assert!(
        per_sec.values().all(|&n| n <= 4),
        "{:?}",
        per_sec.values().max()
    );
}

#[test]
fn ten_thousand_slots_are_spread_evenly() {
    let interval = 10 * MIN;
    let mut buckets = [0u32; 10];
    for id in 1..=10_000 {
        let off = slot_offset(id, interval);
        assert!((0..interval).contains(&off));
        buckets[(off / MIN) as usize] += 1;
    }
    // Each minute holds about a tenth: never a stampede.
    assert!(
        buckets.iter().all(|&b| (850..=1150).contains(&b)),
        "{buckets:?}"
    );
    assert_eq!(
        slot_offset(42, interval),
        slot_offset(42, interval),
        "deterministic"
    );
}

#[test]
fn paused_and_needs_reauth_are_never_scheduled_failing_is() {
    let clock = ManualClock::new(Timestamp(T0));
    let mut s = Scheduler::new(reddit_every_10_min());
    let conns = vec![
        conn(1, "reddit", ConnectionStatus::Paused),
        conn(2, "reddit", ConnectionStatus::NeedsReauth),
        conn(3, "reddit", ConnectionStatus::Failing),
        conn(4, "reddit", ConnectionStatus::Active),
    ];
    let fired = drive(&mut s, &conns, &clock, 25 * 60, |_| Outcome::Success);
    let ids: std::collections::BTreeSet<i64> = fired.iter().map(|f| f.0).collect();
    assert_eq!(ids, [3, 4].into_iter().collect());
    assert!(s.entry(1).is_none() && s.entry(2).is_none());
}

#[test]
fn failing_connection_backs_off_exponentially_capped_recovers_and_delays_nobody() {
    let clock = ManualClock::new(Timestamp(T0));
    let cfg = reddit_every_10_min();
    assert_eq!(
        (1..=8).map(|f| cfg.backoff_ms(f) / MIN).collect::<Vec<_>>(),
        vec![1, 2, 4, 8, 16, 32, 60, 60]
    );
    let mut s = Scheduler::new(cfg);
    let conns: Vec<Connection> = (1..=100)
        .map(|i| conn(i, "reddit", ConnectionStatus::Active))
        .collect();
    let bad = 7;
    let broken_until = T0 + 3 * 60 * MIN;
    let fired = drive(&mut s, &conns, &clock, 5 * 60 * 60, |id| {
        if id == bad && clock.now().0 < broken_until {
            Outcome::Failed
        } else {
            Outcome::Success
        }
    });
    let bad_times: Vec<i64> = fired.iter().filter(|f| f.0 == bad).map(|f| f.2).collect();
    let gaps: Vec<i64> = bad_times.windows(2).map(|w| (w[1] - w[0]) / MIN).collect();
    // 1, 2, 4, ... minutes, capped at an hour; after recovery back to every 10 minutes.
    assert_eq!(&gaps[..7], &[1, 2, 4, 8, 16, 32, 60], "{gaps:?}");
    assert!(gaps.ends_with(&[10, 10, 10]), "{gaps:?}");
    // Everyone else kept their 10-minute rhythm the whole time.
    for c in conns.iter().filter(|c| c.id != bad) {
        let t: Vec<i64> = fired.iter().filter(|f| f.0 == c.id).map(|f| f.2).collect();
        assert!(t.len() >= 29, "connection {} fired {} times", c.id, t.len());
        assert!(t.windows(2).all(|w| w[1] - w[0] == 10 * MIN));
    }
}

#[test]
fn a_running_connection_is_not_started_twice_and_intervals_are_configurable() {
    let clock = ManualClock::new(Timestamp(T0));
    let mut cfg = ScheduleConfig::default();
    cfg.intervals_ms.insert("github".into(), 2 * MIN);
    let mut s = Scheduler::new(cfg);
    let conns = vec![conn(1, "github", ConnectionStatus::Active)];
    let mut starts = 0;
    for _ in 0..(10 * 60) {
        starts += s.due(&conns, clock.now()).len();
        clock.advance_ms(1000);
    }
    assert_eq!(starts, 1, "never finished, so never started again");
    s.finished(1, "github", Outcome::Success, clock.now());
    let next = s.entry(1).expect("entry").next_due;
    assert!(next.0 > clock.now().0 && next.0 - clock.now().0 <= 2 * MIN);
}

#[test]
fn a_waiting_run_starts_again_after_the_reset_not_on_failure_backoff() {
    let clock = ManualClock::new(Timestamp(T0));
    let mut s = Scheduler::new(ScheduleConfig::default());
    let conns = vec![conn(1, "github", ConnectionStatus::Active)];
    // The provider's budget resets in 47 minutes; the run ends waiting each time it is
    // started before that.
    let reset = T0 + 47 * MIN;
    let fired = drive(&mut s, &conns, &clock, 2 * 60 * 60, |_| {
        if clock.now().0 < reset {
            Outcome::Waiting {
                until: Timestamp(reset),
            }
        } else {
            Outcome::Success
        }
    });
    let times: Vec<i64> = fired.iter().map(|f| f.2).collect();
    assert!(times[0] < reset, "{times:?}");
    // Not 1, 2, 4, ... minutes of failure backoff: the next start is the reset itself.
    assert!(
        times[1] >= reset,
        "started again before the reset: {times:?}"
    );
    assert!(
        times[1] - reset <= 2000,
        "started {} ms after the reset",
        times[1] - reset
    );
    assert_eq!(
        s.entry(1).expect("entry").failures,
        0,
        "waiting is no failure"
    );
    // Then back on the 15-minute interval.
    assert!(times[2..].windows(2).all(|w| w[1] - w[0] == 15 * MIN));
}

fn in_workspace(id: i64, provider: &str, workspace: &str) -> Connection {
    Connection {
        workspace: workspace.into(),
        ..conn(id, provider, ConnectionStatus::Active)
    }
}

fn ended(id: i64, outcome: Outcome, records: u64) -> Finished {
    Finished {
        connection_id: id,
        outcome,
        at: Timestamp(T0),
        records,
    }
}

#[test]
fn tick_summary_waits_for_the_last_run_and_counts_failed_workspaces() {
    let mut book = TickBook::default();
    // Tick 1 starts two slack runs in workspace a, one in b, and one reddit run in a.
    for c in [
        in_workspace(1, "slack", "a"),
        in_workspace(2, "slack", "a"),
        in_workspace(3, "slack", "b"),
        in_workspace(4, "reddit", "a"),
    ] {
        book.started(1, Timestamp(T0), &c);
    }
    assert_eq!(book.ended(&ended(1, Outcome::Success, 10)), None);
    assert_eq!(book.ended(&ended(3, Outcome::Failed, 0)), None);
    // A finish of a connection no tick started (an API trigger) changes nothing.
    assert_eq!(book.ended(&ended(9, Outcome::Success, 99)), None);
    let (p, s, at) = book
        .ended(&ended(2, Outcome::Success, 5))
        .expect("last slack run");
    assert_eq!((p.as_str(), at), ("slack", Timestamp(T0)));
    assert_eq!(
        s,
        TickSummary {
            status: TickStatus::Success,
            total_messages: 15,
            successful_workspaces: 1,
            failed_workspaces: 1,
        }
    );
    // One failing run fails its workspace even when its other runs succeed.
    book.started(2, Timestamp(T0 + 1000), &in_workspace(1, "slack", "a"));
    book.started(2, Timestamp(T0 + 1000), &in_workspace(2, "slack", "a"));
    assert_eq!(book.ended(&ended(1, Outcome::Failed, 0)), None);
    let (_, s, _) = book.ended(&ended(2, Outcome::Success, 3)).expect("summary");
    assert_eq!((s.successful_workspaces, s.failed_workspaces), (0, 1));
    let (p, s, _) = book.ended(&ended(4, Outcome::Success, 7)).expect("reddit");
    assert_eq!(
        (p.as_str(), s.total_messages, s.successful_workspaces),
        ("reddit", 7, 1)
    );
}

#[test]
fn provider_ticks_keep_the_last_success_and_totals() {
    let h = SchedulerHandle::default();
    let ran = TickSummary {
        status: TickStatus::Success,
        total_messages: 4,
        successful_workspaces: 2,
        failed_workspaces: 1,
    };
    let skipped = TickSummary {
        status: TickStatus::Skipped,
        total_messages: 0,
        successful_workspaces: 0,
        failed_workspaces: 0,
    };
    h.record_tick("slack", ran, Timestamp(T0));
    h.record_tick("slack", skipped, Timestamp(T0 + 1000));
    let t = &h.tick_summaries()["slack"];
    assert_eq!(t.last, Some(skipped));
    assert_eq!(t.last_success, Some(ran));
    assert_eq!(t.last_success_tick_at, Some(Timestamp(T0)));
    assert_eq!(
        (
            t.ticks_success,
            t.ticks_skipped,
            t.messages,
            t.failed_workspaces
        ),
        (1, 1, 4, 1)
    );
}
