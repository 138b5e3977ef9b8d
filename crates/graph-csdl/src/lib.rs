//! Microsoft Graph's v1.0 metadata as a checker of JSON bodies, so the
//! Graph simulator and our fixtures are held to what Microsoft's SDKs are
//! generated from, as the EWS side is held to the XSD. The CSDL
//! (`csdl/graph-v1.0-csdl.xml`, unchanged bytes of
//! `microsoftgraph/msgraph-metadata`, sha256 in `csdl/SHA256SUMS`) is carried
//! in the binary and read once.
//!
//! [`Csdl::check`] walks a JSON value against a type:
//! - every property must be declared on the type or a base type
//!   (structural or navigation), also on open types (`message` is one): a
//!   name the real service never sends is a mistake here;
//! - values have the JSON form of their Edm type (`Edm.Int32` in range,
//!   `Edm.DateTimeOffset` as ISO 8601 with an offset or `Z`, `Edm.Binary`
//!   as base64), enum values are members, complex and entity values are
//!   checked recursively, collections element by element;
//! - `null` only where the property is nullable;
//! - `@odata.type` names the type or a type derived from it, and the
//!   object is then checked as that type;
//! - annotations: the `@odata.*` control information, and `@removed` of
//!   delta entries, with its `reason`.
//!
//! It does not require properties to be present: `$select` leaves them out.
//! An open type that declares no property at all (`resourceData`, a
//! notification's bag of the changed item's keys) takes any property.

use quick_xml::events::Event;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;

const CSDL: &[u8] = include_bytes!("../csdl/graph-v1.0-csdl.xml");

#[derive(Debug, Clone)]
struct Prop {
    ty: String,
    nullable: bool,
}

#[derive(Debug, Clone, Default)]
struct TypeDef {
    base: Option<String>,
    props: HashMap<String, Prop>,
    /// `OpenType="true"`: dynamic properties allowed (taken only on a type that declares none).
    open: bool,
}

/// The types of the metadata document.
#[derive(Debug, Default)]
pub struct Csdl {
    /// Entity and complex types by full name (`microsoft.graph.message`).
    types: HashMap<String, TypeDef>,
    /// Enum types and their members.
    enums: HashMap<String, Vec<String>>,
}

/// Why the metadata could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the CSDL cannot be read: {0}")]
pub struct CsdlError(String);

