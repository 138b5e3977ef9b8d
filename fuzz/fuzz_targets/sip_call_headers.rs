//! Fuzzes the missed-call parsers with arbitrary bytes: History-Info,
//! Reason, Diversion, party URIs, whole INVITE/CANCEL messages and Exchange
//! UM's notification XML. They must return errors, never panic.
//! Seeded from tests/fixtures/sip and tests/fixtures/um (see README.md).
#![no_main]

use lamplighter_missed_calls::{CallRecord, HistoryInfo, Party, Reason, UserIdentity, classify, diversion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = HistoryInfo::parse(&[text.as_ref()]);
    let _ = Reason::parse_list(&text);
    let _ = diversion::parse_diversion(&[text.as_ref()]);
    let _ = Party::parse(&text);
    let _ = CallRecord::from_um_notification(&text);
    let cancel = text.find("CANCEL").map(|i| &text[i..]);
    if let Ok(record) = CallRecord::from_sip("fuzz", &text, cancel, false, 0) {
        let user = UserIdentity::new(&["frank.carius@netatwork.de"], &["+495251304613"]).expect("user");
        let _ = classify(&record, &user);
        let _ = record.original_target();
    }
});
