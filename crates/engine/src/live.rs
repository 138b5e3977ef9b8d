//! The engine running: a `lamplighter-runner` on the engine's own tokio
//! runtime, whose state events become the snapshot's counts and connection.
//! With no mailbox configured it runs the demo mailbox (and its story), and
//! the snapshot says so. Saving settings restarts it with the new ones.
//! New items go through the [`crate::alerts`] policy to the alert
//! listeners (the tray's notifications); the running [`Runner`] is kept in
//! a `Session` so front-end actions reach it.

use crate::alerts::{AlertPolicy, NewItem};
use crate::{Engine, problem};
use lamplighter_mailbox_state::Kind;
use lamplighter_runner::demo::Demo;
use lamplighter_runner::{RunEvent, Runner};
use std::sync::Arc;
use std::time::Duration;

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

/// The live engine; dropping it stops it.
pub struct Live {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Live {
    pub(crate) fn start(engine: Engine) -> Option<Live> {
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
        let (tx, mut restarts) = tokio::sync::watch::channel(0u64);
        engine.set_restart(tx);
        runtime.spawn(async move {
            loop {
                tokio::select! {
                    _ = run_once(&engine) => {}
                    _ = restarts.changed() => log::info!("settings changed: restarting the mailbox"),
                }
            }
        });
        Some(Live { runtime: Some(runtime) })
    }
}

/// Runs the configured mailbox (or the demo) until it ends.
async fn run_once(engine: &Engine) {
    let settings = engine.settings();
    let mut demo: Option<Demo> = None;
    let config = if settings.mailbox.is_some() {
        let secrets = match engine.run_secrets() {
            Ok(s) => s,
            Err(e) => return park(engine, "mailbox_setup", e.to_string()).await,
        };
        match lamplighter_runner::from_settings(&settings, &secrets, engine.paths()) {
            Ok(c) => c,
            Err(e) => return park(engine, "mailbox_setup", e.to_string()).await,
        }
    } else {
        match Demo::start(Arc::new(|_, _| {})).await {
            Ok((d, c)) => {
                demo = Some(d);
                c
            }
            Err(e) => return park(engine, "demo_unavailable", e.to_string()).await,
        }
    };
    let label = demo.as_ref().map(|_| lamplighter_runner::demo::LABEL.to_string());
    engine.set_live(|v| {
        *v.label = label.clone();
        *v.connection = Some("connecting".into());
        *v.problem = None;
    });
    let audio_dir =
        config.audio_cache.as_ref().map(|c| c.dir.clone()).unwrap_or_else(|| engine.paths().cache_dir.join("audio"));
    let runner = match Runner::start(config).await {
        Ok(r) => Arc::new(r),
        Err(e) => return park(engine, "mailbox_unreachable", e.to_string()).await,
    };
    let _session = SessionGuard::set(
        engine,
        Session { handle: tokio::runtime::Handle::current(), runner: runner.clone(), audio_dir },
    );
    let mut events = runner.events();
    let mut switches = engine.switches();
    let mut policy = AlertPolicy::new(engine.lang(), *switches.borrow_and_update());
    // missed calls known before the one being announced ("3 attempts" counts them)
    let mut earlier_calls = std::collections::HashSet::new();
    let mut calls_known = false;
    let mut tick = tokio::time::interval(Duration::from_secs(6));
    tick.tick().await;
    loop {
        while let Some(alert) = policy.poll(std::time::Instant::now()) {
            engine.raise(&alert);
        }
        let deadline = policy.deadline().map(tokio::time::Instant::from_std);
        tokio::select! {
            _ = sleep_until(deadline) => {}
            Ok(()) = switches.changed() => policy.set_switches(*switches.borrow_and_update()),
            e = events.recv() => match e {
                Ok(e) => {
                    if let Some(d) = &demo {
                        d.observe(&e);
                    }
                    if let RunEvent::Mwi { phone, result, .. } = &e {
                        let failed = result != "ok" && !result.starts_with("SUBSCRIBE answered 2");
                        let message = format!("The phone {phone} does not take the lamp state: {result}");
                        engine.set_live(|v| {
                            let ours = v.problem.as_ref().is_some_and(|p| p.code == "phone_unreachable");
                            if failed && (v.problem.is_none() || ours) {
                                *v.problem = Some(problem("phone_unreachable", message));
                            } else if !failed && ours {
                                *v.problem = None;
                            }
                        });
                    }
                    if let RunEvent::Notify { kind, item_id, preview, duration_secs, .. } = &e
                        && let Some(item) =
                            new_item(engine, &mut earlier_calls, *kind, item_id, preview.as_deref(), *duration_secs)
                    {
                        policy.new_item(std::time::Instant::now(), item);
                    }
                    if let RunEvent::State { voicemail, missed_calls, secondary_calls, connection } = e {
                        if connection == "connected" && !calls_known {
                            calls_known = true;
                            // what was there before we went live counts as earlier attempts
                            earlier_calls.extend(engine.lists().missed_calls.into_iter().filter_map(|c| c.item_id));
                        }
                        policy.connection(
                            std::time::Instant::now(),
                            connection == "connected",
                            voicemail.new,
                            missed_calls,
                        );
                        engine.set_live(|v| {
                            v.counts.voicemails = voicemail.new;
                            v.counts.missed_calls = missed_calls;
                            *v.secondary_calls = secondary_calls;
                            *v.revision += 1;
                            if connection.starts_with("sign-in refused") {
                                *v.problem = Some(problem("mailbox_sign_in", connection.clone()));
                            } else if v.problem.as_ref().is_some_and(|p| p.code == "mailbox_sign_in") {
                                *v.problem = None;
                            }
                            *v.connection = Some(connection);
                        });
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            },
            _ = tick.tick(), if demo.is_some() => {
                if let Some(d) = demo.as_mut()
                    && let Some(what) = d.step(&runner).await
                {
                    log::info!("demo: {what}");
                }
            }
        }
    }
    drop(_session);
    if let Ok(runner) = Arc::try_unwrap(runner) {
        runner.stop().await;
    }
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

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The texts of a new item's notification, from the window's rows (so both say the same).
fn new_item(
    engine: &Engine,
    earlier_calls: &mut std::collections::HashSet<String>,
    kind: Kind,
    item_id: &str,
    preview: Option<&str>,
    duration_secs: Option<u32>,
) -> Option<NewItem> {
    let lang = engine.lang();
    let lists = engine.lists();
    match kind {
        Kind::Voicemail => {
            let row = lists.voicemails.iter().find(|v| v.item_id == item_id)?;
            let from = match &row.number {
                Some(n) => format!("{} ({n})", row.caller),
                None => row.caller.clone(),
            };
            Some(NewItem {
                kind,
                item_id: item_id.into(),
                call_back: None,
                text: lamplighter_view::voicemail_notification(lang, &from, duration_secs, preview),
            })
        }
        Kind::MissedCall => {
            let row = lists.missed_calls.iter().find(|c| c.item_id.as_deref() == Some(item_id))?;
            // the caller's unseen calls up to this one: "3 attempts" (later ones in the
            // same batch are not counted yet)
            let attempts = 1 + lists
                .missed_calls
                .iter()
                .filter(|c| c.unseen && c.caller == row.caller && c.number == row.number)
                .filter(|c| c.item_id.as_ref().is_some_and(|id| id != item_id && earlier_calls.contains(id)))
                .count();
            earlier_calls.insert(item_id.to_string());
            Some(NewItem {
                kind,
                item_id: item_id.into(),
                call_back: row.call_back.clone(),
                text: lamplighter_view::missed_call_notification(lang, &row.caller, attempts),
            })
        }
    }
}

/// A start that cannot work: say why, and wait for new settings.
async fn park(engine: &Engine, code: &str, message: String) {
    log::warn!("{code}: {message}");
    engine.set_live(|v| {
        *v.problem = Some(problem(code, message));
        *v.connection = None;
    });
    std::future::pending::<()>().await;
}