fn attr(e: &quick_xml::events::BytesStart<'_>, name: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name)
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

/// `graph.message` or `self.alert` → the full name, by the schemas' aliases.
fn full(name: &str, aliases: &HashMap<String, String>) -> String {
    let (inner, collection) = match name.strip_prefix("Collection(").and_then(|n| n.strip_suffix(')')) {
        Some(n) => (n, true),
        None => (name, false),
    };
    let resolved = match inner.split_once('.') {
        Some((prefix, rest)) if aliases.contains_key(prefix) => format!("{}.{rest}", aliases[prefix]),
        _ => inner.to_string(),
    };
    if collection { format!("Collection({resolved})") } else { resolved }
}

impl Csdl {
    /// The metadata carried in the binary, read on first use.
    pub fn graph_v1() -> &'static Csdl {
        static CSDL_V1: OnceLock<Csdl> = OnceLock::new();
        CSDL_V1.get_or_init(|| Csdl::parse(CSDL).expect("the vendored CSDL reads"))
    }

    /// Reads a CSDL document.
    pub fn parse(xml: &[u8]) -> Result<Csdl, CsdlError> {
        let mut reader = quick_xml::Reader::from_reader(xml);
        let mut out = Csdl::default();
        // first pass would be needed for aliases declared late; Graph declares each on its Schema element
        let mut aliases: HashMap<String, String> = HashMap::new();
        let mut namespace = String::new();
        let mut current: Option<(String, TypeDef)> = None;
        let mut current_enum: Option<(String, Vec<String>)> = None;
        let mut raw: Vec<(String, TypeDef)> = Vec::new();
        let mut buf = Vec::new();
        loop {
            let ev = reader.read_event_into(&mut buf).map_err(|e| CsdlError(e.to_string()))?;
            let (start, empty) = match &ev {
                Event::Start(e) => (Some(e.clone()), false),
                Event::Empty(e) => (Some(e.clone()), true),
                Event::End(e) => {
                    match e.local_name().as_ref() {
                        b"EntityType" | b"ComplexType" => raw.extend(current.take()),
                        b"EnumType" => {
                            if let Some((n, m)) = current_enum.take() {
                                out.enums.insert(n, m);
                            }
                        }
                        _ => {}
                    }
                    buf.clear();
                    continue;
                }
                Event::Eof => break,
                _ => (None, false),
            };
            if let Some(e) = start {
                match e.local_name().as_ref() {
                    b"Schema" => {
                        namespace = attr(&e, b"Namespace").unwrap_or_default();
                        if let Some(a) = attr(&e, b"Alias") {
                            aliases.insert(a, namespace.clone());
                        }
                    }
                    b"EntityType" | b"ComplexType" => {
                        let name = format!("{namespace}.{}", attr(&e, b"Name").unwrap_or_default());
                        let def = TypeDef {
                            base: attr(&e, b"BaseType"),
                            props: HashMap::new(),
                            open: attr(&e, b"OpenType").is_some_and(|o| o == "true"),
                        };
                        if empty {
                            raw.push((name, def));
                        } else {
                            current = Some((name, def));
                        }
                    }
                    b"Property" | b"NavigationProperty" => {
                        if let (Some((_, def)), Some(name), Some(ty)) =
                            (current.as_mut(), attr(&e, b"Name"), attr(&e, b"Type"))
                        {
                            let nullable = attr(&e, b"Nullable").is_none_or(|n| n != "false");
                            def.props.insert(name, Prop { ty, nullable });
                        }
                    }
                    b"EnumType" => {
                        let name = format!("{namespace}.{}", attr(&e, b"Name").unwrap_or_default());
                        if empty {
                            out.enums.insert(name, Vec::new());
                        } else {
                            current_enum = Some((name, Vec::new()));
                        }
                    }
                    b"Member" => {
                        if let (Some((_, members)), Some(name)) = (current_enum.as_mut(), attr(&e, b"Name")) {
                            members.push(name);
                        }
                    }
                    _ => {}
                }
            }
            buf.clear();
        }
        // type references through the aliases, resolved once all are known
        for (name, mut def) in raw {
            def.base = def.base.map(|b| full(&b, &aliases));
            for p in def.props.values_mut() {
                p.ty = full(&p.ty, &aliases);
            }
            out.types.insert(name, def);
        }
        if out.types.is_empty() {
            return Err(CsdlError("no entity or complex type in it".into()));
        }
        Ok(out)
    }

    fn lookup(&self, ty: &str, prop: &str) -> Option<&Prop> {
        let mut t = Some(ty.to_string());
        // a bound against a cycle in a broken document
        for _ in 0..32 {
            let def = self.types.get(t.as_deref()?)?;
            if let Some(p) = def.props.get(prop) {
                return Some(p);
            }
            t = def.base.clone();
        }
        None
    }

    fn derives_from(&self, ty: &str, base: &str) -> bool {
        let mut t = Some(ty.to_string());
        for _ in 0..32 {
            match t {
                Some(ref name) if name == base => return true,
                Some(ref name) => t = self.types.get(name).and_then(|d| d.base.clone()),
                None => return false,
            }
        }
        false
    }

    /// Whether `ty` (`microsoft.graph.message`) is a type of the document.
    pub fn has_type(&self, ty: &str) -> bool {
        self.types.contains_key(ty) || self.enums.contains_key(ty)
    }

    /// Checks `value` as an instance of `ty` (a full name such as
    /// `microsoft.graph.message`); every problem, each with its JSON path.
    pub fn check(&self, ty: &str, value: &Value) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !self.has_type(ty) {
            problems.push(format!("{ty} is not a type of the CSDL"));
        } else {
            self.value(ty, value, "$", &mut problems);
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// Checks a collection answer (`{"value": [...], "@odata.nextLink"…}`) of `ty`.
    pub fn check_collection(&self, ty: &str, body: &Value) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        match body.as_object() {
            Some(o) => {
                for (k, v) in o {
                    match k.as_str() {
                        "value" => match v.as_array() {
                            Some(items) => {
                                for (i, item) in items.iter().enumerate() {
                                    self.value(ty, item, &format!("$.value[{i}]"), &mut problems);
                                }
                            }
                            None => problems.push("$.value: not an array".into()),
                        },
                        k if k.starts_with("@odata.") => {}
                        k => problems.push(format!("$.{k}: not part of a collection answer")),
                    }
                }
            }
            None => problems.push("$: not an object".into()),
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    fn value(&self, ty: &str, v: &Value, path: &str, problems: &mut Vec<String>) {
        if let Some(inner) = ty.strip_prefix("Collection(").and_then(|t| t.strip_suffix(')')) {
            match v.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if item.is_null() {
                            problems.push(format!("{path}[{i}]: null in a collection"));
                        } else {
                            self.value(inner, item, &format!("{path}[{i}]"), problems);
                        }
                    }
                }
                None => problems.push(format!("{path}: {ty} must be an array")),
            }
            return;
        }
        let ok = match ty {
            "Edm.String" => v.is_string(),
            "Edm.Boolean" => v.is_boolean(),
            "Edm.Int32" => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
            "Edm.Int64" => v.is_i64() || v.is_u64(),
            "Edm.Int16" => v.as_i64().is_some_and(|n| i16::try_from(n).is_ok()),
            "Edm.Byte" => v.as_u64().is_some_and(|n| n <= 255),
            "Edm.Double" | "Edm.Single" | "Edm.Decimal" => {
                v.is_number() || v.as_str().is_some_and(|s| ["NaN", "INF", "-INF"].contains(&s))
            }
            "Edm.DateTimeOffset" => v.as_str().is_some_and(is_date_time_offset),
            "Edm.Date" => v.as_str().is_some_and(|s| s.len() == 10 && is_date(s)),
            "Edm.TimeOfDay" | "Edm.Duration" => v.is_string(),
            "Edm.Guid" => v.as_str().is_some_and(is_guid),
            "Edm.Binary" => v.as_str().is_some_and(is_base64),
            "Edm.Stream" | "Edm.Untyped" => true,
            t if self.enums.contains_key(t) => match v.as_str() {
                // flags enums join members with commas
                Some(s) => s.split(',').all(|m| self.enums[t].iter().any(|x| x == m.trim())),
                None => false,
            },
            t if self.types.contains_key(t) => {
                self.object(t, v, path, problems);
                true
            }
            t => {
                problems.push(format!("{path}: the CSDL has no type {t}"));
                true
            }
        };
        if !ok {
            let shown: String = v.to_string().chars().take(80).collect();
            problems.push(format!("{path}: {shown} is not a {ty}"));
        }
    }

    fn object(&self, declared: &str, v: &Value, path: &str, problems: &mut Vec<String>) {
        let Some(o) = v.as_object() else {
            problems.push(format!("{path}: {declared} must be an object"));
            return;
        };
        let mut ty = declared.to_string();
        if let Some(t) = o.get("@odata.type") {
            match t.as_str().and_then(|s| s.strip_prefix('#')) {
                Some(named) if self.derives_from(named, declared) => ty = named.to_string(),
                _ => problems.push(format!("{path}.@odata.type: {t} is not {declared} or a type derived from it")),
            }
        }
        for (k, val) in o {
            if k.starts_with("@odata.") || (k.contains("@odata.") && !k.starts_with('@')) {
                continue;
            }
            if k == "@removed" {
                let reason = val.get("reason").and_then(Value::as_str);
                if !val.is_object() || !matches!(reason, Some("deleted" | "changed")) {
                    problems.push(format!("{path}.@removed: {val} is not {{\"reason\": \"deleted\"|\"changed\"}}"));
                }
                continue;
            }
            let p = format!("{path}.{k}");
            match self.lookup(&ty, k) {
                // a property bag (an open type that declares nothing, as resourceData): what it holds is the service's
                None if self.types.get(&ty).is_some_and(|d| d.open && d.props.is_empty() && d.base.is_none()) => {}
                None => problems.push(format!("{p}: {ty} has no property {k}")),
                Some(prop) if val.is_null() => {
                    if !prop.nullable {
                        problems.push(format!("{p}: null, but {ty}.{k} is not nullable"));
                    }
                }
                Some(prop) => self.value(&prop.ty.clone(), val, &p, problems),
            }
        }
    }
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
}

