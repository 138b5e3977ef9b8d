//! Change tracking for one mailbox folder, sans-IO: which EWS request to send
//! next, and what the responses mean as mailbox changes. No HTTP, no clock:
//! the driver passes `now` and the parsed responses in, and sends what
//! [`MailboxSync::poll_request`] asks for.
//!
//! ```text
//!   start ─► Subscribe ─► SyncFolderItems(state) … until IncludesLastItemInRange
//!                              │ changes ─► poll_change()   state ─► poll_sync_state() (persist it)
//!                              ▼
//!                         GetStreamingEvents ── a notification ─► SyncFolderItems(state) ─► back to streaming
//!                              │ ConnectionStatus Closed (timeout) ─► GetStreamingEvents again
//!                              │ no response headers in time, twice (a buffering proxy) ─► pull subscription, GetEvents
//!                              │ SubscriptionNotFound / Expired / Invalid, or the stream or a request fails
//!                              ▼
//!                         wait (backoff, or the server's BackOffMilliseconds) ─► Subscribe ─► SyncFolderItems …
//! ```
//!
//! **Back-off.** Every failure — a refused or broken request, a fault, an
//! error frame, a lost subscription — counts. The first lost subscription
//! after a healthy spell resubscribes at once (subscriptions do expire);
//! every further failure waits `retry_initial`, doubling up to `retry_max`,
//! each wait ±[`SyncConfig::jitter_percent`] so that many clients do not
//! return together; the server's `BackOffMilliseconds` is honoured as given.
//! The count and the back-off reset only when the stream (or the polling)
//! has stayed healthy for [`SyncConfig::healthy_after`], never on a sync that
//! merely succeeded: a server (or a load balancer losing affinity) that
//! accepts a subscription and then loses it at once is retried ever more
//! slowly. With the defaults a mailbox in such a storm costs at most 18
//! requests in its first minute (6 rounds of Subscribe, SyncFolderItems,
//! GetStreamingEvents) and, from the eighth minute on, one round every 4 to
//! 6 minutes: about 60 requests an hour instead of one round per round trip.
//!
//! Subscribing *before* syncing means nothing created, read or deleted
//! between the sync and the stream is lost; notifications only trigger a
//! sync, so every change is reported once, by the sync, whatever the stream
//! repeats. The sync state survives restarts (the driver stores each one
//! [`MailboxSync::poll_sync_state`] hands out), so a restart neither misses
//! nor re-announces items. `ErrorInvalidSyncStateData` restarts from no
//! state and says so ([`Change::Reset`]), so the consumer can reconcile
//! instead of re-announcing.

use lamplighter_ews_wire::{
    Change as WireChange, ConnectionStatus, EventKind, EwsError, Item, ItemId, PullNotification, ResponseClass,
    ResponseCode, ResponseMessage, StreamingBody, Subscription, SyncPage,
};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A request for the driver to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Subscribe (streaming) to the folder.
    Subscribe,
    /// SyncFolderItems from this state (`None`: from the beginning).
    Sync {
        /// The stored state.
        state: Option<String>,
    },
    /// Open GetStreamingEvents for this subscription.
    Stream { subscription_id: String },
    /// GetEvents for this pull subscription from this watermark.
    Poll {
        subscription_id: String,
        /// The last watermark.
        watermark: String,
    },
}

/// A change of the mailbox, for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An item appeared.
    Added(Item),
    /// An item changed.
    Updated(Item),
    /// An item is gone.
    Removed(ItemId),
    /// An item was read or unread elsewhere.
    ReadChanged {
        /// The item.
        id: ItemId,
        /// Its state.
        is_read: bool,
    },
    /// The server forgot our sync state: what follows is the whole folder again.
    Reset,
}

/// What the driver tells the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The Subscribe answer.
    Subscribed(Result<Vec<ResponseMessage<Subscription>>, EwsError>),
    /// A SyncFolderItems answer.
    Synced(Result<Vec<ResponseMessage<SyncPage>>, EwsError>),
    /// A streaming frame.
    Frame(Result<Vec<ResponseMessage<StreamingBody>>, EwsError>),
    /// A GetEvents answer.
    Polled(Result<Vec<ResponseMessage<PullNotification>>, EwsError>),
    /// The stream ended or broke (connection dropped, read timeout).
    StreamEnded,
    /// GetStreamingEvents answered: its response has begun (headers). Until
    /// then, and without a frame, the stream is not "live".
    StreamOpened,
    /// GetStreamingEvents got no response headers in time: something in
    /// between (a proxy, a load balancer) holds the streaming response back.
    StreamStalled,
    /// A request failed below EWS (HTTP error, connection refused, timeout), in words.
    Failed(String),
    /// The server refused the credentials. Nothing is sent until
    /// [`MailboxSync::wake`] (new credentials or "Retry now"): retrying a wrong
    /// password only locks the account.
    SignInRefused(String),
}

