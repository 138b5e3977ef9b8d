//! The engine handle: the one API the tray app, the headless agent and the
//! tests drive.
//!
//! It owns the settings (load, validate, save), the secrets that go with
//! them (passwords into the keyring, never into the file), and the
//! [`Snapshot`] of state that front ends render (counts, tooltip, health,
//! playback, problems). [`Engine::start_live`] runs the mailbox (or the demo)
//! behind it ([`live`]); the actions reach that run: [`Engine::lists`],
//! [`Engine::mark_heard`], [`Engine::mark_call_seen`], [`Engine::play`]
//! ([`playback`]), [`Engine::resend_lamp`], [`Engine::retry_now`],
//! [`Engine::check`]. What deserves a desktop notification is decided here
//! too ([`alerts`]) and handed to [`Engine::subscribe_alerts`] listeners.
//!
//! Front ends send actions and render what they get back or what
//! [`Engine::subscribe`] pushes; they hold no state of their own. Errors
//! carry a stable [`EngineError::code`] so a UI matches on codes, never on
//! message text.

use lamplighter_config::{ConfigError, FieldError, Paths, Settings, SettingsForm};
use lamplighter_secrets::{Keyring, Secret, SecretKey, SecretsError, StoreKind};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

pub mod alerts;
pub mod live;
pub mod playback;

pub mod lamp_test;

pub use alerts::{Alert, AlertAction, AlertKind};
pub use lamplighter_demo::Backend as DemoBackend;
pub use lamplighter_demo::Narration;
pub use lamplighter_inbox::{Counts as MessageCounts, Kind, Notification, Summary};
pub use lamplighter_mailbox::{CheckStep, Connection};
pub use lamplighter_runner::RunEvent;
pub use lamplighter_sip_mwi::relay::LampResult;
/// The words every front end shows, in the user's language.
pub use lamplighter_view as view;
pub use lamplighter_view::{Lang, Lists};
pub use live::{Live, LiveEvent, LiveOptions};
pub use playback::{HEARD_AFTER, PlaybackPhase, PlaybackView};

/// What the live engine may change in the state.
pub(crate) struct LiveView<'a> {
    pub summary: &'a mut Summary,
    pub demo: &'a mut bool,
    pub connection: &'a mut Option<Connection>,
    pub problem: &'a mut Option<Problem>,
    pub revision: &'a mut u64,
    pub playback: &'a mut Option<PlaybackView>,
}

/// Opens `url` in the user's web browser: the command in `$BROWSER` when it
/// is set (the convention xdg-utils and most tools keep; the URL is its one
/// argument, no shell), else the desktop's handler for `https:`.
///
/// # Errors
/// Why no browser could be started.
pub fn open_in_browser(url: &str) -> Result<(), String> {
    match std::env::var("BROWSER").ok().filter(|b| !b.trim().is_empty()) {
        Some(browser) => {
            let first = browser.split(':').next().unwrap_or(&browser).trim().to_string();
            std::process::Command::new(&first)
                .arg(url)
                .stdin(std::process::Stdio::null())
                .spawn()
                .map(drop)
                .map_err(|e| format!("$BROWSER ({first}) did not start: {e}"))
        }
        None => open::that_detached(url).map_err(|e| format!("no browser opens {url}: {e}")),
    }
}

/// Why an engine action failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Some fields are invalid; nothing was changed.
    #[error("some settings are invalid")]
    Invalid(Vec<FieldError>),
    /// The settings file could not be read or written.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The keyring refused.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The mailbox is not connected (yet), so the action cannot run.
    #[error("the mailbox is not connected")]
    NotConnected,
    /// The settings describe no run that can start (no password, a bad
    /// `[user]` section, an unreadable CA file, …).
    #[error("{0}")]
    Setup(String),
    /// The mailbox refused or failed the action.
    #[error(transparent)]
    Mailbox(#[from] lamplighter_mailbox::MailboxError),
    /// The recording cannot be played.
    #[error(transparent)]
    Playback(#[from] lamplighter_player::PlayError),
    /// The Microsoft sign-in did not end signed in.
    #[error(transparent)]
    SignIn(#[from] lamplighter_signin::SignInError),
    /// A task of the engine's died (a bug; the log has more).
    #[error("an engine task failed: {0}")]
    Task(String),
}

impl EngineError {
    /// A stable code for front ends.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Invalid(_) => "invalid_settings",
            EngineError::Config(ConfigError::TooNew { .. }) => "config_too_new",
            EngineError::Config(ConfigError::Corrupt { .. }) => "config_corrupt",
            EngineError::Config(_) => "config_io",
            EngineError::Secrets(SecretsError::Unavailable { .. }) => "keyring_unavailable",
            EngineError::Secrets(SecretsError::Locked { .. }) => "keyring_locked",
            EngineError::Secrets(_) => "keyring_error",
            EngineError::NotConnected => "not_connected",
            EngineError::Setup(_) => "mailbox_setup",
            EngineError::Mailbox(_) => "mailbox_error",
            EngineError::Playback(lamplighter_player::PlayError::Unsupported { .. }) => "unsupported_format",
            EngineError::Playback(_) => "playback_failed",
            EngineError::SignIn(lamplighter_signin::SignInError::NotSignedIn) => "not_signed_in",
            EngineError::SignIn(lamplighter_signin::SignInError::SignInAgain(_)) => "sign_in_again",
            EngineError::SignIn(lamplighter_signin::SignInError::Blocked(_)) => "sign_in_blocked",
            EngineError::SignIn(lamplighter_signin::SignInError::Abandoned(_)) => "sign_in_abandoned",
            EngineError::SignIn(_) => "sign_in_failed",
            EngineError::Task(_) => "internal",
        }
    }

    /// The error as `{code, message, fields}` for a front end.
    pub fn to_report(&self) -> ErrorReport {
        ErrorReport {
            code: self.code().into(),
            message: self.to_string(),
            fields: match self {
                EngineError::Invalid(f) => f.clone(),
                _ => Vec::new(),
            },
        }
    }
}

