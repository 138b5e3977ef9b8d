//! Serving phones that SUBSCRIBE for `message-summary` (baresip does, and
//! answers unsolicited NOTIFYs with 481): the tokio driver of
//! [`lamplighter_sip_mwi::notifier::Notifier`] on the sender's endpoint.
//!
//! Softphones register before they subscribe, so a REGISTER from a paired
//! phone is accepted (200 with its Contact and Expires echoed); others get
//! 403. SUBSCRIBEs are parsed here and answered as the notifier decides;
//! its NOTIFYs go out in the subscription's dialog. Other requests get 405.

use crate::{NotifySender, transport_error};
use futures_util::stream::{FuturesUnordered, StreamExt};
use lamplighter_sip_mwi::notifier::{Answer, DialogNotify, Notifier, NotifierConfig, Subscribe};
use lamplighter_sip_mwi::relay::SendFailure;
use lamplighter_sip_mwi::summary::Counts;
use rsipstack::sip::{Header, Method, Request, StatusCode, Uri, Version, headers::*};
use rsipstack::transaction::transaction::Transaction;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

/// What happened, for the log and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionEvent {
    /// A phone registered.
    Registered {
        /// Its address of record.
        aor: String,
    },
    /// A SUBSCRIBE was answered.
    Answered {
        /// The subscriber.
        from: String,
        /// The status code sent.
        code: u16,
    },
    /// A NOTIFY got its final answer.
    Notified {
        /// The subscriber.
        to: String,
        /// `active;expires=…` or `terminated;…`.
        state: String,
        /// The phone's status code, or None on timeout/transport failure.
        code: Option<u16>,
    },
}

/// Controls the served subscriptions.
#[derive(Clone)]
pub struct SubscriptionHandle {
    counts: mpsc::UnboundedSender<Counts>,
    events: broadcast::Sender<SubscriptionEvent>,
}

impl SubscriptionHandle {
    /// The counts subscribed phones should show.
    pub fn set_counts(&self, counts: Counts) {
        let _ = self.counts.send(counts);
    }

    /// Events from now on.
    pub fn events(&self) -> broadcast::Receiver<SubscriptionEvent> {
        self.events.subscribe()
    }
}

