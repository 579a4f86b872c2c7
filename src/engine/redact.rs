//! Secrets never leave a task through its events, errors or outputs: every
//! string is scrubbed of each secret value and of its base64 and URL-encoded
//! forms.

use base64::Engine;
use serde_json::{Map, Value};

/// The forms a secret takes in URLs: every non-alphanumeric byte escaped,
/// JavaScript's `encodeURIComponent` (nunjucks' `urlencode`) which keeps
/// `-_.!~*'()`, and form encoding (a space becomes `+`), each with upper-
/// and lower-case hex digits.
fn url_encoded_forms(secret: &str) -> Vec<String> {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    const COMPONENT: &percent_encoding::AsciiSet = crate::templating::URI_COMPONENT;
    let mut forms = Vec::new();
    for set in [NON_ALPHANUMERIC, COMPONENT] {
        let encoded = utf8_percent_encode(secret, set).to_string();
        forms.push(encoded.replace("%20", "+"));
        forms.push(encoded.to_ascii_lowercase_hex());
        forms.push(encoded);
    }
    forms.retain(|f| f != secret);
    forms
}

trait LowercaseHex {
    fn to_ascii_lowercase_hex(&self) -> String;
}

impl LowercaseHex for String {
    /// `%2F` → `%2f`, leaving the rest alone.
    fn to_ascii_lowercase_hex(&self) -> String {
        let mut out = String::with_capacity(self.len());
        let mut hex_left = 0;
        for c in self.chars() {
            if c == '%' {
                hex_left = 2;
                out.push(c);
            } else if hex_left > 0 {
                hex_left -= 1;
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }
}

/// Replaces secret values by `***`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    needles: Vec<String>,
}

impl Redactor {
    pub fn new(secrets: &Map<String, Value>) -> Redactor {
        let mut needles = Vec::new();
        for secret in secrets.values().filter_map(Value::as_str) {
            // One- and two-character "secrets" would scrub ordinary text.
            if secret.chars().count() < 3 {
                continue;
            }
            needles.push(secret.to_owned());
            let engines = [
                base64::engine::general_purpose::STANDARD.encode(secret),
                base64::engine::general_purpose::STANDARD_NO_PAD.encode(secret),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
            ];
            needles.extend(engines);
            needles.extend(url_encoded_forms(secret));
        }
        // Longest first, so a secret inside another is not half-replaced.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Redactor { needles }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    pub fn redact_str(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), "***");
            }
        }
        out
    }

    pub fn redact(&self, value: &mut Value) {
        if self.needles.is_empty() {
            return;
        }
        match value {
            Value::String(s) if self.needles.iter().any(|n| s.contains(n.as_str())) => {
                *s = self.redact_str(s);
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.redact(v)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn redactor(secret: &str) -> Redactor {
        let secrets: Map<String, Value> = serde_json::from_value(json!({ "token": secret })).unwrap();
        Redactor::new(&secrets)
    }

    #[test]
    fn plain_base64_and_url_encoded_forms_are_scrubbed() {
        let r = redactor("p@ss word/1");
        let b64 = base64::engine::general_purpose::STANDARD.encode("p@ss word/1");
        let mut v = json!({
            "message": "using p@ss word/1 now",
            "nested": [format!("Authorization: Basic {b64}"), "x=p%40ss%20word%2F1"],
        });
        r.redact(&mut v);
        assert_eq!(
            v,
            json!({"message": "using *** now", "nested": ["Authorization: Basic ***", "x=***"]})
        );
    }

    #[test]
    fn every_url_encoding_of_a_secret_is_scrubbed() {
        let r = redactor("a-b c/d");
        for form in [
            "a%2Db%20c%2Fd",
            "a-b%20c%2Fd",
            "a-b+c%2Fd",
            "a-b%20c%2fd",
            "a%2Db+c%2Fd",
        ] {
            assert_eq!(r.redact_str(&format!("x={form}&y")), "x=***&y", "{form}");
        }
    }

    #[test]
    fn tiny_values_are_not_treated_as_secrets() {
        let r = redactor("ab");
        assert!(r.is_empty());
        assert_eq!(r.redact_str("abc"), "abc");
    }
}