/// An error as front ends receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReport {
    /// Stable machine-readable code.
    pub code: String,
    /// A sentence for the user.
    pub message: String,
    /// Per-field messages for `invalid_settings`.
    pub fields: Vec<FieldError>,
}

/// Something the user should know about, shown until it is resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// What kind of problem, for front ends to match on.
    pub code: ProblemCode,
    /// A sentence for the user.
    pub message: String,
}

/// The kinds of [`Problem`]; serialized in snake case (`keyring_locked`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    /// No Secret Service: passwords are kept for this session only.
    KeyringUnavailable,
    /// The keyring is locked.
    KeyringLocked,
    /// The settings file could not be read; a copy was kept and defaults are used.
    ConfigCorrupt,
    /// The settings file is from a newer Lamplighter; it is left alone.
    ConfigTooNew,
    /// The settings file could not be read or written.
    ConfigIo,
    /// The settings describe no run that can start (no password, …).
    MailboxSetup,
    /// The mailbox could not be reached or found.
    MailboxUnreachable,
    /// The server refused the credentials.
    MailboxSignIn,
    /// The built-in demo could not start.
    DemoUnavailable,
    /// A phone does not take the lamp state.
    PhoneUnreachable,
}

impl ProblemCode {
    /// The code as front ends see it (`keyring_locked`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::KeyringUnavailable => "keyring_unavailable",
            ProblemCode::KeyringLocked => "keyring_locked",
            ProblemCode::ConfigCorrupt => "config_corrupt",
            ProblemCode::ConfigTooNew => "config_too_new",
            ProblemCode::ConfigIo => "config_io",
            ProblemCode::MailboxSetup => "mailbox_setup",
            ProblemCode::MailboxUnreachable => "mailbox_unreachable",
            ProblemCode::MailboxSignIn => "mailbox_sign_in",
            ProblemCode::DemoUnavailable => "demo_unavailable",
            ProblemCode::PhoneUnreachable => "phone_unreachable",
        }
    }

    /// Whether the settings file is at fault.
    pub fn is_config(self) -> bool {
        matches!(self, ProblemCode::ConfigCorrupt | ProblemCode::ConfigTooNew | ProblemCode::ConfigIo)
    }

    /// Whether it keeps the mailbox from running (the icon turns grey).
    pub fn is_mailbox_down(self) -> bool {
        matches!(
            self,
            ProblemCode::MailboxSignIn
                | ProblemCode::MailboxUnreachable
                | ProblemCode::MailboxSetup
                | ProblemCode::DemoUnavailable
        )
    }
}

/// The Microsoft grant in the keyring, as JSON (refresh token, account, scopes).
struct KeyringGrants {
    keyring: Keyring,
    key: SecretKey,
}

impl lamplighter_signin::GrantStore for KeyringGrants {
    fn load(&self) -> Result<Option<lamplighter_signin::Grant>, String> {
        match self.keyring.get(&self.key).map_err(|e| e.to_string())? {
            None => Ok(None),
            Some(s) => serde_json::from_str(s.expose())
                .map(Some)
                .map_err(|_| "the stored Microsoft sign-in does not read; sign in again".into()),
        }
    }
    fn save(&self, grant: &lamplighter_signin::Grant) -> Result<(), String> {
        let json = serde_json::to_string(grant).map_err(|e| e.to_string())?;
        self.keyring.set(&self.key, &Secret::new(json)).map_err(|e| e.to_string())
    }
    fn clear(&self) -> Result<(), String> {
        self.keyring.delete(&self.key).map(drop).map_err(|e| e.to_string())
    }
}

/// What waits for the user: the badge's two numbers, as the snapshot carries them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Unheard voicemails.
    pub voicemails: u32,
    /// Unseen missed calls.
    pub missed_calls: u32,
}

impl Counts {
    /// The badge number: unheard voicemails plus unseen missed calls.
    pub fn badge(&self) -> u32 {
        self.voicemails.saturating_add(self.missed_calls)
    }
}

/// The state front ends render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Waiting items.
    pub counts: Counts,
    /// The badge number.
    pub badge: u32,
    /// The counts in words.
    pub tooltip: String,
    /// Whether a mailbox account is configured.
    pub mailbox_configured: bool,
    /// What the counts come from when it is not the user's mailbox (`Demo mailbox`).
    pub mailbox_label: Option<String>,
    /// The mailbox connection, once running.
    pub connection: Option<Connection>,
    /// The connection in the user's language (`connected`, `verbunden`, …).
    pub connection_text: Option<String>,
    /// Current problems.
    pub problems: Vec<Problem>,
    /// Calls on someone else's behalf (team, delegate, …), counted apart.
    pub secondary_calls: u32,
    /// Grows with every change of the mailbox: the window re-reads its lists when it does.
    pub revision: u64,
    /// The voicemail being fetched or played.
    pub playback: Option<PlaybackView>,
    /// Notifications paused from the tray.
    pub notifications_paused: bool,
    /// The counts in words, in the user's language (the window's header).
    pub summary_text: String,
    /// What the tray icon shows beyond the count: disconnected (grey), phone unreachable (amber dot).
    pub health: lamplighter_badge::Health,
    /// While a browser sign-in to Microsoft 365 waits for the user: the
    /// sign-in page's address (for a browser that did not open).
    pub sign_in_url: Option<String>,
}

/// The settings as the settings window shows them: never a password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingsView {
    /// The values.
    pub form: SettingsForm,
    /// Whether the mailbox password is in the keyring.
    pub mailbox_password_saved: bool,
    /// Per phone, whether its digest password is in the keyring.
    pub phone_passwords_saved: Vec<bool>,
    /// The settings file.
    pub config_file: String,
    /// Whether passwords survive a restart (false: no keyring, session only).
    pub keyring_persistent: bool,
    /// True when the file must not be written (written by a newer version).
    pub read_only: bool,
    /// Current problems.
    pub problems: Vec<Problem>,
    /// The Microsoft 365 account signed in (OAuth2 only): its name and scopes.
    pub microsoft_account: Option<MicrosoftAccount>,
}