/// Where the tracking is, for the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Setting up or catching up.
    Syncing,
    /// Up to date, listening.
    Live,
    /// Waiting before the next attempt.
    Waiting {
        /// When the next attempt is made.
        until: Instant,
        /// Why the last one failed.
        reason: String,
    },
    /// The server refused the credentials; waiting for [`MailboxSync::wake`].
    SignInRefused {
        /// The server's words.
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    NeedSubscribe,
    AwaitSubscribe,
    NeedSync,
    AwaitSync,
    NeedStream,
    Streaming,
    PollWait { until: Instant },
    AwaitPoll,
    Wait { until: Instant, then_resubscribe: bool, retry: Request },
    SignInRefused { reason: String },
}

/// Whether an item needs its details fetched (GetItem: internet headers with
/// the call's SIP data, attachments, the transcription), which
/// SyncFolderItems cannot return: Unified Messaging's items, those whose
/// class the server did not say, and mail with attachments, which may be a
/// PBX's voicemail (`lamplighter-recognise` decides from the headers, sender,
/// subject and attachment types). Mail without attachments never costs a
/// request.
pub fn needs_details(item: &Item) -> bool {
    lamplighter_um::ItemClass::is_um_or_unknown(item.item_class.as_deref()) || item.has_attachments != Some(false)
}

/// How changes are noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// GetStreamingEvents (the default).
    Streaming,
    /// GetEvents every `interval` (servers or proxies without streaming).
    Pull {
        /// Between polls.
        interval: Duration,
    },
}

/// Limits of the retries.
#[derive(Debug, Clone, Copy)]
pub struct SyncConfig {
    /// First wait after a failure.
    pub retry_initial: Duration,
    /// Longest wait.
    pub retry_max: Duration,
    /// Streaming, or pull from the start.
    pub mode: Mode,
    /// The poll interval when streaming turns out to be unsupported.
    pub fallback_poll_interval: Duration,
    /// How long the stream (or the polling) must stay healthy before the
    /// back-off starts from `retry_initial` again.
    pub healthy_after: Duration,
    /// Each of our waits is lengthened or shortened by up to this share (0–50).
    pub jitter_percent: u8,
    /// Seeds the jitter; give each mailbox its own.
    pub jitter_seed: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            retry_initial: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            mode: Mode::Streaming,
            fallback_poll_interval: Duration::from_secs(30),
            healthy_after: Duration::from_secs(60),
            jitter_percent: 20,
            jitter_seed: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

/// The change tracker of one folder.
#[derive(Debug)]
pub struct MailboxSync {
    config: SyncConfig,
    phase: Phase,
    sync_state: Option<String>,
    subscription: Option<String>,
    /// The pull subscription's last watermark.
    watermark: Option<String>,
    mode: Mode,
    /// The driver holds an open stream.
    stream_open: bool,
    /// The open stream's response has begun (or a frame arrived): only then is it "live".
    stream_confirmed: bool,
    /// GetStreamingEvents that got no headers in time, in a row.
    stalls: u32,
    /// A notification arrived while a sync was running: sync again after it.
    dirty: bool,
    backoff: Duration,
    /// Failures since the last healthy spell.
    failures: u32,
    /// Since when the stream (or polling) has been working, after the last failure.
    healthy_since: Option<Instant>,
    /// The jitter's state (xorshift64).
    rng: u64,
    /// Why the last request failed, for the status.
    last_error: String,
    changes: VecDeque<Change>,
    states: VecDeque<String>,
}

fn first<T>(messages: Vec<ResponseMessage<T>>) -> Option<ResponseMessage<T>> {
    messages.into_iter().next()
}

impl MailboxSync {
    /// A tracker resuming from `stored_state` (from the last run, or `None`).
    pub fn new(config: SyncConfig, stored_state: Option<String>) -> Self {
        MailboxSync {
            config,
            phase: Phase::NeedSubscribe,
            sync_state: stored_state,
            subscription: None,
            watermark: None,
            mode: config.mode,
            stream_open: false,
            stream_confirmed: false,
            stalls: 0,
            dirty: false,
            backoff: config.retry_initial,
            failures: 0,
            healthy_since: None,
            rng: config.jitter_seed | 1,
            last_error: String::new(),
            changes: VecDeque::new(),
            states: VecDeque::new(),
        }
    }

