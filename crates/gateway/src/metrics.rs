//! What an operator watches, in the Prometheus text format (through
//! `prometheus-client`, the Prometheus project's own crate), served on
//! `/metrics` with `/healthz` beside it ([`serve`]).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// A send's labels: how it went out and what came back.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SendLabels {
    /// `trunk`, `phone`, `publish` or `subscribe`.
    pub delivery: String,
    /// The SIP status code, or `timeout` / `transport`.
    pub code: String,
}

/// A gateway's label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GatewayLabels {
    pub gateway: String,
}

/// A streaming group's label: the mailbox server's backend cookie.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub group: String,
}

/// Every figure the gateway exports.
pub struct Metrics {
    registry: Registry,
    pub mailboxes_watched: Gauge,
    pub mailboxes_live: Gauge,
    pub mailboxes_reconnecting: Gauge,
    /// Lamps acknowledged (2xx).
    pub sent: Family<SendLabels, Counter>,
    /// Sends refused or unanswered.
    pub failed: Family<SendLabels, Counter>,
    /// Mailboxes whose Exchange requests were throttled (ErrorServerBusy) and backed off.
    pub throttled: Counter,
    pub queue_depth: Gauge,
    /// Seconds the oldest wrong lamp has been wrong.
    pub oldest_wrong_seconds: Gauge<f64, AtomicU64>,
    pub lines: Gauge,
    pub lines_correct: Gauge,
    pub gateway_up: Family<GatewayLabels, Gauge>,
    pub directory_entries: Gauge,
    /// Readings of the directory that failed (the last good one is kept).
    pub directory_errors: Counter,
    /// 1 while the directory in use is older than the last attempt to read it.
    pub directory_stale: Gauge,
    pub subscriptions: Gauge,
    /// Shared GetStreamingEvents connections, by mailbox server.
    pub streaming_connections: Family<GroupLabels, Gauge>,
    /// Subscriptions on them, by mailbox server.
    pub streaming_subscriptions: Family<GroupLabels, Gauge>,
    /// Microsoft Graph: mailboxes with a live change notification subscription.
    pub graph_subscriptions_live: Gauge,
    /// Notifications that counted (a known subscription, its clientState).
    pub graph_notifications: Counter,
    /// Notifications refused (an unknown subscription, another clientState).
    pub graph_notifications_refused: Counter,
    /// Lifecycle events: missed, subscriptionRemoved, reauthorizationRequired.
    pub graph_lifecycle: Family<LifecycleLabels, Counter>,
    /// Subscription requests that failed (creates and renewals).
    pub graph_subscription_failures: Counter,
}

/// A lifecycle event's label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LifecycleLabels {
    pub event: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All figures at zero, registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("lamplighter_gateway");
        let m = Metrics {
            registry: Registry::default(),
            mailboxes_watched: Gauge::default(),
            mailboxes_live: Gauge::default(),
            mailboxes_reconnecting: Gauge::default(),
            sent: Family::default(),
            failed: Family::default(),
            throttled: Counter::default(),
            queue_depth: Gauge::default(),
            oldest_wrong_seconds: Gauge::default(),
            lines: Gauge::default(),
            lines_correct: Gauge::default(),
            gateway_up: Family::default(),
            directory_entries: Gauge::default(),
            directory_errors: Counter::default(),
            directory_stale: Gauge::default(),
            subscriptions: Gauge::default(),
            streaming_connections: Family::default(),
            streaming_subscriptions: Family::default(),
            graph_subscriptions_live: Gauge::default(),
            graph_notifications: Counter::default(),
            graph_notifications_refused: Counter::default(),
            graph_lifecycle: Family::default(),
            graph_subscription_failures: Counter::default(),
        };
        registry.register("mailboxes_watched", "Mailboxes in the directory with MWI on", m.mailboxes_watched.clone());
        registry.register("mailboxes_live", "Mailboxes loaded and following changes", m.mailboxes_live.clone());
        registry.register(
            "mailboxes_reconnecting",
            "Mailboxes whose connection to Exchange is being retried",
            m.mailboxes_reconnecting.clone(),
        );
        registry.register("lamp_sent", "Lamp states acknowledged, by delivery and status", m.sent.clone());
        registry.register("lamp_failed", "Lamp sends refused or unanswered, by delivery and status", m.failed.clone());
        registry.register("exchange_throttled", "Back-offs Exchange asked for (ErrorServerBusy)", m.throttled.clone());
        registry.register("lamp_queue_depth", "Lamps waiting to be sent through gateways", m.queue_depth.clone());
        registry.register(
            "lamp_oldest_wrong_seconds",
            "How long the oldest wrong lamp has been wrong",
            m.oldest_wrong_seconds.clone(),
        );
        registry.register("lines", "Lines with a lamp", m.lines.clone());
        registry.register("lines_correct", "Lines whose lamp shows the mailbox", m.lines_correct.clone());
        registry.register(
            "sip_gateway_up",
            "1 while a SIP gateway is in use, 0 while marked down",
            m.gateway_up.clone(),
        );
        registry.register("directory_entries", "Entries of the directory in use", m.directory_entries.clone());
        registry.register("directory_errors", "Readings of the directory that failed", m.directory_errors.clone());
        registry.register(
            "directory_stale",
            "1 while the last reading failed and the one before is in use",
            m.directory_stale.clone(),
        );
        registry.register("subscriptions", "Phones subscribed to the gateway", m.subscriptions.clone());
        registry.register(
            "streaming_connections",
            "Shared GetStreamingEvents connections, by mailbox server (backend cookie)",
            m.streaming_connections.clone(),
        );
        registry.register(
            "streaming_subscriptions",
            "Mailbox subscriptions on the shared connections, by mailbox server",
            m.streaming_subscriptions.clone(),
        );
        registry.register(
            "graph_subscriptions_live",
            "Mailboxes with a live Microsoft Graph change notification subscription",
            m.graph_subscriptions_live.clone(),
        );
        registry.register(
            "graph_notifications",
            "Graph notifications that counted (known subscription and clientState)",
            m.graph_notifications.clone(),
        );
        registry.register(
            "graph_notifications_refused",
            "Graph notifications refused (unknown subscription or clientState)",
            m.graph_notifications_refused.clone(),
        );
        registry.register("graph_lifecycle", "Graph lifecycle events, by event", m.graph_lifecycle.clone());
        registry.register(
            "graph_subscription_failures",
            "Graph subscription creates and renewals that failed",
            m.graph_subscription_failures.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // writing into a String cannot fail
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts a send's outcome.
    pub fn count(&self, delivery: &str, code: Option<u16>, ok: bool, other: &str) {
        let labels = SendLabels { delivery: delivery.into(), code: code.map_or(other.to_string(), |c| c.to_string()) };
        if ok {
            self.sent.get_or_create(&labels).inc()
        } else {
            self.failed.get_or_create(&labels).inc()
        };
    }
}

