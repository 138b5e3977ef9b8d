//! The tokio driver of the relay: it runs [`Relay`] (all policy) with a
//! [`NotifySender`] (all SIP), moving only commands, time and results
//! between them, as quinn's driver does for quinn-proto:
//! `poll_timeout` → sleep → `poll_transmit` → send → `handle_result`.

use crate::{Credentials, NotifyError, NotifySender, Transport};
use futures_util::stream::{FuturesUnordered, StreamExt};
use lamplighter_sip_mwi::relay::{PhoneId, Relay, RelayConfig, RelayEvent, SendFailure};
use lamplighter_sip_mwi::summary::{Counts, UrgentPart};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// A paired phone as the driver needs it.
#[derive(Debug, Clone)]
pub struct PhoneTarget {
    /// SIP URI.
    pub uri: String,
    pub transport: Transport,
    /// Digest credentials, if it challenges.
    pub credentials: Option<Credentials>,
    /// `Message-Account` (the mailbox URI; the phone's own URI when unknown).
    pub account: String,
    /// Resend interval.
    pub refresh: Duration,
    /// How the state reaches the phone.
    pub delivery: Delivery,
    /// Whether the summary carries `(0/0)` when nothing is urgent.
    pub urgent: UrgentPart,
}

/// How a phone's lamp is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// An unsolicited NOTIFY to the phone (as Exchange UM does).
    Notify,
    /// A PUBLISH of the state to the presence server the phone subscribes
    /// at; `uri` is the presentity (the phone's address of record there).
    Publish {
        /// The presence server (`None`: the host of `uri`).
        server: Option<String>,
        /// Seconds asked for; the relay refreshes before they run out.
        expires: u32,
    },
}

enum Command {
    SetCounts(Counts),
    ResendNow(Option<PhoneId>),
}

/// Drives the relay; dropping every handle stops it.
#[derive(Clone)]
pub struct RelayHandle {
    commands: mpsc::UnboundedSender<Command>,
    events: broadcast::Sender<RelayEvent>,
}

impl RelayHandle {
    /// The lamps should show these counts.
    pub fn set_counts(&self, counts: Counts) {
        let _ = self.commands.send(Command::SetCounts(counts));
    }

    /// Send the current state now (one phone, or all).
    pub fn resend_now(&self, phone: Option<PhoneId>) {
        let _ = self.commands.send(Command::ResendNow(phone));
    }

    /// Delivered / failed events from now on.
    pub fn events(&self) -> broadcast::Receiver<RelayEvent> {
        self.events.subscribe()
    }
}

fn failure(e: NotifyError) -> SendFailure {
    match e {
        NotifyError::Timeout => SendFailure::Timeout,
        NotifyError::Rejected { code, reason } => SendFailure::Rejected { code, reason },
        NotifyError::AuthFailed { code, reason } => SendFailure::Credentials { code, reason },
        NotifyError::AuthRequired { code, detail } => SendFailure::Credentials { code, reason: detail },
        NotifyError::InvalidTarget(t) => SendFailure::Transport(format!("invalid target {t}")),
        NotifyError::Transport(t) => SendFailure::Transport(t),
        NotifyError::BadAnswer(t) => SendFailure::Transport(format!("unusable answer: {t}")),
    }
}

/// Starts the driver on the current tokio runtime.
pub fn spawn(sender: Arc<NotifySender>, phones: Vec<PhoneTarget>, config: RelayConfig) -> RelayHandle {
    let (commands, mut rx) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(256);
    let handle = RelayHandle { commands, events: events.clone() };
    tokio::spawn(async move {
        let now = || tokio::time::Instant::now().into_std();
        let mut relay = Relay::new(config);
        for p in &phones {
            relay.add_phone_with(now(), &p.uri, &p.account, p.refresh, p.urgent);
        }
        let mut in_flight = FuturesUnordered::new();
        // the entity tag of each phone's publication (PUBLISH phones)
        let mut etags: Vec<Option<String>> = vec![None; phones.len()];
        loop {
            while let Some(t) = relay.poll_transmit(now()) {
                let sender = sender.clone();
                let phone = phones[t.phone.0].clone();
                let etag = etags[t.phone.0].clone();
                in_flight.push(async move {
                    let creds = phone.credentials.as_ref();
                    let r = match &phone.delivery {
                        Delivery::Notify => sender
                            .send(&phone.uri, phone.transport, "lamplighter", &t.summary, creds)
                            .await
                            .map(|_| None),
                        Delivery::Publish { server, expires } => sender
                            .publish(
                                &phone.uri,
                                server.as_deref(),
                                phone.transport,
                                Some(&t.summary),
                                etag.as_deref(),
                                *expires,
                                creds,
                            )
                            .await
                            .map(|p| p.publication),
                    };
                    (t.phone, r)
                });
            }
            while let Some(e) = relay.poll_event() {
                match &e {
                    RelayEvent::Delivered { phone, counts } => {
                        log::info!("lamp of {}: {}/{}", phones[phone.0].uri, counts.new, counts.old)
                    }
                    RelayEvent::Failed { phone, failure, retry_in } => {
                        let result = lamplighter_sip_mwi::relay::LampResult::failed(failure, Some(*retry_in));
                        log::warn!("lamp of {}: {result}", phones[phone.0].uri)
                    }
                }
                let _ = events.send(e);
            }
            let deadline = relay.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Command::SetCounts(c)) => relay.set_counts(now(), c),
                    Some(Command::ResendNow(p)) => relay.resend_now(now(), p),
                    None => break,
                },
                Some((phone, result)) = in_flight.next(), if !in_flight.is_empty() => {
                    if let Ok(publication) = &result {
                        etags[phone.0] = publication.as_ref().map(|p| p.etag.clone());
                        // a server that keeps the publication for less than asked gets it refreshed sooner
                        let refresh = phones[phone.0].refresh;
                        relay.set_refresh(phone, publication.as_ref().map_or(refresh, |p| p.refresh_after().min(refresh)));
                    }
                    relay.handle_result(now(), phone, result.map(|_| ()).map_err(failure));
                }
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {}
            }
        }
    });
    handle
}
