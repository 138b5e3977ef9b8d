//! The delta polling core on virtual time: instants are computed, nothing
//! sleeps, so the figures (requests per hour, waits) are exact.

use lamplighter_graph_sync::{DeltaSync, PollConfig, Request, Response, Status};
use lamplighter_graph_wire::{Continue, DeltaEntry, DeltaPage, Failure, Message};
use lamplighter_mailbox_sync::Change;
use proptest::prelude::*;
use std::time::{Duration, Instant};

fn msg(id: &str, read: bool) -> DeltaEntry {
    DeltaEntry::Changed(Box::new(Message { id: id.into(), is_read: Some(read), ..Message::default() }))
}

fn page(entries: Vec<DeltaEntry>, then: Continue) -> Response {
    Response::Page(DeltaPage { entries, then })
}

fn next(n: u32) -> Continue {
    Continue::Next(format!("https://graph.test/v1.0/me/mailFolders('inbox')/messages/delta?$skiptoken={n}"))
}

fn delta(n: u32) -> Continue {
    Continue::Delta(format!("https://graph.test/v1.0/me/mailFolders('inbox')/messages/delta?$deltatoken={n}"))
}

fn drain(s: &mut DeltaSync) -> Vec<Change> {
    std::iter::from_fn(|| s.poll_change()).collect()
}

#[test]
fn the_first_round_pages_then_polls_its_delta_link() {
    let t0 = Instant::now();
    let mut s = DeltaSync::new(PollConfig::default(), None, t0);
    assert_eq!(s.status(), Status::Syncing);
    assert_eq!(s.poll_request(t0), Some(Request::Start));
    assert_eq!(s.poll_request(t0), None, "one request at a time");
    s.handle(t0, page(vec![msg("a", false), msg("b", true)], next(1)));
    // the next page at once, and no link to store mid-round
    assert!(matches!(s.poll_request(t0), Some(Request::Follow(l)) if l.ends_with("skiptoken=1")));
    assert_eq!(s.poll_link(), None);
    s.handle(t0, page(vec![msg("c", false)], delta(2)));
    assert_eq!(s.status(), Status::Live);
    // the link comes only once its changes are taken
    assert_eq!(s.poll_link(), None);
    let changes = drain(&mut s);
    assert_eq!(changes.len(), 3);
    assert!(changes.iter().all(|c| matches!(c, Change::Added(_))), "the first round adds");
    assert!(s.poll_link().is_some_and(|l| l.ends_with("deltatoken=2")));
    let idle = PollConfig::default().idle_interval;
    assert_eq!(s.next_wake(), Some(t0 + idle), "idle pace");
    assert_eq!(s.poll_request(t0 + Duration::from_secs(5)), None);
    assert!(matches!(s.poll_request(t0 + idle), Some(Request::Follow(l)) if l.ends_with("deltatoken=2")));
    // a later round reports updates and removals
    s.handle(t0 + idle, page(vec![msg("a", true), DeltaEntry::Removed { id: "b".into(), reason: None }], delta(3)));
    let changes = drain(&mut s);
    assert!(matches!(&changes[0], Change::Updated(i) if i.id.id == "a" && i.is_read == Some(true)));
    assert!(matches!(&changes[1], Change::Removed(id) if id.id == "b"));
    // right after a change, the active pace
    assert_eq!(s.next_wake(), Some(t0 + idle + Duration::from_secs(3)));
}

