//! The gateway's lamp delivery on virtual time: round robin, failover for
//! 5 minutes, 200 and 480, the 12-hour refresh spread over the cycle, a
//! gateway's return, rate limits, lines that leave. Figures are exact:
//! nothing sleeps.

use lamplighter_lamp_dispatch::{
    DispatchConfig, Dispatcher, Event, GatewayConfig, GatewayId, Outcome, Rate, RouteId, Send,
};
use lamplighter_um::Counts;
use proptest::prelude::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn lit(new: u32) -> Counts {
    Counts { new, old: 0, urgent_new: 0, urgent_old: 0 }
}

const ON: GatewayConfig = GatewayConfig { mwi_enabled: true };
const G0: GatewayId = GatewayId(0);
const G1: GatewayId = GatewayId(1);
const R: RouteId = RouteId(0);

fn two_gateways(now: Instant) -> Dispatcher {
    Dispatcher::new(DispatchConfig::default(), vec![ON, ON], vec![vec![G0, G1]], now)
}

/// Everything due at `now`, answered by `answer`.
fn drain(d: &mut Dispatcher, now: Instant, mut answer: impl FnMut(&Send) -> Outcome) -> Vec<Send> {
    let mut sent = Vec::new();
    while let Some(s) = d.poll_send(now) {
        let o = answer(&s);
        d.handle(now, s.id, o);
        sent.push(s);
    }
    sent
}

fn events(d: &mut Dispatcher) -> Vec<Event> {
    std::iter::from_fn(|| d.poll_event()).collect()
}

/// Runs until `end`, waking when asked, answering with `answer(now, send)`.
fn run_until(
    d: &mut Dispatcher,
    from: Instant,
    end: Instant,
    mut answer: impl FnMut(Instant, &Send) -> Outcome,
) -> Vec<(Instant, Send)> {
    let mut now = from;
    let mut sent = Vec::new();
    loop {
        for s in drain(d, now, |s| answer(now, s)) {
            sent.push((now, s));
        }
        match d.next_wake(now) {
            Some(w) if w <= end => now = w.max(now),
            _ => return sent,
        }
    }
}

#[test]
fn deliveries_take_the_gateways_in_turn_and_send_only_changes() {
    let t0 = Instant::now();
    let mut d = two_gateways(t0);
    for n in 0..4 {
        d.set_lamp(&format!("10{n}"), R, lit(1), t0);
    }
    let sent = drain(&mut d, t0, |_| Outcome::Delivered);
    assert_eq!(sent.iter().map(|s| s.gateway).collect::<Vec<_>>(), [G0, G1, G0, G1]);
    assert_eq!(d.correct(), 4);
    // the same counts again: nothing; new counts: one NOTIFY
    d.set_lamp("100", R, lit(1), t0);
    assert!(drain(&mut d, t0, |_| Outcome::Delivered).is_empty());
    d.set_lamp("100", R, lit(2), t0);
    let sent = drain(&mut d, t0, |_| Outcome::Delivered);
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].counts, sent[0].repeat), (lit(2), false));
}

/// After a restart, lamps known to be acknowledged are not sent again until
/// they change, a restored lamp that changed goes once, and the refresh
/// still comes within the cycle.
#[test]
fn a_restored_lamp_is_sent_only_when_it_changes_or_its_refresh_comes() {
    let t0 = Instant::now();
    let mut d = two_gateways(t0);
    d.restore("100", R, lit(1), t0);
    d.restore("101", R, lit(0), t0);
    d.set_lamp("100", R, lit(1), t0);
    d.set_lamp("101", R, lit(3), t0);
    let sent = drain(&mut d, t0, |_| Outcome::Delivered);
    assert_eq!(sent.iter().map(|s| (s.line.as_str(), s.counts)).collect::<Vec<_>>(), [("101", lit(3))]);
    assert_eq!(d.correct(), 2);
    assert_eq!(d.oldest_wrong(t0), None);
    let day = t0 + Duration::from_secs(13 * 3600);
    let refreshed = run_until(&mut d, t0, day, |_, _| Outcome::Delivered);
    assert!(refreshed.iter().any(|(_, s)| s.line == "100" && s.repeat), "refreshed within 12 hours: {refreshed:?}");
}

