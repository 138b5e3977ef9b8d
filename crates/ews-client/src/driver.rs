//! The tokio driver of change tracking: it runs
//! [`lamplighter_mailbox_sync::MailboxSync`] against an [`EwsClient`],
//! enriches new and changed items with GetItem (internet headers, attachments,
//! UM properties: SyncFolderItems cannot return them), persists each sync
//! state only after its changes were handed on, and reports what it is doing
//! as [`SyncStatus`]. It recovers by itself from everything but a refused
//! sign-in, which waits for [`SyncHandle::retry_now`] (new credentials) so a
//! wrong password is never hammered into an account lockout.

use crate::{ClientError, EwsClient};
use lamplighter_ews_wire::{EwsError, MaxChanges, ResponseClass, ResponseCode, SoapFault, SubscriptionKind};
use lamplighter_mailbox_sync::{Change, MailboxSync, Mode, Request, Response, Status, SyncConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, watch};

/// Where the sync state lives between runs.
pub trait StateStore: Send + Sync {
    /// The stored state, if any.
    fn load(&self) -> Option<String>;
    /// Stores a state (durably: it is written before the next change is taken).
    fn save(&self, state: &str) -> std::io::Result<()>;
}

/// A state file, replaced atomically.
#[derive(Debug, Clone)]
pub struct FileState(pub PathBuf);

impl StateStore for FileState {
    fn load(&self) -> Option<String> {
        std::fs::read_to_string(&self.0).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }
    fn save(&self, state: &str) -> std::io::Result<()> {
        if let Some(dir) = self.0.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.0.with_extension("tmp");
        std::fs::write(&tmp, state)?;
        std::fs::rename(tmp, &self.0)
    }
}

/// A state kept in memory (tests, the demo).
#[derive(Debug, Default, Clone)]
pub struct MemoryState(pub Arc<std::sync::Mutex<Option<String>>>);

impl StateStore for MemoryState {
    fn load(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn save(&self, state: &str) -> std::io::Result<()> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(state.to_string());
        Ok(())
    }
}

/// What the tracking is doing, for the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncStatus {
    /// Subscribing or catching up.
    Syncing,
    /// Up to date and listening.
    Live,
    /// Waiting before the next attempt.
    Reconnecting {
        /// Seconds from now.
        in_secs: u64,
        /// The last error.
        reason: String,
    },
    /// The server refused the credentials; waiting for new ones.
    AuthFailed(String),
    /// Stopped.
    Stopped,
}

/// What the driver reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxEvent {
    /// A change of the mailbox.
    Change(Change),
    /// The status changed.
    Status(SyncStatus),
}