/// One idle hour and one busy one, counted (one folder's polls; the
/// folder listings that make an idle mailbox's 600 are counted in `mailbox_sync`).
#[test]
fn an_idle_hour_costs_598_polls_and_changes_speed_it_up() {
    let t0 = Instant::now();
    let mut s = DeltaSync::new(PollConfig::default(), Some("https://graph.test/v1.0/x?$deltatoken=0".into()), t0);
    let hour = t0 + Duration::from_secs(3600);
    assert!(s.poll_request(t0).is_some());
    s.handle(t0, page(vec![], delta(0)));
    // the hour after that first poll
    let mut now = s.next_wake().expect("a next request");
    let mut requests = 0;
    while now <= hour {
        if s.poll_request(now).is_some() {
            requests += 1;
            s.handle(now, page(vec![], delta(requests)));
        }
        now = s.next_wake().expect("a next request");
    }
    println!("idle: {requests} requests in an hour");
    assert_eq!(requests, 598);
    // a change every 5 minutes: 2 minutes at 3 s (40) and 3 at 6 s (30), twelve times, about 840
    let mut s = DeltaSync::new(PollConfig::default(), Some("https://graph.test/v1.0/x?$deltatoken=0".into()), t0);
    let (mut now, mut requests, mut last_deposit) = (t0, 0u32, t0);
    while now < hour {
        if s.poll_request(now).is_some() {
            requests += 1;
            let entries = if now.duration_since(last_deposit) >= Duration::from_secs(300) {
                last_deposit = now;
                vec![msg(&format!("m{requests}"), false)]
            } else {
                vec![]
            };
            s.handle(now, page(entries, delta(requests)));
        }
        now = s.next_wake().expect("next");
    }
    println!("a change every 5 min: {requests} requests in an hour");
    assert!((800..=850).contains(&requests), "{requests}");
}

#[test]
fn throttling_waits_as_asked_and_retries_the_same_request() {
    let t0 = Instant::now();
    let mut s = DeltaSync::new(PollConfig::default(), None, t0);
    assert_eq!(s.poll_request(t0), Some(Request::Start));
    s.handle(
        t0,
        Response::Failed {
            failure: Failure::Throttled { retry_after: Some(Duration::from_secs(7)) },
            words: "429".into(),
        },
    );
    assert!(
        matches!(s.status(), Status::Waiting { until, ref reason } if until == t0 + Duration::from_secs(7) && reason.contains("throttled"))
    );
    assert_eq!(s.poll_request(t0 + Duration::from_millis(6999)), None);
    assert_eq!(s.poll_request(t0 + Duration::from_secs(7)), Some(Request::Start));
    // an absurd Retry-After is capped at 10 minutes
    s.handle(
        t0,
        Response::Failed {
            failure: Failure::Throttled { retry_after: Some(Duration::from_secs(86_400)) },
            words: "429".into(),
        },
    );
    assert_eq!(s.next_wake(), Some(t0 + Duration::from_secs(600)));
}

#[test]
fn failures_back_off_with_jitter_to_five_minutes_and_a_success_forgives() {
    let t0 = Instant::now();
    let mut s = DeltaSync::new(PollConfig::default(), None, t0);
    let mut now = t0;
    let mut waits = Vec::new();
    for _ in 0..12 {
        assert!(s.poll_request(now).is_some());
        s.handle(now, Response::Broken("connection refused".into()));
        let at = s.next_wake().expect("retry");
        waits.push(at.duration_since(now).as_secs_f64());
        now = at;
    }
    println!("back-off waits (s): {waits:?}");
    for (i, w) in waits.iter().enumerate() {
        let base = (2.0 * 2f64.powi(i as i32)).min(300.0);
        assert!(*w >= base * 0.8 - 0.001 && *w <= base * 1.2 + 0.001, "wait {i}: {w} for {base}");
    }
    assert!(matches!(s.status(), Status::Waiting { ref reason, .. } if reason == "connection refused"));
    assert!(s.poll_request(now).is_some());
    s.handle(now, page(vec![], delta(1)));
    assert_eq!(s.status(), Status::Live);
    let idle = PollConfig::default().idle_interval;
    assert!(s.poll_request(now + idle).is_some());
    s.handle(now + idle, Response::Broken("reset".into()));
    let w = s.next_wake().expect("retry").duration_since(now + idle).as_secs_f64();
    assert!((1.6..=2.4).contains(&w), "the back-off starts again at 2 s: {w}");
}

