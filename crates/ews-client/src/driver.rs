//! The tokio driver of change tracking: it runs
//! [`lamplighter_mailbox_sync::MailboxSync`] against an [`EwsClient`],
//! enriches new and changed items with GetItem (internet headers, attachments,
//! UM properties: SyncFolderItems cannot return them), persists each sync
//! state only after its changes were handed on, and reports what it is doing
//! as a [`Connection`]. What to do after each answer (wait, resubscribe, fall
//! back to pull, stop after a refused sign-in) is the sans-IO core's policy;
//! this loop only translates client errors into its [`Response`]s and sends
//! what it asks for.

use crate::{ClientError, EwsClient};
use lamplighter_ews_wire::{EwsError, MaxChanges, ResponseClass, ResponseCode, SoapFault, SubscriptionKind};
use lamplighter_mailbox::{Connection, MailboxEvent, StateStore};
use lamplighter_mailbox_sync::{MailboxSync, Mode, Request, Response, Status, SyncConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, watch};

/// Driver settings.
#[derive(Debug, Clone, Copy)]
pub struct DriverConfig {
    /// Change tracking.
    pub sync: SyncConfig,
    /// `ConnectionTimeout` asked of GetStreamingEvents (1–30 min).
    pub stream_minutes: u8,
    /// Changes per SyncFolderItems page.
    pub page: MaxChanges,
    /// How long GetStreamingEvents may take to send its response headers;
    /// longer, and something holds the stream back (twice: polling instead).
    pub stream_start: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            sync: SyncConfig::default(),
            stream_minutes: 30,
            page: MaxChanges::MAX,
            stream_start: Duration::from_secs(30),
        }
    }
}

