//! "Sign in with Microsoft" in the settings window, end to end: the window
//! (WebDriver) switches the mailbox to Microsoft 365, the tray opens the
//! browser — `$BROWSER` here, a script in which curl plays the user at the
//! simulator's Entra-like sign-in page and follows its redirect back to the
//! tray's loopback port — the window shows the progress and then the
//! signed-in account, the grant is in the real keyring (GNOME Keyring) and
//! in no file, and the mailbox connects over Graph.

use super::{desktop, write_config};
use lamplighter_e2e::*;
use lamplighter_ews_sim::{EntraConfig, SimConfig, Simulator};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_with_microsoft_opens_the_browser_and_ends_signed_in_with_the_grant_in_the_keyring() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let (_one, mut session) = desktop();
    let _host = TrayHost::start(&mut session);
    // an on-premises account to start from; the service root and authority are the simulator's
    write_config(
        &session,
        &format!(
            "schema_version = 1\n[mailbox]\nemail = \"mara@contoso.onmicrosoft.com\"\nauth = \"ntlm\"\n\
             ews_url = \"{}\"\ngraph_url = \"{}\"\nauthority = \"{}\"\n",
            sim.ews_url(),
            sim.graph_url(),
            sim.authority("organizations")
        ),
    );
    let page = session.home().join("browser-page.html");
    let browser = session.home().join("browser.sh");
    std::fs::write(&browser, format!("#!/bin/sh\nexec curl -sL -o '{}' \"$1\"\n", page.display())).expect("script");
    std::fs::set_permissions(&browser, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let browser = browser.to_str().expect("path").to_string();
    let driver = Driver::start_with_env(&session, &[("BROWSER", browser.as_str())]);
    let c = driver.launch(&["--settings"]).await;
    text_becomes(&c, "#tab-settings[aria-current=page]", "Settings").await;

    // the form shows the file first (else it would overwrite the choice below when it arrives)
    value_becomes(&c, "#mailbox-email", "mara@contoso.onmicrosoft.com").await;
    // OAuth2 shows the Microsoft fields instead of the password
    choose(&c, "#mailbox-auth", "oauth2").await;
    eventually("the Microsoft fields", Duration::from_secs(20), || async {
        let shown = c.find(fantoccini::Locator::Css("#microsoft-fields")).await.ok()?.is_displayed().await.ok()?;
        shown.then_some(())
    })
    .await;
    text_becomes(&c, "#microsoft-account", "Not signed in.").await;
    choose(&c, "#mailbox-backend", "graph").await;
    fill(&c, "#mailbox-client-id", &EntraConfig::default().client_id).await;
    c.find(fantoccini::Locator::Css("#microsoft-sign-in")).await.expect("button").click().await.expect("click");

    // the browser came back to the tray, and the window names the account
    text_becomes(
        &c,
        "#microsoft-account",
        "Signed in as mara@contoso.onmicrosoft.com (Mail.ReadWrite, offline_access)",
    )
    .await;
    text_becomes(&c, "#status", "Signed in as mara@contoso.onmicrosoft.com").await;
    let shown = std::fs::read_to_string(&page).expect("the browser showed a page");
    assert!(shown.contains("Signed in to Lamplighter"), "{shown}");
    let progress_shown =
        c.find(fantoccini::Locator::Css("#microsoft-progress")).await.expect("progress").is_displayed().await;
    assert!(matches!(progress_shown, Ok(false)), "the progress note is gone once signed in");

    // the grant is in the keyring, and no file holds its token
    let grant = super::secret_tool_lookup(&session, "microsoft:mara@contoso.onmicrosoft.com");
    let grant: serde_json::Value = serde_json::from_str(&grant).expect("the grant in the keyring");
    let refresh = grant["refresh_token"].as_str().expect("a refresh token").to_string();
    assert!(files_containing(session.home(), &refresh).is_empty(), "the refresh token is in a file");
    let config =
        std::fs::read_to_string(session.xdg("XDG_CONFIG_HOME").join("lamplighter/config.toml")).expect("config");
    assert!(config.contains("backend = \"graph\"") && config.contains("auth = \"oauth2\""), "{config}");

    // and the mailbox connects over Graph with it
    let last = std::sync::Mutex::new(String::new());
    let connected = tokio::time::timeout(lamplighter_testkit::guard(Duration::from_secs(60)), async {
        loop {
            // the inbox's header is hidden behind the settings page: read its text, not its rendering
            if let Ok(v) = c.execute("return document.querySelector('#connection').textContent", vec![]).await {
                let t = v.as_str().unwrap_or_default().to_string();
                if t == "connected" {
                    return;
                }
                *last.lock().expect("lock") = t;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(connected.is_ok(), "not connected: {:?}; log:\n{}", last.lock().expect("lock"), app_log(&session));
    assert!(sim.served().iter().any(|s| s.op.starts_with("graph GET /me/mailFolders")), "Graph was asked");

    // sign out: the grant leaves the keyring
    c.find(fantoccini::Locator::Css("#microsoft-sign-out")).await.expect("button").click().await.expect("click");
    text_becomes(&c, "#microsoft-account", "Not signed in.").await;
    assert!(super::secret_tool_lookup(&session, "microsoft:mara@contoso.onmicrosoft.com").is_empty());
    let _ = c.close().await;
}
