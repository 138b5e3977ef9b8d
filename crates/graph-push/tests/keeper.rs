//! The subscription keeper on virtual time: instants are computed, nothing
//! sleeps, so waits and renewal times are exact.

use lamplighter_graph_push::keeper::{Event, Keeper, KeeperConfig, Outcome, Want};
use proptest::prelude::*;
use std::time::{Duration, Instant};

const STATE: &str = "s3cr3t-client-state";
const DAY: Duration = Duration::from_secs(86_400);

fn keeper() -> Keeper {
    Keeper::new(KeeperConfig::default(), STATE.into())
}

fn events(k: &mut Keeper) -> Vec<Event> {
    std::iter::from_fn(|| k.poll_event()).collect()
}

/// Makes every due subscription, answering each create with id `sub-<mailbox>`.
fn create_all(k: &mut Keeper, now: Instant) {
    loop {
        let wants = k.poll_wants(now);
        if wants.is_empty() {
            return;
        }
        for w in wants {
            let Want::Create { mailbox, .. } = w else { panic!("a create: {w:?}") };
            k.answered(&mailbox, now, Outcome::Ok { id: format!("sub-{mailbox}"), lives: 3 * DAY });
        }
    }
}

fn body(entries: &[(&str, &str, Option<&str>)]) -> Vec<u8> {
    let value: Vec<String> = entries
        .iter()
        .map(|(id, state, life)| match life {
            Some(l) => format!(r#"{{"subscriptionId":"{id}","clientState":"{state}","lifecycleEvent":"{l}"}}"#),
            None => format!(
                r#"{{"subscriptionId":"{id}","clientState":"{state}","changeType":"created","resource":"Users/x/Messages/y"}}"#
            ),
        })
        .collect();
    format!(r#"{{"value":[{}]}}"#, value.join(",")).into_bytes()
}

#[test]
fn subscriptions_are_made_four_at_a_time_and_renewed_two_thirds_in_spread_by_mailbox() {
    let t0 = Instant::now();
    let mut k = keeper();
    for n in 0..10 {
        k.add(&format!("user{n}@contoso.com"), t0);
    }
    let first = k.poll_wants(t0);
    assert_eq!(first.len(), 4, "at most four in flight");
    assert!(k.poll_wants(t0).is_empty());
    for w in first {
        let Want::Create { mailbox, lifetime } = w else { panic!("{w:?}") };
        assert_eq!(lifetime, 3 * DAY);
        k.answered(&mailbox, t0, Outcome::Ok { id: format!("sub-{mailbox}"), lives: 3 * DAY });
    }
    let e = events(&mut k);
    assert_eq!(e.iter().filter(|e| matches!(e, Event::Flowing(_, true))).count(), 4);
    assert_eq!(e.iter().filter(|e| matches!(e, Event::Changed(_))).count(), 4, "what came before is fetched");
    create_all(&mut k, t0);
    assert_eq!(k.stats().live, 10);
    // every renewal falls between 61.7 % and 71.7 % of the life, not all at one instant
    let mut renewals = Vec::new();
    while renewals.len() < 10 {
        let now = k.next_wake().expect("a renewal is due");
        for w in k.poll_wants(now) {
            let Want::Renew { mailbox, id, .. } = w else { panic!("{w:?}") };
            assert_eq!(id, format!("sub-{mailbox}"));
            renewals.push(now - t0);
            k.answered(&mailbox, now, Outcome::Ok { id, lives: 3 * DAY });
        }
    }
    let life = 3 * DAY;
    for r in &renewals {
        assert!(*r >= life.mul_f64(0.61) && *r <= life.mul_f64(0.72), "{r:?}");
    }
    renewals.sort();
    renewals.dedup();
    assert!(renewals.len() >= 8, "spread: {renewals:?}");
    assert_eq!(k.stats().renewed, 10);
    assert!(!events(&mut k).iter().any(|e| matches!(e, Event::Flowing(_, false))), "a renewal is no gap");
}

#[test]
fn a_notification_counts_only_with_our_client_state_and_one_per_mailbox() {
    let t0 = Instant::now();
    let mut k = keeper();
    k.add("a@contoso.com", t0);
    k.add("b@contoso.com", t0);
    create_all(&mut k, t0);
    events(&mut k);
    let v = k
        .notification(
            &body(&[
                ("sub-a@contoso.com", STATE, None),
                ("sub-a@contoso.com", STATE, None),
                ("sub-b@contoso.com", "guessed", None),
                ("sub-nobody", STATE, None),
            ]),
            t0,
        )
        .expect("a collection");
    assert_eq!((v.accepted, v.refused), (2, 2));
    assert_eq!(events(&mut k), [Event::Changed("a@contoso.com".into())]);
    // a forged body changes nothing
    let v = k.notification(&body(&[("sub-b@contoso.com", "s3cr3t-client-statX", None)]), t0).expect("read");
    assert_eq!((v.accepted, v.refused), (0, 1));
    assert!(events(&mut k).is_empty());
    assert!(k.notification(b"{\"not\":\"graph\"}", t0).is_err());
    assert!(k.poll_wants(t0).is_empty(), "nothing to send");
}

#[test]
fn lifecycle_events_resync_remake_and_renew() {
    let t0 = Instant::now();
    let mut k = keeper();
    k.add("a@contoso.com", t0);
    create_all(&mut k, t0);
    events(&mut k);
    // missed: a change (delta resyncs)
    k.notification(&body(&[("sub-a@contoso.com", STATE, Some("missed"))]), t0).expect("read");
    assert_eq!(events(&mut k), [Event::Changed("a@contoso.com".into())]);
    // reauthorizationRequired: a renewal now
    let t1 = t0 + Duration::from_secs(60);
    k.notification(&body(&[("sub-a@contoso.com", STATE, Some("reauthorizationRequired"))]), t1).expect("read");
    assert_eq!(events(&mut k), [Event::Changed("a@contoso.com".into())], "and a resync");
    assert!(matches!(&k.poll_wants(t1)[..], [Want::Renew { id, .. }] if id == "sub-a@contoso.com"));
    k.answered("a@contoso.com", t1, Outcome::Ok { id: "sub-a@contoso.com".into(), lives: 3 * DAY });
    assert!(events(&mut k).is_empty(), "a renewal is no gap");
    // subscriptionRemoved: not flowing, a resync, and a new subscription at once
    k.notification(&body(&[("sub-a@contoso.com", STATE, Some("subscriptionRemoved"))]), t1).expect("read");
    assert_eq!(events(&mut k), [Event::Flowing("a@contoso.com".into(), false), Event::Changed("a@contoso.com".into())]);
    assert!(matches!(&k.poll_wants(t1)[..], [Want::Create { mailbox, .. }] if mailbox == "a@contoso.com"));
    k.answered("a@contoso.com", t1, Outcome::Ok { id: "sub-2".into(), lives: 3 * DAY });
    assert_eq!(events(&mut k)[0], Event::Flowing("a@contoso.com".into(), true));
    // the old id counts no more
    let v = k.notification(&body(&[("sub-a@contoso.com", STATE, None)]), t1).expect("read");
    assert_eq!(v.accepted, 0);
    assert_eq!(k.stats().removed, 1);
}

#[test]
fn failures_back_off_and_a_renewal_that_keeps_failing_lets_it_lapse_and_remakes_it() {
    let t0 = Instant::now();
    let mut k = keeper();
    k.add("a@contoso.com", t0);
    // the webhook is not reachable: 1, 2, 4 … minutes, at most an hour
    let mut now = t0;
    let mut waits = Vec::new();
    for _ in 0..9 {
        let wants = k.poll_wants(now);
        assert!(matches!(&wants[..], [Want::Create { .. }]), "{wants:?}");
        k.answered("a@contoso.com", now, Outcome::Failed { why: "validation failed".into(), retry_after: None });
        let next = k.next_wake().expect("a retry");
        waits.push((next - now).as_secs());
        assert!(k.poll_wants(next - Duration::from_millis(1)).is_empty());
        now = next;
    }
    assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
    assert!(events(&mut k).is_empty(), "never flowing");
    // throttled: the server's wait
    k.poll_wants(now);
    k.answered("a@contoso.com", now, Outcome::Failed { why: "429".into(), retry_after: Some(Duration::from_secs(17)) });
    assert_eq!(k.next_wake(), Some(now + Duration::from_secs(17)));
    now += Duration::from_secs(17);
    k.poll_wants(now);
    k.answered("a@contoso.com", now, Outcome::Ok { id: "s".into(), lives: Duration::from_secs(3000) });
    events(&mut k);
    // renewals fail until the life is over: retried before it, then made anew
    let expires = now + Duration::from_secs(3000);
    loop {
        let at = k.next_wake().expect("due");
        let wants = k.poll_wants(at);
        match &wants[..] {
            [Want::Renew { .. }] => {
                assert!(at <= expires);
                k.answered("a@contoso.com", at, Outcome::Failed { why: "503".into(), retry_after: None });
            }
            [Want::Create { .. }] => {
                assert!(at >= expires, "made anew only once lapsed");
                assert_eq!(events(&mut k), [Event::Flowing("a@contoso.com".into(), false)]);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    // a renewal Graph no longer knows: made anew at once
    k.answered("a@contoso.com", expires, Outcome::Ok { id: "t".into(), lives: DAY });
    events(&mut k);
    let at = k.next_wake().expect("renewal");
    k.poll_wants(at);
    k.answered("a@contoso.com", at, Outcome::Gone);
    assert_eq!(events(&mut k), [Event::Flowing("a@contoso.com".into(), false), Event::Changed("a@contoso.com".into())]);
    assert!(matches!(&k.poll_wants(at)[..], [Want::Create { .. }]));
}

#[test]
fn a_mailbox_that_leaves_has_its_subscription_deleted_even_one_in_the_making() {
    let t0 = Instant::now();
    let mut k = keeper();
    k.add("a@contoso.com", t0);
    k.add("b@contoso.com", t0);
    create_all(&mut k, t0);
    k.remove("a@contoso.com");
    assert_eq!(k.poll_wants(t0), [Want::Delete { id: "sub-a@contoso.com".into() }]);
    k.deleted();
    // b leaves while its renewal is in flight; the answer's subscription is deleted
    let at = k.next_wake().expect("renewal");
    assert!(matches!(&k.poll_wants(at)[..], [Want::Renew { .. }]));
    k.remove("b@contoso.com");
    k.answered("b@contoso.com", at, Outcome::Ok { id: "sub-b2".into(), lives: DAY });
    assert!(k.poll_wants(at).contains(&Want::Delete { id: "sub-b2".into() }));
    assert_eq!(k.stats().mailboxes, 0);
}

proptest! {
    #[test]
    fn no_body_a_stranger_sends_makes_an_event(body in proptest::collection::vec(any::<u8>(), 0..400), id in "[a-z-]{0,12}") {
        let t0 = Instant::now();
        let mut k = keeper();
        k.add("a@contoso.com", t0);
        create_all(&mut k, t0);
        events(&mut k);
        let _ = k.notification(&body, t0);
        let forged = format!(r#"{{"value":[{{"subscriptionId":"sub-a@contoso.com","clientState":"{id}","lifecycleEvent":"subscriptionRemoved"}}]}}"#);
        let _ = k.notification(forged.as_bytes(), t0);
        prop_assert!(events(&mut k).is_empty());
        prop_assert_eq!(k.stats().live, 1);
    }
}
