//! Serving phones that SUBSCRIBE for `message-summary` (baresip does, and
//! answers unsolicited NOTIFYs with 481): the tokio driver of
//! [`lamplighter_sip_mwi::notifier::Notifier`] on the sender's endpoint.
//!
//! Every request passes [`lamplighter_sip_mwi::guard::Guard`] first: over
//! the rate → no answer at all; REGISTER and SUBSCRIBE from a phone with
//! credentials are challenged with digest (401) and admitted only with the
//! right answer; a phone without credentials only from its configured
//! address, with a Contact on that address. Until a request is admitted every
//! answer is at most as large as the request (a challenge that would not fit
//! drops SHA-256, then goes unanswered), so a forged source gains nothing by
//! aiming us at a third party. Admitted REGISTERs get 200 (Contact and
//! Expires echoed); admitted SUBSCRIBEs are answered as the notifier decides
//! and its NOTIFYs go out in the subscription's dialog. Other requests get
//! 405 under the same size rule.

use crate::{NotifySender, Transport, transport_error, transport_param, via_protocol};
use futures_util::stream::{FuturesUnordered, StreamExt};
use lamplighter_sip_mwi::guard::{Guard, GuardConfig, GuardPhone, Inbound, PhoneAuth, Verdict};
use lamplighter_sip_mwi::notifier::{Answer, DialogNotify, Notifier, NotifierConfig, Subscribe};
use lamplighter_sip_mwi::relay::SendFailure;
use lamplighter_sip_mwi::summary::Counts;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, Request, StatusCode, Uri, Version, headers::*};
use rsipstack::transaction::transaction::Transaction;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc};

/// A phone that subscribes to us, and how it proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// Its SIP URI (the From of its SUBSCRIBEs, the To of its REGISTERs).
    pub uri: String,
    pub auth: PhoneAuth,
    /// Whether its summaries carry `(0/0)` when nothing is urgent.
    pub urgent: lamplighter_sip_mwi::summary::UrgentPart,
}

/// The listener's limits.
#[derive(Debug, Clone, Default)]
pub struct ListenerConfig {
    pub notifier: NotifierConfig,
    pub guard: GuardConfig,
}

/// Counters of the listener, for the operator and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerStats {
    /// Requests received.
    pub requests: u64,
    /// Requests left unanswered (rate, or no answer small enough).
    pub dropped: u64,
    /// 401 challenges sent.
    pub challenged: u64,
    /// 403s and 405s sent.
    pub forbidden: u64,
    /// Requests admitted as a paired phone's.
    pub admitted: u64,
    /// Bytes received in requests that were not admitted.
    pub unadmitted_in: u64,
    /// Bytes sent in answers to requests that were not admitted.
    pub unadmitted_out: u64,
    /// Subscriptions alive.
    pub subscriptions: usize,
    /// Source addresses the rate limiter tracks.
    pub sources: usize,
}

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
    counts: mpsc::UnboundedSender<(Option<usize>, Counts)>,
    events: broadcast::Sender<SubscriptionEvent>,
    stats: Arc<Mutex<ListenerStats>>,
}

impl SubscriptionHandle {
    /// The counts subscribed phones should show.
    pub fn set_counts(&self, counts: Counts) {
        let _ = self.counts.send((None, counts));
    }

    /// The counts the `phone`th subscriber (in the order given to [`serve`]) should show.
    pub fn set_counts_of(&self, phone: usize, counts: Counts) {
        let _ = self.counts.send((Some(phone), counts));
    }

    /// Events from now on.
    pub fn events(&self) -> broadcast::Receiver<SubscriptionEvent> {
        self.events.subscribe()
    }

    /// The counters now.
    pub fn stats(&self) -> ListenerStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
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

/// Why a request cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A header the method requires is absent.
    #[error("no {0} header")]
    Missing(&'static str),
    /// The From tag is absent.
    #[error("the From header has no tag")]
    NoFromTag,
    /// `Expires` is not a number of seconds that fits 32 bits.
    #[error("Expires {0:?} is not a number of seconds")]
    Expires(String),
}

/// `Expires`, strictly: absent is `None`; anything but 1 to 10 digits that fit in 32 bits is an error.
pub fn parse_expires(req: &Request) -> Result<Option<u32>, RequestError> {
    match header_value(req, "Expires") {
        None => Ok(None),
        Some(v) => {
            let t = v.trim();
            if t.is_empty() || t.len() > 10 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(RequestError::Expires(v));
            }
            t.parse::<u32>().map(Some).map_err(|_| RequestError::Expires(v))
        }
    }
}

