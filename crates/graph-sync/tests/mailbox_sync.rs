//! The folders of a mailbox followed together, on virtual time: which
//! folders, moves that are no news, removals held until every folder has
//! had its say, a reset anywhere as a reset everywhere, and the request
//! budget with many folders.

use lamplighter_graph_sync::mailbox::{self, INBOX, MAX_HOLD, REDISCOVER_EVERY};
use lamplighter_graph_sync::{FolderRef, MailboxSync, PollConfig, Request, Response, Status, Step};
use lamplighter_graph_wire::{Continue, DeltaEntry, DeltaPage, Failure, MailFolder, Message};
use lamplighter_mailbox_sync::Change;
use proptest::prelude::*;
use std::time::{Duration, Instant};

fn msg(id: &str, read: bool) -> DeltaEntry {
    DeltaEntry::Changed(Box::new(Message { id: id.into(), is_read: Some(read), ..Message::default() }))
}

fn removed(id: &str) -> DeltaEntry {
    DeltaEntry::Removed { id: id.into(), reason: Some("deleted".into()) }
}

fn done(entries: Vec<DeltaEntry>, n: u32) -> Response {
    Response::Page(DeltaPage {
        entries,
        then: Continue::Delta(format!("https://graph.test/v1.0/me/mailFolders/x/messages/delta?$deltatoken={n}")),
    })
}

fn folder(id: &str, name: &str, parent: &str, children: i32) -> MailFolder {
    MailFolder {
        id: id.into(),
        display_name: Some(name.into()),
        parent_folder_id: Some(parent.into()),
        child_folder_count: Some(children),
    }
}

fn refs(keys: &[&str]) -> Vec<FolderRef> {
    keys.iter().map(|k| FolderRef { key: k.to_string(), path: k.to_string() }).collect()
}

fn changes(s: &mut MailboxSync) -> Vec<String> {
    std::iter::from_fn(|| s.poll_change())
        .map(|c| match c {
            Change::Added(i) => format!("+{}", i.id.id),
            Change::Updated(i) => format!("~{}", i.id.id),
            Change::Removed(id) => format!("-{}", id.id),
            Change::ReadChanged { id, .. } => format!("r{}", id.id),
            Change::Reset => "reset".into(),
        })
        .collect()
}

/// Sends what is due and answers each folder from `answer` (none: an empty
/// round), and the folder list with `list`.
fn round(
    s: &mut MailboxSync,
    now: Instant,
    list: &[&str],
    mut answer: impl FnMut(&str) -> Option<Vec<DeltaEntry>>,
) -> Vec<String> {
    let steps = s.poll_requests(now);
    for step in steps {
        match step {
            Step::Discover => s.discovered(now, Ok(refs(list))),
            Step::Delta { folder, .. } => {
                let entries = answer(&folder).unwrap_or_default();
                s.handle(now, &folder, done(entries, 1));
            }
        }
    }
    changes(s)
}

#[test]
fn the_folders_followed_are_the_mail_folders_a_voicemail_may_be_in() {
    let tree = [
        folder("root-inbox", "Inbox", "top", 1),
        folder("vm", "Voicemail", "root-inbox", 0),
        folder("arch", "Archive", "top", 0),
        folder("del", "Deleted Items", "top", 1),
        folder("del-sub", "Old stuff", "del", 0),
        folder("junk", "Junk Email", "top", 0),
        folder("sent", "Sent Items", "top", 0),
        folder("proj", "Projects", "top", 0),
    ];
    let not = ["del".to_string(), "junk".to_string(), "sent".to_string()];
    let chosen = mailbox::choose(&tree, &not, Some("root-inbox"));
    let paths: Vec<&str> = chosen.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["Archive", "Inbox/Voicemail", "Projects"]);
    assert!(chosen.iter().all(|f| f.key != INBOX && f.key != "root-inbox"), "the Inbox is followed once, as inbox");
    // a forged loop of parents ends, and the count is bounded
    let looped = [folder("a", "A", "b", 1), folder("b", "B", "a", 1)];
    assert_eq!(mailbox::choose(&looped, &[], None).len(), 2);
    let many: Vec<MailFolder> = (0..500).map(|n| folder(&format!("f{n:03}"), &format!("F{n:03}"), "top", 0)).collect();
    assert_eq!(mailbox::choose(&many, &[], None).len(), mailbox::MAX_FOLLOWED);
}

