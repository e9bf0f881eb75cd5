//! A slow reference for what `scan` should answer, built on `serde_json` alone: objects are read
//! as ordered `(key, &RawValue)` lists, so duplicates survive, and a key that `serde_json` had to
//! unescape (it can no longer lend it from the input) counts as escaped.

use std::collections::HashSet;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::super::{MessageKind, ScanError};

/// A key and whether it was written with escapes.
struct Key {
    text: String,
    escaped: bool,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key, E> {
                Ok(Key {
                    text: v.to_owned(),
                    escaped: false,
                })
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(Key {
                    text: v.to_owned(),
                    escaped: true,
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// An object's members in order, duplicates kept.
struct Members<'a>(Vec<(Key, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Members<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Members<'a>, M::Error> {
                let mut members = Vec::new();
                while let Some(key) = map.next_key::<Key>()? {
                    members.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// What the reference expects for a body `serde_json` accepted.
#[derive(Debug, Default)]
pub struct Expected<'a> {
    pub error: Option<ScanError>,
    pub kind: Option<MessageKind>,
    pub batch: bool,
    pub id: Option<&'a str>,
    pub method: Option<String>,
    pub params: Option<&'a str>,
    pub name: Option<(&'a str, String)>,
    pub uri: Option<(&'a str, String)>,
    pub progress_token: Option<&'a str>,
    pub meta: Option<&'a str>,
    pub result: Option<&'a str>,
    pub error_value: Option<&'a str>,
    jsonrpc: Option<bool>,
}

fn invalid(reason: &'static str) -> ScanError {
    ScanError::InvalidRequest { reason }
}

fn decoded(raw: &RawValue) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(raw.get())
        .ok()?
        .as_str()
        .map(str::to_owned)
}

fn is_id_like(raw: &RawValue) -> bool {
    matches!(
        raw.get().as_bytes().first(),
        Some(b'"' | b'-' | b'0'..=b'9')
    )
}

fn members(raw: &str) -> Vec<(Key, &RawValue)> {
    serde_json::from_str::<Members>(raw)
        .expect("serde_json accepted this object")
        .0
}

impl<'a> Expected<'a> {
    fn note(&mut self, problem: ScanError) {
        self.error.get_or_insert(problem);
    }

    /// Checks keys in order, as the scanner does: each key's problem is noted just before its
    /// value is interpreted. Refused (escaped) keys come back as `None`.
    fn keys<'m>(
        list: &'m [(Key, &'a RawValue)],
        level: &'static str,
    ) -> Vec<(Option<ScanError>, Option<&'m str>, &'a RawValue)> {
        let mut seen = HashSet::new();
        let mut checked = Vec::new();
        for (key, raw) in list {
            if key.escaped {
                checked.push((Some(ScanError::EscapedKey { level }), None, *raw));
                continue;
            }
            let mut problem = None;
            if !seen.insert(key.text.as_str()) {
                let bytes = key.text.as_bytes();
                let shown = bytes.get(..64).unwrap_or(bytes);
                problem = Some(ScanError::DuplicateKey {
                    key: String::from_utf8_lossy(shown).into_owned(),
                    level,
                });
            }
            checked.push((problem, Some(key.text.as_str()), *raw));
        }
        checked
    }

    /// Notes the key's problem; returns the key when its value is to be interpreted.
    fn take<'m>(
        &mut self,
        checked: (Option<ScanError>, Option<&'m str>, &'a RawValue),
    ) -> Option<(&'m str, &'a RawValue)> {
        if let Some(problem) = checked.0 {
            self.note(problem);
        }
        Some((checked.1?, checked.2))
    }
}

/// The reference answer for `body`, which `serde_json` must have accepted.
pub fn expect(body: &str) -> Expected<'_> {
    let mut e = Expected::default();
    match body
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .as_bytes()
        .first()
    {
        Some(b'[') => {
            e.batch = true;
            return e;
        }
        Some(b'{') => {}
        _ => {
            e.error = Some(invalid("the message is not a JSON object"));
            return e;
        }
    }
    let top = members(body);
    for checked in Expected::keys(&top, "message") {
        let Some((key, raw)) = e.take(checked) else {
            continue;
        };
        match key {
            "jsonrpc" => e.jsonrpc = Some(decoded(raw).is_some_and(|v| v == "2.0")),
            "id" => {
                e.id = is_id_like(raw).then(|| raw.get());
                if e.id.is_none() {
                    e.note(invalid("id must be a string or a number"));
                }
            }
            "method" => {
                e.method = decoded(raw);
                if e.method.is_none() {
                    e.note(invalid("method must be a string"));
                }
            }
            "params" => params(&mut e, raw),
            "result" => e.result = Some(raw.get()),
            "error" => {
                if !raw.get().starts_with('{') {
                    e.note(invalid("error must be an object"));
                }
                e.error_value = Some(raw.get());
            }
            _ => {}
        }
    }
    if e.error.is_none() {
        match classify(&e) {
            Ok(kind) => e.kind = Some(kind),
            Err(problem) => e.error = Some(problem),
        }
    }
    e
}

fn params<'a>(e: &mut Expected<'a>, raw: &'a RawValue) {
    let text = raw.get();
    if text.starts_with('[') {
        e.params = Some(text);
        return;
    }
    if !text.starts_with('{') {
        e.note(invalid("params must be an object or an array"));
        return;
    }
    e.params = Some(text);
    let list = members(text);
    for checked in Expected::keys(&list, "params") {
        let Some((key, raw)) = e.take(checked) else {
            continue;
        };
        let field = || decoded(raw).map(|v| (raw.get(), v));
        match key {
            "name" => e.name = field(),
            "uri" => e.uri = field(),
            "_meta" if raw.get().starts_with('{') => meta(e, raw),
            _ => {}
        }
    }
}

fn meta<'a>(e: &mut Expected<'a>, raw: &'a RawValue) {
    e.meta = Some(raw.get());
    let list = members(raw.get());
    for checked in Expected::keys(&list, "params._meta") {
        let Some((key, raw)) = e.take(checked) else {
            continue;
        };
        if key == "progressToken" {
            e.progress_token = is_id_like(raw).then(|| raw.get());
            if e.progress_token.is_none() {
                e.note(invalid("progressToken must be a string or a number"));
            }
        }
    }
}

fn classify(e: &Expected) -> Result<MessageKind, ScanError> {
    match e.jsonrpc {
        None => return Err(invalid("missing \"jsonrpc\": \"2.0\"")),
        Some(false) => return Err(invalid("\"jsonrpc\" must be \"2.0\"")),
        Some(true) => {}
    }
    let (has_result, has_error) = (e.result.is_some(), e.error_value.is_some());
    match (e.method.is_some(), e.id.is_some()) {
        (true, _) if has_result || has_error => Err(invalid("a request carries result or error")),
        (true, true) => Ok(MessageKind::Request),
        (true, false) => Ok(MessageKind::Notification),
        (false, _) if !has_result && !has_error => Err(invalid("missing method")),
        (false, _) if has_result && has_error => {
            Err(invalid("a response carries both result and error"))
        }
        (false, false) => Err(invalid("a response without id")),
        (false, true) if e.params.is_some() => Err(invalid("a response carries params")),
        (false, true) => Ok(MessageKind::Response),
    }
}