/// Whether the service is well: what `/healthz` says.
pub trait Health: Send + Sync {
    /// `Ok(detail)` when healthy, `Err(detail)` when not.
    fn health(&self) -> Result<String, String>;
}

/// Connections to `/metrics` served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 16;

/// Serves `/metrics` and `/healthz` on `addr` until the runtime ends.
/// Nothing is read but the request head (within 10 s); the figures hold no
/// mailbox's content, only counts, gateway names and server cookies.
/// Returns the bound address (port 0 picks one).
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>, health: Arc<dyn Health>) -> std::io::Result<SocketAddr> {
    use http_body_util::Full;
    use hyper::{Response, StatusCode};
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    // a scraper needs one connection; a stranger opening hundreds gets them closed unread
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let Ok(slot) = open.clone().try_acquire_owned() else {
                drop(tcp);
                continue;
            };
            let metrics = metrics.clone();
            let health = health.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let reply = |status: StatusCode, kind: &'static str, body: String| {
                        let mut r = Response::new(Full::new(bytes::Bytes::from(body)));
                        *r.status_mut() = status;
                        r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static(kind));
                        r
                    };
                    let r = match (req.method().as_str(), req.uri().path()) {
                        ("GET", "/metrics") => reply(
                            StatusCode::OK,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            metrics.render(),
                        ),
                        ("GET", "/healthz") => match health.health() {
                            Ok(d) => reply(StatusCode::OK, "text/plain; charset=utf-8", format!("ok: {d}\n")),
                            Err(d) => reply(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "text/plain; charset=utf-8",
                                format!("unwell: {d}\n"),
                            ),
                        },
                        ("GET", _) => reply(StatusCode::NOT_FOUND, "text/plain", "try /metrics or /healthz\n".into()),
                        _ => reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n".into()),
                    };
                    async move { Ok::<_, std::convert::Infallible>(r) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(10))
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Well;
    impl Health for Well {
        fn health(&self) -> Result<String, String> {
            Ok("fine".into())
        }
    }

    /// Connections held open by a stranger use up at most MAX_CONNECTIONS;
    /// more are closed unread, and a scraper is served once one is freed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_connections_beyond_the_bound_are_closed_and_a_scraper_is_served_after() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let addr = serve(SocketAddr::from(([127, 0, 0, 1], 0)), Arc::new(Metrics::new()), Arc::new(Well))
            .await
            .expect("serve");
        let mut held = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            held.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
        }
        // the bound is reached once the server has taken them all: the next is closed without an answer
        let mut extra = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let _ = extra.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut buf = Vec::new();
        let n = tokio::time::timeout(std::time::Duration::from_secs(30), extra.read_to_end(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "closed unread: {:?}", String::from_utf8_lossy(&buf));
        held.pop();
        // a freed slot serves the next scraper (retried: the server notices the close when it polls it)
        let end = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
            let mut body = Vec::new();
            let _ = c.read_to_end(&mut body).await;
            if String::from_utf8_lossy(&body).contains("ok: fine") {
                break;
            }
            assert!(tokio::time::Instant::now() < end, "never served");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    #[test]
    fn the_exposition_names_every_figure_with_its_labels() {
        let m = Metrics::new();
        m.count("trunk", Some(200), true, "");
        m.count("trunk", Some(480), false, "");
        m.count("publish", None, false, "timeout");
        m.mailboxes_watched.set(3);
        let text = m.render();
        for want in [
            "lamplighter_gateway_lamp_sent_total{delivery=\"trunk\",code=\"200\"} 1",
            "lamplighter_gateway_lamp_failed_total{delivery=\"trunk\",code=\"480\"} 1",
            "lamplighter_gateway_lamp_failed_total{delivery=\"publish\",code=\"timeout\"} 1",
            "lamplighter_gateway_mailboxes_watched 3",
            "lamplighter_gateway_directory_stale 0",
            "# EOF",
        ] {
            assert!(text.contains(want), "{want} missing from:\n{text}");
        }
    }
}