#[test]
fn a_change_during_a_send_goes_after_it_with_the_latest_counts() {
    let t0 = Instant::now();
    let mut d = two_gateways(t0);
    d.set_lamp("100", R, lit(1), t0);
    let first = d.poll_send(t0).expect("send");
    assert!(d.poll_send(t0).is_none(), "one at a time per line");
    d.set_lamp("100", R, lit(2), t0);
    d.set_lamp("100", R, lit(3), t0);
    d.handle(t0, first.id, Outcome::Delivered);
    let second = d.poll_send(t0).expect("the change");
    assert_eq!(second.counts, lit(3));
    d.handle(t0, second.id, Outcome::Delivered);
    // back and forth to what is acknowledged while nothing was sent: nothing to send
    d.set_lamp("100", R, lit(4), t0);
    d.set_lamp("100", R, lit(3), t0);
    assert!(d.poll_send(t0).is_none());
    assert_eq!(d.acknowledged("100"), Some(lit(3)));
}

#[test]
fn a_failing_gateway_fails_over_at_once_and_comes_back_with_every_lamp() {
    let t0 = Instant::now();
    let mut d = two_gateways(t0);
    for n in 0..10 {
        d.set_lamp(&format!("10{n}"), R, lit(1), t0);
    }
    // G0 does not answer: each line goes to G1 at once, and G0 is skipped while down
    let sent = drain(&mut d, t0, |s| {
        if s.gateway == G0 { Outcome::Failed { reason: "timeout".into() } } else { Outcome::Delivered }
    });
    assert_eq!(sent.iter().filter(|s| s.gateway == G0).count(), 1, "one try at G0, then it is down");
    assert_eq!(d.correct(), 10);
    assert!(d.is_down(G0, t0));
    assert!(matches!(&events(&mut d)[0], Event::GatewayDown { gateway: G0, .. }));
    // changes while G0 is down all go through G1
    let t1 = t0 + Duration::from_secs(10);
    d.set_lamp("100", R, lit(0), t1);
    d.set_lamp("101", R, lit(0), t1);
    let sent = drain(&mut d, t1, |_| Outcome::Delivered);
    assert!(sent.iter().all(|s| s.gateway == G1));
    events(&mut d);
    // after 30 s G0 is tried again; it answers: back, and every lamp of the route is resent
    let t2 = t0 + Duration::from_secs(31);
    d.set_lamp("102", R, lit(5), t2);
    d.set_lamp("103", R, lit(5), t2);
    let sent = drain(&mut d, t2, |_| Outcome::Delivered);
    assert!(sent.iter().any(|s| s.gateway == G0));
    let ev = events(&mut d);
    assert!(ev.iter().any(|e| matches!(e, Event::GatewayUp { gateway: G0, resending: 10 })), "{ev:?}");
    let resent = sent.iter().filter(|s| s.repeat).count();
    assert!(resent >= 8, "the route's lamps again: {resent} of {}", sent.len());
    assert_eq!(d.correct(), 10);
}

#[test]
fn with_every_gateway_down_a_delivery_goes_round_for_five_minutes_then_gives_up_and_tries_again() {
    let t0 = Instant::now();
    let mut d = two_gateways(t0);
    d.set_lamp("100", R, lit(1), t0);
    let down = |_: Instant, _: &Send| Outcome::Failed { reason: "connection refused".into() };
    let sent = run_until(&mut d, t0, t0 + Duration::from_secs(299), down);
    let ev = events(&mut d);
    assert!(!ev.iter().any(|e| matches!(e, Event::GaveUp { .. })), "not before 5 minutes");
    println!("tries in the first 5 minutes: {}", sent.len());
    assert!(sent.len() >= 10 && sent.len() <= 40, "{}", sent.len());
    let sent = run_until(&mut d, t0 + Duration::from_secs(299), t0 + Duration::from_secs(400), down);
    let gave_up = events(&mut d)
        .into_iter()
        .filter(|e| matches!(e, Event::GaveUp { line, reason } if line == "100" && reason == "connection refused"))
        .count();
    assert_eq!(gave_up, 1);
    assert!(sent.iter().all(|(at, _)| *at <= t0 + Duration::from_secs(361)), "quiet after giving up");
    assert_eq!(d.oldest_wrong(t0 + Duration::from_secs(400)), Some(Duration::from_secs(400)));
    // five minutes after giving up it goes again, and a gateway that is back takes it
    let sent = run_until(&mut d, t0 + Duration::from_secs(400), t0 + Duration::from_secs(1000), |_, s| {
        if s.gateway == G1 { Outcome::Delivered } else { Outcome::Failed { reason: "refused".into() } }
    });
    assert!(sent.iter().any(|(_, s)| s.gateway == G1));
    assert_eq!(d.acknowledged("100"), Some(lit(1)));
    assert_eq!(d.oldest_wrong(t0 + Duration::from_secs(1000)), None);
}

