//! The directory from LDAP (Active Directory or OpenLDAP): a search with
//! the administrator's filter, each entry mapped to a mailbox and a line by
//! attribute (`mail`, `telephoneNumber` / `ipPhone` / `msRTCSIP-Line`),
//! paged (AD answers at most 1,000 entries a page), bounded, and checked by
//! `lamplighter-directory` as a file is. An entry that does not map (no
//! address, no usable number) is skipped and counted, not fatal: a directory
//! of thousands has some. A server that cannot be reached is an error, and
//! the gateway keeps its last good directory.

use lamplighter_directory::{Directory, MAX_ENTRIES, Row};
use std::collections::HashMap;
use std::time::Duration;

/// How LDAP entries become directory rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapSource {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// Who binds (`None`: anonymously); the password is the credential `ldap-password`.
    pub bind_dn: Option<String>,
    pub base: String,
    pub filter: String,
    pub address_attribute: String,
    pub line_attribute: String,
    /// The group from an attribute (`None`: every entry in `default`).
    pub group_attribute: Option<String>,
    /// Keep only the last N digits of the number (an extension from `+49 5251 304613`).
    pub line_last_digits: Option<usize>,
    pub timeout: Duration,
}

/// The search failed.
#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    #[error("LDAP {url}: {reason}")]
    Server { url: String, reason: String },
    #[error("LDAP {url}: {0}", url = .1)]
    Directory(lamplighter_directory::DirectoryError, String),
}

/// What a reading gave: the directory, and the entries skipped with why.
#[derive(Debug)]
pub struct Reading {
    pub directory: Directory,
    pub skipped: Vec<(String, String)>,
}

fn first<'a>(attrs: &'a HashMap<String, Vec<String>>, name: &str) -> Option<&'a str> {
    attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.first()).map(String::as_str)
}

impl LdapSource {
    /// Maps one entry (its DN and attributes) to a row, or says why not.
    pub fn row(&self, attrs: &HashMap<String, Vec<String>>) -> Result<Row, String> {
        let address = first(attrs, &self.address_attribute)
            .map(|a| a.trim().trim_start_matches("SMTP:").trim_start_matches("smtp:").to_string())
            .filter(|a| !a.is_empty())
            .ok_or_else(|| format!("no {}", self.address_attribute))?;
        let raw = first(attrs, &self.line_attribute).ok_or_else(|| format!("no {}", self.line_attribute))?;
        // msRTCSIP-Line is "tel:+4952513046;ext=613"; a number may carry spaces, dashes, brackets
        let raw = raw.trim().trim_start_matches("tel:").trim_start_matches("sip:");
        let raw = raw.split_once(";ext=").map_or(raw, |(_, ext)| ext);
        let mut line: String = raw.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '+').collect();
        if let Some(n) = self.line_last_digits {
            let digits: String = line.chars().filter(char::is_ascii_digit).collect();
            if digits.len() < n {
                return Err(format!("{} {raw:?} has fewer than {n} digits", self.line_attribute));
            }
            line = digits[digits.len() - n..].to_string();
        }
        if line.is_empty() {
            return Err(format!("{} {raw:?} has no number", self.line_attribute));
        }
        let group = match &self.group_attribute {
            Some(g) => Some(first(attrs, g).ok_or_else(|| format!("no {g}"))?.trim().to_string()),
            None => None,
        };
        Ok(Row { address, line, group, mwi: None })
    }

    /// Searches and maps every entry.
    pub async fn read(&self, password: Option<&str>) -> Result<Reading, LdapError> {
        use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
        use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
        let server = |e: ldap3::LdapError| LdapError::Server { url: self.url.clone(), reason: e.to_string() };
        let settings = LdapConnSettings::new().set_conn_timeout(self.timeout);
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.url).await.map_err(server)?;
        ldap3::drive!(conn);
        ldap.with_timeout(self.timeout);
        if let Some(dn) = &self.bind_dn {
            ldap.simple_bind(dn, password.unwrap_or_default()).await.and_then(|r| r.success()).map_err(server)?;
        }
        let mut attrs = vec![self.address_attribute.as_str(), self.line_attribute.as_str()];
        if let Some(g) = &self.group_attribute {
            attrs.push(g);
        }
        let adapters: Vec<Box<dyn Adapter<_, _>>> =
            vec![Box::new(EntriesOnly::new()), Box::new(PagedResults::new(500))];
        let mut search = ldap
            .streaming_search_with(adapters, &self.base, Scope::Subtree, &self.filter, attrs)
            .await
            .map_err(server)?;
        let mut rows = Vec::new();
        let mut skipped = Vec::new();
        while let Some(entry) = search.next().await.map_err(server)? {
            let e = SearchEntry::construct(entry);
            match self.row(&e.attrs) {
                Ok(r) => rows.push(r),
                Err(why) => skipped.push((e.dn, why)),
            }
            if rows.len() > MAX_ENTRIES {
                return Err(LdapError::Directory(
                    lamplighter_directory::DirectoryError::TooManyEntries,
                    self.url.clone(),
                ));
            }
        }
        search.finish().await.success().map_err(server)?;
        let _ = ldap.unbind().await;
        let directory = Directory::from_rows(rows).map_err(|e| LdapError::Directory(e, self.url.clone()))?;
        Ok(Reading { directory, skipped })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> LdapSource {
        LdapSource {
            url: "ldap://127.0.0.1:389".into(),
            bind_dn: None,
            base: "dc=example,dc=test".into(),
            filter: "(mail=*)".into(),
            address_attribute: "mail".into(),
            line_attribute: "telephoneNumber".into(),
            group_attribute: None,
            line_last_digits: None,
            timeout: Duration::from_secs(5),
        }
    }

    fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
        pairs.iter().map(|(k, v)| (k.to_string(), vec![v.to_string()])).collect()
    }

    #[test]
    fn numbers_in_the_forms_directories_hold_become_lines() {
        let s = source();
        let row = |a: &[(&str, &str)]| s.row(&attrs(a));
        assert_eq!(row(&[("mail", "Ada@Example.test"), ("telephoneNumber", "201")]).expect("plain").line, "201");
        assert_eq!(
            row(&[("mail", "a@x.test"), ("telephoneNumber", "+49 (5251) 30-4613")]).expect("spaced").line,
            "+4952513046".to_string() + "13"
        );
        assert_eq!(
            row(&[("mail", "a@x.test"), ("TelephoneNumber", "tel:+4952513046;ext=613")]).expect("msRTCSIP-Line").line,
            "613"
        );
        let last4 = LdapSource { line_last_digits: Some(4), ..source() };
        assert_eq!(
            last4.row(&attrs(&[("mail", "a@x.test"), ("telephoneNumber", "+49 5251 304613")])).expect("last 4").line,
            "4613"
        );
        assert!(last4.row(&attrs(&[("mail", "a@x.test"), ("telephoneNumber", "12")])).is_err());
        assert!(row(&[("telephoneNumber", "201")]).expect_err("no mail").contains("no mail"));
        assert!(row(&[("mail", "a@x.test")]).expect_err("no number").contains("no telephoneNumber"));
        assert!(row(&[("mail", "a@x.test"), ("telephoneNumber", "--")]).is_err());
        let grouped = LdapSource { group_attribute: Some("departmentNumber".into()), ..source() };
        let r = grouped.row(&attrs(&[("mail", "a@x.test"), ("telephoneNumber", "1"), ("departmentNumber", "sales")]));
        assert_eq!(r.expect("grouped").group.as_deref(), Some("sales"));
    }
}
