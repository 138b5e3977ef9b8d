//! Streaming notifications for many mailboxes on few connections, as
//! Exchange's affinity guidance asks of a service: the subscriptions of
//! mailboxes on one server (their Subscribe answers set the same
//! `X-BackEndOverrideCookie`) share GetStreamingEvents connections, up to
//! 200 to a connection, each sent as its first member's mailbox (the
//! group's anchor) with that cookie.
//!
//! Each mailbox's driver keeps its own change tracking: it joins the hub
//! instead of opening its own stream ([`StreamHub::join`]), and gets what
//! its stream would have said, as `mailbox-sync` inputs: the connection
//! opened, its own notifications, an error that names its subscription, the
//! stream lost. A membership change reopens the connection after a short
//! settling time, so a start with thousands of mailboxes opens each
//! connection once, not once per mailbox. Events of the moments between
//! two connections wait on the server (a subscription queues them), so a
//! reopening loses nothing. A connection that the server closes
//! (`ConnectionStatus Closed`, its timeout) is reopened at once; one that
//! breaks ends every member's stream, and each resyncs on its own.

use crate::{ClientError, EwsClient};
use lamplighter_ews_wire::{ConnectionStatus, ResponseClass, ResponseMessage, StreamingBody};
use lamplighter_mailbox_sync::Response;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Subscriptions one connection carries (Exchange's limit).
pub const PER_CONNECTION: usize = 200;

/// Timing of the hub.
#[derive(Debug, Clone, Copy)]
pub struct HubConfig {
    /// Subscriptions per connection (at most [`PER_CONNECTION`]).
    pub per_connection: usize,
    /// How long membership changes gather before a connection is reopened.
    pub settle: Duration,
    /// `ConnectionTimeout` asked of GetStreamingEvents (1–30 min).
    pub stream_minutes: u8,
    /// How long GetStreamingEvents may take to send its headers.
    pub stream_start: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            per_connection: PER_CONNECTION,
            settle: Duration::from_millis(250),
            stream_minutes: 30,
            stream_start: Duration::from_secs(30),
        }
    }
}

/// One group's figures, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStats {
    /// The backend cookie (the mailbox server).
    pub group: String,
    /// Open or opening connections.
    pub connections: usize,
    /// Subscriptions on them.
    pub subscriptions: usize,
}

enum Command {
    Join {
        member: u64,
        client: Arc<EwsClient>,
        subscription: String,
        group: String,
        tx: mpsc::UnboundedSender<Box<Response>>,
    },
    Leave {
        member: u64,
    },
    /// A connection's task ended (`lost`: it broke, and its members were told).
    Ended {
        conn: u64,
    },
}

/// Shares streaming connections between mailboxes; cheap to clone.
#[derive(Clone)]
pub struct StreamHub {
    commands: mpsc::UnboundedSender<Command>,
    next: Arc<std::sync::atomic::AtomicU64>,
    stats: Arc<Mutex<Vec<GroupStats>>>,
}

impl std::fmt::Debug for StreamHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamHub").field("groups", &self.stats()).finish()
    }
}

/// A mailbox's place on a shared connection; leaving is dropping it.
pub struct Membership {
    member: u64,
    rx: mpsc::UnboundedReceiver<Box<Response>>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Membership {
    /// What this mailbox's stream says next (`None`: the hub is gone).
    pub async fn next(&mut self) -> Option<Response> {
        self.rx.recv().await.map(|r| *r)
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Leave { member: self.member });
    }
}

