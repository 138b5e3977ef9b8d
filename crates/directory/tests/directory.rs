//! The directory as an administrator writes it: both forms, every check
//! with the place it names, the diff between readings, and any bytes.

use lamplighter_directory::{Directory, DirectoryError, diff};
use proptest::prelude::*;

const TOML: &str = r#"
[[mailbox]]
address = "Mara@Example.test"
line = "201"
group = "berlin"

[[mailbox]]
address = "jonas@example.test"
line = "202"

[[mailbox]]
address = "empfang@example.test"
line = "+4930123"
mwi = false
"#;

#[test]
fn the_toml_form_reads_with_defaults_and_addresses_in_any_case() {
    let d = Directory::from_toml(TOML).expect("reads");
    assert_eq!(d.len(), 3);
    let mara = d.get("MARA@example.TEST").expect("any case");
    assert_eq!(
        (mara.address.as_str(), mara.line.as_str(), mara.group.as_str(), mara.mwi),
        ("mara@example.test", "201", "berlin", true)
    );
    let jonas = d.get("jonas@example.test").expect("entry");
    assert_eq!((jonas.group.as_str(), jonas.mwi), ("default", true));
    assert!(!d.get("empfang@example.test").expect("entry").mwi);
}

#[test]
fn the_csv_form_reads_its_columns_in_any_order_and_quoted_fields() {
    let csv = "line,Address,mwi,group\n201,mara@example.test,yes,berlin\n\"202\", jonas@example.test ,,\n+4930123,empfang@example.test,off,default\n";
    let d = Directory::from_csv(csv).expect("reads");
    assert_eq!(d, Directory::from_toml(TOML).expect("the same directory"));
    // two columns suffice
    assert_eq!(Directory::from_csv("address,line\na@x.test,1\n").expect("reads").len(), 1);
}

#[test]
fn errors_name_the_place_and_refuse_the_whole_directory() {
    let toml = |body: &str| Directory::from_toml(body).expect_err("refused");
    assert!(matches!(toml("[[mailbox]]\naddress = \"a@x\"\n"), DirectoryError::Toml(w) if w.contains("line")));
    assert!(
        matches!(toml("[[mailbox]]\naddress = \"a@x\"\nline = \"1\"\ncolour = \"red\"\n"), DirectoryError::Toml(w) if w.contains("colour"))
    );
    assert_eq!(
        toml("[[mailbox]]\naddress = \"a@x\"\nline = \"1\"\n[[mailbox]]\naddress = \"nobody\"\nline = \"2\"\n"),
        DirectoryError::Invalid { entry: 2, address: "nobody".into(), reason: "an address needs an @".into() }
    );
    assert!(matches!(
        toml("[[mailbox]]\naddress = \"a@x\"\nline = \"1 2\"\n"),
        DirectoryError::Invalid { entry: 1, ref reason, .. } if reason.contains("digits, letters")
    ));
    assert!(matches!(
        toml("[[mailbox]]\naddress = \"a@x\"\nline = \"1\"\ngroup = \"b c\"\n"),
        DirectoryError::Invalid { .. }
    ));
    assert_eq!(
        toml("[[mailbox]]\naddress = \"a@x\"\nline = \"1\"\n[[mailbox]]\naddress = \"A@X\"\nline = \"2\"\n"),
        DirectoryError::DuplicateAddress { address: "a@x".into(), first: 1, second: 2 }
    );
    assert_eq!(
        toml("[[mailbox]]\naddress = \"a@x\"\nline = \"1\"\n[[mailbox]]\naddress = \"b@x\"\nline = \"1\"\n"),
        DirectoryError::DuplicateLine {
            line: "1".into(),
            group: "default".into(),
            first: "a@x".into(),
            second: "b@x".into()
        }
    );
    // the same line in two groups is two lamps
    assert!(Directory::from_toml("[[mailbox]]\naddress = \"a@x\"\nline = \"1\"\n[[mailbox]]\naddress = \"b@x\"\nline = \"1\"\ngroup = \"other\"\n").is_ok());
    let csv = |body: &str| Directory::from_csv(body).expect_err("refused");
    assert!(matches!(csv("mailbox,line\na@x,1\n"), DirectoryError::Csv { row: 1, .. }));
    assert!(
        matches!(csv("address,line,colour\na@x,1,red\n"), DirectoryError::Csv { row: 1, ref reason } if reason.contains("colour"))
    );
    assert!(matches!(csv("address,line\na@x,1\nb@x,2,extra\n"), DirectoryError::Csv { row: 3, .. }));
    assert!(
        matches!(csv("address,line,mwi\na@x,1,maybe\n"), DirectoryError::Csv { row: 2, ref reason } if reason.contains("maybe"))
    );
    assert!(matches!(csv("address,line\n,1\n"), DirectoryError::Invalid { entry: 1, .. }));
}