#[test]
fn a_480_is_about_the_line_not_the_gateway() {
    let t0 = Instant::now();
    let mut d = two_gateways(t0);
    d.set_lamp("100", R, lit(1), t0);
    d.set_lamp("101", R, lit(1), t0);
    let sent = drain(&mut d, t0, |s| if s.line == "100" { Outcome::from_status(480) } else { Outcome::Delivered });
    assert_eq!(sent.len(), 2);
    assert!(!d.is_down(G0, t0) && !d.is_down(G1, t0));
    assert!(events(&mut d).iter().any(|e| matches!(e, Event::Refused { code: 480, .. })));
    // tried again after 1 min, 2, 4, … up to an hour
    let sent = run_until(&mut d, t0, t0 + Duration::from_secs(8 * 3600), |_, _| Outcome::from_status(480));
    let gaps: Vec<u64> = std::iter::once(t0)
        .chain(sent.iter().filter(|(_, s)| s.line == "100").map(|(at, _)| *at))
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs())
        .collect();
    assert_eq!(&gaps[..7], &[60, 120, 240, 480, 960, 1920, 3600]);
    assert!(gaps[7..].iter().all(|g| *g == 3600), "{gaps:?}");
    assert_eq!(Outcome::from_status(503), Outcome::Failed { reason: "SIP 503".into() });
    assert_eq!(Outcome::from_status(408), Outcome::Failed { reason: "SIP 408".into() });
    assert_eq!(Outcome::from_status(202), Outcome::Delivered);
}

#[test]
fn ten_thousand_lamps_are_refreshed_within_twelve_hours_spread_over_the_cycle() {
    let t0 = Instant::now();
    let mut d = Dispatcher::new(DispatchConfig::default(), vec![ON], vec![vec![G0]], t0);
    for n in 0..10_000 {
        d.set_lamp(&format!("{:05}", 20_000 + n), R, lit(n % 3), t0);
    }
    // the start: every lamp, at the gateway's 50 a second
    let start = run_until(&mut d, t0, t0 + Duration::from_secs(3600), |_, _| Outcome::Delivered);
    let all_at = start.iter().filter(|(_, s)| !s.repeat).map(|(at, _)| *at).max().expect("sent");
    println!("start-up: 10,000 lamps in {:?}", all_at.duration_since(t0));
    assert_eq!(d.correct(), 10_000);
    assert!(all_at.duration_since(t0) >= Duration::from_secs(199), "never over 50 a second");
    // then a day: each lamp again within 12 h of its last send, and no minute with a burst
    let day = run_until(&mut d, t0 + Duration::from_secs(3600), t0 + Duration::from_secs(36 * 3600), |_, _| {
        Outcome::Delivered
    });
    let mut last: HashMap<String, Instant> = start.iter().map(|(at, s)| (s.line.clone(), *at)).collect();
    let mut longest = Duration::ZERO;
    let mut per_minute: HashMap<u64, u32> = HashMap::new();
    for (at, s) in &day {
        assert!(s.repeat, "only refreshes: nothing changed");
        let gap = at.duration_since(last[&s.line]);
        longest = longest.max(gap);
        last.insert(s.line.clone(), *at);
        *per_minute.entry(at.duration_since(t0).as_secs() / 60).or_default() += 1;
    }
    let busiest = per_minute.values().max().copied().unwrap_or(0);
    println!("a day: {} refreshes, the longest gap {:?}, the busiest minute {busiest}", day.len(), longest);
    assert!(longest <= Duration::from_secs(12 * 3600), "{longest:?}");
    assert!(day.len() >= 20_000, "every lamp refreshed at least twice in 35 h: {}", day.len());
    // 10,000 in 12 h is 14 a minute on average; a burst at the hour would be thousands
    assert!(busiest <= 40, "{busiest}");
}

#[test]
fn rate_limits_hold_for_every_gateway_and_for_all() {
    let t0 = Instant::now();
    let config = DispatchConfig {
        global_rate: Rate { per_second: 80.0, burst: 80.0 },
        gateway_rate: Rate { per_second: 50.0, burst: 50.0 },
        ..DispatchConfig::default()
    };
    let mut d = Dispatcher::new(config, vec![ON, ON], vec![vec![G0, G1]], t0);
    for n in 0..2000 {
        d.set_lamp(&format!("{n}"), R, lit(1), t0);
    }
    let sent = run_until(&mut d, t0, t0 + Duration::from_secs(600), |_, _| Outcome::Delivered);
    // (and a few refreshes whose slot fell into these ten minutes)
    assert_eq!(sent.iter().filter(|(_, s)| !s.repeat).count(), 2000);
    // in every window of one second: at most burst + rate
    for (i, (at, _)) in sent.iter().enumerate() {
        let window: Vec<&(Instant, Send)> =
            sent[i..].iter().take_while(|(t, _)| t.duration_since(*at) < Duration::from_secs(1)).collect();
        assert!(window.len() <= 160, "{} in a second", window.len());
        for g in [G0, G1] {
            assert!(window.iter().filter(|(_, s)| s.gateway == g).count() <= 100);
        }
    }
    let took = sent.iter().filter(|(_, s)| !s.repeat).map(|(t, _)| t.duration_since(t0)).max().unwrap_or_default();
    println!("2,000 lamps at 80/s over two gateways: {took:?}");
    assert!(took >= Duration::from_secs(23), "{took:?}");
}