    /// The next request to send, if one is due.
    pub fn poll_request(&mut self, now: Instant) -> Option<Request> {
        match self.phase.clone() {
            Phase::NeedSubscribe => {
                self.phase = Phase::AwaitSubscribe;
                Some(Request::Subscribe)
            }
            Phase::NeedSync => {
                self.phase = Phase::AwaitSync;
                self.dirty = false;
                Some(Request::Sync { state: self.sync_state.clone() })
            }
            Phase::NeedStream => {
                let id = self.subscription.clone()?;
                self.phase = Phase::Streaming;
                self.stream_open = true;
                self.stream_confirmed = false;
                Some(Request::Stream { subscription_id: id })
            }
            Phase::PollWait { until } if now >= until => {
                let id = self.subscription.clone()?;
                let watermark = self.watermark.clone()?;
                self.phase = Phase::AwaitPoll;
                Some(Request::Poll { subscription_id: id, watermark })
            }
            Phase::Wait { until, then_resubscribe, retry } if now >= until => {
                if then_resubscribe {
                    self.subscription = None;
                    self.phase = Phase::AwaitSubscribe;
                    Some(Request::Subscribe)
                } else {
                    self.phase = match &retry {
                        Request::Subscribe => Phase::AwaitSubscribe,
                        Request::Sync { .. } => Phase::AwaitSync,
                        Request::Stream { .. } => {
                            self.stream_open = true;
                            self.stream_confirmed = false;
                            Phase::Streaming
                        }
                        Request::Poll { .. } => Phase::AwaitPoll,
                    };
                    Some(match retry {
                        Request::Sync { .. } => Request::Sync { state: self.sync_state.clone() },
                        other => other,
                    })
                }
            }
            _ => None,
        }
    }

