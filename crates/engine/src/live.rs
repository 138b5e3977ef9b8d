//! The engine running: a `lamplighter-runner` on the engine's own tokio
//! runtime, whose typed events become the snapshot's counts, connection and
//! problems, go through the [`crate::alerts`] policy to the alert listeners
//! (the tray's notifications), and are re-emitted as [`LiveEvent`]s for
//! front ends that print them (the agent). With no mailbox configured it runs
//! the demo mailbox and tells its story ([`lamplighter_demo`]), and the
//! snapshot says so. Saving settings restarts it with the new ones. The
//! running [`Runner`] is kept in a `Session` so front-end actions reach it.

use crate::alerts::{AlertPolicy, NewItem};
use crate::{Engine, Problem, ProblemCode, problem};
use lamplighter_demo::{Demo, Narration};
use lamplighter_inbox::{Kind, Notification};
use lamplighter_mailbox::Connection;
use lamplighter_runner::{RunEvent, Runner};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How the live engine runs.
#[derive(Debug, Clone, Copy)]
pub struct LiveOptions {
    /// Time between two steps of the demo's story.
    pub demo_every: Duration,
    /// Which face of the simulator the demo reads (EWS or Microsoft Graph).
    pub demo_backend: lamplighter_demo::Backend,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions { demo_every: Duration::from_secs(6), demo_backend: lamplighter_demo::Backend::Ews }
    }
}

/// What the live engine reports, in order, for front ends that print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveEvent {
    /// A run started.
    Started {
        /// Where the mailbox is (the EWS URL).
        mailbox: String,
        /// The demo phone's URI, when this is the demo.
        demo_phone: Option<String>,
    },
    /// The mailbox or a phone reported.
    Run(RunEvent),
    /// The demo's story went on.
    Demo(Narration),
    /// The run cannot start; it waits for new settings.
    Parked(Problem),
}

/// The running mailbox, for actions from front ends.
#[derive(Clone)]
pub(crate) struct Session {
    /// The live runtime.
    pub handle: tokio::runtime::Handle,
    /// The run.
    pub runner: Arc<Runner>,
    /// Where audio is cached.
    pub audio_dir: std::path::PathBuf,
}

/// The live engine. [`Live::stop`] ends the run cleanly (the server-side
/// subscription is ended first); dropping it only cuts it off.
pub struct Live {
    runtime: Option<tokio::runtime::Runtime>,
    stop: watch::Sender<bool>,
    done: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // a runtime cannot block inside another one's worker
            if tokio::runtime::Handle::try_current().is_ok() {
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(Duration::from_secs(2));
            }
        }
    }
}