#[test]
fn nothing_is_live_before_the_folders_are_listed_and_all_have_loaded() {
    let t0 = Instant::now();
    let mut s = MailboxSync::new(PollConfig::default(), None, t0);
    let steps = s.poll_requests(t0);
    assert!(steps.contains(&Step::Discover));
    assert!(steps.contains(&Step::Delta { folder: INBOX.into(), request: Request::Start }));
    // the Inbox is loaded, the list not yet in: still syncing
    s.handle(t0, INBOX, done(vec![msg("a", false)], 1));
    assert_eq!(s.status(), Status::Syncing);
    s.discovered(t0, Ok(refs(&["vm"])));
    assert_eq!(s.status(), Status::Syncing, "the new folder has not loaded");
    let steps = s.poll_requests(t0);
    assert_eq!(steps, [Step::Delta { folder: "vm".into(), request: Request::Start }]);
    s.handle(t0, "vm", done(vec![msg("b", false)], 1));
    assert_eq!(s.status(), Status::Live);
    assert_eq!(changes(&mut s), ["+a", "+b"]);
}

#[test]
fn a_voicemail_a_rule_files_elsewhere_is_found_and_a_move_is_no_news() {
    let t0 = Instant::now();
    let mut s = MailboxSync::new(PollConfig::default(), None, t0);
    round(&mut s, t0, &["vm", "arch"], |_| None);
    round(&mut s, t0, &["vm", "arch"], |_| None);
    assert_eq!(s.status(), Status::Live);
    let mut now = t0;
    let mut step = |s: &mut MailboxSync, f: &dyn Fn(&str) -> Option<Vec<DeltaEntry>>| {
        now += Duration::from_secs(7);
        round(s, now, &["vm", "arch"], f)
    };
    // a rule delivers into vm: found in the next round
    // (after the first load a delta cannot tell new from changed: both are upserts)
    assert_eq!(step(&mut s, &|f| (f == "vm").then(|| vec![msg("v1", false)])), ["~v1"]);
    // the user moves it to the archive, seen leaving first and arriving a round later
    assert!(step(&mut s, &|f| (f == "vm").then(|| vec![removed("v1")])).is_empty(), "held, not removed");
    assert_eq!(step(&mut s, &|f| (f == "arch").then(|| vec![msg("v1", false)])), ["~v1"], "the same item, no news");
    // now really deleted: reported once every folder has had a round since (and the list was read)
    assert!(step(&mut s, &|f| (f == "arch").then(|| vec![removed("v1")])).is_empty());
    assert_eq!(step(&mut s, &|_| None), ["-v1"]);
}

#[test]
fn a_removal_waits_for_a_failing_folder_only_so_long() {
    let t0 = Instant::now();
    let mut s = MailboxSync::new(PollConfig::default(), None, t0);
    round(&mut s, t0, &["vm"], |_| None);
    round(&mut s, t0, &["vm"], |_| None);
    round(&mut s, t0 + Duration::from_secs(7), &["vm"], |f| (f == INBOX).then(|| vec![msg("a", false)]));
    let mut now = t0 + Duration::from_secs(14);
    // a removal in the Inbox while vm fails on every try
    for step in s.poll_requests(now) {
        match step {
            Step::Discover => s.discovered(now, Ok(refs(&["vm"]))),
            Step::Delta { folder, .. } if folder == INBOX => s.handle(now, INBOX, done(vec![removed("a")], 2)),
            Step::Delta { folder, .. } => {
                s.handle(now, &folder, Response::Failed { failure: Failure::Server, words: "503".into() })
            }
        }
    }
    let mut seen = Vec::new();
    while now < t0 + MAX_HOLD + Duration::from_secs(30) {
        now += Duration::from_secs(1);
        for step in s.poll_requests(now) {
            match step {
                Step::Discover => s.discovered(now, Ok(refs(&["vm"]))),
                Step::Delta { folder, .. } if folder == INBOX => s.handle(now, INBOX, done(vec![], 3)),
                Step::Delta { folder, .. } => {
                    s.handle(now, &folder, Response::Failed { failure: Failure::Server, words: "503".into() })
                }
            }
        }
        let c = changes(&mut s);
        if !c.is_empty() {
            seen.push((now.duration_since(t0), c));
        }
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].1, ["-a"]);
    assert!(seen[0].0 >= MAX_HOLD + Duration::from_secs(14), "{seen:?}");
}