/// A SUBSCRIBE request as the notifier needs it.
pub fn parse_subscribe(req: &Request) -> Result<Subscribe, RequestError> {
    let from = header_value(req, "From").or_else(|| header_value(req, "f")).ok_or(RequestError::Missing("From"))?;
    let (from, from_tag) = uri_and_tag(&from);
    let to = header_value(req, "To").or_else(|| header_value(req, "t")).ok_or(RequestError::Missing("To"))?;
    let (to, to_tag) = uri_and_tag(&to);
    let contact =
        header_value(req, "Contact").or_else(|| header_value(req, "m")).ok_or(RequestError::Missing("Contact"))?;
    Ok(Subscribe {
        call_id: header_value(req, "Call-ID")
            .or_else(|| header_value(req, "i"))
            .ok_or(RequestError::Missing("Call-ID"))?,
        from,
        from_tag: from_tag.ok_or(RequestError::NoFromTag)?,
        to,
        to_tag,
        contact: uri_and_tag(&contact).0,
        event: header_value(req, "Event").or_else(|| header_value(req, "o")).unwrap_or_default(),
        expires: parse_expires(req)?,
    })
}

/// Where a request came from: the top Via's `received`/`rport`, which the
/// transport sets from the packet's source, else its sent-by.
pub fn source_of(req: &Request) -> Option<SocketAddr> {
    let via = header_value(req, "Via").or_else(|| header_value(req, "v"))?;
    let via = via.split(',').next()?;
    let mut parts = via.split(';');
    let sent_by = parts.next()?.split_whitespace().nth(1)?;
    let (mut host, mut port) = if let Some(rest) = sent_by.strip_prefix('[') {
        let (h, p) = rest.split_once(']')?;
        (h.to_string(), p.strip_prefix(':').and_then(|p| p.parse::<u16>().ok()))
    } else {
        match sent_by.split_once(':') {
            Some((h, p)) => (h.to_string(), p.parse::<u16>().ok()),
            None => (sent_by.to_string(), None),
        }
    };
    for p in parts {
        match p.trim().split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("received") => host = v.trim().trim_matches(['[', ']']).to_string(),
            Some((k, v)) if k.eq_ignore_ascii_case("rport") => port = v.trim().parse().ok().or(port),
            _ => {}
        }
    }
    Some(SocketAddr::new(host.parse().ok()?, port.unwrap_or(5060)))
}

/// The connection a request came over: its transport, the peer's address
/// (the packet's source for UDP, the connection's peer for TCP/TLS) and, on
/// a stream, our end of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flow {
    transport: Transport,
    remote: SocketAddr,
    stream_local: Option<SocketAddr>,
}

fn flow_of(tx: &Transaction) -> Option<Flow> {
    let connection = tx.connection.as_ref();
    let transport = match connection.and_then(|c| c.get_addr().r#type) {
        Some(rsipstack::sip::Transport::Tcp) => Transport::Tcp,
        Some(rsipstack::sip::Transport::Tls) => Transport::Tls,
        _ => Transport::Udp,
    };
    if transport == Transport::Udp {
        return Some(Flow { transport, remote: source_of(&tx.original)?, stream_local: None });
    }
    let connection = connection?;
    Some(Flow {
        transport,
        remote: connection.get_remote_addr()?.get_socketaddr().ok()?,
        stream_local: connection.get_addr().get_socketaddr().ok(),
    })
}

/// Our Contact toward a flow.
fn contact_toward(sender: &NotifySender, flow: &Flow) -> String {
    let local = sender.local_toward(flow.transport, flow.remote, flow.stream_local);
    format!("<sip:lamplighter@{local}{}>", transport_param(flow.transport))
}

