//! The engine running: a `lamplighter-runner` on the engine's own tokio
//! runtime, whose state events become the snapshot's counts and connection.
//! With no mailbox configured it runs the demo mailbox (and its story), and
//! the snapshot says so. Saving settings restarts it with the new ones.

use crate::{Engine, problem};
use lamplighter_runner::demo::Demo;
use lamplighter_runner::{RunEvent, Runner};
use std::sync::Arc;
use std::time::Duration;

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
    let runner = match Runner::start(config).await {
        Ok(r) => r,
        Err(e) => return park(engine, "mailbox_unreachable", e.to_string()).await,
    };
    let mut events = runner.events();
    let mut tick = tokio::time::interval(Duration::from_secs(6));
    tick.tick().await;
    loop {
        tokio::select! {
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
                    if let RunEvent::State { voicemail, missed_calls, connection, .. } = e {
                        engine.set_live(|v| {
                            v.counts.voicemails = voicemail.new;
                            v.counts.missed_calls = missed_calls;
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
    runner.stop().await;
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