#[test]
fn an_expired_link_in_one_folder_reloads_all_of_them() {
    let t0 = Instant::now();
    let mut s = MailboxSync::new(PollConfig::default(), None, t0);
    round(&mut s, t0, &["vm"], |f| Some(vec![msg(&format!("{f}-1"), false)]));
    round(&mut s, t0, &["vm"], |_| None);
    assert_eq!(s.status(), Status::Live);
    let now = t0 + Duration::from_secs(7);
    let steps = s.poll_requests(now);
    assert_eq!(steps.len(), 2);
    s.handle(now, "vm", Response::Failed { failure: Failure::DeltaExpired, words: "410".into() });
    assert_eq!(changes(&mut s), ["reset"]);
    // both start from no token, and the Inbox's answer to the old request is ignored
    s.handle(now, INBOX, done(vec![msg("stale", false)], 9));
    assert!(changes(&mut s).is_empty());
    let steps = s.poll_requests(now);
    assert_eq!(
        steps,
        [
            Step::Delta { folder: INBOX.into(), request: Request::Start },
            Step::Delta { folder: "vm".into(), request: Request::Start },
        ]
    );
}

#[test]
fn state_is_the_links_of_all_folders_and_an_old_bare_link_is_the_inbox() {
    let t0 = Instant::now();
    let mut s = MailboxSync::new(PollConfig::default(), None, t0);
    round(&mut s, t0, &["vm"], |_| None);
    round(&mut s, t0, &["vm"], |_| None);
    let state = s.poll_state().expect("state");
    assert!(state.contains("\"inbox\"") && state.contains("\"vm\""), "{state}");
    assert_eq!(s.poll_state(), None, "once");
    // restarted from it, both folders continue from their links
    let mut again = MailboxSync::new(PollConfig::default(), Some(state), t0);
    let steps = again.poll_requests(t0);
    assert!(steps.iter().all(|s| !matches!(s, Step::Delta { request: Request::Start, .. })), "{steps:?}");
    let old = MailboxSync::new(PollConfig::default(), Some("https://graph.test/v1.0/x?$deltatoken=1".into()), t0)
        .poll_requests(t0);
    assert!(old.contains(&Step::Delta {
        folder: INBOX.into(),
        request: Request::Follow("https://graph.test/v1.0/x?$deltatoken=1".into())
    }));
}

#[test]
fn the_folder_list_is_read_again_and_a_folder_that_went_takes_its_items() {
    let t0 = Instant::now();
    let mut s = MailboxSync::new(PollConfig::default(), None, t0);
    round(&mut s, t0, &["vm"], |_| None);
    round(&mut s, t0, &["vm"], |f| (f == "vm").then(|| vec![msg("v", false)]));
    let later = t0 + REDISCOVER_EVERY;
    let steps = s.poll_requests(later);
    assert!(steps.contains(&Step::Discover), "{steps:?}");
    s.discovered(later, Ok(vec![]));
    for step in steps.into_iter().filter(|s| matches!(s, Step::Delta { .. })) {
        if let Step::Delta { folder, .. } = step {
            s.handle(later, &folder, done(vec![], 2));
        }
    }
    assert_eq!(s.followed().len(), 1);
    // v went with its folder; once the Inbox has had its round, it is gone
    let c = round(&mut s, later + Duration::from_secs(7), &[], |_| None);
    assert_eq!(c, ["-v"]);
}

