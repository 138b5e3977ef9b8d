//! `lamplighter-gateway run`, the binary, against the Exchange simulator
//! (many mailboxes, one service account with ApplicationImpersonation) and
//! sipp as the PBX trunk taking the NOTIFYs of many extensions on one port.
//! Everything waits for what it expects to see (a NOTIFY in sipp's trace,
//! a figure in `/metrics`), bounded by generous guards.

use lamplighter_ews_sim::{SimConfig, Simulator, Voicemail};
use lamplighter_testkit::sipp::{Sipp, free_port};
use std::io::BufRead as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVICE: &str = "svc-lamp";
const SERVICE_PASSWORD: &str = "Dienst-2026!";

/// A NOTIFY sipp received: its extension and what the lamp said.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Notified {
    extension: String,
    account: String,
    waiting: bool,
    voice: String,
}

/// The NOTIFYs in sipp's message trace, in order.
fn notifies(trace: &str) -> Vec<Notified> {
    let mut out = Vec::new();
    for block in trace.split("NOTIFY sip:").skip(1) {
        let extension: String = block.chars().take_while(char::is_ascii_digit).collect();
        let field = |name: &str| {
            block.lines().find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string())).unwrap_or_default()
        };
        out.push(Notified {
            extension,
            account: field("Message-Account:"),
            waiting: field("Messages-Waiting:") == "yes",
            voice: field("Voice-Message:").split(' ').next().unwrap_or_default().to_string(),
        });
    }
    out
}