impl Live {
    pub(crate) fn start(engine: Engine, options: LiveOptions) -> Option<Live> {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lamplighter-live")
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                log::error!("cannot start the live engine: {e}");
                return None;
            }
        };
        let (tx, mut restarts) = watch::channel(0u64);
        engine.set_restart(tx);
        let (stop, mut stopped) = watch::channel(false);
        let (done_tx, done) = tokio::sync::oneshot::channel();
        runtime.spawn(async move {
            // a stop or a restart reaches the run itself, so it can end its
            // subscription on the server before the next one starts
            while !*stopped.borrow_and_update() {
                let (end, ended) = watch::channel(false);
                let run = run_once(&engine, options, ended);
                tokio::pin!(run);
                loop {
                    tokio::select! {
                        _ = &mut run => break,
                        Ok(()) = restarts.changed() => {
                            log::info!("settings changed: restarting the mailbox");
                            let _ = end.send(true);
                        }
                        Ok(()) = stopped.changed() => {
                            let _ = end.send(true);
                        }
                    }
                }
            }
            let _ = done_tx.send(());
        });
        Some(Live { runtime: Some(runtime), stop, done: Some(done) })
    }

    /// Stops the run: the subscription on the server is ended, then the
    /// runtime goes. Callable from any runtime.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(done) = self.done.take() {
            // the run ends its subscription with a bounded request; this bounds the rest
            let _ = tokio::time::timeout(Duration::from_secs(15), done).await;
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs the configured mailbox (or the demo) until it ends or `stop` says so.
async fn run_once(engine: &Engine, options: LiveOptions, mut stop: watch::Receiver<bool>) {
    let settings = engine.settings();
    let mut demo: Option<Demo> = None;
    let config = if settings.mailbox.is_some() {
        match engine.run_config() {
            Ok(c) => c,
            Err(e) => return park(engine, ProblemCode::MailboxSetup, e.to_string(), stop).await,
        }
    } else {
        match Demo::start_on(options.demo_backend).await {
            Ok((d, c)) => {
                demo = Some(d);
                c
            }
            Err(e) => return park(engine, ProblemCode::DemoUnavailable, e.to_string(), stop).await,
        }
    };
    let is_demo = demo.is_some();
    engine.set_live(|v| {
        *v.demo = is_demo;
        *v.connection = Some(Connection::Connecting);
        *v.problem = None;
    });
    let audio_dir =
        config.audio_cache.as_ref().map(|c| c.dir.clone()).unwrap_or_else(|| engine.paths().cache_dir.join("audio"));
    let runner = match Runner::start(config).await {
        Ok(r) => Arc::new(r),
        Err(e) => return park(engine, ProblemCode::MailboxUnreachable, e.to_string(), stop).await,
    };
    engine.emit(crate::LiveEvent::Started {
        mailbox: runner.mailbox_location(),
        demo_phone: demo.as_ref().map(|d| format!("sip:demo@{}", d.phone)),
    });
    let session = SessionGuard::set(
        engine,
        Session { handle: tokio::runtime::Handle::current(), runner: runner.clone(), audio_dir },
    );
    let mut events = runner.events();
    let mut switches = engine.switches();
    let mut policy = AlertPolicy::new(engine.lang(), *switches.borrow_and_update());
    // missed calls known before the one being announced ("3 attempts" counts them)
    let mut earlier_calls = std::collections::HashSet::new();
    let mut calls_known = false;
    let mut story = Box::pin(async {
        match demo.as_mut() {
            Some(d) => d.tell(&runner, options.demo_every, |n| engine.emit(crate::LiveEvent::Demo(n))).await,
            None => std::future::pending().await,
        }
    });
    let mut story_over = false;
    loop {
        while let Some(alert) = policy.poll(std::time::Instant::now()) {
            engine.raise(&alert);
        }
        // with nothing due, wake once a day anyway: harmless, and no helper needed
        let deadline = policy
            .deadline()
            .map_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400), tokio::time::Instant::from_std);
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            Ok(()) = switches.changed() => policy.set_switches(*switches.borrow_and_update()),
            e = events.recv() => match e {
                Ok(e) => {
                    engine.emit(crate::LiveEvent::Run(e.clone()));
                    match e {
                        RunEvent::Mwi { phone, result, .. } => {
                            phone_answered(engine, result.is_delivered(), &phone, &result.to_string())
                        }
                        RunEvent::Listening { .. } => {}
                        RunEvent::Subscribe { phone, code } => {
                            phone_answered(engine, (200..300).contains(&code), &phone, &format!("SUBSCRIBE answered {code}"))
                        }
                        RunEvent::Notify(n) => {
                            if let Some(item) = new_item(engine, &mut earlier_calls, &n) {
                                policy.new_item(std::time::Instant::now(), item);
                            }
                        }
                        RunEvent::State { summary, connection } => {
                            let live = connection == Connection::Live;
                            if live && !calls_known {
                                calls_known = true;
                                // what was there before we went live counts as earlier attempts
                                earlier_calls.extend(engine.lists().missed_calls.into_iter().filter_map(|c| c.item_id));
                            }
                            policy.connection(std::time::Instant::now(), live, summary.voicemail.new, summary.missed_calls);
                            let refused = matches!(connection, Connection::SignInRefused { .. })
                                .then(|| lamplighter_view::connection(engine.lang(), &connection));
                            engine.set_live(|v| {
                                *v.summary = summary;
                                *v.revision += 1;
                                match refused {
                                    Some(message) => *v.problem = Some(problem(ProblemCode::MailboxSignIn, message)),
                                    None if v.problem.as_ref().is_some_and(|p| p.code == ProblemCode::MailboxSignIn) => {
                                        *v.problem = None
                                    }
                                    None => {}
                                }
                                *v.connection = Some(connection);
                            });
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            _ = &mut story, if !story_over => story_over = true,
            _ = stop.changed() => break,
        }
    }
    drop(story);
    drop(session);
    if let Ok(runner) = Arc::try_unwrap(runner) {
        runner.stop().await;
    }
}

/// A phone's answer: a refusal becomes the phone problem (unless a mailbox
/// problem is shown), an acceptance clears it.
fn phone_answered(engine: &Engine, ok: bool, phone: &str, result: &str) {
    let message = format!("The phone {phone} does not take the lamp state: {result}");
    engine.set_live(|v| {
        let ours = v.problem.as_ref().is_some_and(|p| p.code == ProblemCode::PhoneUnreachable);
        if !ok && (v.problem.is_none() || ours) {
            *v.problem = Some(problem(ProblemCode::PhoneUnreachable, message));
        } else if ok && ours {
            *v.problem = None;
        }
    });
}

/// Clears the session when the run ends (or its future is dropped on restart).
struct SessionGuard<'a>(&'a Engine);