#[test]
fn many_folders_stay_within_the_request_budget() {
    let t0 = Instant::now();
    let mut s = MailboxSync::new(PollConfig::default(), None, t0);
    let keys: Vec<String> = (0..99).map(|n| format!("f{n}")).collect();
    let list: Vec<&str> = keys.iter().map(String::as_str).collect();
    round(&mut s, t0, &list, |_| None);
    round(&mut s, t0, &list, |_| None);
    // ten idle minutes after the load
    let mut count = 0u32;
    let mut now = t0;
    let end2 = t0 + Duration::from_secs(600);
    while now < end2 {
        now = s.next_wake().expect("a wake");
        if now >= end2 {
            break;
        }
        for step in s.poll_requests(now) {
            match step {
                Step::Discover => s.discovered(now, Ok(refs(&list))),
                Step::Delta { folder, .. } => {
                    count += 1;
                    s.handle(now, &folder, done(vec![], 2));
                }
            }
        }
    }
    println!("100 folders: {count} requests in 10 idle minutes");
    assert!(count <= mailbox::BUDGET_PER_10_MIN, "{count}");
    assert!(count >= 2_000, "still polled: {count}");
}

/// What the consumer (the inbox) sees of item `x`: whether it holds it,
/// and how often it arrived while not held (each arrival would be news).
#[derive(Default)]
struct Seen {
    held: bool,
    arrivals: u32,
}

impl Seen {
    fn take(&mut self, changes: Vec<String>) {
        for c in changes {
            match c.as_str() {
                "+x" | "~x" if !self.held => {
                    self.held = true;
                    self.arrivals += 1;
                }
                "-x" => self.held = false,
                _ => {}
            }
        }
    }
}

#[test]
fn a_refused_sign_in_stops_every_folder_and_the_listing_until_woken() {
    let t0 = Instant::now();
    let config = PollConfig { folders_every: Duration::from_secs(1), ..PollConfig::default() };
    let mut s = MailboxSync::new(config, None, t0);
    round(&mut s, t0, &["vm"], |_| None);
    round(&mut s, t0, &["vm"], |_| None);
    let now = t0 + Duration::from_secs(7);
    for step in s.poll_requests(now) {
        match step {
            Step::Discover => s.discovered(now, Ok(refs(&["vm"]))),
            Step::Delta { folder, .. } if folder == INBOX => s.handle(
                now,
                INBOX,
                Response::Failed { failure: Failure::Unauthorized { invalid_token: true }, words: "401".into() },
            ),
            Step::Delta { folder, .. } => s.handle(now, &folder, done(vec![], 2)),
        }
    }
    assert!(matches!(s.status(), Status::SignedOut { .. }));
    // nothing is due, nothing goes out, however long
    assert_eq!(s.next_wake(), None);
    assert!(s.poll_requests(now + Duration::from_secs(3600)).is_empty());
    // a new sign-in wakes it: the Inbox goes on where it was
    let later = now + Duration::from_secs(3600);
    s.wake(later);
    let steps = s.poll_requests(later);
    assert!(
        steps.iter().any(|st| matches!(st, Step::Delta { folder, request: Request::Follow(_) } if folder == INBOX))
    );
}

/// An idle mailbox of the usual shape (the Inbox and nothing else to
/// follow): its polls and folder listings in an hour.
#[test]
fn an_idle_mailbox_costs_600_requests_an_hour() {
    let t0 = Instant::now();
    let mut s = MailboxSync::new(PollConfig::default(), None, t0);
    round(&mut s, t0, &[], |_| None);
    // the hour after the load
    let hour = t0 + Duration::from_secs(3600);
    let mut requests = 0u32;
    loop {
        let now = s.next_wake().expect("a wake");
        if now > hour {
            break;
        }
        for step in s.poll_requests(now) {
            requests += 1;
            match step {
                Step::Discover => s.discovered(now, Ok(vec![])),
                Step::Delta { folder, .. } => s.handle(now, &folder, done(vec![], 2)),
            }
        }
    }
    println!("an idle mailbox: {requests} requests in an hour");
    assert_eq!(requests, 600);
}