/// `2026-11-24T09:14:03Z`, `2026-11-24T09:14:03.1234567+01:00`.
fn is_date_time_offset(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 || !is_date(s) || b[10] != b'T' {
        return false;
    }
    let time = &s[11..];
    let (clock, zone) = match time.find(['Z', '+', '-']) {
        Some(i) => time.split_at(i),
        None => return false,
    };
    let clock_ok = {
        let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
        let parts: Vec<&str> = hms.split(':').collect();
        parts.len() == 3
            && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|c| c.is_ascii_digit()))
            && !frac.is_empty()
            && frac.bytes().all(|c| c.is_ascii_digit())
    };
    let zone_ok = zone == "Z"
        || (zone.len() == 6
            && zone.as_bytes()[3] == b':'
            && zone[1..3].bytes().chain(zone[4..].bytes()).all(|c| c.is_ascii_digit()));
    clock_ok && zone_ok
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.bytes().all(|c| c.is_ascii_hexdigit()))
}

fn is_base64(s: &str) -> bool {
    s.len().is_multiple_of(4)
        && s.trim_end_matches('=').bytes().all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
        && s.len() - s.trim_end_matches('=').len() <= 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_vendored_metadata_has_the_mail_types() {
        let c = Csdl::graph_v1();
        for t in ["microsoft.graph.message", "microsoft.graph.fileAttachment", "microsoft.graph.mailFolder"] {
            assert!(c.has_type(t), "{t}");
        }
        assert!(c.derives_from("microsoft.graph.fileAttachment", "microsoft.graph.attachment"));
        assert!(c.derives_from("microsoft.graph.message", "microsoft.graph.entity"));
    }

    #[test]
    fn names_types_nullability_and_derived_types_are_checked() {
        let c = Csdl::graph_v1();
        let m = "microsoft.graph.message";
        assert_eq!(c.check(m, &json!({"id":"a","isRead":false,"changeKey":"k","from":null})), Ok(()));
        let errs = |v: Value| c.check(m, &v).expect_err("must fail").join("\n");
        assert!(errs(json!({"id":"a","isread":false})).contains("has no property isread"));
        assert!(errs(json!({"id":"a","isRead":"true"})).contains("is not a Edm.Boolean"));
        assert!(errs(json!({"id":null})).contains("not nullable"));
        assert!(errs(json!({"id":"a","importance":"urgent"})).contains("graph.importance"));
        assert!(errs(json!({"id":"a","receivedDateTime":"2026-11-24 09:14"})).contains("Edm.DateTimeOffset"));
        assert!(errs(json!({"id":"a","@removed":{"reason":"gone"}})).contains("@removed"));
        // an attachment is checked as the type @odata.type names
        let a = "microsoft.graph.attachment";
        let file = json!({"@odata.type":"#microsoft.graph.fileAttachment","id":"x","size":3,"isInline":false,"contentBytes":"AAEC"});
        assert_eq!(c.check(a, &file), Ok(()));
        assert!(c.check(a, &json!({"@odata.type":"#microsoft.graph.message","id":"x"})).is_err());
        assert!(c.check(a, &json!({"id":"x","size":3_000_000_000u64})).is_err(), "Edm.Int32 range");
        assert!(
            c.check(a, &json!({"@odata.type":"#microsoft.graph.fileAttachment","id":"x","contentBytes":"A*=="}))
                .is_err()
        );
    }

    #[test]
    fn date_forms() {
        assert!(is_date_time_offset("2026-11-24T09:14:03Z"));
        assert!(is_date_time_offset("2026-11-24T09:14:03.1234567+01:00"));
        assert!(!is_date_time_offset("2026-11-24T09:14:03"));
        assert!(!is_date_time_offset("2026-11-24T9:14:03Z"));
    }
}
