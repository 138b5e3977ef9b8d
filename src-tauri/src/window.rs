//! The one window: built on the page asked for, fed by the tray's pushes
//! (snapshot → the page's `snapshot` event, focus → `focus-item`, show →
//! to the front on a page, close → the process ends), and every call of the
//! page forwarded to the tray. Closing it ends the process.

use lamplighter_desktop_link::{Call, Client, Page, Push};
use tauri::ipc::{Invoke, InvokeBody};
use tauri::{AppHandle, Emitter, Manager, Runtime, WebviewUrl, WebviewWindowBuilder};
use tokio::sync::mpsc::Receiver;

const LABEL: &str = "main";

/// Answers one `invoke` of the page by a call to the tray.
fn forward<R: Runtime>(client: &Client, invoke: Invoke<R>) -> bool {
    let command = invoke.message.command().to_string();
    let args = match invoke.message.payload() {
        InvokeBody::Json(v) => v.clone(),
        InvokeBody::Raw(_) => serde_json::Value::Null,
    };
    let call = match Call::from_invoke(&command, args) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("the page called {command}: {e}");
            invoke.resolver.reject(serde_json::json!({ "code": "bad_call", "message": e.to_string(), "fields": [] }));
            return true;
        }
    };
    let client = client.clone();
    let resolver = invoke.resolver;
    tauri::async_runtime::spawn(async move {
        match client.call(call).await {
            Ok(Ok(value)) => resolver.resolve(value),
            Ok(Err(report)) => resolver.reject(report),
            Err(e) => {
                resolver.reject(serde_json::json!({ "code": "tray_gone", "message": e.to_string(), "fields": [] }))
            }
        }
    });
    true
}

fn show<R: Runtime>(app: &AppHandle<R>, page: Page) {
    if let Some(w) = app.get_webview_window(LABEL) {
        let _ = w.eval(format!("location.hash = '{}'", page.url().trim_start_matches("index.html")));
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}

/// Acts on the tray's pushes until the link closes, then ends the app.
async fn follow<R: Runtime>(app: AppHandle<R>, mut pushes: Receiver<Push>) {
    while let Some(push) = pushes.recv().await {
        match push {
            Push::Snapshot(s) => {
                let _ = app.emit_to(LABEL, "snapshot", &*s);
            }
            Push::FocusItem(item) => {
                let _ = app.emit_to(LABEL, "focus-item", item);
            }
            Push::Show(page) => show(&app, page),
            Push::Close => {
                log::info!("the tray asked the window to close");
                break;
            }
        }
    }
    log::info!("the link to the tray closed: the window ends");
    app.exit(0);
}

/// Builds the window on `page` and runs until it is closed.
pub(crate) fn run_app<R: Runtime>(
    builder: tauri::Builder<R>,
    client: Client,
    pushes: Receiver<Push>,
    page: Page,
) -> tauri::Result<()> {
    let app = builder
        .on_window_event(|window, event| match event {
            tauri::WindowEvent::CloseRequested { .. } => log::info!("window {}: close requested", window.label()),
            tauri::WindowEvent::Destroyed => log::info!("window {}: destroyed", window.label()),
            _ => {}
        })
        .invoke_handler(move |invoke| forward(&client, invoke))
        .setup(move |app| {
            WebviewWindowBuilder::new(app, LABEL, WebviewUrl::App(page.url().into()))
                .title("Lamplighter")
                .inner_size(560.0, 680.0)
                .min_inner_size(420.0, 400.0)
                .on_page_load(|w, payload| {
                    if matches!(payload.event(), tauri::webview::PageLoadEvent::Finished) {
                        log::info!("window {}: page loaded", w.label());
                    }
                })
                .build()?;
            tauri::async_runtime::spawn(follow(app.handle().clone(), pushes));
            log::info!("window open ({page:?})");
            Ok(())
        })
        .build(tauri::generate_context!())?;
    // the last window closed: the process ends (nothing keeps it)
    app.run(|_app, _event| {});
    Ok(())
}