impl StreamHub {
    /// Starts a hub on the current runtime.
    pub fn new(config: HubConfig) -> StreamHub {
        let (commands, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(Hub::new(config, commands.clone(), stats.clone()).run(rx));
        StreamHub { commands, next: Arc::new(std::sync::atomic::AtomicU64::new(1)), stats }
    }

    /// `subscription` (made by `client`, whose Subscribe answer set the
    /// backend cookie `group`) joins a connection of its group.
    pub fn join(&self, client: Arc<EwsClient>, subscription: String, group: String) -> Membership {
        let member = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = self.commands.send(Command::Join { member, client, subscription, group, tx });
        Membership { member, rx, commands: self.commands.clone() }
    }

    /// Connections and subscriptions by group.
    pub fn stats(&self) -> Vec<GroupStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

struct Member {
    client: Arc<EwsClient>,
    subscription: String,
    tx: mpsc::UnboundedSender<Box<Response>>,
    conn: u64,
}

struct Conn {
    group: String,
    members: Vec<u64>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Reopen with the current members at this time.
    dirty_at: Option<tokio::time::Instant>,
}

struct Hub {
    config: HubConfig,
    commands: mpsc::UnboundedSender<Command>,
    stats: Arc<Mutex<Vec<GroupStats>>>,
    members: HashMap<u64, Member>,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
}

/// Routes one connection's frames to its members.
type Routes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Box<Response>>>>>;

impl Hub {
    fn new(config: HubConfig, commands: mpsc::UnboundedSender<Command>, stats: Arc<Mutex<Vec<GroupStats>>>) -> Hub {
        Hub { config, commands, stats, members: HashMap::new(), conns: HashMap::new(), next_conn: 1 }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        loop {
            let due = self.conns.values().filter_map(|c| c.dirty_at).min();
            tokio::select! {
                c = rx.recv() => match c {
                    Some(Command::Join { member, client, subscription, group, tx }) => self.join(member, client, subscription, group, tx),
                    Some(Command::Leave { member }) => self.leave(member),
                    Some(Command::Ended { conn }) => self.ended(conn),
                    None => break,
                },
                _ = async { match due { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                    self.reopen_due();
                }
            }
            self.publish_stats();
        }
        for c in self.conns.values_mut() {
            if let Some(t) = c.task.take() {
                t.abort();
            }
        }
    }

    fn settle(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.config.settle
    }

    fn join(
        &mut self,
        member: u64,
        client: Arc<EwsClient>,
        subscription: String,
        group: String,
        tx: mpsc::UnboundedSender<Box<Response>>,
    ) {
        let room = self.config.per_connection.clamp(1, PER_CONNECTION);
        let conn = match self.conns.iter().find(|(_, c)| c.group == group && c.members.len() < room) {
            Some((id, _)) => *id,
            None => {
                let id = self.next_conn;
                self.next_conn += 1;
                self.conns.insert(id, Conn { group: group.clone(), members: Vec::new(), task: None, dirty_at: None });
                id
            }
        };
        let at = self.settle();
        if let Some(c) = self.conns.get_mut(&conn) {
            c.members.push(member);
            c.dirty_at.get_or_insert(at);
        }
        self.members.insert(member, Member { client, subscription, tx, conn });
    }

    fn leave(&mut self, member: u64) {
        let Some(m) = self.members.remove(&member) else { return };
        let at = self.settle();
        let empty = match self.conns.get_mut(&m.conn) {
            Some(c) => {
                c.members.retain(|x| *x != member);
                c.dirty_at.get_or_insert(at);
                c.members.is_empty()
            }
            None => false,
        };
        if empty
            && let Some(mut c) = self.conns.remove(&m.conn)
            && let Some(t) = c.task.take()
        {
            t.abort();
        }
    }

    /// A connection broke: its members were told (their streams ended);
    /// they leave and come back on their own after resyncing.
    fn ended(&mut self, conn: u64) {
        let Some(c) = self.conns.get(&conn) else { return };
        // a connection that was reopened meanwhile has a new task: only a finished one goes
        if c.task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        self.conns.remove(&conn);
        for m in self.members.values_mut().filter(|m| m.conn == conn) {
            m.conn = 0;
        }
    }

    fn reopen_due(&mut self) {
        let now = tokio::time::Instant::now();
        let due: Vec<u64> =
            self.conns.iter().filter(|(_, c)| c.dirty_at.is_some_and(|d| d <= now)).map(|(k, _)| *k).collect();
        for id in due {
            let Some(c) = self.conns.get_mut(&id) else { continue };
            c.dirty_at = None;
            if let Some(t) = c.task.take() {
                t.abort();
            }
            let members: Vec<&Member> = c.members.iter().filter_map(|m| self.members.get(m)).collect();
            let Some(anchor) = members.first().map(|m| m.client.clone()) else { continue };
            let routes: Routes =
                Arc::new(Mutex::new(members.iter().map(|m| (m.subscription.clone(), m.tx.clone())).collect()));
            log::debug!("streaming group {}: a connection with {} subscription(s)", c.group, members.len());
            let commands = self.commands.clone();
            let config = self.config;
            c.task = Some(tokio::spawn(async move {
                connection(anchor, routes, config).await;
                let _ = commands.send(Command::Ended { conn: id });
            }));
        }
    }

    fn publish_stats(&self) {
        let mut by: HashMap<&str, GroupStats> = HashMap::new();
        for c in self.conns.values() {
            let s = by.entry(&c.group).or_insert_with(|| GroupStats {
                group: c.group.clone(),
                connections: 0,
                subscriptions: 0,
            });
            s.connections += 1;
            s.subscriptions += c.members.len();
        }
        let mut v: Vec<GroupStats> = by.into_values().collect();
        v.sort_by(|a, b| a.group.cmp(&b.group));
        *self.stats.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }
}

fn to_all(routes: &Routes, r: &Response) {
    for tx in routes.lock().unwrap_or_else(|p| p.into_inner()).values() {
        let _ = tx.send(Box::new(r.clone()));
    }
}

/// What a frame leaves the connection to do.
#[derive(Debug, PartialEq, Eq)]
enum After {
    /// Go on reading.
    Read,
    /// The server closed it (its timeout): reopen with the subscriptions still routed.
    Reopen,
    /// An error for every member, each told: this connection is done.
    Done,
}

/// One shared connection: opened as the anchor's mailbox, its frames split
/// by subscription, reopened when the server closes it; a failure goes to
/// every member as its own stream's would.
async fn connection(anchor: Arc<EwsClient>, routes: Routes, config: HubConfig) {
    loop {
        let ids: Vec<String> = routes.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        if ids.is_empty() {
            return;
        }
        let opening = tokio::time::timeout(config.stream_start, anchor.open_group_stream(&ids, config.stream_minutes));
        let mut stream = match opening.await {
            Err(_) => {
                log::warn!(
                    "GetStreamingEvents for {} subscription(s) sent no headers within {:?}",
                    ids.len(),
                    config.stream_start
                );
                return to_all(&routes, &Response::StreamStalled);
            }
            Ok(Err(e)) => return to_all(&routes, &failure(e)),
            Ok(Ok(s)) => s,
        };
        to_all(&routes, &Response::StreamOpened);
        loop {
            match stream.next().await {
                Some(Ok(msgs)) => match route(&routes, msgs) {
                    After::Read => {}
                    After::Reopen => break,
                    After::Done => return,
                },
                Some(Err(ClientError::Ews(e @ lamplighter_ews_wire::EwsError::Fault(_)))) => {
                    return to_all(&routes, &Response::Frame(Err(e)));
                }
                Some(Err(e)) => {
                    log::info!("shared streaming connection lost: {e}");
                    return to_all(&routes, &Response::StreamEnded);
                }
                None => return to_all(&routes, &Response::StreamEnded),
            }
        }
        // the server's timeout: the same subscriptions on a new connection, at once
    }
}

/// A failed GetStreamingEvents as each member's core reads it.
fn failure(e: ClientError) -> Response {
    crate::driver::classify(Err::<(), _>(e), |r| match r {
        Err(e) => Response::Frame(Err(e)),
        Ok(()) => Response::StreamEnded,
    })
}

/// Splits a frame by subscription.
fn route(routes: &Routes, msgs: Vec<ResponseMessage<StreamingBody>>) -> After {
    let mut after = After::Read;
    let mut routes = routes.lock().unwrap_or_else(|p| p.into_inner());
    for m in msgs {
        let body = m.body.clone().unwrap_or_default();
        if body.connection_status == Some(ConnectionStatus::Closed) {
            after = After::Reopen;
        }
        if m.class == ResponseClass::Error {
            let frame = Response::Frame(Ok(vec![m.clone()]));
            if body.error_subscription_ids.is_empty() {
                // an error that names no subscription is everyone's
                for tx in routes.values() {
                    let _ = tx.send(Box::new(frame.clone()));
                }
                routes.clear();
                return After::Done;
            }
            // one that names subscriptions is theirs: they leave this connection
            for id in &body.error_subscription_ids {
                if let Some(tx) = routes.remove(id) {
                    let _ = tx.send(Box::new(frame.clone()));
                }
            }
            continue;
        }
        let mut by: HashMap<&str, Vec<(String, Vec<lamplighter_ews_wire::Event>)>> = HashMap::new();
        for (id, events) in &body.notifications {
            by.entry(id.as_str()).or_default().push((id.clone(), events.clone()));
        }
        for (id, notifications) in by {
            let Some(tx) = routes.get(id) else { continue };
            let own = ResponseMessage {
                body: Some(StreamingBody {
                    connection_status: None,
                    notifications,
                    error_subscription_ids: Vec::new(),
                }),
                ..m.clone()
            };
            let _ = tx.send(Box::new(Response::Frame(Ok(vec![own]))));
        }
    }
    if routes.is_empty() { After::Done } else { after }
}