fn header_value(req: &Request, name: &str) -> Option<String> {
    req.headers.iter().find_map(|h| {
        let text = h.to_string();
        let (n, v) = text.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// `"Name" <sip:a@b>;tag=x` → (`sip:a@b`, Some(`x`)).
fn uri_and_tag(value: &str) -> (String, Option<String>) {
    let (uri, params) = match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => (value[a + 1..b].to_string(), &value[b + 1..]),
        _ => {
            let end = value.find(';').unwrap_or(value.len());
            (value[..end].trim().to_string(), &value[end..])
        }
    };
    let tag = params.split(';').find_map(|p| p.trim().strip_prefix("tag=").map(|t| t.to_string()));
    (uri, tag)
}

/// A SUBSCRIBE request as the notifier needs it; `None` when From, To,
/// Contact or Call-ID is missing or the From tag is absent.
pub fn parse_subscribe(req: &Request) -> Option<Subscribe> {
    let (from, from_tag) = uri_and_tag(&header_value(req, "From").or_else(|| header_value(req, "f"))?);
    let (to, to_tag) = uri_and_tag(&header_value(req, "To").or_else(|| header_value(req, "t"))?);
    let contact = uri_and_tag(&header_value(req, "Contact").or_else(|| header_value(req, "m"))?).0;
    Some(Subscribe {
        call_id: header_value(req, "Call-ID").or_else(|| header_value(req, "i"))?,
        from,
        from_tag: from_tag?,
        to,
        to_tag,
        contact,
        event: header_value(req, "Event").or_else(|| header_value(req, "o")).unwrap_or_default(),
        expires: header_value(req, "Expires").and_then(|e| e.trim().parse().ok()),
    })
}

async fn answer_register(tx: &mut Transaction, notifier: &Notifier, events: &broadcast::Sender<SubscriptionEvent>) {
    let from = header_value(&tx.original, "To").map(|v| uri_and_tag(&v).0).unwrap_or_default();
    if !notifier.is_paired(&from) {
        let _ = tx.reply(StatusCode::Forbidden).await;
        return;
    }
    let mut extra: Vec<Header> = Vec::new();
    if let Some(contact) = header_value(&tx.original, "Contact") {
        extra.push(Contact::new(contact).into());
    }
    let expires = header_value(&tx.original, "Expires").and_then(|e| e.parse::<u32>().ok()).unwrap_or(3600).min(3600);
    extra.push(Expires::new(expires.to_string()).into());
    if tx.reply_with(StatusCode::OK, extra, None).await.is_ok() {
        let _ = events.send(SubscriptionEvent::Registered { aor: from });
    }
}

/// Starts serving subscriptions for `paired` phone URIs on `sender`'s endpoint.
pub fn serve(
    sender: Arc<NotifySender>,
    paired: Vec<String>,
    config: NotifierConfig,
) -> Result<SubscriptionHandle, crate::NotifyError> {
    let mut incoming = sender.endpoint().incoming_transactions().map_err(transport_error)?;
    let (counts_tx, mut counts_rx) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(256);
    let handle = SubscriptionHandle { counts: counts_tx, events: events.clone() };
    let seed = u64::from(sender.local_addr().port()) << 16 ^ std::process::id() as u64;
    tokio::spawn(async move {
        let mut notifier = Notifier::new(config, &paired, seed);
        let now = || tokio::time::Instant::now().into_std();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while let Some(n) = notifier.poll_transmit(now()) {
                let sender = sender.clone();
                in_flight.push(async move {
                    let request = dialog_request(&sender, &n);
                    (n, sender.transact(request).await)
                });
            }
            let deadline = notifier.poll_timeout(now()).map(tokio::time::Instant::from_std);
            tokio::select! {
                tx = incoming.recv() => {
                    let Some(mut tx) = tx else { break };
                    match tx.original.method {
                        Method::Register => answer_register(&mut tx, &notifier, &events).await,
                        Method::Subscribe => {
                            let Some(sub) = parse_subscribe(&tx.original) else {
                                let _ = tx.reply(StatusCode::BadRequest).await;
                                continue;
                            };
                            let answer = notifier.handle_subscribe(now(), &sub);
                            let code = answer.code();
                            let result = match &answer {
                                Answer::Accept { to_tag, expires } => {
                                    tx.original.headers.unique_push(To::new(format!("<{}>;tag={to_tag}", sub.to)).into());
                                    let local = sender.local_addr();
                                    let extra: Vec<Header> = vec![
                                        Expires::new(expires.to_string()).into(),
                                        Contact::new(format!("<sip:lamplighter@{local}>")).into(),
                                    ];
                                    tx.reply_with(StatusCode::OK, extra, None).await
                                }
                                Answer::IntervalTooBrief { min } => {
                                    tx.reply_with(StatusCode::IntervalTooBrief, vec![MinExpires::new(min.to_string()).into()], None).await
                                }
                                Answer::BadEvent => tx.reply(StatusCode::BadEvent).await,
                                Answer::NoSuchSubscription => tx.reply(StatusCode::CallTransactionDoesNotExist).await,
                                Answer::Forbidden => tx.reply(StatusCode::Forbidden).await,
                            };
                            if result.is_ok() {
                                let _ = events.send(SubscriptionEvent::Answered { from: sub.from.clone(), code });
                            }
                        }
                        Method::Ack => {}
                        _ => {
                            let _ = tx.reply(StatusCode::MethodNotAllowed).await;
                        }
                    }
                }
                c = counts_rx.recv() => match c {
                    Some(c) => notifier.set_counts(c),
                    None => break,
                },
                Some((n, result)) = in_flight.next(), if !in_flight.is_empty() => {
                    let code = result.as_ref().ok().map(|(c, _, _)| *c);
                    let outcome = match result {
                        Ok((200..=299, _, _)) => Ok(()),
                        Ok((code, reason, _)) => Err(SendFailure::Rejected { code, reason }),
                        Err(crate::NotifyError::Timeout) => Err(SendFailure::Timeout),
                        Err(e) => Err(SendFailure::Transport(e.to_string())),
                    };
                    notifier.handle_result(&n.id, outcome);
                    let _ = events.send(SubscriptionEvent::Notified { to: n.to.clone(), state: n.subscription_state.clone(), code });
                }
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {}
            }
        }
    });
    Ok(handle)
}

/// The NOTIFY in a subscription's dialog (RFC 6665 §4.4.1: To/From are the
/// dialog's URIs with their tags, the Request-URI is the subscriber's Contact).
fn dialog_request(sender: &NotifySender, n: &DialogNotify) -> Request {
    let local = sender.local_addr();
    let branch = format!("z9hG4bK{}", rsipstack::transaction::random_text(16));
    let body = n.summary.as_ref().map(|s| s.to_string().into_bytes()).unwrap_or_default();
    let mut headers: Vec<Header> = vec![
        Via::new(format!("SIP/2.0/UDP {local};branch={branch};rport")).into(),
        MaxForwards::new("70").into(),
        From::new(format!("<{}>;tag={}", n.from, n.id.local_tag)).into(),
        To::new(format!("<{}>;tag={}", n.to, n.id.remote_tag)).into(),
        CallId::new(n.id.call_id.clone()).into(),
        CSeq::new(format!("{} NOTIFY", n.cseq)).into(),
        Contact::new(format!("<sip:lamplighter@{local}>")).into(),
        Header::Other("Event".into(), "message-summary".into()),
        Header::Other("Subscription-State".into(), n.subscription_state.clone()),
    ];
    if !body.is_empty() {
        headers.push(ContentType::new("application/simple-message-summary").into());
    }
    headers.push(ContentLength::new(body.len().to_string()).into());
    let uri = Uri::try_from(n.request_uri.as_str()).unwrap_or_default();
    Request { method: Method::Notify, uri, headers: headers.into(), version: Version::V2, body }
}