#[test]
fn a_line_that_leaves_is_turned_off_once_and_forgotten() {
    let t0 = Instant::now();
    let mut d = two_gateways(t0);
    d.set_lamp("on", R, lit(2), t0);
    d.set_lamp("off", R, lit(0), t0);
    drain(&mut d, t0, |_| Outcome::Delivered);
    d.remove_line("on", t0);
    d.remove_line("off", t0);
    let sent = drain(&mut d, t0, |_| Outcome::Delivered);
    assert_eq!(sent.len(), 1, "only the lit one");
    assert_eq!((sent[0].line.as_str(), sent[0].counts), ("on", lit(0)));
    assert_eq!(d.lines(), 0);
    assert!(d.next_wake(t0).is_none());
    // a line never sent is forgotten at once
    d.set_lamp("new", R, lit(1), t0);
    d.remove_line("new", t0);
    assert_eq!(d.lines(), 0);
}

#[test]
fn gateways_with_mwi_off_are_passed_over() {
    let t0 = Instant::now();
    let off = GatewayConfig { mwi_enabled: false };
    let mut d =
        Dispatcher::new(DispatchConfig::default(), vec![off, ON, off], vec![vec![G0, G1], vec![GatewayId(2)]], t0);
    d.set_lamp("a", R, lit(1), t0);
    d.set_lamp("b", R, lit(1), t0);
    d.set_lamp("c", RouteId(1), lit(1), t0);
    let sent = drain(&mut d, t0, |_| Outcome::Delivered);
    assert!(sent.iter().all(|s| s.gateway == G1), "{sent:?}");
    assert_eq!(sent.len(), 2);
    assert!(events(&mut d).iter().any(|e| matches!(e, Event::NoGateway { line } if line == "c")));
}

proptest! {
    /// Whatever the gateways answer and however the lamps change, a line
    /// has one send in flight at most, and once the gateways are well
    /// again every lamp shows its counts within the failover and give-up
    /// times.
    #[test]
    fn lamps_converge_once_the_gateways_are_well(
        steps in proptest::collection::vec((0u8..6, 0u32..3, 0u8..4), 1..120),
    ) {
        let t0 = Instant::now();
        let mut d = Dispatcher::new(DispatchConfig::default(), vec![ON, ON, ON], vec![vec![G0, G1], vec![GatewayId(2), G1]], t0);
        let mut want: HashMap<String, Counts> = HashMap::new();
        let mut now = t0;
        let mut in_flight: HashMap<String, u64> = HashMap::new();
        let mut pending: Vec<Send> = Vec::new();
        for (line, counts, answer) in steps {
            now += Duration::from_millis(700);
            let name = format!("l{line}");
            let route = RouteId(usize::from(line % 2));
            d.set_lamp(&name, route, lit(counts), now);
            want.insert(name, lit(counts));
            while let Some(s) = d.poll_send(now) {
                prop_assert!(in_flight.insert(s.line.clone(), s.id).is_none(), "two sends in flight for {}", s.line);
                pending.push(s);
            }
            // answer the oldest one in a way chosen by the test
            if !pending.is_empty() {
                let s = pending.remove(0);
                in_flight.remove(&s.line);
                let o = match answer {
                    0 => Outcome::Delivered,
                    1 => Outcome::from_status(480),
                    2 => Outcome::from_status(503),
                    _ => Outcome::Failed { reason: "timeout".into() },
                };
                d.handle(now, s.id, o);
            }
        }
        for s in pending.drain(..) {
            d.handle(now, s.id, Outcome::Delivered);
        }
        // well from now on: within the longest waits (a refusal's hour), every lamp is right
        let end = now + Duration::from_secs(2 * 3600);
        run_until(&mut d, now, end, |_, _| Outcome::Delivered);
        for (line, counts) in &want {
            prop_assert_eq!(d.acknowledged(line), Some(*counts), "{}", line);
        }
        prop_assert_eq!(d.oldest_wrong(end), None);
    }
}