/// Who is signed in to Microsoft 365 (never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MicrosoftAccount {
    /// `preferred_username`, when the sign-in named it.
    pub account: Option<String>,
    /// The scopes granted.
    pub scopes: Vec<String>,
}

impl From<&lamplighter_signin::Grant> for MicrosoftAccount {
    fn from(g: &lamplighter_signin::Grant) -> Self {
        MicrosoftAccount { account: g.account.clone(), scopes: g.scopes.clone() }
    }
}

/// A save request from a front end. Passwords: `None` or empty keeps the
/// stored one; a value replaces it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SettingsUpdate {
    /// The values as typed.
    pub form: SettingsForm,
    /// A new mailbox password or token.
    pub mailbox_password: Option<String>,
    /// New phone digest passwords, by phone position.
    pub phone_passwords: Vec<Option<String>>,
}

/// How to open the engine.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where files live.
    pub paths: Paths,
    /// Which keyring to use.
    pub keyring: KeyringChoice,
    /// Counts to show before a mailbox delivers real ones (screenshots,
    /// tray tests); `LAMPLIGHTER_PREVIEW_COUNTS=voicemails,missed`.
    pub preview_counts: Option<Counts>,
}

/// Which credential store the engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyringChoice {
    /// The OS keyring; falls back to session-only memory, with a problem
    /// reported, when none is available.
    Os,
    /// Memory only (tests).
    InMemory,
}

impl Options {
    /// Standard paths, the OS keyring, and preview counts from the environment.
    pub fn standard(paths: Paths) -> Self {
        Options { paths, keyring: KeyringChoice::Os, preview_counts: preview_counts_from_env() }
    }
}

/// Parses `LAMPLIGHTER_PREVIEW_COUNTS` (`"3,1"`: 3 voicemails, 1 missed call).
pub fn preview_counts_from_env() -> Option<Counts> {
    parse_preview_counts(&std::env::var("LAMPLIGHTER_PREVIEW_COUNTS").ok()?)
}

fn parse_preview_counts(s: &str) -> Option<Counts> {
    let (v, m) = s.split_once(',')?;
    Some(Counts { voicemails: v.trim().parse().ok()?, missed_calls: m.trim().parse().ok()? })
}

type Listener = Box<dyn Fn(&Snapshot) + Send + Sync>;
type AlertListener = Box<dyn Fn(&Alert) + Send + Sync>;

struct Inner {
    settings: Settings,
    read_only: bool,
    config_problem: Option<Problem>,
    /// The running mailbox's counts as its state core last reported them.
    summary: Summary,
    /// Counts from the environment (previews, screenshots): shown instead, and the live engine stays off.
    preview: Option<Counts>,
    /// The counts come from the built-in demo mailbox.
    demo: bool,
    connection: Option<Connection>,
    live_problem: Option<Problem>,
    revision: u64,
    playback: Option<PlaybackView>,
    notifications_paused: bool,
    sign_in_url: Option<String>,
}

/// The engine handle; cheap to clone, safe to share between threads.
#[derive(Clone)]
pub struct Engine {
    paths: Paths,
    keyring: Keyring,
    keyring_problem: Option<Problem>,
    inner: Arc<Mutex<Inner>>,
    listeners: Arc<Mutex<Vec<Listener>>>,
    /// Restarts the live engine (after settings change), once it runs.
    restart: Arc<Mutex<Option<tokio::sync::watch::Sender<u64>>>>,
    /// The running mailbox, for actions.
    session: Arc<Mutex<Option<live::Session>>>,
    alert_listeners: Arc<Mutex<Vec<AlertListener>>>,
    /// Changes of the pause switch, for the live engine's alert policy.
    switches: Arc<tokio::sync::watch::Sender<alerts::Switches>>,
    player: Arc<playback::PlayerSlot>,
    lang: Lang,
    /// What the live engine reports, for front ends that print it (the agent).
    events: tokio::sync::broadcast::Sender<LiveEvent>,
}

/// The icon's state from the connection and the live engine's problem.
fn health(connection: Option<&Connection>, problem: Option<&Problem>) -> lamplighter_badge::Health {
    use lamplighter_badge::Health;
    let code = problem.map(|p| p.code);
    if code.is_some_and(ProblemCode::is_mailbox_down) || connection.is_some_and(Connection::is_down) {
        Health::Disconnected
    } else if code == Some(ProblemCode::PhoneUnreachable) {
        Health::PhoneUnreachable
    } else {
        Health::Ok
    }
}

fn problem(code: ProblemCode, message: impl Into<String>) -> Problem {
    Problem { code, message: message.into() }
}

impl From<&EngineError> for ProblemCode {
    fn from(e: &EngineError) -> ProblemCode {
        match e {
            EngineError::Config(ConfigError::TooNew { .. }) => ProblemCode::ConfigTooNew,
            EngineError::Config(ConfigError::Corrupt { .. }) => ProblemCode::ConfigCorrupt,
            EngineError::Secrets(SecretsError::Locked { .. }) => ProblemCode::KeyringLocked,
            EngineError::Secrets(_) => ProblemCode::KeyringUnavailable,
            EngineError::Setup(_) => ProblemCode::MailboxSetup,
            EngineError::Mailbox(lamplighter_mailbox::MailboxError::SignInRefused(_)) => ProblemCode::MailboxSignIn,
            EngineError::Mailbox(_) | EngineError::NotConnected => ProblemCode::MailboxUnreachable,
            _ => ProblemCode::ConfigIo,
        }
    }
}