impl<'a> SessionGuard<'a> {
    fn set(engine: &'a Engine, session: Session) -> Self {
        engine.set_session(Some(session));
        SessionGuard(engine)
    }
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        self.0.set_session(None);
    }
}

/// The texts of a new item's notification. A voicemail's come with it; a
/// missed call's call-back address and "N attempts" need the caller's other
/// calls, so they come from the window's rows (and both say the same).
fn new_item(
    engine: &Engine,
    earlier_calls: &mut std::collections::HashSet<String>,
    n: &Notification,
) -> Option<NewItem> {
    let lang = engine.lang();
    match n.kind {
        Kind::Voicemail => Some(NewItem {
            kind: n.kind,
            item_id: n.item_id.clone(),
            call_back: None,
            text: lamplighter_view::voicemail_notification(lang, &n.from, n.duration_secs, n.preview.as_deref()),
        }),
        Kind::MissedCall => {
            let lists = engine.lists();
            let row = lists.missed_calls.iter().find(|c| c.item_id.as_deref() == Some(n.item_id.as_str()))?;
            // the caller's unseen calls up to this one: "3 attempts" (later ones in the
            // same batch are not counted yet)
            let attempts = 1 + lists
                .missed_calls
                .iter()
                .filter(|c| c.unseen && c.caller == row.caller && c.number == row.number)
                .filter(|c| c.item_id.as_ref().is_some_and(|id| *id != n.item_id && earlier_calls.contains(id)))
                .count();
            earlier_calls.insert(n.item_id.clone());
            Some(NewItem {
                kind: n.kind,
                item_id: n.item_id.clone(),
                call_back: row.call_back.clone(),
                text: lamplighter_view::missed_call_notification(lang, &row.caller, attempts),
            })
        }
    }
}

/// A start that cannot work: say why, and wait for new settings (or the stop).
async fn park(engine: &Engine, code: ProblemCode, message: String, mut stop: watch::Receiver<bool>) {
    log::warn!("{code:?}: {message}");
    let p = problem(code, message);
    engine.set_live(|v| {
        *v.problem = Some(p.clone());
        *v.connection = None;
    });
    engine.emit(crate::LiveEvent::Parked(p));
    let _ = stop.wait_for(|s| *s).await;
}