proptest! {
    /// However the moves and the delete of one item interleave over two
    /// folders (a move shows in the old folder at once and in the new one a
    /// round later), it arrives once, and the consumer holds it exactly
    /// when it is in a folder at the end.
    #[test]
    fn moves_never_announce_twice(ops in proptest::collection::vec(0u8..4, 1..30)) {
        let t0 = Instant::now();
        let mut s = MailboxSync::new(PollConfig::default(), None, t0);
        round(&mut s, t0, &["b"], |_| None);
        round(&mut s, t0, &["b"], |_| None);
        let mut at: Option<&str> = None;
        let mut arriving: Option<&str> = None;
        let mut seen = Seen::default();
        let mut now = t0;
        let mut ever = false;
        for op in ops {
            now += Duration::from_secs(7);
            let mut leave: Option<&str> = None;
            let arrive = arriving.take();
            match (op, at) {
                (0, None) if !ever => { at = Some(INBOX); arriving = Some(INBOX); ever = true; }
                (1, Some(f)) => { let to = if f == INBOX { "b" } else { INBOX }; leave = Some(f); at = Some(to); arriving = Some(to); }
                (2, Some(f)) => { leave = Some(f); at = None; }
                _ => {}
            }
            let c = round(&mut s, now, &["b"], |f| {
                let mut v = Vec::new();
                if leave == Some(f) { v.push(removed("x")); }
                if arrive == Some(f) && at == Some(f) { v.push(msg("x", false)); }
                Some(v)
            });
            seen.take(c);
        }
        // quiet rounds until everything held back is settled
        for _ in 0..4 {
            now += Duration::from_secs(7);
            let arrive = arriving.take();
            let c = round(&mut s, now, &["b"], |f| Some(if arrive == Some(f) && at == Some(f) { vec![msg("x", false)] } else { vec![] }));
            seen.take(c);
        }
        prop_assert!(seen.arrivals <= 1, "arrived {} times", seen.arrivals);
        prop_assert_eq!(seen.held, at.is_some());
    }
}

#[test]
fn with_notifications_flowing_polling_is_a_safety_net_and_a_notification_polls_every_folder() {
    let t0 = Instant::now();
    let mut s = MailboxSync::new(PollConfig::default(), None, t0);
    round(&mut s, t0, &["vm"], |_| None);
    round(&mut s, t0, &["vm"], |_| None);
    assert_eq!(s.status(), Status::Live);
    let idle = PollConfig::default().idle_interval;
    // the first rounds were scheduled at the polling pace; after them, the pushed pace
    let net = Duration::from_secs(900);
    s.set_pushed(t0, Some(net));
    let first = s.next_wake().expect("a wake");
    assert!(first <= t0 + idle);
    round(&mut s, first, &["vm"], |_| None);
    let wake = s.next_wake().expect("a wake");
    assert!(wake >= first + net, "polling every {net:?} while notified, not {:?}", wake - first);
    // a notification: every folder polls now, in one go
    let t1 = first + Duration::from_secs(10);
    s.notified(t1);
    assert_eq!(s.next_wake(), Some(t1));
    let steps = s.poll_requests(t1);
    assert_eq!(steps.len(), 2, "{steps:?}");
    for step in steps {
        if let Step::Delta { folder, .. } = step {
            s.handle(t1, &folder, done(if folder == "vm" { vec![msg("v1", false)] } else { vec![] }, 2));
        }
    }
    assert_eq!(changes(&mut s), ["~v1"]);
    // notifications stop: the polling pace again, from now
    let t2 = t1 + Duration::from_secs(20);
    s.set_pushed(t2, None);
    assert!(s.next_wake().is_some_and(|w| w <= t2 + idle), "{:?}", s.next_wake().map(|w| w - t2));
}