/// Controls a running driver.
pub struct SyncHandle {
    stop: watch::Sender<bool>,
    retry: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl SyncHandle {
    /// Ends a wait now (after new credentials, or the user's "Retry now").
    pub fn retry_now(&self) {
        self.retry.notify_one();
    }

    /// Stops: the subscription is ended on the server (best effort), then the task ends.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts tracking the Inbox of `client`'s mailbox.
pub fn spawn(
    client: Arc<EwsClient>,
    state: Arc<dyn StateStore>,
    config: DriverConfig,
    events: mpsc::Sender<MailboxEvent>,
) -> SyncHandle {
    let (stop, stopped) = watch::channel(false);
    let retry = Arc::new(Notify::new());
    let task = tokio::spawn(run(client, state, config, events, stopped, retry.clone()));
    SyncHandle { stop, retry, task }
}

/// A client error as the sans-IO core sees it.
fn to_wire<T>(r: Result<T, ClientError>) -> Result<T, EwsError> {
    match r {
        Ok(v) => Ok(v),
        Err(ClientError::Ews(e)) => Err(e),
        Err(ClientError::Throttled(d)) => Err(EwsError::Fault(Box::new(SoapFault {
            code: "a:ErrorServerBusy".into(),
            message: "throttled".into(),
            response_code: Some(ResponseCode::ServerBusy),
            back_off: Some(d),
        }))),
        Err(e) => Err(EwsError::Malformed(e.to_string())),
    }
}

/// What the core makes of a failed call: a refused sign-in, an EWS-level
/// answer it reads itself, or a failure below EWS.
pub(crate) fn classify<T>(r: Result<T, ClientError>, ok: impl FnOnce(Result<T, EwsError>) -> Response) -> Response {
    match r {
        Err(
            e @ (ClientError::Auth { .. }
            | ClientError::SchemeNotOffered { .. }
            | ClientError::Kerberos { error: lamplighter_gssapi::GssError::MutualAuth { .. }, .. }),
        ) => Response::SignInRefused(e.to_string()),
        Err(e) if !matches!(e, ClientError::Ews(_) | ClientError::Throttled(_)) => Response::Failed(e.to_string()),
        r => ok(to_wire(r)),
    }
}

fn connection(status: Status, now: Instant) -> Connection {
    match status {
        Status::Live => Connection::Live,
        Status::Syncing => Connection::Syncing,
        Status::Waiting { until, reason } => {
            Connection::Reconnecting { in_secs: until.saturating_duration_since(now).as_secs(), reason }
        }
        Status::SignInRefused { reason } => Connection::SignInRefused { reason },
    }
}

async fn run(
    client: Arc<EwsClient>,
    state: Arc<dyn StateStore>,
    config: DriverConfig,
    events: mpsc::Sender<MailboxEvent>,
    mut stopped: watch::Receiver<bool>,
    retry: Arc<Notify>,
) {
    // each process and mailbox jitters its own way, so many never retry in step
    let seed = {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one(client.ews_url())
    };
    let mut sync =
        MailboxSync::new(SyncConfig { jitter_seed: config.sync.jitter_seed ^ seed, ..config.sync }, state.load());
    let mut stream: Option<crate::EventStream> = None;
    // on a shared connection instead (a gateway's many mailboxes)
    let mut membership: Option<crate::group::Membership> = None;
    let hub = client.config.stream_hub.clone();
    let mut subscription: Option<String> = None;
    let mut last: Option<Connection> = None;
    loop {
        // hand on changes, then persist the state they lead to
        while let Some(c) = sync.poll_change() {
            if events.send(MailboxEvent::Change(Box::new(c))).await.is_err() {
                return;
            }
        }
        while let Some(s) = sync.poll_sync_state() {
            if let Err(e) = state.save(&s) {
                log::error!("cannot store the sync state: {e}");
            }
        }
        let now = connection(sync.status(), Instant::now());
        if last.as_ref() != Some(&now) {
            last = Some(now.clone());
            if events.send(MailboxEvent::Connection(now)).await.is_err() {
                return;
            }
        }
        if *stopped.borrow() {
            break;
        }
        match sync.poll_request(Instant::now()) {
            Some(Request::Subscribe) => {
                stream = None;
                membership = None;
                // a subscription left behind counts against the account's limit (20 on Exchange Online)
                if let Some(old) = subscription.take() {
                    let _ = or_stop(&mut stopped, tokio::time::timeout(UNSUBSCRIBE_DEADLINE, client.unsubscribe(&old)))
                        .await;
                }
                let kind = match sync.mode() {
                    Mode::Streaming => SubscriptionKind::Streaming,
                    Mode::Pull { .. } => SubscriptionKind::Pull { timeout_minutes: 10 },
                };
                let Some(r) = or_stop(&mut stopped, client.subscribe(kind)).await else { break };
                if let Ok(msgs) = &r {
                    subscription = msgs
                        .first()
                        .filter(|m| m.class != ResponseClass::Error)
                        .and_then(|m| m.body.as_ref())
                        .map(|s| s.id.clone());
                }
                sync.handle(Instant::now(), classify(r, Response::Subscribed));
            }
            Some(Request::Sync { state: from }) => {
                let sync_page = async {
                    match client.sync_inbox(from, config.page).await {
                        Ok(mut msgs) => enrich(&client, &mut msgs).await.map(|()| msgs),
                        Err(e) => Err(e),
                    }
                };
                let Some(r) = or_stop(&mut stopped, sync_page).await else { break };
                sync.handle(Instant::now(), classify(r, Response::Synced));
            }
            Some(Request::Stream { subscription_id }) if hub.is_some() => {
                let group = client.backend_cookie().unwrap_or_default();
                if let Some(h) = &hub {
                    membership = Some(h.join(client.clone(), subscription_id, group));
                }
            }
            Some(Request::Stream { subscription_id }) => {
                let opening = tokio::time::timeout(
                    config.stream_start,
                    client.open_stream(&subscription_id, config.stream_minutes),
                );
                let Some(opened) = or_stop(&mut stopped, opening).await else {
                    break;
                };
                let Ok(opened) = opened else {
                    log::warn!("GetStreamingEvents sent no response headers within {:?}", config.stream_start);
                    sync.handle(Instant::now(), Response::StreamStalled);
                    continue;
                };
                match opened {
                    Ok(s) => {
                        stream = Some(s);
                        sync.handle(Instant::now(), Response::StreamOpened);
                    }
                    Err(e) => sync.handle(
                        Instant::now(),
                        classify(Err::<(), _>(e), |r| match r {
                            Err(e) => Response::Frame(Err(e)),
                            Ok(()) => Response::StreamEnded,
                        }),
                    ),
                }
            }
            Some(Request::Poll { subscription_id, watermark }) => {
                let Some(r) = or_stop(&mut stopped, client.get_events(&subscription_id, &watermark)).await else {
                    break;
                };
                sync.handle(Instant::now(), classify(r, Response::Polled));
            }
            None => {
                // with nothing due, wake once a day anyway: harmless, and no helper needed
                let deadline = sync.poll_timeout().map_or_else(
                    || tokio::time::Instant::now() + Duration::from_secs(86_400),
                    tokio::time::Instant::from_std,
                );
                tokio::select! {
                    r = next_shared(&mut membership) => {
                        // anything but an open stream or its own notifications ends this membership
                        let going_on = match &r {
                            Some(Response::StreamOpened) => true,
                            Some(Response::Frame(Ok(m))) => m.iter().all(|m| m.class != ResponseClass::Error),
                            _ => false,
                        };
                        if !going_on {
                            membership = None;
                        }
                        sync.handle(Instant::now(), r.unwrap_or(Response::StreamEnded));
                    }
                    frame = next_frame(&mut stream) => match frame {
                        Some(Ok(msgs)) => sync.handle(Instant::now(), Response::Frame(Ok(msgs))),
                        // a fault in the stream is read for its code and back-off, not taken for a dropped line
                        Some(Err(ClientError::Ews(e @ lamplighter_ews_wire::EwsError::Fault(_)))) => {
                            log::info!("the stream ended with a SOAP fault: {e}");
                            stream = None;
                            sync.handle(Instant::now(), Response::Frame(Err(e)));
                        }
                        Some(Err(e)) => {
                            log::info!("streaming connection lost: {e}");
                            stream = None;
                            sync.handle(Instant::now(), Response::StreamEnded);
                        }
                        None => {
                            stream = None;
                            sync.handle(Instant::now(), Response::StreamEnded);
                        }
                    },
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = retry.notified() => sync.wake(Instant::now()),
                    _ = stopped.changed() => {}
                }
            }
        }
    }
    // stop: end the subscription on the server, briefly
    drop(stream);
    drop(membership);
    if let Some(id) = subscription {
        // boxed: kept inline, the request's future would be part of every idle driver
        let _ = Box::pin(tokio::time::timeout(UNSUBSCRIBE_DEADLINE, client.unsubscribe(&id))).await;
    }
    let _ = events.send(MailboxEvent::Connection(Connection::Stopped)).await;
}

/// How long a stop waits for the Unsubscribe (on a new request: whatever
/// was in flight is abandoned at once). With it a stop takes at most about
/// 3 s, well inside systemd's default 90 s and the unit's `TimeoutStopSec`.
pub const UNSUBSCRIBE_DEADLINE: Duration = Duration::from_secs(3);

/// Runs `f` unless the driver is stopped first: then `None`, and `f` (a
/// request in flight, its retries and back-off waits) is dropped.
///
/// `f` is boxed before anything awaits (this is no `async fn`, whose
/// arguments would be kept inline): a request's future (HTTP, TLS, parsing)
/// is large, and inline it would make every idle driver as large as its
/// largest request (a gateway runs thousands).
fn or_stop<'a, T: 'a>(
    stopped: &'a mut watch::Receiver<bool>,
    f: impl std::future::Future<Output = T> + Send + 'a,
) -> impl std::future::Future<Output = Option<T>> + Send + 'a {
    let f: std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>> = Box::pin(f);
    or_stop_boxed(stopped, f)
}

async fn or_stop_boxed<'a, T>(
    stopped: &'a mut watch::Receiver<bool>,
    f: std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>,
) -> Option<T> {
    if *stopped.borrow() {
        return None;
    }
    tokio::select! {
        r = f => Some(r),
        _ = async {
            // a dropped sender counts as a stop
            while stopped.changed().await.is_ok() {
                if *stopped.borrow() {
                    return;
                }
            }
        } => None,
    }
}