#[test]
fn a_file_is_read_by_its_extension() {
    let dir = std::env::temp_dir().join(format!("lamplighter-directory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("d.toml"), TOML).expect("write");
    std::fs::write(dir.join("d.csv"), "address,line\na@x.test,1\n").expect("write");
    std::fs::write(dir.join("d.txt"), "").expect("write");
    assert_eq!(Directory::load(&dir.join("d.toml")).expect("toml").len(), 3);
    assert_eq!(Directory::load(&dir.join("d.csv")).expect("csv").len(), 1);
    assert!(matches!(Directory::load(&dir.join("d.txt")), Err(DirectoryError::UnknownFormat(_))));
    assert!(matches!(Directory::load(&dir.join("missing.toml")), Err(DirectoryError::Io { .. })));
    std::fs::remove_dir_all(&dir).expect("clean");
}

#[test]
fn the_diff_says_who_came_who_left_and_whose_lamp_moved() {
    let before = Directory::from_toml(TOML).expect("reads");
    let after = Directory::from_csv(
        "address,line,group,mwi\nmara@example.test,201,berlin,true\njonas@example.test,212,,\nneu@example.test,203,,\n",
    )
    .expect("reads");
    let c = diff(&before, &after);
    assert_eq!(c.added.iter().map(|e| e.address.as_str()).collect::<Vec<_>>(), ["neu@example.test"]);
    assert_eq!(c.removed.iter().map(|e| e.address.as_str()).collect::<Vec<_>>(), ["empfang@example.test"]);
    assert_eq!(c.changed.len(), 1);
    assert_eq!((c.changed[0].0.line.as_str(), c.changed[0].1.line.as_str()), ("202", "212"));
    assert!(diff(&after, &after).is_empty());
}

proptest! {
    /// Any bytes as either form: an error or a directory, never a panic;
    /// and a directory read is one whose every entry passes the checks.
    #[test]
    fn any_text_reads_or_is_refused(text in ".{0,400}") {
        for d in [Directory::from_toml(&text), Directory::from_csv(&text)].into_iter().flatten() {
            for e in d.entries() {
                prop_assert!(e.address.contains('@') && !e.line.is_empty() && !e.group.is_empty());
            }
        }
    }

    /// A directory written as CSV reads back as the same directory, and
    /// the diff against itself is empty.
    #[test]
    fn csv_round_trips(entries in proptest::collection::btree_map("[a-z]{1,8}@[a-z]{1,6}\\.test", ("[0-9]{1,6}", any::<bool>()), 0..40)) {
        let mut csv = String::from("address,line,mwi\n");
        let mut lines = std::collections::HashSet::new();
        for (a, (l, m)) in &entries {
            if lines.insert(l.clone()) {
                csv.push_str(&format!("{a},{l},{m}\n"));
            }
        }
        let d = Directory::from_csv(&csv).expect("reads");
        prop_assert_eq!(d.len(), lines.len());
        prop_assert!(diff(&d, &d).is_empty());
    }
}