#[test]
fn a_resume_polls_at_once_but_never_against_retry_after_or_a_sign_out() {
    let t0 = Instant::now();
    let mut s = DeltaSync::new(PollConfig::default(), None, t0);
    // failures while the network slept: a long back-off, forgiven by the resume
    let mut now = t0;
    for _ in 0..8 {
        assert!(s.poll_request(now).is_some());
        s.handle(now, Response::Broken("network unreachable".into()));
        now = s.next_wake().expect("retry");
    }
    let woke = now - Duration::from_secs(60);
    assert!(s.next_wake().expect("retry") > woke + Duration::from_secs(30), "a long wait is pending");
    s.resumed(woke);
    assert_eq!(s.next_wake(), Some(woke), "polled at once after the resume");
    assert!(s.poll_request(woke).is_some());
    s.handle(woke, Response::Broken("still down".into()));
    let w = s.next_wake().expect("retry").duration_since(woke).as_secs_f64();
    assert!((1.6..=2.4).contains(&w), "the back-off starts again from 2 s: {w}");

    // the server asked for a pause: a resume does not cut it short
    let t1 = s.next_wake().expect("due");
    assert!(s.poll_request(t1).is_some());
    s.handle(
        t1,
        Response::Failed {
            failure: Failure::Throttled { retry_after: Some(Duration::from_secs(30)) },
            words: "429".into(),
        },
    );
    s.resumed(t1 + Duration::from_secs(5));
    assert_eq!(s.next_wake(), Some(t1 + Duration::from_secs(30)));
    s.resumed(t1 + Duration::from_secs(31));
    assert_eq!(s.next_wake(), Some(t1 + Duration::from_secs(30)), "due anyway");

    // signed out stays signed out: only a sign-in (wake) retries
    assert!(s.poll_request(t1 + Duration::from_secs(31)).is_some());
    s.handle(
        t1 + Duration::from_secs(31),
        Response::Failed { failure: Failure::Unauthorized { invalid_token: true }, words: "401".into() },
    );
    s.resumed(t1 + Duration::from_secs(40));
    assert_eq!(s.next_wake(), None);
}

#[test]
fn an_expired_delta_link_is_a_reset_and_a_new_round() {
    let t0 = Instant::now();
    let mut s = DeltaSync::new(PollConfig::default(), Some("https://graph.test/v1.0/x?$deltatoken=old".into()), t0);
    assert!(s.poll_request(t0).is_some());
    s.handle(t0, Response::Failed { failure: Failure::DeltaExpired, words: "410".into() });
    assert_eq!(s.poll_change(), Some(Change::Reset));
    assert_eq!(s.status(), Status::Syncing);
    assert_eq!(s.poll_request(t0), Some(Request::Start));
    s.handle(t0, page(vec![msg("a", false)], delta(1)));
    assert!(matches!(s.poll_change(), Some(Change::Added(_))), "after a reset the folder is added again");
}

#[test]
fn a_refused_token_signs_out_until_woken_and_then_resumes_where_it_was() {
    let t0 = Instant::now();
    let mut s = DeltaSync::new(PollConfig::default(), Some("https://graph.test/v1.0/x?$deltatoken=5".into()), t0);
    assert!(s.poll_request(t0).is_some());
    s.handle(t0, Response::Failed { failure: Failure::Unauthorized { invalid_token: true }, words: "401".into() });
    assert!(matches!(s.status(), Status::SignedOut { ref reason } if reason.contains("sign in again")));
    assert_eq!(s.next_wake(), None, "never retried into a loop");
    assert_eq!(s.poll_request(t0 + Duration::from_secs(3600)), None);
    s.wake(t0 + Duration::from_secs(3600));
    assert!(
        matches!(s.poll_request(t0 + Duration::from_secs(3600)), Some(Request::Follow(l)) if l.ends_with("deltatoken=5"))
    );
}