struct Running {
    child: Child,
    http: String,
    sip: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn metrics(&self) -> String {
        let out =
            Command::new("curl").args(["-sS", "--max-time", "10", &format!("http://{}/metrics", self.http)]).output();
        let out = out.expect("curl (./dev.sh setup installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The value of a metric line (`name{labels} value`).
fn figure(metrics: &str, line_start: &str) -> Option<f64> {
    metrics.lines().find(|l| l.starts_with(line_start)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

fn private_file(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// A trunk group `default` through the gateways at `ports`, in order.
fn trunk_group(ports: &[u16]) -> String {
    let mut t = String::new();
    for (i, p) in ports.iter().enumerate() {
        t += &format!("[[gateway]]\nname = \"trunk-{i}\"\naddress = \"127.0.0.1:{p}\"\ntransport = \"udp\"\n\n");
    }
    let names: Vec<String> = (0..ports.len()).map(|i| format!("\"trunk-{i}\"")).collect();
    t + &format!(
        "[[group]]\nname = \"default\"\ndelivery = \"trunk\"\ngateways = [{}]\ndomain = \"pbx.example.test\"\n",
        names.join(", ")
    )
}

/// Where the gateway's directory comes from in a test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `directory.toml` beside the settings.
    File,
    /// A `[directory.ldap]` table the routing text carries.
    Ldap,
}

fn start_gateway(dir: &Path, sim: &Simulator, routing: &str, phone_passwords: Option<&str>) -> Running {
    start_gateway_with(dir, sim, routing, phone_passwords, Source::File)
}

/// The settings file and the credentials folder of a test gateway.
fn write_settings(dir: &Path, sim: &Simulator, routing: &str, phone_passwords: Option<&str>, source: Source) {
    let creds = dir.join("credentials");
    std::fs::create_dir_all(&creds).expect("dir");
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    private_file(&creds.join("ews-password"), &format!("{SERVICE_PASSWORD}\n"));
    if let Some(p) = phone_passwords {
        private_file(&creds.join("phone-passwords"), p);
    }
    let config = format!(
        r#"
[exchange]
ews_url = "{}"
account = "EXAMPLE\\{SERVICE}"
auth = "ntlm"

[directory]
{file}every_secs = 1

[sip]
listen = "127.0.0.1:0"

[http]
listen = "127.0.0.1:0"

[state]
dir = "state"

{routing}
"#,
        sim.ews_url(),
        file = if source == Source::File { "file = \"directory.toml\"\n" } else { "" },
    );
    std::fs::write(dir.join("gateway.toml"), config).expect("config");
}

fn start_gateway_with(
    dir: &Path,
    sim: &Simulator,
    routing: &str,
    phone_passwords: Option<&str>,
    source: Source,
) -> Running {
    write_settings(dir, sim, routing, phone_passwords, source);
    spawn_gateway(dir)
}

/// Runs the gateway of `dir`'s settings and credentials until its running line.
fn spawn_gateway(dir: &Path) -> Running {
    let creds = dir.join("credentials");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lamplighter-gateway"))
        .arg("--config")
        .arg(dir.join("gateway.toml"))
        .arg("run")
        .env("CREDENTIALS_DIRECTORY", &creds)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gateway");
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let err = child.stderr.take().expect("stderr");
    let sink = stderr.clone();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
            s.push_str(&l);
            s.push('\n');
        }
    });
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("running line");
    let running: serde_json::Value = serde_json::from_str(first.trim()).unwrap_or_else(|e| {
        panic!("no running line ({e}): {first:?}\n{}", stderr.lock().unwrap_or_else(|p| p.into_inner()))
    });
    let http = running["http"].as_str().expect("http address").to_string();
    let sip = running["sip"].as_str().expect("sip address").to_string();
    Running { child, http, sip, stderr }
}

fn directory(dir: &Path, entries: &[(&str, &str)]) {
    let grouped: Vec<(&str, &str, &str)> = entries.iter().map(|(a, l)| (*a, *l, "default")).collect();
    directory_in(dir, &grouped);
}

/// Entries (address, line, group).
fn directory_in(dir: &Path, entries: &[(&str, &str, &str)]) {
    let text: String = entries
        .iter()
        .map(|(address, line, group)| {
            format!("[[mailbox]]\naddress = \"{address}\"\nline = \"{line}\"\ngroup = \"{group}\"\n\n")
        })
        .collect();
    // written whole and renamed, as an administrator's tool would, so no half file is read
    let tmp = dir.join(".directory.toml.tmp");
    std::fs::write(&tmp, text).expect("directory");
    std::fs::rename(&tmp, dir.join("directory.toml")).expect("rename");
}

/// Waits until `done` holds for sipp's NOTIFYs.
fn until(sipp: &Sipp, gw: &Running, what: &str, done: impl Fn(&[Notified]) -> bool) -> Vec<Notified> {
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(20));
    loop {
        let n = notifies(&sipp.messages());
        if done(&n) {
            return n;
        }
        assert!(Instant::now() < end, "{what}: not seen; NOTIFYs: {n:#?}\ngateway log:\n{}", gw.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `done` holds, within a guard over `expected`; `what` says what was seen when it does not.
fn wait_until(expected: Duration, done: impl Fn() -> bool, what: impl Fn() -> String) {
    let end = Instant::now() + lamplighter_testkit::guard(expected);
    while !done() {
        assert!(Instant::now() < end, "{}", what());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until a figure of `/metrics` satisfies `ok`.
fn wait_figure(gw: &Running, expected: Duration, name: &str, ok: impl Fn(Option<f64>) -> bool) {
    wait_until(expected, || ok(figure(&gw.metrics(), name)), || format!("{name}:\n{}", gw.metrics()));
}

fn of<'a>(n: &'a [Notified], ext: &str) -> Vec<&'a Notified> {
    n.iter().filter(|x| x.extension == ext).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_mailboxes_light_three_extensions_at_a_trunk_each_change_once_and_a_leaver_is_turned_off() {
    let sim = Simulator::start(SimConfig {
        users: vec![(SERVICE.into(), SERVICE_PASSWORD.into())],
        email: "postmaster@example.test".into(),
        mailboxes: vec!["ada@example.test".into(), "ben@example.test".into(), "cem@example.test".into()],
        impersonators: vec![SERVICE.into()],
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    // ben has a voicemail waiting before the gateway starts
    sim.mailbox("ben@example.test").expect("ben").deposit_voicemail(Voicemail {
        caller_number: "+49 30 1234".into(),
        duration_secs: 9,
        ..Voicemail::default()
    });
    let dir = tempfile::tempdir().expect("dir");
    directory(dir.path(), &[("ada@example.test", "201"), ("ben@example.test", "202"), ("cem@example.test", "203")]);
    let port = free_port();
    let trunk = Sipp::start_trunk(port, "notify-trunk.xml", false, 1000);
    let gw = start_gateway(dir.path(), &sim, &trunk_group(&[port]), None);

    // start-up: every extension gets its lamp, as its mailbox is
    let n =
        until(&trunk, &gw, "the three lamps at start", |n| ["201", "202", "203"].iter().all(|e| !of(n, e).is_empty()));
    assert_eq!(of(&n, "202")[0].voice, "1/0", "ben's waiting voicemail");
    assert!(of(&n, "202")[0].waiting);
    for ext in ["201", "203"] {
        assert!(!of(&n, ext)[0].waiting, "{ext} has nothing waiting");
    }
    for x in &n {
        assert_eq!(x.account, format!("sip:{}@pbx.example.test", x.extension), "the body names its own extension");
    }

    // a deposit into ada's mailbox lights 201, once; nobody else's lamp moves
    let before = n.len();
    let ada = sim.mailbox("ada@example.test").expect("ada");
    let vm = ada.deposit_voicemail(Voicemail {
        caller_number: "+49 89 555".into(),
        duration_secs: 4,
        ..Voicemail::default()
    });
    let n = until(&trunk, &gw, "201 on", |n| of(n, "201").iter().any(|x| x.waiting));
    assert_eq!(of(&n, "201").iter().filter(|x| x.waiting).count(), 1, "one NOTIFY for the change: {n:#?}");
    assert_eq!(n.len(), before + 1, "only 201's lamp changed: {n:#?}");
    assert_eq!(of(&n, "201").last().map(|x| x.voice.as_str()), Some("1/0"));

    // read elsewhere (another client): 201 goes off, once
    assert!(ada.set_read(&vm, true));
    let n = until(&trunk, &gw, "201 off", |n| of(n, "201").last().is_some_and(|x| !x.waiting && x.voice == "0/1"));
    assert_eq!(of(&n, "201").iter().filter(|x| x.voice == "0/1").count(), 1, "{n:#?}");

    // the metrics show the sends and the mailboxes
    let m = gw.metrics();
    assert_eq!(figure(&m, "lamplighter_gateway_mailboxes_watched "), Some(3.0), "{m}");
    wait_figure(&gw, Duration::from_secs(5), "lamplighter_gateway_mailboxes_live ", |v| v == Some(3.0));
    let sent = figure(&m, "lamplighter_gateway_lamp_sent_total{delivery=\"trunk\",code=\"200\"}").expect("sent");
    assert!(sent >= 5.0, "3 at start and 2 changes acknowledged: {m}");
    // the three mailboxes stream on one shared connection of their server
    let group = "{group=\"EXCH01.example.test~1941996295\"}";
    wait_figure(&gw, Duration::from_secs(5), &format!("lamplighter_gateway_streaming_subscriptions{group}"), |v| {
        v == Some(3.0)
    });
    assert_eq!(figure(&gw.metrics(), &format!("lamplighter_gateway_streaming_connections{group}")), Some(1.0));
    assert_eq!(sim.open_streams(), 1, "one GetStreamingEvents for all three");

    // cem's lamp is on when cem leaves the directory: it is turned off once, and cem is no longer watched
    let cem = sim.mailbox("cem@example.test").expect("cem");
    cem.deposit_voicemail(Voicemail { caller_number: "+49 40 777".into(), duration_secs: 3, ..Voicemail::default() });
    until(&trunk, &gw, "203 on", |n| of(n, "203").last().is_some_and(|x| x.waiting));
    directory(dir.path(), &[("ada@example.test", "201"), ("ben@example.test", "202")]);
    let n = until(&trunk, &gw, "203 off after leaving", |n| of(n, "203").last().is_some_and(|x| !x.waiting));
    assert_eq!(of(&n, "203").last().map(|x| x.voice.as_str()), Some("0/0"), "off, as a line that has no mailbox");
    wait_figure(&gw, Duration::from_secs(5), "lamplighter_gateway_mailboxes_watched ", |v| v == Some(2.0));
    let off = of(&n, "203").len();
    cem.deposit_voicemail(Voicemail { caller_number: "+49 40 778".into(), duration_secs: 3, ..Voicemail::default() });
    // a change that is 202's proves the gateway went on reading: 203 must not have moved meanwhile
    sim.mailbox("ben@example.test").expect("ben").deposit_voicemail(Voicemail {
        caller_number: "+49 30 999".into(),
        duration_secs: 2,
        ..Voicemail::default()
    });
    let n = until(&trunk, &gw, "202 at 2/0", |n| of(n, "202").last().is_some_and(|x| x.voice == "2/0"));
    assert_eq!(of(&n, "203").len(), off, "a mailbox that left is not watched: {n:#?}");

    // a directory that does not read keeps the last good one, and says so
    std::fs::write(dir.path().join("directory.toml"), "[[mailbox]]\naddress = \"broken\"\n").expect("write");
    wait_figure(&gw, Duration::from_secs(5), "lamplighter_gateway_directory_stale ", |v| v == Some(1.0));
    let m = gw.metrics();
    assert_eq!(figure(&m, "lamplighter_gateway_mailboxes_watched "), Some(2.0), "the last good directory: {m}");
    assert!(gw.log().contains("keeping the last good one"), "{}", gw.log());
    // every log line is one JSON object
    for l in gw.log().lines() {
        assert!(serde_json::from_str::<serde_json::Value>(l).is_ok(), "not JSON: {l}");
    }
    // every request reached its mailbox through impersonation, anchored on it
    let ews: Vec<_> = sim.served().into_iter().filter(|s| !s.mailbox.is_empty()).collect();
    assert!(!ews.is_empty());
    assert!(ews.iter().all(|s| s.anchor_mailbox.as_deref() == Some(s.mailbox.as_str())), "{ews:?}");
    assert!(ews.iter().all(|s| s.mailbox != "postmaster@example.test"), "never the service's own mailbox");
    assert!(sim.served().iter().all(|s| s.schema_valid), "every request passed the EWS schema");
    drop(gw);
    assert!(!trunk.log().contains("check_it"), "the trunk's checks all held:\n{}", trunk.log());
}

fn sim_with(mailboxes: &[&str]) -> SimConfig {
    SimConfig {
        users: vec![(SERVICE.into(), SERVICE_PASSWORD.into())],
        email: "postmaster@example.test".into(),
        mailboxes: mailboxes.iter().map(|m| m.to_string()).collect(),
        impersonators: vec![SERVICE.into()],
        ..SimConfig::default()
    }
}

fn vm(caller: &str) -> Voicemail {
    Voicemail { caller_number: caller.into(), duration_secs: 5, ..Voicemail::default() }
}

/// A phone registered and subscribed at Kamailio (presence + presence_mwi)
/// gets its lamp from the gateway's PUBLISH; a phone that subscribes to the
/// gateway itself, with digest, gets its own mailbox's lamp in the dialog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_at_kamailio_and_a_phone_subscribed_to_the_gateway_follow_their_mailboxes() {
    use lamplighter_testkit::baresip::Softphone;
    use lamplighter_testkit::kamailio::Kamailio;
    let sim = Simulator::start(sim_with(&["dan@example.test", "eve@example.test"])).await.expect("sim");
    let kamailio = Kamailio::start();
    let at_kamailio = Softphone::start(kamailio.addr, "unused");
    kamailio.wait_for("request SUBSCRIBE sip:613@127.0.0.1", 0);
    let dir = tempfile::tempdir().expect("dir");
    directory_in(dir.path(), &[("dan@example.test", "613", "presence"), ("eve@example.test", "613", "desk")]);
    let routing = format!(
        "[[group]]\nname = \"presence\"\ndelivery = \"publish\"\nserver = \"sip:{}\"\ndomain = \"127.0.0.1\"\n\n\
         [[group]]\nname = \"desk\"\ndelivery = \"subscribe\"\ndomain = \"127.0.0.1\"\n",
        kamailio.addr
    );
    let gw = start_gateway(dir.path(), &sim, &routing, Some("613 pw-613\n"));
    let ours: std::net::SocketAddr = gw_sip(&gw).parse().expect("sip address");
    let subscribed = Softphone::start(ours, "pw-613");

    // both start dark (their mailboxes are empty), each from its own path
    let a0 = at_kamailio.wait_for("Voice-Message: 0/0", 0);
    let b0 = subscribed.wait_for("Voice-Message: 0/0", 0);
    // dan's deposit reaches the phone at Kamailio, and only it
    let dan = sim.mailbox("dan@example.test").expect("dan");
    let dans = dan.deposit_voicemail(vm("+49 30 1"));
    let a1 = at_kamailio.wait_for("Voice-Message: 1/0", a0);
    assert!(at_kamailio.text()[a0..a1].contains("Messages-Waiting: yes"), "{}", at_kamailio.text());
    // eve's two reach the subscribed phone
    let eve = sim.mailbox("eve@example.test").expect("eve");
    eve.deposit_voicemail(vm("+49 30 2"));
    eve.deposit_voicemail(vm("+49 30 3"));
    subscribed.wait_for("Voice-Message: 2/0", b0);
    // dan reads his elsewhere: off at Kamailio's phone
    assert!(dan.set_read(&dans, true));
    at_kamailio.wait_for("Voice-Message: 0/1", a1);
    assert!(!subscribed.text().contains("Voice-Message: 0/1"), "eve's phone never showed dan's lamp");
    assert!(!at_kamailio.text().contains("Voice-Message: 2/0"), "dan's phone never showed eve's lamp");
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(5));
    loop {
        let m = gw.metrics();
        let publish = figure(&m, "lamplighter_gateway_lamp_sent_total{delivery=\"publish\",code=\"200\"}");
        let subscribe = figure(&m, "lamplighter_gateway_lamp_sent_total{delivery=\"subscribe\",code=\"200\"}");
        if publish >= Some(3.0)
            && subscribe >= Some(2.0)
            && figure(&m, "lamplighter_gateway_subscriptions ") == Some(1.0)
        {
            break;
        }
        assert!(Instant::now() < end, "{m}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn gw_sip(gw: &Running) -> String {
    gw.sip.trim_start_matches("udp:").to_string()
}

/// Two gateways in a trunk group: the first is killed, and every lamp
/// goes on through the second within the failover policy; the metrics show
/// the first as down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_first_trunk_gateway_dies_the_lamps_go_through_the_second() {
    let sim = Simulator::start(sim_with(&["ada@example.test", "ben@example.test"])).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    directory(dir.path(), &[("ada@example.test", "201"), ("ben@example.test", "202")]);
    let (pa, pb) = (free_port(), free_port());
    let first = Sipp::start_trunk(pa, "notify-trunk.xml", false, 1000);
    let second = Sipp::start_trunk(pb, "notify-trunk.xml", false, 1000);
    let gw = start_gateway(dir.path(), &sim, &trunk_group(&[pa, pb]), None);
    // round robin: the two start-up lamps go one through each
    let both = |s: &Sipp| notifies(&s.messages()).len();
    wait_until(
        Duration::from_secs(20),
        || both(&first) + both(&second) >= 2,
        || format!("start-up lamps: {}", gw.log()),
    );
    assert_eq!((both(&first), both(&second)), (1, 1), "one each, in turn");
    drop(first);
    let before = both(&second);
    sim.mailbox("ada@example.test").expect("ada").deposit_voicemail(vm("+49 1"));
    sim.mailbox("ben@example.test").expect("ben").deposit_voicemail(vm("+49 2"));
    let n = until(&second, &gw, "both lamps on at the second gateway", |n| {
        ["201", "202"].iter().all(|e| of(n, e).last().is_some_and(|x| x.waiting))
    });
    assert!(n.len() >= before + 2, "{n:#?}");
    wait_figure(&gw, Duration::from_secs(5), "lamplighter_gateway_sip_gateway_up{gateway=\"trunk-0\"}", |v| {
        v == Some(0.0)
    });
    assert!(gw.log().contains("marked down"), "{}", gw.log());
}

/// Faults on both sides of the gateway: the simulator restarts (every
/// subscription lost), and the gateway itself is killed with SIGKILL while
/// a mailbox changes. After each, every lamp shows its mailbox again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_exchange_restart_and_a_kill_9_of_the_gateway_every_lamp_is_right_again() {
    let sim = Simulator::start(sim_with(&["ada@example.test", "ben@example.test"])).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    directory(dir.path(), &[("ada@example.test", "201"), ("ben@example.test", "202")]);
    let port = free_port();
    let trunk = Sipp::start_trunk(port, "notify-trunk.xml", false, 1000);
    let gw = start_gateway(dir.path(), &sim, &trunk_group(&[port]), None);
    until(&trunk, &gw, "start-up lamps", |n| !of(n, "201").is_empty() && !of(n, "202").is_empty());
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(10));
    let both = "lamplighter_gateway_streaming_subscriptions{group=\"EXCH01.example.test~1941996295\"}";
    while sim.open_streams() != 1 || figure(&gw.metrics(), both) != Some(2.0) {
        assert!(Instant::now() < end, "both mailboxes streaming on one connection: {}", gw.metrics());
        std::thread::sleep(Duration::from_millis(50));
    }

    // Exchange restarts: every subscription is gone; a deposit made meanwhile still lights 201
    sim.restart();
    sim.mailbox("ada@example.test").expect("ada").deposit_voicemail(vm("+49 1"));
    until(&trunk, &gw, "201 on after the restart", |n| of(n, "201").last().is_some_and(|x| x.voice == "1/0"));

    // every NOTIFY sipp saw is acknowledged in the gateway's figures (and so in its state database)
    let seen = notifies(&trunk.messages()).len() as f64;
    let sent = "lamplighter_gateway_lamp_sent_total{delivery=\"trunk\",code=\"200\"}";
    wait_figure(&gw, Duration::from_secs(5), sent, |v| v >= Some(seen));

    // SIGKILL: no goodbye, no unsubscribe; ben's voicemail arrives while the gateway is dead
    let mut gw = gw;
    gw.child.kill().expect("kill -9");
    gw.child.wait().expect("reaped");
    sim.mailbox("ben@example.test").expect("ben").deposit_voicemail(vm("+49 2"));
    let before = notifies(&trunk.messages());
    let gw = start_gateway(dir.path(), &sim, &trunk_group(&[port]), None);
    // the changed lamp goes once
    until(&trunk, &gw, "202 on after the restart", |n| of(n, "202").last().is_some_and(|x| x.voice == "1/0"));
    wait_figure(&gw, Duration::from_secs(10), "lamplighter_gateway_mailboxes_live ", |v| v == Some(2.0));
    // a later change of ben's marks the point by which a needless resend of 201 would have gone
    sim.mailbox("ben@example.test").expect("ben").deposit_voicemail(vm("+49 3"));
    let n = until(&trunk, &gw, "202 at 2/0", |n| of(n, "202").last().is_some_and(|x| x.voice == "2/0"));
    assert_eq!(of(&n, "201").len(), of(&before, "201").len(), "201 did not change and was not sent again: {n:#?}");
    assert_eq!(of(&n, "202").len(), of(&before, "202").len() + 2, "202: once for the change while down, once after");
    assert!(dir.path().join("state/gateway.sqlite").exists());
}

/// The directory from OpenLDAP (slapd started by the test): people with
/// `mail` and `telephoneNumber` are watched, bound as a service account; a
/// person deleted in LDAP has the lamp turned off; while LDAP is
/// unreachable the last directory is kept and the metrics say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_from_ldap_follows_its_people_and_survives_ldap_being_down() {
    use lamplighter_testkit::slapd::{self, Slapd};
    let mut ldap = Slapd::start();
    ldap.add(&(Slapd::person("ada", "ada@example.test", "+49 5251 30-201")
        + &Slapd::person("ben", "ben@example.test", "+49 5251 30-202")
        + "dn: uid=nomail,ou=people,dc=example,dc=test\nobjectClass: inetOrgPerson\nuid: nomail\ncn: x\nsn: x\ntelephoneNumber: 299\n"));
    let sim = Simulator::start(sim_with(&["ada@example.test", "ben@example.test"])).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let trunk = Sipp::start_trunk(port, "notify-trunk.xml", false, 1000);
    let creds = dir.path().join("credentials");
    std::fs::create_dir_all(&creds).expect("dir");
    private_file(&creds.join("ldap-password"), slapd::SERVICE_PASSWORD);
    let routing = format!(
        "{}\n[directory.ldap]\nurl = \"{}\"\nbind_dn = \"{}\"\nbase = \"ou=people,{}\"\nfilter = \"(objectClass=inetOrgPerson)\"\nline_last_digits = 3\n",
        trunk_group(&[port]),
        ldap.url(),
        slapd::SERVICE_DN,
        slapd::BASE
    );
    let gw = start_gateway_with(dir.path(), &sim, &routing, None, Source::Ldap);
    let n = until(&trunk, &gw, "both people's lamps", |n| !of(n, "201").is_empty() && !of(n, "202").is_empty());
    assert!(of(&n, "299").is_empty(), "an entry without mail is skipped: {n:#?}");
    assert!(gw.log().contains("skipped: no mail"), "{}", gw.log());
    sim.mailbox("ben@example.test").expect("ben").deposit_voicemail(vm("+49 1"));
    until(&trunk, &gw, "202 on", |n| of(n, "202").last().is_some_and(|x| x.waiting));

    // ben leaves the company: deleted in LDAP, his lamp goes off once
    ldap.delete(&format!("uid=ben,ou=people,{}", slapd::BASE));
    until(&trunk, &gw, "202 off", |n| of(n, "202").last().is_some_and(|x| !x.waiting));
    wait_figure(&gw, Duration::from_secs(5), "lamplighter_gateway_mailboxes_watched ", |v| v == Some(1.0));

    // LDAP down: the last directory stays, and the metrics say it is stale
    ldap.pause();
    wait_figure(&gw, Duration::from_secs(10), "lamplighter_gateway_directory_stale ", |v| v == Some(1.0));
    assert_eq!(figure(&gw.metrics(), "lamplighter_gateway_mailboxes_watched "), Some(1.0));
    let ada = sim.mailbox("ada@example.test").expect("ada");
    ada.deposit_voicemail(vm("+49 2"));
    until(&trunk, &gw, "201 on while LDAP is down", |n| of(n, "201").last().is_some_and(|x| x.waiting));
    // back: fresh again
    ldap.resume();
    wait_figure(&gw, Duration::from_secs(10), "lamplighter_gateway_directory_stale ", |v| v == Some(0.0));
    assert!(figure(&gw.metrics(), "lamplighter_gateway_directory_errors_total ") >= Some(1.0));
}

/// A throttling storm: Exchange answers ErrorServerBusy (with its
/// back-off) to the next 30 requests while voicemail arrives. The gateway
/// waits as asked, counts the back-offs, and every lamp ends right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_storm_is_waited_out_and_counted_and_the_lamps_end_right() {
    let sim = Simulator::start(sim_with(&["ada@example.test", "ben@example.test"])).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    directory(dir.path(), &[("ada@example.test", "201"), ("ben@example.test", "202")]);
    let port = free_port();
    let trunk = Sipp::start_trunk(port, "notify-trunk.xml", false, 1000);
    let gw = start_gateway(dir.path(), &sim, &trunk_group(&[port]), None);
    until(&trunk, &gw, "start-up lamps", |n| !of(n, "201").is_empty() && !of(n, "202").is_empty());
    sim.throttle(30, Duration::from_millis(200));
    sim.mailbox("ada@example.test").expect("ada").deposit_voicemail(vm("+49 1"));
    sim.mailbox("ben@example.test").expect("ben").deposit_voicemail(vm("+49 2"));
    sim.mailbox("ben@example.test").expect("ben").deposit_voicemail(vm("+49 3"));
    until(&trunk, &gw, "both lamps right after the storm", |n| {
        of(n, "201").last().is_some_and(|x| x.voice == "1/0") && of(n, "202").last().is_some_and(|x| x.voice == "2/0")
    });
    wait_figure(&gw, Duration::from_secs(5), "lamplighter_gateway_exchange_throttled_total ", |v| v >= Some(1.0));
    let busy: Vec<_> = sim.served().into_iter().filter(|s| s.status == 500 && !s.mailbox.is_empty()).collect();
    assert!(!busy.is_empty(), "the storm was served");
    assert!(gw.log().contains("server busy, waiting 200 ms as asked"), "{}", gw.log());
}

/// `lamplighter-gateway check`: each step's verdict, and what to do when
/// one fails: a service account without the role, a gateway that is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_each_step_and_what_to_do_when_one_fails() {
    let dir = tempfile::tempdir().expect("dir");
    directory(dir.path(), &[("ada@example.test", "201")]);
    let up = free_port();
    let gone = lamplighter_testkit::process::free_tcp_port();
    let answering = Sipp::start_trunk(up, "options-uas.xml", false, 10);
    let routing = format!(
        "[[gateway]]\nname = \"up\"\naddress = \"127.0.0.1:{up}\"\n\n[[gateway]]\nname = \"gone\"\naddress = \"127.0.0.1:{gone}\"\ntransport = \"tcp\"\n\n\
         [[group]]\nname = \"default\"\ndelivery = \"trunk\"\ngateways = [\"up\", \"gone\"]\ndomain = \"pbx.example.test\"\n"
    );
    let run = |sim: &Simulator| {
        write_settings(dir.path(), sim, &routing, None, Source::File);
        let out = Command::new(env!("CARGO_BIN_EXE_lamplighter-gateway"))
            .arg("--config")
            .arg(dir.path().join("gateway.toml"))
            .arg("check")
            .env("CREDENTIALS_DIRECTORY", dir.path().join("credentials"))
            .output()
            .expect("check");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let with_role = Simulator::start(sim_with(&["ada@example.test"])).await.expect("sim");
    let (ok, text) = run(&with_role);
    assert!(!ok, "one gateway is gone: {text}");
    assert!(text.contains("ok    directory"), "{text}");
    assert!(text.contains("ok    credential ews-password"), "{text}");
    assert!(
        text.contains("ok    SIP gateway up (sip:127.0.0.1:") && text.contains("answers OPTIONS with 200"),
        "{text}"
    );
    assert!(text.contains("FAIL  SIP gateway gone"), "{text}");
    assert!(text.contains(&format!("ok    EXAMPLE\\{SERVICE} impersonating ada@example.test")), "{text}");
    drop(answering);

    let without_role = Simulator::start(SimConfig { impersonators: Vec::new(), ..sim_with(&["ada@example.test"]) })
        .await
        .expect("sim");
    let (ok, text) = run(&without_role);
    assert!(!ok);
    assert!(text.contains("FAIL  EXAMPLE\\svc-lamp impersonating ada@example.test"), "{text}");
    assert!(text.contains("ErrorImpersonateUserDenied") && text.contains("ApplicationImpersonation"), "{text}");
}

const APP: &str = "3b8f2a4c-7d1e-4f5a-9b6c-0d2e4f6a8b1c";

/// A self-signed certificate and its key for an app registration, as `openssl` makes them.
fn app_certificate() -> (String, String) {
    let dir = tempfile::tempdir().expect("tmp");
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=lamplighter-gateway"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (std::fs::read_to_string(cert).expect("cert"), std::fs::read_to_string(key).expect("key"))
}

/// Settings for app-only Graph with change notifications to a webhook on `port`
/// (TLS with `webhook`'s certificate); polling once an hour, so a lamp that
/// changes within the test changed by a notification.
fn write_graph_settings(
    dir: &Path,
    sim: &Simulator,
    app: &(String, String),
    webhook: &lamplighter_testkit::tls::TestCa,
    port: u16,
    routing: &str,
) {
    let creds = dir.join("credentials");
    std::fs::create_dir_all(&creds).expect("dir");
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    private_file(&creds.join("graph-certificate"), &app.0);
    private_file(&creds.join("graph-key"), &app.1);
    private_file(&creds.join("webhook-certificate"), &webhook.cert_pem);
    private_file(&creds.join("webhook-key"), &webhook.key_pem);
    let config = format!(
        r#"
[graph]
tenant = "contoso.onmicrosoft.com"
client_id = "{APP}"
authority = "{base}"
graph_url = "{graph}"
poll_secs = 3600

[graph.notifications]
url = "https://127.0.0.1:{port}/graph/notify"
listen = "127.0.0.1:{port}"
poll_secs = 3600

[directory]
file = "directory.toml"
every_secs = 1

[sip]
listen = "127.0.0.1:0"

[http]
listen = "127.0.0.1:0"

[state]
dir = "state"

{routing}
"#,
        base = sim.base_url(),
        graph = sim.graph_url(),
    );
    std::fs::write(dir.join("gateway.toml"), config).expect("config");
}

/// Exchange Online through app-only Graph: the app signs in with its
/// certificate, reads only the mailboxes RBAC for Applications gives it,
/// and learns of changes by Graph's change notifications to its webhook
/// (validated, clientState checked) — with polling at once an hour, every
/// change below reaches its lamp by a notification. A notification Graph
/// missed is caught up by delta, a removed subscription is made again, and
/// a stranger's POST to the webhook changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_online_lamps_follow_graph_change_notifications_through_lifecycle_events() {
    use lamplighter_ews_sim::{AppRegistration, EntraConfig, LifecycleEvent};
    let app = app_certificate();
    let webhook = lamplighter_testkit::tls::TestCa::new();
    let inside = ["ada@contoso.com", "ben@contoso.com", "cem@contoso.com"];
    let sim = Simulator::start(SimConfig {
        email: "postmaster@contoso.com".into(),
        mailboxes: inside.iter().map(|m| m.to_string()).chain(["dan@contoso.com".to_string()]).collect(),
        entra: EntraConfig {
            apps: vec![AppRegistration {
                client_id: APP.into(),
                certificate_pem: app.0.clone(),
                roles: vec!["Mail.Read".into()],
                // the management scope: the gateway's users, not dan
                mailboxes: Some(inside.iter().map(|m| m.to_string()).collect()),
            }],
            ..EntraConfig::default()
        },
        webhook_ca_pem: Some(webhook.ca_pem.clone().into_bytes()),
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    sim.mailbox("ben@contoso.com").expect("ben").deposit_voicemail(vm("+49 30 1234"));
    let dir = tempfile::tempdir().expect("dir");
    directory(
        dir.path(),
        &[
            ("ada@contoso.com", "201"),
            ("ben@contoso.com", "202"),
            ("cem@contoso.com", "203"),
            ("dan@contoso.com", "204"),
        ],
    );
    let port = free_port();
    let trunk = Sipp::start_trunk(port, "notify-trunk.xml", false, 1000);
    let hook = lamplighter_testkit::process::free_tcp_port();
    write_graph_settings(dir.path(), &sim, &app, &webhook, hook, &trunk_group(&[port]));
    let gw = spawn_gateway(dir.path());

    // start-up: the three lamps the app may read, ben's on
    let n = until(&trunk, &gw, "three lamps", |n| ["201", "202", "203"].iter().all(|e| !of(n, e).is_empty()));
    assert_eq!(of(&n, "202")[0].voice, "1/0");
    // each has a live subscription, made through the webhook's validation; dan is refused by RBAC
    wait_figure(&gw, Duration::from_secs(10), "lamplighter_gateway_graph_subscriptions_live ", |v| v == Some(3.0));
    wait_figure(&gw, Duration::from_secs(10), "lamplighter_gateway_graph_subscription_failures_total ", |v| {
        v >= Some(1.0)
    });
    let subs = sim.graph_subscriptions();
    assert_eq!(subs.len(), 3, "{subs:?}");
    assert!(subs.iter().all(|(_, m, _)| m != "dan@contoso.com"));
    assert!(of(&notifies(&trunk.messages()), "204").is_empty(), "no lamp for a mailbox the app may not read");

    // a deposit: a notification, a delta round, the lamp; once
    let ada = sim.mailbox("ada@contoso.com").expect("ada");
    let before = notifies(&trunk.messages()).len();
    let v = ada.deposit_voicemail(vm("+49 89 555"));
    let n = until(&trunk, &gw, "201 on", |n| of(n, "201").iter().any(|x| x.waiting));
    assert_eq!(n.len(), before + 1, "only 201 changed: {n:#?}");
    assert!(ada.set_read(&v, true));
    until(&trunk, &gw, "201 off", |n| of(n, "201").last().is_some_and(|x| x.voice == "0/1"));
    wait_figure(&gw, Duration::from_secs(5), "lamplighter_gateway_graph_notifications_total ", |v| v >= Some(2.0));

    // Graph's pipeline stalls and drops ben's notification: `missed` makes the gateway catch up by delta
    sim.graph_pause(true);
    sim.mailbox("ben@contoso.com").expect("ben").deposit_voicemail(vm("+49 30 5678"));
    assert_eq!(sim.graph_lifecycle("ben@contoso.com", LifecycleEvent::Missed), 1);
    sim.graph_pause(false);
    until(&trunk, &gw, "202 at 2/0 after missed", |n| of(n, "202").last().is_some_and(|x| x.voice == "2/0"));
    wait_figure(&gw, Duration::from_secs(5), "lamplighter_gateway_graph_lifecycle_total{event=\"missed\"}", |v| {
        v == Some(1.0)
    });

    // Graph removes cem's subscription: a new one is made, and it carries the next change
    let old: Vec<String> =
        sim.graph_subscriptions().into_iter().filter(|(_, m, _)| m == "cem@contoso.com").map(|(id, _, _)| id).collect();
    assert_eq!(sim.graph_lifecycle("cem@contoso.com", LifecycleEvent::SubscriptionRemoved), 1);
    wait_until(
        Duration::from_secs(10),
        || sim.graph_subscriptions().iter().any(|(id, m, _)| m == "cem@contoso.com" && !old.contains(id)),
        || format!("cem's subscription was not made again: {:?}\n{}", sim.graph_subscriptions(), gw.log()),
    );
    sim.mailbox("cem@contoso.com").expect("cem").deposit_voicemail(vm("+49 40 777"));
    until(&trunk, &gw, "203 on", |n| of(n, "203").last().is_some_and(|x| x.waiting));

    // Graph wants the access confirmed: notifications are held until the gateway renews, then flow again
    assert_eq!(sim.graph_lifecycle("ada@contoso.com", LifecycleEvent::ReauthorizationRequired), 1);
    wait_figure(
        &gw,
        Duration::from_secs(5),
        "lamplighter_gateway_graph_lifecycle_total{event=\"reauthorizationRequired\"}",
        |v| v == Some(1.0),
    );
    ada.deposit_voicemail(vm("+49 89 556"));
    until(&trunk, &gw, "201 on after the renewal", |n| of(n, "201").last().is_some_and(|x| x.voice == "1/1"));
    assert!(
        sim.served().iter().any(|s| s.op.starts_with("graph PATCH /subscriptions/") && s.status == 200),
        "renewed by PATCH"
    );

    // a stranger posts to the webhook: a forged notification changes nothing; the validation echo is only the token
    let url = format!("https://127.0.0.1:{hook}/graph/notify");
    let ca = webhook.ca_file();
    let curl = |args: &[&str]| {
        let out = Command::new("curl").arg("-sS").arg("--cacert").arg(&ca).args(args).output().expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let forged = format!(
        r#"{{"value":[{{"subscriptionId":"{}","clientState":"guess","changeType":"created","resource":"Users/x/Messages/y"}}]}}"#,
        sim.graph_subscriptions()[0].0
    );
    let status = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "content-type: application/json",
        "--data",
        &forged,
        &url,
    ]);
    assert_eq!(status, "403");
    assert_eq!(curl(&["-X", "POST", &format!("{url}?validationToken=abc%20123")]), "abc 123");
    wait_figure(&gw, Duration::from_secs(5), "lamplighter_gateway_graph_notifications_refused_total ", |v| {
        v >= Some(1.0)
    });
    let (delivered, dropped) = sim.graph_deliveries();
    assert!(delivered >= 4 && dropped == 0, "{delivered} delivered, {dropped} dropped");
    // the gateway read with its app token only: never /me, never dan's messages
    let graph: Vec<_> = sim.served().into_iter().filter(|s| s.op.starts_with("graph ")).collect();
    assert!(graph.iter().all(|s| !s.op.contains("/me/")), "{graph:?}");
    assert!(
        graph.iter().any(|s| s.op.contains("/users/dan%40contoso.com/") && s.status == 403),
        "dan is refused: {graph:?}"
    );
    // a clean stop (SIGTERM) ends every subscription at Graph
    let mut gw = gw;
    let pid = gw.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let status = gw.child.wait().expect("the gateway ends");
    assert!(status.success(), "{status:?}\n{}", gw.log());
    assert!(sim.graph_subscriptions().is_empty(), "left behind: {:?}", sim.graph_subscriptions());
    drop(gw);
    assert!(!trunk.log().contains("check_it"), "the trunk's checks all held:\n{}", trunk.log());
}

/// Without a webhook the gateway polls each mailbox by delta at its pace;
/// `check` signs the app in and names RBAC for Applications when a mailbox
/// is outside the app's scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_online_without_a_webhook_polls_and_check_names_the_rbac_scope() {
    use lamplighter_ews_sim::{AppRegistration, EntraConfig};
    let app = app_certificate();
    let sim = Simulator::start(SimConfig {
        email: "postmaster@contoso.com".into(),
        mailboxes: vec!["ada@contoso.com".into(), "dan@contoso.com".into()],
        entra: EntraConfig {
            apps: vec![AppRegistration {
                client_id: APP.into(),
                certificate_pem: app.0.clone(),
                roles: vec!["Mail.Read".into()],
                mailboxes: Some(vec!["ada@contoso.com".into()]),
            }],
            ..EntraConfig::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let trunk = Sipp::start_trunk(port, "notify-trunk.xml", false, 1000);
    let webhook = lamplighter_testkit::tls::TestCa::new();
    write_graph_settings(dir.path(), &sim, &app, &webhook, 0, &trunk_group(&[port]));
    // no [graph.notifications]; a poll each second
    let text = std::fs::read_to_string(dir.path().join("gateway.toml")).expect("read");
    let start = text.find("[graph.notifications]").expect("section");
    let end = text.find("[directory]").expect("next");
    let text = format!("{}{}", &text[..start], &text[end..]).replace("poll_secs = 3600", "poll_secs = 1");
    std::fs::write(dir.path().join("gateway.toml"), text).expect("write");

    let check = || {
        let out = Command::new(env!("CARGO_BIN_EXE_lamplighter-gateway"))
            .arg("--config")
            .arg(dir.path().join("gateway.toml"))
            .arg("check")
            .env("CREDENTIALS_DIRECTORY", dir.path().join("credentials"))
            .output()
            .expect("check");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    directory(dir.path(), &[("dan@contoso.com", "204")]);
    let (ok, text) = check();
    assert!(!ok, "{text}");
    assert!(text.contains(&format!("ok    app {APP} signs in")), "{text}");
    assert!(
        text.contains("FAIL  the app reads dan@contoso.com's Inbox") && text.contains("New-ManagementRoleAssignment"),
        "{text}"
    );
    directory(dir.path(), &[("ada@contoso.com", "201")]);
    // (the trunk's scenario takes NOTIFYs only: its OPTIONS step fails, the app's steps do not)
    let (_, text) = check();
    assert!(text.contains("ok    the app reads ada@contoso.com's Inbox"), "{text}");
    assert!(!text.contains("FAIL  app") && !text.contains("FAIL  the app"), "{text}");

    let gw = spawn_gateway(dir.path());
    until(&trunk, &gw, "201 at start", |n| !of(n, "201").is_empty());
    sim.mailbox("ada@contoso.com").expect("ada").deposit_voicemail(vm("+49 89 1"));
    until(&trunk, &gw, "201 on by polling", |n| of(n, "201").last().is_some_and(|x| x.waiting));
    assert!(sim.graph_subscriptions().is_empty(), "no webhook, no subscription");
}
