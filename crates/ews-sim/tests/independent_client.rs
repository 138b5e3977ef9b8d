//! The simulator against a client that is not ours: curl (its own NTLM and
//! HTTP code), with hand-written SOAP requests, and every response checked
//! against the official schema with xmllint. This keeps the simulator
//! honest: it must follow the schema, not our client's assumptions.

use lamplighter_ews_sim::{AuthSchemes, SimConfig, Simulator, Validation, Voicemail};
use std::path::PathBuf;
use std::time::Duration;

const HEAD: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
  <soap:Header><t:RequestServerVersion Version="Exchange2016"/></soap:Header>
  <soap:Body>"#;
const TAIL: &str = "</soap:Body></soap:Envelope>";

fn schema() -> PathBuf {
    match Validation::embedded() {
        Validation::Schema(p) => p,
        Validation::Off => panic!("the vendored schema must be there"),
    }
}

/// curl POST; returns (HTTP status, body).
async fn curl(url: &str, auth: &[&str], body: String) -> (u16, String) {
    let mut args: Vec<String> = vec!["-s".into(), "-H".into(), "Content-Type: text/xml; charset=utf-8".into()];
    args.extend(auth.iter().map(|s| s.to_string()));
    args.extend(["--data-binary".into(), "@-".into(), "-w".into(), "\n%{http_code}".into(), url.to_string()]);
    let mut child = tokio::process::Command::new("curl")
        .args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl is installed");
    use tokio::io::AsyncWriteExt as _;
    child.stdin.take().expect("stdin").write_all(body.as_bytes()).await.expect("write");
    let out = child.wait_with_output().await.expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_string())
}