fn header_values(req: &Request, name: &str) -> Vec<String> {
    req.headers
        .iter()
        .filter_map(|h| {
            let text = h.to_string();
            let (n, v) = text.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
        .collect()
}

/// Sends the first of `candidates` (extra headers) whose response fits in
/// `limit` bytes. Returns the bytes sent, 0 for none.
async fn reply_within(tx: &mut Transaction, code: StatusCode, candidates: Vec<Vec<Header>>, limit: usize) -> usize {
    if let Ok(to) = tx.original.to_header()
        && to.tag().ok().flatten().is_none()
    {
        let tag = rsipstack::transaction::random_text(8);
        tx.original.headers.unique_push(to.clone().with_tag(tag.into()).into());
    }
    for extra in candidates {
        let mut resp = tx.endpoint_inner.make_response(&tx.original, code.clone(), None);
        // no User-Agent to a stranger: every byte counts against the request's size
        resp.headers.retain(|h| !matches!(h, Header::UserAgent(_)));
        resp.headers.extend(extra);
        let size = resp.to_string().len();
        if size <= limit {
            return if tx.respond(resp).await.is_ok() { size } else { 0 };
        }
    }
    0
}

async fn answer_register(
    tx: &mut Transaction,
    aor: &str,
    expires: Option<u32>,
    events: &broadcast::Sender<SubscriptionEvent>,
) {
    let mut extra: Vec<Header> = Vec::new();
    if let Some(contact) = header_value(&tx.original, "Contact") {
        extra.push(Contact::new(contact).into());
    }
    extra.push(Expires::new(expires.unwrap_or(3600).min(3600).to_string()).into());
    if tx.reply_with(StatusCode::OK, extra, None).await.is_ok() {
        let _ = events.send(SubscriptionEvent::Registered { aor: aor.to_string() });
    }
}

/// Whether a phone admitted by address names that address as its Contact.
fn contact_matches_source(req: &Request, source: SocketAddr) -> bool {
    let Some(contact) = header_value(req, "Contact").or_else(|| header_value(req, "m")) else { return true };
    let uri = uri_and_tag(&contact).0;
    lamplighter_sip_mwi::uri::host(&uri).and_then(|h| h.parse::<std::net::IpAddr>().ok()) == Some(source.ip())
}

/// How long an admitted REGISTER waits for its 200, as a registrar that
/// stores the binding does. baresip 1.0 (Debian 12's) loops for ever,
/// sending SUBSCRIBEs, when its registration completes within about a
/// millisecond of its start (its `mwi` module's start-up timer walks a list
/// it appends to); the pause keeps that from happening in practice. Other
/// requests are served meanwhile.
pub const REGISTER_ANSWER_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// What the serve loop still has to do for a request after [`serve_request`].
enum Then {
    /// A subscription was accepted over this flow.
    Subscribed(String, Flow),
    /// An admitted REGISTER, to be answered after [`REGISTER_ANSWER_DELAY`].
    Register { aor: String, expires: Option<u32> },
}

/// Starts serving the phones that subscribe, on `sender`'s endpoint.
pub fn serve(
    sender: Arc<NotifySender>,
    phones: Vec<Subscriber>,
    config: ListenerConfig,
) -> Result<SubscriptionHandle, crate::NotifyError> {
    let mut incoming = sender.endpoint().incoming_transactions().map_err(transport_error)?;
    let (counts_tx, mut counts_rx) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(256);
    let stats = Arc::new(Mutex::new(ListenerStats::default()));
    let handle = SubscriptionHandle { counts: counts_tx, events: events.clone(), stats: stats.clone() };
    let seed = u64::from(sender.local_addr().port()) << 16 ^ std::process::id() as u64;
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key).map_err(transport_error)?;
    tokio::spawn(async move {
        let now = || tokio::time::Instant::now().into_std();
        let uris: Vec<String> = phones.iter().map(|p| p.uri.clone()).collect();
        let mut notifier = Notifier::new(config.notifier, &uris, seed);
        for (i, p) in phones.iter().enumerate() {
            notifier.set_urgent_part(i, p.urgent);
        }
        let guard_phones = phones.into_iter().map(|p| GuardPhone { uri: p.uri, auth: p.auth }).collect();
        let mut guard = Guard::new(config.guard, guard_phones, key, now());
        let mut in_flight = FuturesUnordered::new();
        let count = |f: &dyn Fn(&mut ListenerStats)| bump(&stats, f);
        // the connection each subscription came over, by Call-ID: NOTIFYs go
        // back over it (a phone behind NAT or a firewall is reachable only so)
        let mut flows: HashMap<String, Flow> = HashMap::new();
        loop {
            while let Some(n) = notifier.poll_transmit(now()) {
                let sender = sender.clone();
                let flow = flows.get(&n.id.call_id).copied();
                if n.subscription_state.starts_with("terminated") {
                    flows.remove(&n.id.call_id);
                }
                in_flight.push(async move {
                    let result = notify_in_dialog(&sender, &n, flow).await;
                    (n, result)
                });
            }
            let deadline = notifier.poll_timeout(now()).map(tokio::time::Instant::from_std);
            tokio::select! {
                tx = incoming.recv() => {
                    let Some(mut tx) = tx else { break };
                    match serve_request(&mut tx, &mut guard, &mut notifier, &sender, &events, &stats).await {
                        Some(Then::Subscribed(call_id, flow)) => {
                            flows.insert(call_id, flow);
                        }
                        Some(Then::Register { aor, expires }) => {
                            let events = events.clone();
                            tokio::spawn(async move {
                                tokio::time::sleep(REGISTER_ANSWER_DELAY).await;
                                answer_register(&mut tx, &aor, expires, &events).await;
                            });
                        }
                        None => {}
                    }
                    flows.retain(|call_id, _| notifier.has_dialog(call_id));
                    let (subs, sources) = (notifier.active(), guard.stats().sources);
                    count(&|s| {
                        s.subscriptions = subs;
                        s.sources = sources;
                    });
                }
                c = counts_rx.recv() => match c {
                    Some((None, c)) => notifier.set_counts(c),
                    Some((Some(phone), c)) => notifier.set_counts_of(phone, c),
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
                    let subs = notifier.active();
                    count(&|s| s.subscriptions = subs);
                    let _ = events.send(SubscriptionEvent::Notified { to: n.to.clone(), state: n.subscription_state.clone(), code });
                }
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {}
            }
        }
    });
    Ok(handle)
}

/// One request from the network: rate, guard, then the answer.
async fn serve_request(
    tx: &mut Transaction,
    guard: &mut Guard,
    notifier: &mut Notifier,
    sender: &NotifySender,
    events: &broadcast::Sender<SubscriptionEvent>,
    stats: &Mutex<ListenerStats>,
) -> Option<Then> {
    let count = |f: &dyn Fn(&mut ListenerStats)| bump(stats, f);
    let now = tokio::time::Instant::now().into_std();
    let size = tx.original.to_string().len();
    count(&|s| s.requests += 1);
    if tx.original.method == Method::Ack {
        return None;
    }
    let Some(flow) = flow_of(tx) else {
        count(&|s| s.dropped += 1);
        return None;
    };
    let source = flow.remote;
    if !guard.admit_rate(now, source.ip()) {
        count(&|s| {
            s.dropped += 1;
            s.unadmitted_in += size as u64;
        });
        return None;
    }
    let is_dialog_request = matches!(tx.original.method, Method::Register | Method::Subscribe);
    let verdict = if is_dialog_request {
        let claimed = if tx.original.method == Method::Register { "To" } else { "From" };
        let claimed = header_value(&tx.original, claimed).map(|v| uri_and_tag(&v).0).unwrap_or_default();
        let authorization = header_values(&tx.original, "Authorization");
        let method = tx.original.method.to_string();
        let request_uri = tx.original.uri.to_string();
        let inbound = Inbound {
            method: &method,
            source,
            claimed: &claimed,
            request_uri: &request_uri,
            authorization: &authorization,
        };
        match guard.check(now, &inbound) {
            Verdict::Admit { phone } => match &guard.phones()[phone].auth {
                PhoneAuth::Address(_) if !contact_matches_source(&tx.original, source) => Verdict::Forbidden,
                _ => Verdict::Admit { phone },
            },
            other => other,
        }
    } else {
        Verdict::Forbidden
    };
    let from = header_value(&tx.original, "From").map(|v| uri_and_tag(&v).0).unwrap_or_default();
    let sent = match verdict {
        Verdict::Admit { .. } => {
            count(&|s| s.admitted += 1);
            return admitted(tx, notifier, sender, &flow, events).await.map(|then| match then {
                Then::Subscribed(call_id, _) => Then::Subscribed(call_id, flow),
                other => other,
            });
        }
        Verdict::Drop => 0,
        Verdict::Forbidden => {
            let code = if is_dialog_request { StatusCode::Forbidden } else { StatusCode::MethodNotAllowed };
            let n = reply_within(tx, code.clone(), vec![vec![]], size).await;
            if n > 0 {
                count(&|s| s.forbidden += 1);
                let _ = events.send(SubscriptionEvent::Answered { from, code: code.code() });
            }
            n
        }
        Verdict::Challenge { www_authenticate } => {
            let all: Vec<Header> = www_authenticate.iter().map(|v| WwwAuthenticate::new(v.clone()).into()).collect();
            let weakest: Vec<Header> = all.last().cloned().into_iter().collect();
            let n = reply_within(tx, StatusCode::Unauthorized, vec![all, weakest], size).await;
            if n > 0 {
                count(&|s| s.challenged += 1);
                let _ = events.send(SubscriptionEvent::Answered { from, code: 401 });
            }
            n
        }
    };
    count(&|s| {
        s.unadmitted_in += size as u64;
        s.unadmitted_out += sent as u64;
        if sent == 0 {
            s.dropped += 1;
        }
    });
    None
}

fn bump(stats: &Mutex<ListenerStats>, f: &dyn Fn(&mut ListenerStats)) {
    f(&mut stats.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Answers a request the guard admitted as a paired phone's; says what is
/// left to do (a subscription's flow to keep, a REGISTER to answer).
async fn admitted(
    tx: &mut Transaction,
    notifier: &mut Notifier,
    sender: &NotifySender,
    flow: &Flow,
    events: &broadcast::Sender<SubscriptionEvent>,
) -> Option<Then> {
    let now = tokio::time::Instant::now().into_std();
    if tx.original.method == Method::Register {
        let aor = header_value(&tx.original, "To").map(|v| uri_and_tag(&v).0).unwrap_or_default();
        match parse_expires(&tx.original) {
            Ok(expires) => return Some(Then::Register { aor, expires }),
            Err(_) => {
                let _ = tx.reply(StatusCode::BadRequest).await;
            }
        }
        return None;
    }
    let sub = match parse_subscribe(&tx.original) {
        Ok(sub) => sub,
        Err(e) => {
            let warning = Header::Other("Warning".into(), format!("399 lamplighter \"{e}\""));
            let _ = tx.reply_with(StatusCode::BadRequest, vec![warning], None).await;
            return None;
        }
    };
    let answer = notifier.handle_subscribe(now, &sub);
    let code = answer.code();
    let result = match &answer {
        Answer::Accept { to_tag, expires } => {
            tx.original.headers.unique_push(To::new(format!("<{}>;tag={to_tag}", sub.to)).into());
            let extra: Vec<Header> =
                vec![Expires::new(expires.to_string()).into(), Contact::new(contact_toward(sender, flow)).into()];
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
    matches!(answer, Answer::Accept { .. }).then_some(Then::Subscribed(sub.call_id, *flow))
}

/// Sends a subscription's NOTIFY back over the connection it came on; when
/// that stream is gone, to its Contact (over the Contact's transport).
async fn notify_in_dialog(
    sender: &NotifySender,
    n: &DialogNotify,
    flow: Option<Flow>,
) -> Result<(u16, String, rsipstack::sip::Response), crate::NotifyError> {
    let Some(flow) = flow else {
        let contact = Uri::try_from(n.request_uri.as_str()).unwrap_or_default();
        let addr = rsipstack::transport::SipAddr::try_from(&contact).ok();
        let transport = match addr.as_ref().and_then(|a| a.r#type) {
            Some(rsipstack::sip::Transport::Tcp) => Transport::Tcp,
            Some(rsipstack::sip::Transport::Tls) => Transport::Tls,
            _ => Transport::Udp,
        };
        let remote = addr.and_then(|a| a.get_socketaddr().ok()).unwrap_or(sender.local_addr());
        let fallback = Flow { transport, remote, stream_local: None };
        return sender.transact(dialog_request(sender, n, &fallback)).await;
    };
    if flow.transport == Transport::Udp {
        return sender.transact(dialog_request(sender, n, &flow)).await;
    }
    let kind = match flow.transport {
        Transport::Tls => rsipstack::sip::Transport::Tls,
        _ => rsipstack::sip::Transport::Tcp,
    };
    let over = rsipstack::transport::SipAddr { r#type: Some(kind), addr: flow.remote.into() };
    match sender.transact_to(dialog_request(sender, n, &flow), Some(over)).await {
        Err(crate::NotifyError::Transport(_)) => Box::pin(notify_in_dialog(sender, n, None)).await,
        other => other,
    }
}

/// The NOTIFY in a subscription's dialog (RFC 6665 §4.4.1: To/From are the
/// dialog's URIs with their tags, the Request-URI is the subscriber's Contact).
fn dialog_request(sender: &NotifySender, n: &DialogNotify, flow: &Flow) -> Request {
    let local = sender.local_toward(flow.transport, flow.remote, flow.stream_local);
    let branch = format!("z9hG4bK{}", rsipstack::transaction::random_text(16));
    let body = n.summary.as_ref().map(|s| s.to_string().into_bytes()).unwrap_or_default();
    let mut headers: Vec<Header> = vec![
        Via::new(format!("SIP/2.0/{} {local};branch={branch};rport", via_protocol(flow.transport))).into(),
        MaxForwards::new("70").into(),
        From::new(format!("<{}>;tag={}", n.from, n.id.local_tag)).into(),
        To::new(format!("<{}>;tag={}", n.to, n.id.remote_tag)).into(),
        CallId::new(n.id.call_id.clone()).into(),
        CSeq::new(format!("{} NOTIFY", n.cseq)).into(),
        Contact::new(contact_toward(sender, flow)).into(),
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