/// Driver settings.
#[derive(Debug, Clone, Copy)]
pub struct DriverConfig {
    /// Change tracking.
    pub sync: SyncConfig,
    /// `ConnectionTimeout` asked of GetStreamingEvents (1–30 min).
    pub stream_minutes: u8,
    /// Changes per SyncFolderItems page.
    pub page: MaxChanges,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig { sync: SyncConfig::default(), stream_minutes: 30, page: MaxChanges::MAX }
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

async fn run(
    client: Arc<EwsClient>,
    state: Arc<dyn StateStore>,
    config: DriverConfig,
    events: mpsc::Sender<MailboxEvent>,
    mut stopped: watch::Receiver<bool>,
    retry: Arc<Notify>,
) {
    let mut sync = MailboxSync::new(config.sync, state.load());
    let mut stream: Option<crate::EventStream> = None;
    let mut subscription: Option<String> = None;
    let mut last_status: Option<SyncStatus> = None;
    let mut last_error = String::new();
    let mut auth_failed: Option<String> = None;
    loop {
        // hand on changes, then persist the state they lead to
        while let Some(c) = sync.poll_change() {
            if events.send(MailboxEvent::Change(c)).await.is_err() {
                return;
            }
        }
        while let Some(s) = sync.poll_sync_state() {
            if let Err(e) = state.save(&s) {
                log::error!("cannot store the sync state: {e}");
            }
        }
        let status = match (&auth_failed, sync.status()) {
            (Some(m), _) => SyncStatus::AuthFailed(m.clone()),
            (None, Status::Live) => SyncStatus::Live,
            (None, Status::Syncing) => SyncStatus::Syncing,
            (None, Status::Waiting { until }) => SyncStatus::Reconnecting {
                in_secs: until.saturating_duration_since(Instant::now()).as_secs(),
                reason: last_error.clone(),
            },
        };
        if last_status.as_ref() != Some(&status) {
            last_status = Some(status.clone());
            if events.send(MailboxEvent::Status(status)).await.is_err() {
                return;
            }
        }
        if *stopped.borrow() {
            break;
        }
        if let Some(_reason) = &auth_failed {
            tokio::select! {
                _ = retry.notified() => { auth_failed = None; sync.wake(Instant::now()); }
                _ = stopped.changed() => {}
            }
            continue;
        }
        let now = Instant::now();
        match sync.poll_request(now) {
            Some(Request::Subscribe) => {
                stream = None;
                // a subscription left behind counts against the account's limit (20 on Exchange Online)
                if let Some(old) = subscription.take() {
                    let _ = tokio::time::timeout(Duration::from_secs(5), client.unsubscribe(&old)).await;
                }
                let kind = match sync.mode() {
                    Mode::Streaming => SubscriptionKind::Streaming,
                    Mode::Pull { .. } => SubscriptionKind::Pull { timeout_minutes: 10 },
                };
                let r = client.subscribe(kind).await;
                if let Err(e @ ClientError::Auth { .. }) = &r {
                    auth_failed = Some(e.to_string());
                    sync.handle(Instant::now(), Response::Failed);
                    continue;
                }
                if let Err(e) = &r {
                    last_error = e.to_string();
                }
                if let Ok(msgs) = &r {
                    subscription = msgs
                        .first()
                        .filter(|m| m.class != ResponseClass::Error)
                        .and_then(|m| m.body.as_ref())
                        .map(|s| s.id.clone());
                }
                let failed = r.as_ref().is_err_and(|e| !matches!(e, ClientError::Ews(_) | ClientError::Throttled(_)));
                sync.handle(Instant::now(), if failed { Response::Failed } else { Response::Subscribed(to_wire(r)) });
            }
            Some(Request::Sync { state: from }) => {
                let r = client.sync_inbox(from, config.page).await;
                let r = match r {
                    Ok(mut msgs) => enrich(&client, &mut msgs).await.map(|()| msgs),
                    Err(e) => Err(e),
                };
                match &r {
                    Err(e @ ClientError::Auth { .. }) => {
                        auth_failed = Some(e.to_string());
                        sync.handle(Instant::now(), Response::Failed);
                        continue;
                    }
                    Err(e) => last_error = e.to_string(),
                    Ok(_) => {}
                }
                let failed = r.as_ref().is_err_and(|e| !matches!(e, ClientError::Ews(_) | ClientError::Throttled(_)));
                sync.handle(Instant::now(), if failed { Response::Failed } else { Response::Synced(to_wire(r)) });
            }
            Some(Request::Stream { subscription_id }) => {
                match client.open_stream(&subscription_id, config.stream_minutes).await {
                    Ok(s) => stream = Some(s),
                    Err(e @ ClientError::Auth { .. }) => {
                        auth_failed = Some(e.to_string());
                        sync.handle(Instant::now(), Response::StreamEnded);
                    }
                    Err(ClientError::Ews(e)) => {
                        last_error = e.to_string();
                        sync.handle(Instant::now(), Response::Frame(Err(e)))
                    }
                    Err(e) => {
                        last_error = e.to_string();
                        sync.handle(Instant::now(), Response::StreamEnded)
                    }
                }
            }
            Some(Request::Poll { subscription_id, watermark }) => {
                let r = client.get_events(&subscription_id, &watermark).await;
                if let Err(e) = &r {
                    last_error = e.to_string();
                }
                let failed = r.as_ref().is_err_and(|e| !matches!(e, ClientError::Ews(_) | ClientError::Throttled(_)));
                sync.handle(Instant::now(), if failed { Response::Failed } else { Response::Polled(to_wire(r)) });
            }
            None => {
                let deadline = sync.poll_timeout().map(tokio::time::Instant::from_std);
                tokio::select! {
                    frame = next_frame(&mut stream) => match frame {
                        Some(Ok(msgs)) => sync.handle(Instant::now(), Response::Frame(Ok(msgs))),
                        Some(Err(e)) => {
                            log::info!("streaming connection lost: {e}");
                            last_error = e.to_string();
                            stream = None;
                            sync.handle(Instant::now(), Response::StreamEnded);
                        }
                        None => {
                            stream = None;
                            sync.handle(Instant::now(), Response::StreamEnded);
                        }
                    },
                    _ = sleep_until(deadline) => {}
                    _ = retry.notified() => sync.wake(Instant::now()),
                    _ = stopped.changed() => {}
                }
            }
        }
    }
    // stop: end the subscription on the server, briefly
    drop(stream);
    if let Some(id) = subscription {
        let _ = tokio::time::timeout(Duration::from_secs(5), client.unsubscribe(&id)).await;
    }
    let _ = events.send(MailboxEvent::Status(SyncStatus::Stopped)).await;
}

async fn next_frame(
    stream: &mut Option<crate::EventStream>,
) -> Option<Result<Vec<lamplighter_ews_wire::ResponseMessage<lamplighter_ews_wire::StreamingBody>>, ClientError>> {
    match stream {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Voicemail, missed-call and other Unified Messaging item classes (any case); unknown classes count too.
fn is_um_class(class: Option<&str>) -> bool {
    match class {
        None => true,
        Some(c) => {
            let c = c.to_ascii_lowercase();
            c.starts_with("ipm.note.microsoft.") || c.starts_with("ipm.note.rpmsg.microsoft.")
        }
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
                W::Create(i) | W::Update(i) if is_um_class(i.item_class.as_deref()) => Some(i.id.clone()),
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