impl Engine {
    /// Opens the engine: reads the settings (a damaged file becomes a
    /// problem, not a failure) and opens the keyring (none becomes a problem
    /// and session-only secrets). Blocks briefly on D-Bus.
    pub fn open(options: Options) -> Engine {
        let (keyring, keyring_problem) = match options.keyring {
            KeyringChoice::InMemory => (Keyring::in_memory(), None),
            KeyringChoice::Os => match Keyring::secret_service() {
                Ok(k) => (k, None),
                Err(e) => {
                    log::warn!("keyring: {e}");
                    let code = if matches!(e, SecretsError::Locked { .. }) {
                        ProblemCode::KeyringLocked
                    } else {
                        ProblemCode::KeyringUnavailable
                    };
                    (Keyring::in_memory(), Some(problem(code, e.to_string())))
                }
            },
        };
        let (settings, read_only, config_problem) = match lamplighter_config::load(&options.paths.config_file) {
            Ok(loaded) => (loaded.settings, false, None),
            Err(e) => {
                log::warn!("settings: {e}");
                let read_only = matches!(e, ConfigError::TooNew { .. });
                let message = e.to_string();
                let code = ProblemCode::from(&EngineError::Config(e));
                (Settings::default(), read_only, Some(problem(code, message)))
            }
        };
        let n = &settings.notifications;
        let switches = alerts::Switches {
            enabled: n.enabled,
            voicemail: n.voicemail,
            missed_calls: n.missed_calls,
            paused: false,
        };
        Engine {
            paths: options.paths,
            keyring,
            keyring_problem,
            session: Arc::new(Mutex::new(None)),
            alert_listeners: Arc::new(Mutex::new(Vec::new())),
            switches: Arc::new(tokio::sync::watch::channel(switches).0),
            player: Arc::new(playback::PlayerSlot::default()),
            lang: Lang::from_env(),
            events: tokio::sync::broadcast::channel(1024).0,
            inner: Arc::new(Mutex::new(Inner {
                settings,
                read_only,
                config_problem,
                preview: options.preview_counts,
                summary: Summary::default(),
                demo: false,
                connection: None,
                live_problem: None,
                revision: 0,
                playback: None,
                notifications_paused: false,
                sign_in_url: None,
            })),
            restart: Arc::new(Mutex::new(None)),
            listeners: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the engine's files live.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    fn problems(&self, inner: &Inner) -> Vec<Problem> {
        inner
            .config_problem
            .iter()
            .chain(self.keyring_problem.iter())
            .chain(inner.live_problem.iter())
            .cloned()
            .collect()
    }

    /// The current state.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        let counts = inner
            .preview
            .unwrap_or(Counts { voicemails: inner.summary.voicemail.new, missed_calls: inner.summary.missed_calls });
        let label = inner.demo.then(|| lamplighter_view::demo_label(self.lang));
        Snapshot {
            counts,
            badge: counts.badge(),
            tooltip: lamplighter_view::tooltip(self.lang, label, counts.voicemails, counts.missed_calls),
            mailbox_configured: inner.settings.mailbox.is_some(),
            mailbox_label: label.map(str::to_string),
            connection: inner.connection.clone(),
            connection_text: inner.connection.as_ref().map(|c| lamplighter_view::connection(self.lang, c)),
            problems: self.problems(&inner),
            secondary_calls: inner.summary.secondary_calls,
            revision: inner.revision,
            playback: inner.playback.clone(),
            notifications_paused: inner.notifications_paused,
            summary_text: lamplighter_view::summary(self.lang, counts.voicemails, counts.missed_calls),
            health: health(inner.connection.as_ref(), inner.live_problem.as_ref()),
            sign_in_url: inner.sign_in_url.clone(),
        }
    }

    /// The validated settings in use.
    pub fn settings(&self) -> Settings {
        self.lock().settings.clone()
    }

    /// The language of every text (the OS language).
    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// The settings as the window shows them.
    pub fn settings_view(&self) -> SettingsView {
        let inner = self.lock();
        let saved = |key: SecretKey| matches!(self.keyring.get(&key), Ok(Some(_)));
        let mut view = SettingsView {
            form: inner.settings.to_form(),
            mailbox_password_saved: inner
                .settings
                .mailbox
                .as_ref()
                .is_some_and(|m| saved(SecretKey::Mailbox(m.email.clone()))),
            phone_passwords_saved: inner
                .settings
                .phones
                .iter()
                .map(|p| saved(SecretKey::Phone(p.uri.clone())))
                .collect(),
            config_file: self.paths.config_file.display().to_string(),
            keyring_persistent: self.keyring.kind() == StoreKind::Os,
            read_only: inner.read_only,
            problems: self.problems(&inner),
            microsoft_account: None,
        };
        drop(inner);
        view.microsoft_account = self
            .microsoft_session()
            .ok()
            .flatten()
            .and_then(|s| s.grant().ok().flatten())
            .map(|g| MicrosoftAccount::from(&g));
        view
    }