    /// When `poll_request` will have something (a wait ends).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Wait { until, .. } | Phase::PollWait { until } => Some(*until),
            _ => None,
        }
    }

    /// Ends a wait now (the user asked to retry, the network came back, or
    /// the credentials changed after a refused sign-in).
    pub fn wake(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::Wait { until, .. } | Phase::PollWait { until } => *until = now,
            Phase::SignInRefused { .. } => {
                self.subscription = None;
                self.stream_open = false;
                self.phase = Phase::NeedSubscribe;
            }
            _ => {}
        }
        self.backoff = self.config.retry_initial;
        self.failures = 0;
    }

    /// The stream or the polling works: after `healthy_after` of it, failures are forgiven.
    fn healthy(&mut self, now: Instant) {
        let since = *self.healthy_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= self.config.healthy_after {
            self.backoff = self.config.retry_initial;
            self.failures = 0;
        }
    }

    /// `d` ± the jitter.
    fn jittered(&mut self, d: Duration) -> Duration {
        let pct = u64::from(self.config.jitter_percent.min(50));
        if pct == 0 {
            return d;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        // a factor in [100 - pct, 100 + pct] percent
        let factor = 100 - pct + self.rng % (2 * pct + 1);
        d * u32::try_from(factor).unwrap_or(100) / 100
    }

    /// Streaming or pull (pull after a fallback).
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// After Subscribe, SyncFolderItems ends in streaming, or in polling.
    fn after_sync(&self, now: Instant) -> Phase {
        match self.mode {
            Mode::Streaming if self.stream_open => Phase::Streaming,
            Mode::Streaming => Phase::NeedStream,
            Mode::Pull { interval } => Phase::PollWait { until: now + interval },
        }
    }

    /// The next change for the engine.
    pub fn poll_change(&mut self) -> Option<Change> {
        self.changes.pop_front()
    }

    /// The next sync state to persist (after its changes were handed out).
    pub fn poll_sync_state(&mut self) -> Option<String> {
        if self.changes.is_empty() { self.states.pop_front() } else { None }
    }

    /// Where the tracking is: live only once the stream's response has begun
    /// (or, polling, while polls succeed); a stream that goes quiet is ended by
    /// the driver's read timeout and is then not live either.
    pub fn status(&self) -> Status {
        match &self.phase {
            Phase::Streaming if !self.dirty && self.stream_confirmed => Status::Live,
            Phase::PollWait { .. } | Phase::AwaitPoll if !self.dirty => Status::Live,
            Phase::Wait { until, .. } => Status::Waiting { until: *until, reason: self.last_error.clone() },
            Phase::SignInRefused { reason } => Status::SignInRefused { reason: reason.clone() },
            _ => Status::Syncing,
        }
    }

    fn wait(&mut self, now: Instant, server_back_off: Option<Duration>, then_resubscribe: bool, retry: Request) {
        self.failures = self.failures.saturating_add(1);
        self.healthy_since = None;
        let delay = match server_back_off {
            Some(d) => d,
            None => {
                let d = self.backoff;
                self.backoff = (self.backoff * 2).min(self.config.retry_max);
                self.jittered(d)
            }
        };
        self.phase = Phase::Wait { until: now + delay, then_resubscribe, retry };
    }

    /// Handles what the driver got back.
    pub fn handle(&mut self, now: Instant, response: Response) {
        match response {
            Response::Subscribed(result) => match result.map(first) {
                Ok(Some(ResponseMessage {
                    class: ResponseClass::Success | ResponseClass::Warning,
                    body: Some(sub),
                    ..
                })) => {
                    self.subscription = Some(sub.id);
                    self.watermark = sub.watermark;
                    self.stream_open = false;
                    self.phase = Phase::NeedSync;
                }
                Ok(Some(m)) => self.failed_message(now, m.code, m.back_off, Request::Subscribe),
                Err(EwsError::Fault(f)) => self.fault(now, &f, Request::Subscribe),
                Ok(None) => self.wait(now, None, false, Request::Subscribe),
                Err(e) => {
                    self.last_error = e.to_string();
                    self.wait(now, None, false, Request::Subscribe)
                }
            },
            Response::Synced(result) => match result.map(first) {
                Ok(Some(ResponseMessage {
                    class: ResponseClass::Success | ResponseClass::Warning,
                    body: Some(page),
                    ..
                })) => {
                    for c in page.changes {
                        self.changes.push_back(match c {
                            WireChange::Create(i) => Change::Added(i),
                            WireChange::Update(i) => Change::Updated(i),
                            WireChange::Delete(id) => Change::Removed(id),
                            WireChange::ReadFlagChange { id, is_read } => Change::ReadChanged { id, is_read },
                        });
                    }
                    self.sync_state = Some(page.sync_state.clone());
                    self.states.push_back(page.sync_state);
                    self.phase = if !page.includes_last_item_in_range || self.dirty {
                        Phase::NeedSync
                    } else {
                        self.after_sync(now)
                    };
                }
                Ok(Some(m)) if m.code == ResponseCode::InvalidSyncStateData => {
                    self.sync_state = None;
                    self.changes.push_back(Change::Reset);
                    self.phase = Phase::NeedSync;
                }
                Ok(Some(m)) => self.failed_message(now, m.code, m.back_off, Request::Sync { state: None }),
                Err(EwsError::Fault(f)) => self.fault(now, &f, Request::Sync { state: None }),
                Ok(None) => self.wait(now, None, false, Request::Sync { state: None }),
                Err(e) => {
                    self.last_error = e.to_string();
                    self.wait(now, None, false, Request::Sync { state: None })
                }
            },
            Response::Frame(result) => match result {
                Ok(messages) => {
                    for m in messages {
                        match (m.class, m.body) {
                            (ResponseClass::Error, _) => {
                                self.stream_open = false;
                                self.failed_message(now, m.code, m.back_off, Request::Subscribe);
                                return;
                            }
                            (_, Some(body)) => {
                                self.healthy(now);
                                self.stream_confirmed = true;
                                self.stalls = 0;
                                if !body.notifications.is_empty() {
                                    // the sync reports the changes; the events only say "look"
                                    self.dirty = true;
                                }
                                if body.connection_status == Some(ConnectionStatus::Closed) {
                                    self.stream_open = false;
                                    if self.phase == Phase::Streaming {
                                        self.phase = if self.dirty { Phase::NeedSync } else { Phase::NeedStream };
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    if self.dirty && self.phase == Phase::Streaming {
                        // sync while the stream stays open; reopen it after
                        self.phase = Phase::NeedSync;
                    }
                }
                Err(EwsError::Fault(f)) => {
                    self.stream_open = false;
                    self.fault(now, &f, Request::Subscribe)
                }
                Err(e) => {
                    self.last_error = e.to_string();
                    self.stream_open = false;
                    self.wait(now, None, true, Request::Subscribe)
                }
            },
            Response::Polled(result) => match result.map(first) {
                Ok(Some(ResponseMessage {
                    class: ResponseClass::Success | ResponseClass::Warning,
                    body: Some(n),
                    ..
                })) => {
                    self.healthy(now);
                    if let Some(w) = n.next_watermark() {
                        self.watermark = Some(w.to_string());
                    }
                    if n.events.iter().any(|e| e.kind != EventKind::Status) {
                        self.dirty = true;
                        self.phase = Phase::NeedSync;
                    } else {
                        let interval = match self.mode {
                            Mode::Pull { interval } => interval,
                            Mode::Streaming => self.config.fallback_poll_interval,
                        };
                        self.phase = Phase::PollWait { until: if n.more_events { now } else { now + interval } };
                    }
                }
                Ok(Some(m)) => self.failed_message(now, m.code, m.back_off, Request::Subscribe),
                Err(EwsError::Fault(f)) => self.fault(now, &f, Request::Subscribe),
                Ok(None) => self.wait(now, None, true, Request::Subscribe),
                Err(e) => {
                    self.last_error = e.to_string();
                    self.wait(now, None, true, Request::Subscribe)
                }
            },
            Response::StreamEnded => {
                self.stream_open = false;
                if matches!(self.phase, Phase::Streaming) {
                    self.last_error = "the streaming connection dropped".into();
                    // the connection dropped: resubscribe and resync, as after any outage
                    self.wait(now, None, true, Request::Subscribe);
                }
            }
            Response::StreamOpened => {
                if self.phase == Phase::Streaming {
                    self.stream_confirmed = true;
                    self.stalls = 0;
                }
            }
            Response::StreamStalled => {
                self.stream_open = false;
                self.stalls += 1;
                if self.stalls >= 2 && self.mode == Mode::Streaming {
                    // twice no headers: something holds the stream back; poll instead
                    self.last_error =
                        "the streaming response is held back (a proxy buffering it?); polling instead".into();
                    self.mode = Mode::Pull { interval: self.config.fallback_poll_interval };
                    self.subscription = None;
                    self.phase = Phase::NeedSubscribe;
                } else {
                    self.last_error = "the streaming response did not start".into();
                    self.wait(now, None, true, Request::Subscribe);
                }
            }
            Response::SignInRefused(reason) => {
                self.stream_open = false;
                self.phase = Phase::SignInRefused { reason };
            }
            Response::Failed(reason) => {
                self.last_error = reason;
                self.stream_open = false;
                let retry = match &self.phase {
                    Phase::AwaitSync => Request::Sync { state: None },
                    _ => Request::Subscribe,
                };
                let resubscribe = retry == Request::Subscribe;
                self.wait(now, None, resubscribe, retry);
            }
        }
    }

    /// A SOAP fault: its response code decides, like a failed response message.
    fn fault(&mut self, now: Instant, f: &lamplighter_ews_wire::SoapFault, retry: Request) {
        let code = f.response_code.clone().unwrap_or(ResponseCode::Other(f.code.clone()));
        self.failed_message(now, code, f.back_off, retry);
        self.last_error = format!("SOAP fault {}: {}", f.code, f.message);
    }

    fn failed_message(
        &mut self,
        now: Instant,
        code: ResponseCode,
        back_off: Option<std::time::Duration>,
        retry: Request,
    ) {
        self.last_error = format!("the server answered {code}");
        if self.mode == Mode::Streaming
            && matches!(&code, ResponseCode::Other(c) if c == "ErrorInvalidServerVersion" || c == "ErrorInvalidSubscriptionRequest" || c == "ErrorInvalidRequest")
        {
            // no streaming here: poll instead, from a new pull subscription
            self.mode = Mode::Pull { interval: self.config.fallback_poll_interval };
            self.subscription = None;
            self.stream_open = false;
            self.phase = Phase::NeedSubscribe;
            return;
        }
        match code {
            ResponseCode::ServerBusy => match back_off {
                Some(d) => self.wait(now, Some(d), false, retry),
                None => self.wait(now, None, false, retry),
            },
            ResponseCode::SubscriptionNotFound
            | ResponseCode::ExpiredSubscription
            | ResponseCode::InvalidSubscription => {
                self.subscription = None;
                if self.failures == 0 {
                    // subscriptions expire: the first loss after a healthy spell is normal
                    self.failures = 1;
                    self.healthy_since = None;
                    self.phase = Phase::NeedSubscribe;
                } else {
                    self.wait(now, None, true, Request::Subscribe);
                }
            }
            _ => self.wait(now, None, true, Request::Subscribe),
        }
    }
}
