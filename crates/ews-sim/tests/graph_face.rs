//! The simulator's Graph face against curl, a client we did not write, and
//! every JSON body it sends against Microsoft Graph's v1.0 CSDL. Our own
//! reader (`lamplighter-graph-wire`) must read the same bodies.

use lamplighter_ews_sim::{AuthSchemes, SimConfig, Simulator, Voicemail};
use lamplighter_graph_csdl::Csdl;
use serde_json::Value;

const TOKEN: &str = "graph-test-token";

async fn graph_sim() -> Simulator {
    Simulator::start(SimConfig {
        auth: AuthSchemes {
            basic: true,
            ntlm: false,
            negotiate_only: false,
            bearer_tokens: vec![TOKEN.into()],
            kerberos: None,
        },
        ..SimConfig::default()
    })
    .await
    .expect("sim")
}

/// curl; returns (status, headers, body).
async fn curl(args: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tmp");
    let head = dir.path().join("head");
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-D"])
        .arg(&head)
        .args(args)
        .output()
        .await
        .expect("curl is installed");
    let headers = std::fs::read_to_string(&head).unwrap_or_default();
    let status = headers.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, headers, out.stdout)
}

async fn get(url: &str, prefer: Option<&str>) -> (u16, String, Vec<u8>) {
    let auth = format!("Authorization: Bearer {TOKEN}");
    let mut args = vec!["-H", auth.as_str()];
    let p;
    if let Some(pref) = prefer {
        p = format!("Prefer: {pref}");
        args.extend(["-H", p.as_str()]);
    }
    args.push(url);
    curl(&args).await
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

fn voicemail(n: u32) -> Voicemail {
    Voicemail {
        caller_number: format!("+49 5251 30{n:04}"),
        caller_name: Some(format!("Anrufer {n}")),
        duration_secs: 10 + n,
        audio: Some(("audio.mp3".into(), "audio/mpeg".into(), vec![n as u8; 3000])),
        transcription: Some(format!("Bitte um Rückruf {n}.")),
        ..Voicemail::default()
    }
}

const MESSAGE: &str = "microsoft.graph.message";

fn start_url(sim: &Simulator) -> String {
    format!("{}{}", sim.graph_url(), lamplighter_graph_wire::request::delta_start("inbox"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_round_pages_then_reports_changes_removals_and_expiry() {
    let sim = graph_sim().await;
    for n in 0..25 {
        sim.deposit_voicemail(voicemail(n));
    }
    let csdl = Csdl::graph_v1();
    let prefer = lamplighter_graph_wire::request::prefer(10);
    // the first round: 10, 10, 5, each page valid and read by our reader
    let mut url = start_url(&sim);
    let mut sizes = Vec::new();
    let delta_link = loop {
        let (status, headers, body) = get(&url, Some(&prefer)).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert!(headers.to_ascii_lowercase().contains("preference-applied: odata.maxpagesize=10"), "{headers}");
        csdl.check_collection(MESSAGE, &json(&body)).expect("a delta page validates");
        let page = lamplighter_graph_wire::parse_delta(&body).expect("our reader");
        sizes.push(page.entries.len());
        let lamplighter_graph_wire::DeltaEntry::Changed(m) = &page.entries[0] else { panic!("a message") };
        assert_eq!(m.um().message_class.as_deref(), Some("IPM.Note.Microsoft.Voicemail.UM.CA"));
        assert!(m.body.as_ref().and_then(|b| b.content.as_deref()).is_some_and(|t| t.starts_with("Bitte um Rückruf")));
        match page.then {
            lamplighter_graph_wire::Continue::Next(next) => url = next,
            lamplighter_graph_wire::Continue::Delta(d) => break d,
        }
    };
    assert_eq!(sizes, [10, 10, 5]);
    assert!(delta_link.starts_with(&sim.graph_url()), "{delta_link}");

    // changes elsewhere: one read, one deleted, one new
    let items = sim.items();
    sim.set_read(&items[0].0, true);
    assert!(sim.delete(&items[1].0));
    sim.deposit_voicemail(voicemail(99));
    let (status, _, body) = get(&delta_link, Some(&prefer)).await;
    assert_eq!(status, 200);
    let v = json(&body);
    csdl.check_collection(MESSAGE, &v).expect("the next round validates");
    let page = lamplighter_graph_wire::parse_delta(&body).expect("our reader");
    assert_eq!(page.entries.len(), 3, "{v:#}");
    assert!(
        page.entries.iter().any(
            |e| matches!(e, lamplighter_graph_wire::DeltaEntry::Removed { reason: Some(r), .. } if r == "deleted")
        )
    );
    assert!(
        page.entries
            .iter()
            .any(|e| matches!(e, lamplighter_graph_wire::DeltaEntry::Changed(m) if m.is_read == Some(true)))
    );
    // the round's $select came back through the token: no properties beyond it
    let first = &v["value"].as_array().expect("value")[0];
    assert!(first.get("toRecipients").is_none() && first.get("changeKey").is_some(), "{first:#}");

    // a spent token is 410 syncStateNotFound, and a new round starts clean
    sim.forget_sync_states();
    let (status, _, body) = get(&delta_link, None).await;
    assert_eq!(status, 410);
    let e = lamplighter_graph_wire::parse_error(&body).expect("Graph's error body");
    assert_eq!(e.code, "syncStateNotFound");
    assert!(e.inner.and_then(|i| i.request_id).is_some());
    assert_eq!(
        lamplighter_graph_wire::classify(status, None, None, &body),
        lamplighter_graph_wire::Failure::DeltaExpired
    );
    let (status, _, _) = get(&start_url(&sim), Some(&prefer)).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_throttling_and_unknown_folders_answer_as_graph_does() {
    let sim = graph_sim().await;
    let url = start_url(&sim);
    let (status, headers, body) = curl(&[&url]).await;
    assert_eq!(status, 401);
    assert!(headers.contains("error=\"invalid_token\""), "{headers}");
    assert_eq!(
        lamplighter_graph_wire::parse_error(&body).map(|e| e.code).as_deref(),
        Some("InvalidAuthenticationToken")
    );
    let (status, _, _) = curl(&["-H", "Authorization: Bearer stolen", &url]).await;
    assert_eq!(status, 401);
    sim.throttle(1, std::time::Duration::from_millis(3000));
    let (status, headers, body) = get(&url, None).await;
    assert_eq!(status, 429);
    assert!(headers.to_ascii_lowercase().contains("retry-after: 3"), "{headers}");
    assert_eq!(
        lamplighter_graph_wire::classify(429, Some("3"), None, &body),
        lamplighter_graph_wire::Failure::Throttled { retry_after: Some(std::time::Duration::from_secs(3)) }
    );
    let (status, _, _) = get(&url, None).await;
    assert_eq!(status, 200, "one throttled call only");
    // Graph has no well-known voicemail folder
    let (status, _, body) = get(&format!("{}/me/mailFolders/voicemail/messages/delta", sim.graph_url()), None).await;
    assert_eq!(status, 400);
    assert_eq!(lamplighter_graph_wire::parse_error(&body).map(|e| e.code).as_deref(), Some("ErrorInvalidIdMalformed"));
    let (status, _, body) = get(&format!("{}/me/mailFolders/inbox", sim.graph_url()), None).await;
    assert_eq!(status, 200);
    Csdl::graph_v1().check("microsoft.graph.mailFolder", &json(&body)).expect("mailFolder validates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_its_audio_a_patch_and_a_batch() {
    let sim = graph_sim().await;
    let ews = sim.deposit_voicemail(voicemail(7));
    let csdl = Csdl::graph_v1();
    let id = lamplighter_graph_wire::request::encode_segment(&ews.replace('+', "-").replace('/', "_"));
    let (status, _, body) = get(
        &format!(
            "{}{}",
            sim.graph_url(),
            lamplighter_graph_wire::request::message(&ews.replace('+', "-").replace('/', "_"))
        ),
        Some("outlook.body-content-type=\"text\""),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    csdl.check(MESSAGE, &json(&body)).expect("message validates");
    let m = lamplighter_graph_wire::parse_message(&body).expect("our reader");
    assert_eq!((m.um().duration_secs, m.um().caller_name.as_deref()), (Some(17), Some("Anrufer 7")));
    assert_eq!(m.header("Content-Class"), Some("voice-ca"));

    let (status, _, body) = get(&format!("{}/me/messages/{id}/attachments", sim.graph_url()), None).await;
    assert_eq!(status, 200);
    csdl.check_collection("microsoft.graph.attachment", &json(&body)).expect("attachments validate");
    let list = lamplighter_graph_wire::parse_attachments(&body).expect("our reader");
    let aid = lamplighter_graph_wire::request::encode_segment(&list[0].id);
    let (status, headers, bytes) =
        get(&format!("{}/me/messages/{id}/attachments/{aid}/$value", sim.graph_url()), None).await;
    assert_eq!(status, 200);
    assert!(headers.to_ascii_lowercase().contains("content-type: audio/mpeg"), "{headers}");
    assert_eq!(bytes, vec![7u8; 3000]);
    let (_, _, body) = get(&format!("{}/me/messages/{id}/attachments/{aid}", sim.graph_url()), None).await;
    csdl.check("microsoft.graph.attachment", &json(&body)).expect("a fileAttachment with its bytes validates");

    // PATCH isRead: the EWS face sees it; anything else is refused and changes nothing
    let auth = format!("Authorization: Bearer {TOKEN}");
    let msg_url = format!("{}/me/messages/{id}", sim.graph_url());
    let (status, _, body) = curl(&[
        "-X",
        "PATCH",
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "--data",
        r#"{"isRead":true}"#,
        &msg_url,
    ])
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    csdl.check(MESSAGE, &json(&body)).expect("PATCH answer validates");
    assert!(sim.items().iter().any(|(i, _, read)| *i == ews && *read));
    let (status, _, _) = curl(&["-X", "PATCH", "-H", &auth, "--data", r#"{"subject":"x"}"#, &msg_url]).await;
    assert_eq!(status, 400);

    // $batch: two reads and a PATCH in one round trip; a nested batch is refused
    let requests = vec![
        lamplighter_graph_wire::batch::BatchRequest {
            id: "1".into(),
            method: "GET".into(),
            url: format!("/me/messages/{id}?$select=isRead,subject"),
            headers: Default::default(),
            body: None,
        },
        lamplighter_graph_wire::batch::BatchRequest {
            id: "2".into(),
            method: "GET".into(),
            url: "/me/messages/AAMkNoSuchItem".into(),
            headers: Default::default(),
            body: None,
        },
        lamplighter_graph_wire::batch::BatchRequest {
            id: "3".into(),
            method: "PATCH".into(),
            url: format!("/me/messages/{id}"),
            headers: [("Content-Type".to_string(), "application/json".to_string())].into(),
            body: Some(serde_json::json!({"isRead": false})),
        },
    ];
    let body = lamplighter_graph_wire::batch::batch_body(&requests).expect("batch");
    let (status, _, answer) = curl(&[
        "-X",
        "POST",
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "--data",
        &body,
        &format!("{}/$batch", sim.graph_url()),
    ])
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let responses = lamplighter_graph_wire::batch::parse_batch(&answer).expect("our reader");
    let status_of = |id: &str| responses.iter().find(|r| r.id == id).map(|r| r.status);
    assert_eq!((status_of("1"), status_of("2"), status_of("3")), (Some(200), Some(404), Some(200)));
    for r in &responses {
        if r.status == 200 {
            csdl.check(MESSAGE, r.body.as_ref().expect("body")).expect("batched message validates");
        }
    }
    assert!(sim.items().iter().any(|(i, _, read)| *i == ews && !*read), "the batched PATCH took");
    let nested = r#"{"requests":[{"id":"1","method":"POST","url":"/$batch"}]}"#;
    let (_, _, answer) =
        curl(&["-X", "POST", "-H", &auth, "--data", nested, &format!("{}/$batch", sim.graph_url())]).await;
    let r = lamplighter_graph_wire::batch::parse_batch(&answer).expect("answer");
    assert_eq!(r[0].status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_page_nest_and_a_move_leaves_one_delta_for_another() {
    let sim = graph_sim().await;
    let csdl = Csdl::graph_v1();
    let inbox_id = lamplighter_ews_sim::INBOX_ID;
    let under_inbox = sim.create_folder("Voicemail", Some(inbox_id)).expect("folder");
    for n in 0..12 {
        sim.create_folder(&format!("Project {n:02}"), None).expect("folder");
    }
    assert!(sim.create_folder("orphan", Some("no-such-parent")).is_none());
    // the top level in pages of 10 by $skip, as Graph pages mailFolders
    let mut url = format!("{}/me/mailFolders", sim.graph_url());
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let (status, _, body) = get(&url, None).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        csdl.check_collection("microsoft.graph.mailFolder", &json(&body)).expect("a folder page validates");
        let page = lamplighter_graph_wire::parse_folders(&body).expect("our reader");
        names.extend(page.folders.iter().filter_map(|f| f.display_name.clone()));
        pages += 1;
        match page.next {
            Some(n) => url = n,
            None => break,
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(names.len(), 16, "Inbox, Drafts, Sent Items, Deleted Items and 12 of the user's: {names:?}");
    assert!(names.iter().any(|n| n == "Inbox") && !names.iter().any(|n| n == "Voicemail" || n == "Calendar"));
    // the Inbox has one child; the rule's folder is under it
    let (_, _, body) = get(&format!("{}/me/mailFolders/inbox?$select=childFolderCount", sim.graph_url()), None).await;
    assert_eq!(json(&body)["childFolderCount"], 1);
    let (status, _, body) = get(&format!("{}/me/mailFolders/inbox/childFolders", sim.graph_url()), None).await;
    assert_eq!(status, 200);
    csdl.check_collection("microsoft.graph.mailFolder", &json(&body)).expect("children validate");
    let child = &lamplighter_graph_wire::parse_folders(&body).expect("reads").folders[0];
    assert_eq!(child.display_name.as_deref(), Some("Voicemail"));
    // well-known names: this mailbox has no Junk Email (404), and voicemail is no name at all (400)
    let (status, _, _) = get(&format!("{}/me/mailFolders/junkemail", sim.graph_url()), None).await;
    assert_eq!(status, 404);
    let (status, _, _) = get(&format!("{}/me/mailFolders/deleteditems?$select=id", sim.graph_url()), None).await;
    assert_eq!(status, 200);

    // a rule files a voicemail under the Inbox: the Inbox's delta has nothing, the folder's has it
    let folder_delta = |id: &str| format!("{}{}", sim.graph_url(), lamplighter_graph_wire::request::delta_start(id));
    let delta_of = |url: String| async move {
        let (status, _, body) = get(&url, None).await;
        assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
        csdl.check_collection(MESSAGE, &json(&body)).expect("delta validates");
        lamplighter_graph_wire::parse_delta(&body).expect("reads")
    };
    let filed = sim.deposit_voicemail_in(voicemail(1), &under_inbox).expect("deposit");
    let inbox_round = delta_of(start_url(&sim)).await;
    assert!(inbox_round.entries.is_empty());
    let folder_round = delta_of(folder_delta(&child.id)).await;
    assert_eq!(folder_round.entries.len(), 1);
    let lamplighter_graph_wire::DeltaEntry::Changed(m) = &folder_round.entries[0] else { panic!("a message") };
    assert_eq!(m.parent_folder_id.as_deref(), Some(child.id.as_str()));
    // moved to the Inbox: removed from the folder's delta, new in the Inbox's, the id the same
    assert!(sim.move_item(&filed, inbox_id));
    let lamplighter_graph_wire::Continue::Delta(fl) = folder_round.then else { panic!("one page") };
    let lamplighter_graph_wire::Continue::Delta(il) = inbox_round.then else { panic!("one page") };
    let after = delta_of(fl).await;
    assert!(matches!(&after.entries[..], [lamplighter_graph_wire::DeltaEntry::Removed { id, .. }] if *id == m.id));
    let into = delta_of(il).await;
    assert!(matches!(&into.entries[..], [lamplighter_graph_wire::DeltaEntry::Changed(x)] if x.id == m.id));
}