fn any_response() -> impl Strategy<Value = Response> {
    prop_oneof![
        Just(page(vec![msg("a", false)], delta(1))),
        Just(page(vec![], next(2))),
        Just(Response::Broken("x".into())),
        (0u64..5000).prop_map(|s| Response::Failed {
            failure: Failure::Throttled { retry_after: Some(Duration::from_secs(s)) },
            words: "429".into()
        }),
        Just(Response::Failed { failure: Failure::DeltaExpired, words: "410".into() }),
        Just(Response::Failed { failure: Failure::Server, words: "503".into() }),
        Just(Response::Failed { failure: Failure::Unauthorized { invalid_token: true }, words: "401".into() }),
    ]
}

proptest! {
    /// Whatever the server answers, one request at a time, never a request
    /// before it is due, and never a second request within a second of a failure (one
    /// immediate new round after an expiry aside).
    #[test]
    fn any_answers_keep_the_pace(answers in proptest::collection::vec(any_response(), 1..60)) {
        let t0 = Instant::now();
        let mut s = DeltaSync::new(PollConfig::default(), None, t0);
        let mut now = t0;
        let mut immediate = false;
        for a in answers {
            let Some(_) = s.poll_request(now) else {
                s.wake(now);
                immediate = false;
                continue;
            };
            prop_assert!(s.poll_request(now).is_none());
            let failed = !matches!(a, Response::Page(_));
            s.handle(now, a);
            while s.poll_change().is_some() {}
            if let Some(at) = s.next_wake() {
                if failed {
                    // at most one immediate retry (a first expiry), then the back-off
                    prop_assert!(at >= now + Duration::from_secs(1) || (at == now && !immediate), "{:?}", at - now);
                    immediate = at == now;
                } else {
                    immediate = false;
                }
                now = at.max(now);
            }
        }
    }
}

#[test]
fn a_change_notification_polls_now_but_never_against_a_back_off_and_never_loses_a_change_in_flight() {
    let t0 = Instant::now();
    let mut s = DeltaSync::new(PollConfig::default(), Some("https://graph.test/v1.0/x?$deltatoken=0".into()), t0);
    assert!(s.poll_request(t0).is_some());
    s.handle(t0, page(vec![], delta(1)));
    let idle = PollConfig::default().idle_interval;
    assert_eq!(s.next_wake(), Some(t0 + idle));
    // a notification a second later: the poll is due then, not at the idle pace
    let t1 = t0 + Duration::from_secs(1);
    s.notified(t1);
    assert_eq!(s.next_wake(), Some(t1));
    // one arrives while that poll is in flight: the round after it is due at once
    assert!(s.poll_request(t1).is_some());
    s.notified(t1);
    s.handle(t1, page(vec![], delta(2)));
    assert_eq!(s.next_wake(), Some(t1), "the change the round in flight may have missed is fetched at once");
    assert!(s.poll_request(t1).is_some());
    s.handle(t1, page(vec![], delta(3)));
    assert_eq!(s.next_wake(), Some(t1 + idle), "and then the pace again");
    // failing: a notification does not shorten the back-off
    assert!(s.poll_request(t1 + idle).is_some());
    s.handle(t1 + idle, Response::Broken("reset".into()));
    let waiting = s.next_wake().expect("a retry");
    assert!(waiting > t1 + idle);
    s.notified(t1 + idle);
    assert_eq!(s.next_wake(), Some(waiting));
    // nor a server's Retry-After
    assert!(s.poll_request(waiting).is_some());
    s.handle(
        waiting,
        Response::Failed {
            failure: Failure::Throttled { retry_after: Some(Duration::from_secs(30)) },
            words: "429".into(),
        },
    );
    s.notified(waiting + Duration::from_secs(1));
    assert_eq!(s.next_wake(), Some(waiting + Duration::from_secs(30)));
}