async fn next_shared(m: &mut Option<crate::group::Membership>) -> Option<Response> {
    match m {
        Some(m) => m.next().await,
        None => std::future::pending().await,
    }
}

async fn next_frame(
    stream: &mut Option<crate::EventStream>,
) -> Option<Result<Vec<lamplighter_ews_wire::ResponseMessage<lamplighter_ews_wire::StreamingBody>>, ClientError>> {
    match stream {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// Replaces the items of created and updated changes by their GetItem versions.
async fn enrich(
    client: &EwsClient,
    msgs: &mut [lamplighter_ews_wire::ResponseMessage<lamplighter_ews_wire::SyncPage>],
) -> Result<(), ClientError> {
    use lamplighter_ews_wire::Change as W;
    for m in msgs.iter_mut() {
        let Some(page) = m.body.as_mut() else { continue };
        // only Unified Messaging items need their headers, body and attachments; ordinary mail does not
        let ids: Vec<lamplighter_ews_wire::ItemId> = page
            .changes
            .iter()
            .filter_map(|c| match c {
                W::Create(i) | W::Update(i) if lamplighter_mailbox_sync::needs_details(i) => Some(i.id.clone()),
                _ => None,
            })
            .collect();
        if ids.is_empty() {
            continue;
        }
        let full = client.get_items(&ids).await?;
        let by_id: std::collections::HashMap<&str, &lamplighter_ews_wire::Item> =
            full.iter().map(|i| (i.id.id.as_str(), i)).collect();
        for c in page.changes.iter_mut() {
            if let W::Create(i) | W::Update(i) = c
                && let Some(f) = by_id.get(i.id.id.as_str())
            {
                *i = (*f).clone();
            }
        }
    }
    Ok(())
}

impl lamplighter_mailbox::Tracking for SyncHandle {
    fn retry_now(&self) {
        SyncHandle::retry_now(self);
    }
    fn stop(self: Box<Self>) -> lamplighter_mailbox::BoxFuture<'static, ()> {
        Box::pin(SyncHandle::stop(*self))
    }
}

#[cfg(test)]
mod sizes {
    /// A gateway runs one driver per mailbox: what an idle one holds is what ten thousand hold.
    #[tokio::test]
    async fn an_idle_driver_is_small() {
        let mut c = crate::ClientConfig::new("a@example.test", crate::Credentials::None);
        c.ews_url = Some("http://127.0.0.1:9/EWS/Exchange.asmx".into());
        let client = std::sync::Arc::new(crate::EwsClient::connect(c).await.expect("client"));
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        let fut = super::run(
            client,
            std::sync::Arc::new(lamplighter_mailbox::MemoryState::default()),
            super::DriverConfig::default(),
            tx,
            stopped,
            std::sync::Arc::new(tokio::sync::Notify::new()),
        );
        let size = std::mem::size_of_val(&fut);
        println!("an idle driver: {size} B");
        // every request's future is boxed (`or_stop`, the last Unsubscribe): one kept inline
        // makes each driver as large as the largest request (6.7 KB when the Unsubscribe was)
        assert!(size <= 3 * 1024, "the driver's future is {size} B: a request future is inline");
    }
}
