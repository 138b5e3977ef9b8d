//! The simulator as a program, driven through its control interface the way
//! an administrator or a test in another language would: `curl` against the
//! HTTP API with the token from `ews-sim-ctl.json`, and the `ews-sim ctl`
//! command line; what they deposit is then seen over EWS (by curl again).

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl").args(["-s", "-w", "\n%{http_code}"]).args(args).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("status");
    (code.trim().parse().expect("code"), body.to_string())
}

fn ctl(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lamplighter-ews-sim"))
        .arg("ctl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("ctl");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn the_control_interface_drives_a_running_simulator() {
    let dir = tempfile::tempdir().expect("dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lamplighter-ews-sim"))
        .args(["--items", "0"])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ews-sim");
    let out = child.stdout.take().expect("stdout");
    let _running = Running(child);
    let mut ews_url = None;
    let mut control_url = None;
    let end = Instant::now() + Duration::from_secs(60);
    let mut lines = BufReader::new(out).lines();
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some(u) = line.strip_prefix("EWS URL:") {
            ews_url = Some(u.trim().to_string());
        }
        if let Some(u) = line.strip_prefix("control:") {
            control_url = u.split_whitespace().next().map(str::to_string);
        }
        if ews_url.is_some() && control_url.is_some() {
            break;
        }
        assert!(Instant::now() < end, "ews-sim did not start");
    }
    // keep reading what it prints later: a closed pipe would end it at its next line
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    let (ews_url, control_url) = (ews_url.expect("EWS URL"), control_url.expect("control URL"));
    let file = dir.path().join("ews-sim-ctl.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).expect("ctl file").permissions().mode() & 0o777, 0o600, "the token is private");
    let info: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
    assert_eq!(info["url"].as_str(), Some(control_url.as_str()));
    let bearer = format!("Authorization: Bearer {}", info["token"].as_str().expect("token"));

    // curl: no token, no service; with it, a voicemail and a missed call with its SIP headers
    let (code, _) = curl(&[&format!("{control_url}/items")]);
    assert_eq!(code, 401);
    let (code, body) = curl(&[
        "-H",
        &bearer,
        "--data",
        r#"{"from":"+49 5251 304613","name":"Jörg Müller","duration_secs":17,"urgent":true,"audio_base64":"UklGRiQAAABXQVZF"}"#,
        &format!("{control_url}/voicemail"),
    ]);
    assert_eq!(code, 200, "{body}");
    let vm: serde_json::Value = serde_json::from_str(&body).expect("json");
    let vm_id = vm["id"].as_str().expect("id").to_string();
    let (code, body) = curl(&[
        "-H",
        &bearer,
        "--data",
        r#"{"from":"+49 30 1234567","headers":[["History-Info","<sip:613@pbx.example.test>;index=1"],["Reason","SIP;cause=480"]]}"#,
        &format!("{control_url}/missed-call"),
    ]);
    assert_eq!(code, 200, "{body}");
    // a bad request changes nothing
    let (code, body) = curl(&["-H", &bearer, "--data", r#"{"from":""}"#, &format!("{control_url}/voicemail")]);
    assert_eq!(code, 400, "{body}");
    let (code, body) = curl(&["-H", &bearer, "--data", r#"{"id":"nope","read":true}"#, &format!("{control_url}/read")]);
    assert_eq!(code, 404, "{body}");

    // the command line: mark the voicemail read, list the items
    let (ok, text) = ctl(dir.path(), &["read", &vm_id]);
    assert!(ok, "{text}");
    let (ok, text) = ctl(dir.path(), &["items"]);
    assert!(ok, "{text}");
    let items: serde_json::Value = serde_json::from_str(text.trim()).expect("items json");
    let items = items.as_array().expect("array");
    assert_eq!(items.len(), 2, "{text}");
    assert!(items.iter().any(|i| i["id"] == vm_id.as_str() && i["read"] == true), "{text}");
    assert!(items.iter().any(|i| i["class"] == "IPM.Note.Microsoft.Missed.Voice"), "{text}");
    let (ok, text) = ctl(dir.path(), &["fail", "1", "200"]);
    assert!(!ok && text.contains("400"), "a status that is not an error is refused: {text}");
    // a calendar change: an event, not an item of the Inbox
    let (ok, text) = ctl(dir.path(), &["free-busy"]);
    assert!(ok && text.contains("\"id\""), "{text}");
    let (_, text) = ctl(dir.path(), &["items"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(text.trim()).expect("json").as_array().map(Vec::len), Some(2));

    // what was deposited is there over EWS, as any client sees it
    let find = r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><soap:Header><t:RequestServerVersion Version="Exchange2016"/></soap:Header><soap:Body><m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="message:IsRead"/></t:AdditionalProperties></m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="10" Offset="0" BasePoint="Beginning"/><m:ParentFolderIds><t:DistinguishedFolderId Id="voicemail"/></m:ParentFolderIds></m:FindItem></soap:Body></soap:Envelope>"#;
    let (code, body) = curl(&[
        "-u",
        "mara:Sommer2026!",
        "-H",
        "Content-Type: text/xml; charset=utf-8",
        "--data-binary",
        find,
        &ews_url,
    ]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#"TotalItemsInView="1""#) && body.contains("<t:IsRead>true</t:IsRead>"), "{body}");
}