    /// Validates and saves settings and passwords. On any error nothing in
    /// the file changes.
    pub fn save_settings(&self, update: SettingsUpdate) -> Result<SettingsView, EngineError> {
        let new = update.form.validate().map_err(EngineError::Invalid)?;
        {
            let inner = self.lock();
            if inner.read_only {
                // The file is re-read so the error names the version found there.
                return Err(match lamplighter_config::load(&self.paths.config_file) {
                    Err(e) => EngineError::Config(e),
                    Ok(_) => EngineError::Config(ConfigError::TooNew {
                        path: self.paths.config_file.clone(),
                        found: 0,
                        supported: lamplighter_config::SCHEMA_VERSION,
                    }),
                });
            }
            self.store_secrets(&inner.settings, &new, &update)?;
        }
        lamplighter_config::save(&self.paths.config_file, &new)?;
        log::info!(
            "settings saved: mailbox {}, {} phone(s)",
            new.mailbox.as_ref().map(|m| m.email.as_str()).unwrap_or("none"),
            new.phones.len()
        );
        {
            let n = new.notifications.clone();
            self.switches.send_modify(|s| {
                s.enabled = n.enabled;
                s.voicemail = n.voicemail;
                s.missed_calls = n.missed_calls;
            });
            let mut inner = self.lock();
            inner.settings = new;
            inner.config_problem = None;
        }
        if let Some(restart) = self.restart.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            restart.send_modify(|n| *n += 1);
        }
        self.notify();
        Ok(self.settings_view())
    }

    /// Passwords into the keyring; secrets of removed or renamed accounts moved or removed.
    fn store_secrets(&self, old: &Settings, new: &Settings, update: &SettingsUpdate) -> Result<(), EngineError> {
        let given = |p: &Option<String>| p.as_deref().filter(|s| !s.is_empty()).map(Secret::new);
        let old_mailbox = old.mailbox.as_ref().map(|m| SecretKey::Mailbox(m.email.clone()));
        let new_mailbox = new.mailbox.as_ref().map(|m| SecretKey::Mailbox(m.email.clone()));
        if let Some(key) = &new_mailbox {
            if let Some(secret) = given(&update.mailbox_password) {
                self.keyring.set(key, &secret)?;
            } else if let Some(old_key) = old_mailbox.as_ref().filter(|k| k.user() != key.user()) {
                // the address changed: carry the password over
                if let Some(secret) = self.keyring.get(old_key)? {
                    self.keyring.set(key, &secret)?;
                }
            }
        }
        if let Some(old_key) = old_mailbox.filter(|k| new_mailbox.as_ref().is_none_or(|n| n.user() != k.user())) {
            self.keyring.delete(&old_key)?;
        }
        for (i, phone) in new.phones.iter().enumerate() {
            if let Some(secret) = update.phone_passwords.get(i).and_then(given) {
                self.keyring.set(&SecretKey::Phone(phone.uri.clone()), &secret)?;
            }
        }
        for phone in &old.phones {
            if !new.phones.iter().any(|p| p.uri.eq_ignore_ascii_case(&phone.uri)) {
                self.keyring.delete(&SecretKey::Phone(phone.uri.clone()))?;
            }
        }
        Ok(())
    }

    /// The mailbox password: from `password_env` when set, else the keyring.
    pub fn mailbox_secret(&self) -> Result<Option<Secret>, EngineError> {
        let Some(mailbox) = self.lock().settings.mailbox.clone() else {
            return Ok(None);
        };
        if let Some(var) = &mailbox.password_env {
            return Ok(std::env::var(var).ok().map(Secret::new));
        }
        Ok(self.keyring.get(&SecretKey::Mailbox(mailbox.email))?)
    }

    /// The run the settings describe, with its passwords.
    pub(crate) fn run_config(&self) -> Result<lamplighter_runner::RunConfig, EngineError> {
        let secrets = self.run_secrets()?;
        lamplighter_runner::from_settings(&self.settings(), &secrets, self.paths())
            .map_err(|e| EngineError::Setup(e.to_string()))
    }

    /// The Microsoft sign-in of the configured mailbox (`None` unless it
    /// signs in with OAuth2): its grant lives in the keyring.
    pub fn microsoft_session(&self) -> Result<Option<Arc<lamplighter_signin::Session>>, EngineError> {
        let Some(m) = self.settings().mailbox else { return Ok(None) };
        if m.auth != lamplighter_config::AuthMethod::Oauth2 {
            return Ok(None);
        }
        let client_id =
            m.client_id.clone().ok_or_else(|| EngineError::Setup("[mailbox] client_id is not set".into()))?;
        let mut authority = lamplighter_signin::Authority::new(m.authority.as_str().trim_end_matches('/'), client_id);
        if m.backend == lamplighter_config::MailBackend::Ews {
            // tokens are for one resource: EWS's, not Graph's
            authority.scopes = lamplighter_signin::EWS_SCOPES.iter().map(|s| s.to_string()).collect();
        }
        if let Some(ca) = &m.ca_file {
            authority.extra_ca_pem = std::fs::read(ca).ok();
        }
        let store = Arc::new(KeyringGrants { keyring: self.keyring.clone(), key: SecretKey::MicrosoftGrant(m.email) });
        lamplighter_signin::Session::new(authority, store)
            .map(|s| Some(Arc::new(s)))
            .map_err(|e| EngineError::Setup(e.to_string()))
    }

    /// Signs in to Microsoft 365 through the browser (authorization code
    /// with PKCE, loopback redirect): `shown` gets the sign-in page's
    /// address, which is also opened in the browser ([`open_in_browser`]);
    /// the grant goes to the keyring.
    ///
    /// # Errors
    /// [`EngineError::Setup`] when the mailbox does not sign in with
    /// OAuth2, [`EngineError::SignIn`] when the sign-in did not succeed.
    pub async fn browser_login(&self, shown: impl FnOnce(&str)) -> Result<lamplighter_signin::Grant, EngineError> {
        let session = self.microsoft_session()?.ok_or_else(|| {
            EngineError::Setup(
                "the mailbox does not sign in with OAuth2: set [mailbox] auth = \"oauth2\" and client_id".into(),
            )
        })?;
        let result = session
            .browser_login(|url| {
                shown(url);
                self.lock().sign_in_url = Some(url.to_string());
                self.notify();
                if let Err(e) = open_in_browser(url) {
                    log::warn!("the browser did not open ({e}); the address was shown instead");
                }
            })
            .await;
        self.lock().sign_in_url = None;
        self.notify();
        let grant = result?;
        log::info!("signed in to Microsoft 365 as {}", grant.account.as_deref().unwrap_or("an unnamed account"));
        // a run that waited for the sign-in starts now; a running one takes the new grant
        self.retry_now()?;
        Ok(grant)
    }

    /// Signs out of Microsoft 365 here: the grant leaves the keyring.
    ///
    /// # Errors
    /// [`EngineError::SignIn`] when the keyring refuses.
    pub async fn microsoft_logout(&self) -> Result<(), EngineError> {
        if let Some(session) = self.microsoft_session()? {
            session.logout().await?;
        }
        Ok(())
    }

    /// The passwords a run needs: the mailbox's and each phone's (keyring or environment).
    fn run_secrets(&self) -> Result<lamplighter_runner::RunSecrets, EngineError> {
        let phones = self.lock().settings.phones.clone();
        let kerberos = self.lock().settings.mailbox.as_ref().is_some_and(|m| {
            matches!(m.auth, lamplighter_config::AuthMethod::Negotiate | lamplighter_config::AuthMethod::Auto)
        });
        let mailbox = match self.mailbox_secret() {
            Ok(s) => s,
            // Kerberos needs no password: a machine without a keyring still signs in
            Err(e) if kerberos => {
                log::info!("no saved mailbox password ({e}); Kerberos only");
                None
            }
            Err(e) => return Err(e),
        };
        let token = match self.microsoft_session() {
            Ok(Some(session)) if session.grant().ok().flatten().is_some() => {
                let source: lamplighter_graph_client::TokenSource = Arc::new(move |fresh| {
                    let session = session.clone();
                    Box::pin(async move { session.access_token(fresh).await.map_err(|e| e.to_string()) })
                });
                Some(source)
            }
            _ => None,
        };
        let mut out = lamplighter_runner::RunSecrets {
            mailbox: mailbox.map(|s| s.expose().to_string()),
            token,
            phones: Vec::new(),
        };
        for p in phones {
            let secret = match &p.password_env {
                Some(var) => std::env::var(var).ok(),
                None => self.keyring.get(&SecretKey::Phone(p.uri.clone()))?.map(|s| s.expose().to_string()),
            };
            out.phones.push(secret);
        }
        Ok(out)
    }

    /// Starts the live engine on its own runtime: the configured mailbox, or the demo
    /// mailbox (labelled so) when none is configured; restarted when settings are saved.
    /// Counts from the environment (`LAMPLIGHTER_PREVIEW_COUNTS`) keep it off.
    pub fn start_live(&self) -> Option<live::Live> {
        self.start_live_with(LiveOptions::default())
    }

    /// [`Engine::start_live`] with options (the agent's demo pace).
    pub fn start_live_with(&self, options: LiveOptions) -> Option<live::Live> {
        if self.lock().preview.is_some() {
            return None;
        }
        live::Live::start(self.clone(), options)
    }

    /// What the live engine reports from now on: the mailbox's events, the
    /// demo's story, where a run started and why one could not.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<LiveEvent> {
        self.events.subscribe()
    }

    pub(crate) fn emit(&self, e: LiveEvent) {
        let _ = self.events.send(e);
    }

    pub(crate) fn set_live(&self, f: impl FnOnce(&mut LiveView<'_>)) {
        {
            let mut inner = self.lock();
            let Inner { summary, demo, connection, live_problem, revision, playback, .. } = &mut *inner;
            f(&mut LiveView { summary, demo, connection, problem: live_problem, revision, playback });
        }
        self.notify();
    }

    pub(crate) fn set_restart(&self, tx: tokio::sync::watch::Sender<u64>) {
        *self.restart.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    /// Calls `listener` with every new snapshot.
    pub fn subscribe(&self, listener: impl Fn(&Snapshot) + Send + Sync + 'static) {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(listener));
    }

    /// Calls `listener` with every notification to show (already filtered by
    /// the switches, the pause, and the anti-storm rules of [`alerts`]).
    pub fn subscribe_alerts(&self, listener: impl Fn(&Alert) + Send + Sync + 'static) {
        self.alert_listeners.lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(listener));
    }

    pub(crate) fn raise(&self, alert: &Alert) {
        log::info!("notification {}: {}", alert.id, alert.title);
        for l in self.alert_listeners.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            l(alert);
        }
    }

    pub(crate) fn switches(&self) -> tokio::sync::watch::Receiver<alerts::Switches> {
        self.switches.subscribe()
    }

    pub(crate) fn set_session(&self, session: Option<live::Session>) {
        *self.session.lock().unwrap_or_else(|p| p.into_inner()) = session;
    }

    fn session(&self) -> Result<live::Session, EngineError> {
        self.session.lock().unwrap_or_else(|p| p.into_inner()).clone().ok_or(EngineError::NotConnected)
    }

    /// Runs `f` with the running mailbox on the live runtime; callable from any runtime.
    pub(crate) async fn on_live<T, F, Fut>(&self, f: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(live::Session) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, EngineError>> + Send + 'static,
    {
        let session = self.session()?;
        let handle = session.handle.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        handle.spawn(async move {
            let _ = tx.send(f(session).await);
        });
        rx.await.map_err(|_| EngineError::NotConnected)?
    }

    /// The window's lists (empty until the mailbox is read), in the user's language.
    pub fn lists(&self) -> Lists {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        match self.session() {
            Ok(s) => s.runner.with_state(|state| lamplighter_view::lists(self.lang, now, state)),
            Err(_) => Lists { voicemails: Vec::new(), missed_calls: Vec::new(), secondary_calls: Vec::new() },
        }
    }

    /// The voicemail "Play latest" plays: the newest unheard one, else the newest.
    pub fn latest_voicemail(&self) -> Option<String> {
        let lists = self.lists();
        lists.voicemails.iter().find(|v| v.unheard).or(lists.voicemails.first()).map(|v| v.item_id.clone())
    }

    /// Marks a voicemail heard on the server (the counts follow when the change comes back).
    pub async fn mark_heard(&self, item_id: &str) -> Result<(), EngineError> {
        let id = item_id.to_string();
        self.on_live(move |s| async move { Ok(s.runner.mark_heard(&id).await?) }).await
    }

    /// Marks a missed call seen: every device's report of it is marked read.
    pub async fn mark_call_seen(&self, item_id: &str) -> Result<(), EngineError> {
        let id = item_id.to_string();
        self.on_live(move |s| async move { Ok(s.runner.mark_call_seen(&id).await?) }).await
    }

    /// Sends the lamp state to the phones again now.
    pub fn resend_lamp(&self) -> Result<(), EngineError> {
        self.session()?.runner.resend_lamp();
        Ok(())
    }

    /// Reconnects the mailbox now ("Retry now"); restarts a run that could not start.
    pub fn retry_now(&self) -> Result<(), EngineError> {
        match self.session() {
            Ok(s) => s.runner.retry_now(),
            Err(_) => {
                if let Some(restart) = self.restart.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                    restart.send_modify(|n| *n += 1);
                }
            }
        }
        Ok(())
    }

    /// Pauses notifications (the tray's "Pause notifications"), or resumes them.
    pub fn set_notifications_paused(&self, paused: bool) {
        self.switches.send_modify(|s| s.paused = paused);
        self.lock().notifications_paused = paused;
        self.notify();
    }

    /// The agent's checks for the current settings, step by step ("Check settings");
    /// settings that cannot run are one failed step.
    pub async fn check(&self) -> Vec<CheckStep> {
        match self.try_check().await {
            Ok(steps) => steps,
            Err(EngineError::NotConnected) => vec![CheckStep {
                ok: false,
                what: "no mailbox configured: the demo mailbox runs".into(),
                hint: Some("enter your mailbox in Settings".into()),
            }],
            Err(e) => vec![CheckStep { ok: false, what: format!("settings: {e}"), hint: None }],
        }
    }

    /// The checks, or why they cannot run: [`EngineError::NotConnected`] without a
    /// mailbox, [`EngineError::Setup`] (or a keyring error) for settings that cannot run.
    pub async fn try_check(&self) -> Result<Vec<CheckStep>, EngineError> {
        let Some(mailbox) = self.settings().mailbox else {
            return Err(EngineError::NotConnected);
        };
        let secrets = self.run_secrets()?;
        let password = match (&mailbox.auth, secrets.mailbox.is_some()) {
            (_, true) => "password available",
            (lamplighter_config::AuthMethod::Negotiate, false) => "no password saved (Kerberos only)",
            (lamplighter_config::AuthMethod::Auto, false) => "no password saved (Kerberos only)",
            (_, false) => "no password",
        };
        let config = lamplighter_runner::from_settings(&self.settings(), &secrets, self.paths())
            .map_err(|e| EngineError::Setup(e.to_string()))?;
        let password = if mailbox.auth == lamplighter_config::AuthMethod::Oauth2 { "OAuth2" } else { password };
        let first =
            CheckStep { ok: true, what: format!("settings for {} read, {password}", mailbox.email), hint: None };
        let mut steps = Vec::new();
        if let Some(session) = self.microsoft_session()? {
            // the token's account, scopes and life, as the sign-in service gave them
            steps.push(match session.access_token(false).await {
                Ok(_) => {
                    let grant = session.grant().ok().flatten();
                    let left = session
                        .token_expiry()
                        .await
                        .and_then(|t| t.duration_since(std::time::SystemTime::now()).ok())
                        .map(|d| format!("; the access token is valid for {} more minutes", d.as_secs() / 60));
                    CheckStep {
                        ok: true,
                        what: format!(
                            "signed in to Microsoft 365 as {} ({}){}",
                            grant
                                .as_ref()
                                .and_then(|g| g.account.clone())
                                .unwrap_or_else(|| "an unnamed account".into()),
                            grant.map(|g| g.scopes.join(" ")).unwrap_or_default(),
                            left.unwrap_or_default()
                        ),
                        hint: None,
                    }
                }
                Err(e) => CheckStep {
                    ok: false,
                    what: format!("Microsoft 365 sign-in: {e}"),
                    hint: Some(
                        "run `lamplighter-agent login` (`login --device-code` on a machine without a browser)".into(),
                    ),
                },
            });
        }
        let mut out = lamplighter_runner::check::run(config, first).await;
        out.splice(1..1, steps);
        Ok(out)
    }

    /// One sync with the configured mailbox, without touching the phones: its
    /// counts once it is live, or its refusal (the agent's `status` with no
    /// agent running). `None` when nothing conclusive came within `limit`.
    pub async fn sync_once(&self, limit: std::time::Duration) -> Result<Option<(Summary, Connection)>, EngineError> {
        if self.settings().mailbox.is_none() {
            return Err(EngineError::NotConnected);
        }
        let mut config = self.run_config()?;
        config.phones.clear();
        config.subscribers.clear();
        let runner = lamplighter_runner::Runner::start(config).await.map_err(|e| match e {
            lamplighter_runner::RunError::Mailbox(e) => EngineError::Mailbox(e.into()),
            other => EngineError::Setup(other.to_string()),
        })?;
        let mut events = runner.events();
        let state = tokio::time::timeout(limit, async {
            loop {
                match events.recv().await {
                    Ok(RunEvent::State { summary, connection })
                        if matches!(connection, Connection::Live | Connection::SignInRefused { .. }) =>
                    {
                        return Some((summary, connection));
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .await;
        runner.stop().await;
        Ok(state.ok().flatten())
    }

    fn notify(&self) {
        let snapshot = self.snapshot();
        for l in self.listeners.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            l(&snapshot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lamplighter_config::{MailboxForm, PhoneForm};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn engine(dir: &std::path::Path) -> Engine {
        let paths = Paths::under(dir.join("config"), dir.join("state"), dir.join("cache"));
        Engine::open(Options { paths, keyring: KeyringChoice::InMemory, preview_counts: None })
    }

    fn update(email: &str, password: Option<&str>) -> SettingsUpdate {
        SettingsUpdate {
            form: SettingsForm {
                mailbox: Some(MailboxForm { email: email.into(), auth: "basic".into(), ..Default::default() }),
                phones: vec![PhoneForm { uri: "sip:613@127.0.0.1:5062".into(), ..Default::default() }],
                ..Default::default()
            },
            mailbox_password: password.map(Into::into),
            phone_passwords: vec![Some("phone-pw".into())],
        }
    }

    #[test]
    fn save_puts_passwords_in_the_keyring_and_not_in_the_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let e = engine(dir.path());
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        e.subscribe(move |s| {
            assert!(s.mailbox_configured);
            c.fetch_add(1, Ordering::SeqCst);
        });
        let view = e.save_settings(update("anna@example.com", Some("mail-pw"))).expect("save");
        assert!(view.mailbox_password_saved);
        assert_eq!(view.phone_passwords_saved, vec![true]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(e.mailbox_secret().expect("secret").expect("some").expose(), "mail-pw");
        let text = std::fs::read_to_string(&e.paths().config_file).expect("file");
        assert!(text.contains("anna@example.com") && !text.contains("mail-pw") && !text.contains("phone-pw"), "{text}");
    }

    #[test]
    fn invalid_settings_change_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let e = engine(dir.path());
        let err = e.save_settings(update("not-an-address", Some("pw"))).expect_err("invalid");
        assert_eq!(err.code(), "invalid_settings");
        assert_eq!(err.to_report().fields[0].field, "mailbox.email");
        assert!(!e.paths().config_file.exists());
        assert!(!e.snapshot().mailbox_configured);
    }

    #[test]
    fn renamed_mailbox_keeps_its_password_and_removed_phone_loses_its_own() {
        let dir = tempfile::tempdir().expect("tmp");
        let e = engine(dir.path());
        e.save_settings(update("anna@example.com", Some("pw"))).expect("save");
        let mut u = update("anna.schmidt@example.com", None);
        u.form.phones.clear();
        u.phone_passwords.clear();
        let view = e.save_settings(u).expect("save");
        assert!(view.mailbox_password_saved);
        assert_eq!(e.mailbox_secret().expect("secret").expect("some").expose(), "pw");
        assert!(matches!(e.keyring.get(&SecretKey::Mailbox("anna@example.com".into())), Ok(None)));
        assert!(matches!(e.keyring.get(&SecretKey::Phone("sip:613@127.0.0.1:5062".into())), Ok(None)));
    }

    #[test]
    fn reopened_engine_reads_what_was_saved() {
        let dir = tempfile::tempdir().expect("tmp");
        engine(dir.path()).save_settings(update("anna@example.com", None)).expect("save");
        let view = engine(dir.path()).settings_view();
        assert_eq!(view.form.mailbox.expect("mailbox").email, "anna@example.com");
        assert_eq!(view.form.phones.len(), 1);
    }

    #[test]
    fn corrupt_settings_are_a_problem_not_a_crash() {
        let dir = tempfile::tempdir().expect("tmp");
        let e = engine(dir.path());
        std::fs::create_dir_all(e.paths().config_file.parent().expect("parent")).expect("dir");
        std::fs::write(&e.paths().config_file, "[mailbox\n").expect("write");
        let e = engine(dir.path());
        let snap = e.snapshot();
        assert_eq!(snap.problems.len(), 1);
        assert_eq!(snap.problems[0].code, ProblemCode::ConfigCorrupt);
        assert!(snap.problems[0].message.contains(".corrupt-"), "{}", snap.problems[0].message);
        // saving fresh settings replaces it and clears the problem; the copy stays
        e.save_settings(update("anna@example.com", None)).expect("save");
        assert!(e.snapshot().problems.is_empty());
    }

    #[test]
    fn newer_settings_file_makes_the_engine_read_only() {
        let dir = tempfile::tempdir().expect("tmp");
        let e = engine(dir.path());
        std::fs::create_dir_all(e.paths().config_file.parent().expect("parent")).expect("dir");
        std::fs::write(&e.paths().config_file, "schema_version = 9\n").expect("write");
        let e = engine(dir.path());
        assert!(e.settings_view().read_only);
        let err = e.save_settings(update("anna@example.com", None)).expect_err("read only");
        assert_eq!(err.code(), "config_too_new");
        assert_eq!(std::fs::read_to_string(&e.paths().config_file).expect("file"), "schema_version = 9\n");
    }

    #[test]
    fn preview_counts_parse_and_drive_the_snapshot() {
        assert_eq!(parse_preview_counts("3,1"), Some(Counts { voicemails: 3, missed_calls: 1 }));
        assert_eq!(parse_preview_counts("x,1"), None);
        let dir = tempfile::tempdir().expect("tmp");
        let paths = Paths::under(dir.path().join("c"), dir.path().join("s"), dir.path().join("k"));
        let e = Engine::open(Options {
            paths,
            keyring: KeyringChoice::InMemory,
            preview_counts: parse_preview_counts("3,1"),
        });
        let s = e.snapshot();
        assert_eq!((s.badge, s.tooltip.as_str()), (4, "3 new voicemails, 1 missed call"));
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["counts"]["voicemails"], 3);
    }

    #[test]
    fn without_a_mailbox_the_live_engine_runs_the_labelled_demo() {
        let dir = tempfile::tempdir().expect("tmp");
        let e = engine(dir.path());
        let (tx, rx) = std::sync::mpsc::channel();
        e.subscribe(move |s| {
            let _ = tx.send(s.clone());
        });
        let live = e.start_live().expect("live");
        let mut s = e.snapshot();
        while !(s.connection == Some(Connection::Live) && s.counts.voicemails >= 3) {
            // the guard only ends a hung test
            s = rx.recv_timeout(std::time::Duration::from_secs(180)).expect("the demo connects");
        }
        assert_eq!(s.mailbox_label.as_deref(), Some("Demo mailbox"));
        assert!(s.counts.voicemails >= 3, "{s:?}");
        assert!(s.tooltip.starts_with("Demo mailbox: "), "{}", s.tooltip);
        assert!(!s.mailbox_configured);
        drop(live);
        // counts from the environment keep the live engine off
        let paths = Paths::under(dir.path().join("c2"), dir.path().join("s2"), dir.path().join("k2"));
        let preview = Engine::open(Options {
            paths,
            keyring: KeyringChoice::InMemory,
            preview_counts: Some(Counts { voicemails: 2, missed_calls: 0 }),
        });
        assert!(preview.start_live().is_none());
    }
}