fn validates(doc: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("tmp");
    let f = dir.path().join("response.xml");
    std::fs::write(&f, doc).expect("write");
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema())
        .arg(&f)
        .output()
        .expect("xmllint");
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> &'a str {
    let start = s.find(a).map(|i| i + a.len()).expect(a);
    &s[start..start + s[start..].find(b).expect(b)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_signs_in_with_ntlm_and_a_wrong_password_is_refused() {
    let sim = Simulator::start(SimConfig {
        auth: AuthSchemes { basic: false, ntlm: true, negotiate_only: false, bearer_tokens: vec![], kerberos: None },
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    sim.deposit_voicemail(Voicemail {
        caller_number: "+49 5251 304613".into(),
        duration_secs: 42,
        ..Voicemail::default()
    });
    let find = format!(
        r#"{HEAD}<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape><m:ParentFolderIds><t:DistinguishedFolderId Id="voicemail"/></m:ParentFolderIds></m:FindItem>{TAIL}"#
    );
    let (status, body) = curl(&sim.ews_url(), &["--ntlm", "-u", "EXAMPLE\\mara:Sommer2026!"], find.clone()).await;
    assert_eq!(status, 200, "{body}");
    let pages = lamplighter_ews_wire::parse_find_item(body.as_bytes()).expect("parse");
    assert_eq!(pages[0].body.as_ref().expect("page").items.len(), 1);
    assert_eq!(sim.auth_failures(), 0);
    let (status, _) = curl(&sim.ews_url(), &["--ntlm", "-u", "EXAMPLE\\mara:Winter2026!"], find.clone()).await;
    assert_eq!(status, 401);
    assert_eq!(sim.auth_failures(), 1);
    let (status, _) = curl(&sim.ews_url(), &["-u", "mara:Sommer2026!"], find).await;
    assert_eq!(status, 401, "Basic is not offered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_validates_against_the_schema() {
    let sim = Simulator::start(SimConfig {
        heartbeat: Duration::from_millis(300),
        max_connection_time: Some(Duration::from_millis(1000)),
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let auth = ["-u", "mara:Sommer2026!"];
    let vm = sim.deposit_voicemail(Voicemail {
        caller_number: "+49 5251 304613".into(),
        caller_name: Some("Jörg Müller & Co".into()),
        duration_secs: 42,
        urgent: true,
        audio: Some(("vm.wav".into(), "audio/wav".into(), b"RIFF....WAVEfmt ".to_vec())),
        transcription: Some("Bitte <dringend> zurückrufen & bestätigen.".into()),
        ..Voicemail::default()
    });
    let props = r#"<m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="item:ItemClass"/><t:FieldURI FieldURI="item:Subject"/><t:FieldURI FieldURI="item:Attachments"/><t:FieldURI FieldURI="item:DateTimeReceived"/><t:FieldURI FieldURI="item:Importance"/><t:FieldURI FieldURI="item:InternetMessageHeaders"/><t:FieldURI FieldURI="item:HasAttachments"/><t:FieldURI FieldURI="item:TextBody"/><t:FieldURI FieldURI="message:From"/><t:FieldURI FieldURI="message:IsRead"/><t:ExtendedFieldURI PropertyTag="0x6801" PropertyType="Integer"/><t:ExtendedFieldURI PropertyTag="0x6803" PropertyType="String"/></t:AdditionalProperties></m:ItemShape>"#;
    let mut responses: Vec<(&str, String)> = Vec::new();
    let mut post = async |name: &'static str, body: String| {
        let (status, resp) = curl(&sim.ews_url(), &auth, format!("{HEAD}{body}{TAIL}")).await;
        assert_eq!(status, 200, "{name}: {resp}");
        responses.push((name, resp.clone()));
        resp
    };
    post("FindItem", format!(r#"<m:FindItem Traversal="Shallow">{props}<m:IndexedPageItemView MaxEntriesReturned="10" Offset="0" BasePoint="Beginning"/><m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds></m:FindItem>"#)).await;
    let got = post("GetItem", format!(r#"<m:GetItem>{props}<m:ItemIds><t:ItemId Id="{vm}"/><t:ItemId Id="AAMkNoSuchItem="/></m:ItemIds></m:GetItem>"#)).await;
    assert!(got.contains("ErrorItemNotFound") && got.contains("Jörg Müller &amp; Co"));
    // the headers UM writes beside the properties
    for header in [
        r#"<t:InternetMessageHeader HeaderName="Content-Class">voice-ca</t:InternetMessageHeader>"#,
        r#"<t:InternetMessageHeader HeaderName="X-CallingTelephoneNumber">+49 5251 304613</t:InternetMessageHeader>"#,
        r#"<t:InternetMessageHeader HeaderName="X-VoiceMessageDuration">42</t:InternetMessageHeader>"#,
        r#"<t:InternetMessageHeader HeaderName="X-AttachmentOrder">vm.wav</t:InternetMessageHeader>"#,
    ] {
        assert!(got.contains(header), "{header} missing in {got}");
    }
    assert!(
        got.contains(
            r#"<t:TextBody BodyType="Text">Bitte &lt;dringend&gt; zurückrufen &amp; bestätigen.</t:TextBody>"#
        )
    );
    let attachment = between(&got, "<t:AttachmentId Id=\"", "\"").to_string();
    let change_key = between(&got, "ChangeKey=\"", "\"").to_string();
    let modern = post("GetAttachment", format!(r#"<m:GetAttachment><m:AttachmentIds><t:AttachmentId Id="{attachment}"/></m:AttachmentIds></m:GetAttachment>"#)).await;
    assert!(modern.contains("<t:Size>16</t:Size>") && modern.contains("<t:IsInline>false</t:IsInline>"), "{modern}");
    // asked as Exchange 2007: the layout of 2007, without what 2010 added
    let (status, old) = curl(
        &sim.ews_url(),
        &auth,
        format!(
            r#"{}<m:GetAttachment><m:AttachmentIds><t:AttachmentId Id="{attachment}"/></m:AttachmentIds></m:GetAttachment>{TAIL}"#,
            HEAD.replace("Exchange2016", "Exchange2007_SP1")
        ),
    )
    .await;
    assert_eq!(status, 200, "{old}");
    validates(&old).expect("the 2007 layout validates");
    assert!(old.contains("<t:Content>") && !old.contains("<t:Size>") && !old.contains("IsInline"), "{old}");
    let sync = post("SyncFolderItems", format!(r#"<m:SyncFolderItems>{props}<m:SyncFolderId><t:DistinguishedFolderId Id="inbox"/></m:SyncFolderId><m:MaxChangesReturned>100</m:MaxChangesReturned></m:SyncFolderItems>"#)).await;
    let state = between(&sync, "<m:SyncState>", "<").to_string();
    let pull = post("Subscribe (pull)", r#"<m:Subscribe><m:PullSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id="inbox"/></t:FolderIds><t:EventTypes><t:EventType>NewMailEvent</t:EventType><t:EventType>ModifiedEvent</t:EventType></t:EventTypes><t:Timeout>10</t:Timeout></m:PullSubscriptionRequest></m:Subscribe>"#.into()).await;
    let pull_id = between(&pull, "<m:SubscriptionId>", "<").to_string();
    let watermark = between(&pull, "<m:Watermark>", "<").to_string();
    post("UpdateItem (conflict)", format!(r#"<m:UpdateItem MessageDisposition="SaveOnly" ConflictResolution="NeverOverwrite"><m:ItemChanges><t:ItemChange><t:ItemId Id="{vm}" ChangeKey="stale"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="message:IsRead"/><t:Message><t:IsRead>true</t:IsRead></t:Message></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#)).await;
    let upd = post("UpdateItem", format!(r#"<m:UpdateItem MessageDisposition="SaveOnly" ConflictResolution="NeverOverwrite"><m:ItemChanges><t:ItemChange><t:ItemId Id="{vm}" ChangeKey="{change_key}"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="message:IsRead"/><t:Message><t:IsRead>true</t:IsRead></t:Message></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>"#)).await;
    assert!(upd.contains("NoError"), "{upd}");
    let events = post("GetEvents", format!(r#"<m:GetEvents><m:SubscriptionId>{pull_id}</m:SubscriptionId><m:Watermark>{watermark}</m:Watermark></m:GetEvents>"#)).await;
    assert!(events.contains("ModifiedEvent"), "{events}");
    let sync2 = post("SyncFolderItems (read flag)", format!(r#"<m:SyncFolderItems>{props}<m:SyncFolderId><t:DistinguishedFolderId Id="inbox"/></m:SyncFolderId><m:SyncState>{state}</m:SyncState><m:MaxChangesReturned>100</m:MaxChangesReturned></m:SyncFolderItems>"#)).await;
    assert!(sync2.contains("ReadFlagChange"), "{sync2}");
    post("Unsubscribe", format!(r#"<m:Unsubscribe><m:SubscriptionId>{pull_id}</m:SubscriptionId></m:Unsubscribe>"#))
        .await;
    post(
        "Unsubscribe (again)",
        format!(r#"<m:Unsubscribe><m:SubscriptionId>{pull_id}</m:SubscriptionId></m:Unsubscribe>"#),
    )
    .await;
    let bad = post("SyncFolderItems (bad state)", format!(r#"<m:SyncFolderItems>{props}<m:SyncFolderId><t:DistinguishedFolderId Id="inbox"/></m:SyncFolderId><m:SyncState>bm90IG91cnM=</m:SyncState><m:MaxChangesReturned>100</m:MaxChangesReturned></m:SyncFolderItems>"#)).await;
    assert!(bad.contains("ErrorInvalidSyncStateData"));
    let streaming = post("Subscribe (streaming)", r#"<m:Subscribe><m:StreamingSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id="inbox"/></t:FolderIds><t:EventTypes><t:EventType>NewMailEvent</t:EventType></t:EventTypes></m:StreamingSubscriptionRequest></m:Subscribe>"#.into()).await;
    let stream_id = between(&streaming, "<m:SubscriptionId>", "<").to_string();
    // the stream: heartbeats every 300 ms, then Closed after the (capped) connection time
    let body = post("GetStreamingEvents", format!(r#"<m:GetStreamingEvents><m:SubscriptionIds><t:SubscriptionId>{stream_id}</t:SubscriptionId></m:SubscriptionIds><m:ConnectionTimeout>1</m:ConnectionTimeout></m:GetStreamingEvents>"#)).await;
    responses.pop();
    let frames = lamplighter_ews_wire::FrameSplitter::new(1 << 20).push(body.as_bytes()).expect("frames");
    assert!(frames.len() >= 2, "heartbeats and the final frame: {}", frames.len());
    let last = lamplighter_ews_wire::parse_streaming_frame(frames.last().expect("last")).expect("parse");
    assert_eq!(
        last[0].body.as_ref().and_then(|b| b.connection_status),
        Some(lamplighter_ews_wire::ConnectionStatus::Closed)
    );
    for f in &frames {
        validates(std::str::from_utf8(f).expect("utf-8")).expect("a streaming frame validates");
    }
    for (name, doc) in &responses {
        if let Err(e) = validates(doc) {
            panic!("{name} does not validate: {e}\n{doc}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_request_gets_the_schema_validation_fault_exchange_sends() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let wrong = format!(
        r#"{HEAD}<m:FindItem Traversal="Shallow"><m:ParentFolderIds><t:DistinguishedFolderId Id="voicemail"/></m:ParentFolderIds><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape></m:FindItem>{TAIL}"#
    );
    let (status, body) = curl(&sim.ews_url(), &["-u", "mara:Sommer2026!"], wrong).await;
    assert_eq!(status, 500);
    match lamplighter_ews_wire::parse_find_item(body.as_bytes()) {
        Err(lamplighter_ews_wire::EwsError::Fault(f)) => {
            assert_eq!(f.response_code, Some(lamplighter_ews_wire::ResponseCode::SchemaValidation));
            assert!(f.message.contains("failed schema validation"), "{}", f.message);
        }
        other => panic!("expected a fault: {other:?}"),
    }
    let (status, body) = curl(&sim.ews_url(), &["-u", "mara:Sommer2026!"], "<not-xml".into()).await;
    assert_eq!(status, 500, "{body}");
    assert!(sim.served().iter().all(|s| !s.schema_valid));
}

/// What a mainstream EWS client does first, by curl: it probes the version
/// with one the server does not know (Exchange answers
/// ErrorInvalidServerVersion, and the client retries with an older one),
/// binds folders with GetFolder (by distinguished name and by the ids
/// handed out) and converts ids with ConvertId. Every response validates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_negotiation_getfolder_and_convertid_as_other_clients_use_them() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let auth = ["-u", "mara:Sommer2026!"];
    let vm = sim.deposit_voicemail(Voicemail { caller_number: "+49 5251 304613".into(), ..Voicemail::default() });
    sim.deposit_voicemail(Voicemail { caller_number: "614".into(), is_read: true, ..Voicemail::default() });
    let get_inbox = r#"<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="inbox"/><t:DistinguishedFolderId Id="voicemail"/><t:DistinguishedFolderId Id="drafts"/></m:FolderIds></m:GetFolder>"#;

    // the probe: an unknown version is ErrorInvalidServerVersion, not a schema fault
    let future = format!("{HEAD}{get_inbox}{TAIL}").replace(r#"Version="Exchange2016""#, r#"Version="Exchange2099""#);
    let (status, body) = curl(&sim.ews_url(), &auth, future).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("ErrorInvalidServerVersion") && !body.contains("ErrorSchemaValidation"), "{body}");

    let mut responses: Vec<(&str, String)> = Vec::new();
    let mut post = async |name: &'static str, body: String| {
        let (status, resp) = curl(&sim.ews_url(), &auth, format!("{HEAD}{body}{TAIL}")).await;
        assert_eq!(status, 200, "{name}: {resp}");
        responses.push((name, resp.clone()));
        resp
    };
    let folders = post("GetFolder", get_inbox.into()).await;
    assert!(folders.contains("<t:DisplayName>Inbox</t:DisplayName><t:TotalCount>2</t:TotalCount>"), "{folders}");
    assert!(folders.contains("<t:SearchFolder>") && folders.contains("<t:DisplayName>Voice Mail</t:DisplayName>"));
    assert_eq!(folders.matches("<t:UnreadCount>1</t:UnreadCount>").count(), 2, "inbox and voice mail: {folders}");
    assert!(folders.contains("<t:DisplayName>Drafts</t:DisplayName><t:TotalCount>0</t:TotalCount>"), "{folders}");
    let inbox_id = between(&folders, "<t:FolderId Id=\"", "\"").to_string();

    // the folder's own id works wherever a folder is named
    let by_id = post("GetFolder (FolderId)", format!(r#"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:FolderId Id="{inbox_id}"/><t:FolderId Id="AAMkNoSuchFolder"/></m:FolderIds></m:GetFolder>"#)).await;
    assert!(by_id.contains("<t:DisplayName>Inbox</t:DisplayName>") && by_id.contains("ErrorFolderNotFound"), "{by_id}");
    let found = post("FindItem (FolderId)", format!(r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="10" Offset="0" BasePoint="Beginning"/><m:ParentFolderIds><t:FolderId Id="{inbox_id}"/></m:ParentFolderIds></m:FindItem>"#)).await;
    assert!(found.contains(r#"TotalItemsInView="2""#), "{found}");
    let drafts = post("FindItem (drafts)", r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="10" Offset="0" BasePoint="Beginning"/><m:ParentFolderIds><t:DistinguishedFolderId Id="drafts"/></m:ParentFolderIds></m:FindItem>"#.into()).await;
    assert!(drafts.contains(r#"TotalItemsInView="0""#), "{drafts}");
    let sub = post("Subscribe (FolderId)", format!(r#"<m:Subscribe><m:StreamingSubscriptionRequest><t:FolderIds><t:FolderId Id="{inbox_id}"/></t:FolderIds><t:EventTypes><t:EventType>NewMailEvent</t:EventType></t:EventTypes></m:StreamingSubscriptionRequest></m:Subscribe>"#)).await;
    assert!(sub.contains("NoError"), "{sub}");

    // the Voice Mail folder's place: a search folder under the search root
    let finder = post("FindFolder (search root)", r#"<m:FindFolder Traversal="Shallow"><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:ParentFolderIds><t:DistinguishedFolderId Id="searchfolders"/></m:ParentFolderIds></m:FindFolder>"#.into()).await;
    assert!(
        finder.contains(r#"TotalItemsInView="1""#) && finder.contains("<t:DisplayName>Voice Mail</t:DisplayName>"),
        "{finder}"
    );
    let tree = post("FindFolder (deep)", r#"<m:FindFolder Traversal="Deep"><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:ParentFolderIds><t:DistinguishedFolderId Id="root"/></m:ParentFolderIds></m:FindFolder>"#.into()).await;
    assert!(
        tree.contains("<t:DisplayName>Inbox</t:DisplayName>")
            && tree.contains("<t:DisplayName>Voice Mail</t:DisplayName>"),
        "{tree}"
    );

    // ConvertId there and back
    let hex = post("ConvertId (to HexEntryId)", format!(r#"<m:ConvertId DestinationFormat="HexEntryId"><m:SourceIds><t:AlternateId Format="EwsId" Id="{vm}" Mailbox="mara@example.test"/></m:SourceIds></m:ConvertId>"#)).await;
    let hex_id = between(&hex, "Format=\"HexEntryId\" Id=\"", "\"").to_string();
    assert!(hex_id.bytes().all(|b| b.is_ascii_hexdigit()), "{hex}");
    let back = post("ConvertId (to EwsId)", format!(r#"<m:ConvertId DestinationFormat="EwsId"><m:SourceIds><t:AlternateId Format="HexEntryId" Id="{hex_id}" Mailbox="mara@example.test"/></m:SourceIds></m:ConvertId>"#)).await;
    assert!(back.contains(&format!(r#"Id="{vm}""#)), "{back}");

    for (name, doc) in &responses {
        if let Err(e) = validates(doc) {
            panic!("{name} does not validate: {e}\n{doc}");
        }
    }
}

/// Both forms of throttling, as curl sees them, and both schema-valid: the
/// HTTP 500 SOAP fault and Exchange Online's HTTP 200 ErrorServerBusy
/// response message, each with BackOffMilliseconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_comes_as_a_fault_or_in_the_body() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let auth = ["-u", "mara:Sommer2026!"];
    let find = format!(
        r#"{HEAD}<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="10" Offset="0" BasePoint="Beginning"/><m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds></m:FindItem>{TAIL}"#
    );
    sim.throttle(1, Duration::from_millis(700));
    let (status, fault) = curl(&sim.ews_url(), &auth, find.clone()).await;
    assert_eq!(status, 500, "{fault}");
    assert!(fault.contains("ErrorServerBusy") && fault.contains(r#"Name="BackOffMilliseconds">700<"#), "{fault}");
    sim.throttle_in_body(1, Duration::from_millis(900));
    let (status, body) = curl(&sim.ews_url(), &auth, find).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<m:ResponseCode>ErrorServerBusy</m:ResponseCode>"), "{body}");
    assert!(body.contains(r#"Name="BackOffMilliseconds">900<"#), "{body}");
    validates(&body).unwrap_or_else(|e| panic!("the in-body form does not validate: {e}\n{body}"));
}

/// A deposit while a stream is open, as curl reads it: the item's events and
/// then, as Exchange sends it, the Inbox's own ModifiedEvent with its unread
/// count, naming the folder by the id GetFolder hands out. Every frame validates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_streams_item_events_then_the_folder_s_unread_count() {
    let sim = Simulator::start(SimConfig {
        heartbeat: Duration::from_millis(300),
        max_connection_time: Some(Duration::from_millis(1500)),
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let auth = ["-u", "mara:Sommer2026!"];
    let (_, sub) = curl(&sim.ews_url(), &auth, format!(r#"{HEAD}<m:Subscribe><m:StreamingSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id="inbox"/></t:FolderIds><t:EventTypes><t:EventType>NewMailEvent</t:EventType><t:EventType>CreatedEvent</t:EventType><t:EventType>ModifiedEvent</t:EventType></t:EventTypes></m:StreamingSubscriptionRequest></m:Subscribe>{TAIL}"#)).await;
    let id = between(&sub, "<m:SubscriptionId>", "<").to_string();
    let (_, folders) = curl(&sim.ews_url(), &auth, format!(r#"{HEAD}<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>{TAIL}"#)).await;
    let inbox_id = between(&folders, "<t:FolderId Id=\"", "\"").to_string();
    let url = sim.ews_url();
    let stream = curl(
        &url,
        &auth,
        format!(
            r#"{HEAD}<m:GetStreamingEvents><m:SubscriptionIds><t:SubscriptionId>{id}</t:SubscriptionId></m:SubscriptionIds><m:ConnectionTimeout>1</m:ConnectionTimeout></m:GetStreamingEvents>{TAIL}"#
        ),
    );
    let deposit = async {
        while sim.open_streams() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sim.deposit_voicemail(Voicemail { caller_number: "613".into(), ..Voicemail::default() });
    };
    let ((status, body), ()) = tokio::join!(stream, deposit);
    assert_eq!(status, 200);
    let frames = lamplighter_ews_wire::FrameSplitter::new(1 << 20).push(body.as_bytes()).expect("frames");
    for f in &frames {
        // real Exchange 2016 writes m:Notification where types.xsd says t:Notification
        // (the one point its own frames fail the schema on); the simulator does as Exchange does
        let text = std::str::from_utf8(f).expect("utf-8").replace("m:Notification>", "t:Notification>");
        validates(&text).expect("a streaming frame validates");
    }
    let with_events = frames
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .find(|f| f.contains("NewMailEvent"))
        .expect("a frame with the deposit's events");
    let folder_event = r#"<t:ModifiedEvent><t:TimeStamp>"#;
    let at = with_events.find(&format!(r#"<t:FolderId Id="{inbox_id}""#)).expect("the Inbox's ModifiedEvent");
    assert!(
        with_events[..at].rfind(folder_event).is_some()
            && with_events[at..].contains("<t:UnreadCount>1</t:UnreadCount>"),
        "{with_events}"
    );
    assert!(with_events.find("NewMailEvent") < Some(at), "the folder's change follows its items': {with_events}");
}

/// Two subscriptions on one GetStreamingEvents, as curl reads them: each
/// gets only the event types it asked for on the folders it watches, one
/// frame carries a Notification per subscription, and the Calendar's
/// subscription gets the `FreeBusyChangedEvent` of a changed meeting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_subscriptions_share_a_stream_and_get_what_each_asked_for() {
    let sim = Simulator::start(SimConfig {
        heartbeat: Duration::from_millis(300),
        max_connection_time: Some(Duration::from_millis(2500)),
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let auth = ["-u", "mara:Sommer2026!"];
    let subscribe = |folders: &str, types: &[&str]| {
        let types: String = types.iter().map(|t| format!("<t:EventType>{t}</t:EventType>")).collect();
        format!(
            r#"{HEAD}<m:Subscribe><m:StreamingSubscriptionRequest><t:FolderIds>{folders}</t:FolderIds><t:EventTypes>{types}</t:EventTypes></m:StreamingSubscriptionRequest></m:Subscribe>{TAIL}"#
        )
    };
    let (_, a) = curl(
        &sim.ews_url(),
        &auth,
        subscribe(r#"<t:DistinguishedFolderId Id="inbox"/>"#, &["NewMailEvent", "CreatedEvent", "ModifiedEvent"]),
    )
    .await;
    let (_, b) = curl(
        &sim.ews_url(),
        &auth,
        subscribe(
            r#"<t:DistinguishedFolderId Id="calendar"/><t:DistinguishedFolderId Id="voicemail"/>"#,
            &["NewMailEvent", "FreeBusyChangedEvent"],
        ),
    )
    .await;
    validates(&a).expect("Subscribe validates");
    let (a, b) =
        (between(&a, "<m:SubscriptionId>", "<").to_string(), between(&b, "<m:SubscriptionId>", "<").to_string());
    assert_ne!(a, b);
    let url = sim.ews_url();
    let stream = curl(
        &url,
        &auth,
        format!(
            r#"{HEAD}<m:GetStreamingEvents><m:SubscriptionIds><t:SubscriptionId>{a}</t:SubscriptionId><t:SubscriptionId>{b}</t:SubscriptionId></m:SubscriptionIds><m:ConnectionTimeout>1</m:ConnectionTimeout></m:GetStreamingEvents>{TAIL}"#
        ),
    );
    let changes = async {
        while sim.open_streams() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sim.deposit_voicemail(Voicemail { caller_number: "613".into(), ..Voicemail::default() });
        sim.free_busy_changed()
    };
    let ((status, body), calendar_item) = tokio::join!(stream, changes);
    assert_eq!(status, 200);
    let frames: Vec<String> = lamplighter_ews_wire::FrameSplitter::new(1 << 20)
        .push(body.as_bytes())
        .expect("frames")
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    for f in &frames {
        validates(&f.replace("m:Notification>", "t:Notification>")).expect("a streaming frame validates");
    }
    // the deposit reached both subscriptions at once: one frame, a Notification for each
    let deposit = frames.iter().find(|f| f.contains("CreatedEvent")).expect("the deposit's frame");
    assert!(deposit.contains(&format!("<t:SubscriptionId>{b}<")), "{deposit}");
    let notifications: Vec<&str> = frames.iter().flat_map(|f| f.split("<m:Notification>").skip(1)).collect();
    let of = |id: &str| -> String {
        notifications.iter().filter(|n| n.contains(&format!("<t:SubscriptionId>{id}<"))).copied().collect()
    };
    let (of_a, of_b) = (of(&a), of(&b));
    assert!(of_a.contains("CreatedEvent") && of_a.contains("<t:UnreadCount>1</t:UnreadCount>"), "{of_a}");
    assert!(!of_a.contains("FreeBusyChangedEvent"), "a does not watch the Calendar: {of_a}");
    // b asked for NewMailEvent and FreeBusyChangedEvent only: no CreatedEvent, no folder ModifiedEvent
    assert!(
        of_b.contains("NewMailEvent") && !of_b.contains("CreatedEvent") && !of_b.contains("ModifiedEvent"),
        "{of_b}"
    );
    let meeting = of_b.split("<t:FreeBusyChangedEvent>").nth(1).expect("b's FreeBusyChangedEvent");
    assert!(meeting.contains(&format!(r#"<t:ItemId Id="{calendar_item}""#)), "{meeting}");
    let (_, folders) = curl(&sim.ews_url(), &auth, format!(r#"{HEAD}<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="calendar"/></m:FolderIds></m:GetFolder>{TAIL}"#)).await;
    let calendar_id = between(&folders, "<t:FolderId Id=\"", "\"").to_string();
    assert!(meeting.contains(&format!(r#"<t:ParentFolderId Id="{calendar_id}""#)), "{meeting}");
    // our parser reads every frame, and keeps the event type it does not act on as such
    let kinds: Vec<lamplighter_ews_wire::streaming::EventKind> = frames
        .iter()
        .flat_map(|f| lamplighter_ews_wire::streaming::parse_streaming_frame(f.as_bytes()).expect("our parser"))
        .filter_map(|m| m.body)
        .flat_map(|b| b.notifications)
        .flat_map(|(_, events)| events)
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.contains(&lamplighter_ews_wire::streaming::EventKind::Other("FreeBusyChangedEvent".into())),
        "{kinds:?}"
    );
}
