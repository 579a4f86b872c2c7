//! JavaScript value semantics on top of minijinja values.
//!
//! Nunjucks runs on JavaScript values, so everything a template prints or
//! compares follows JS rules: `String(x)` for output (`[1,2]` → `1,2`,
//! objects → `[object Object]`, `2.0` → `2`), JS truthiness (an empty array
//! or object is true), `JSON.stringify` for `dump`. JSON input is wrapped in
//! [`JsArray`] / [`JsObject`] so that these rules hold for context data.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value, ValueKind};

/// A JSON array seen by templates: truthy even when empty, printed as
/// `a,b,c`, with a `length` property.
#[derive(Debug)]
pub(crate) struct JsArray {
    items: Vec<Value>,
}

impl JsArray {
    pub(crate) fn new_value(items: Vec<Value>) -> Value {
        Value::from_object(JsArray { items })
    }
}

impl Object for JsArray {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        if let Some(idx) = key.as_usize() {
            return self.items.get(idx).cloned();
        }
        match key.as_str() {
            Some("length") => Some(Value::from(self.items.len())),
            Some(s) => s.parse::<usize>().ok().and_then(|i| self.items.get(i).cloned()),
            None => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.items.len())
    }

    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&join_js(self.items.iter(), ","))
    }
}

/// A JSON object seen by templates: truthy even when empty, printed as
/// `[object Object]`, keys kept in document order.
#[derive(Debug)]
pub(crate) struct JsObject {
    entries: Vec<(Value, Value)>,
    index: HashMap<Arc<str>, usize>,
}

impl JsObject {
    pub(crate) fn new_value(pairs: Vec<(String, Value)>) -> Value {
        let mut entries: Vec<(Value, Value)> = Vec::with_capacity(pairs.len());
        let mut index: HashMap<Arc<str>, usize> = HashMap::with_capacity(pairs.len());
        for (k, v) in pairs {
            let key: Arc<str> = Arc::from(k.as_str());
            if let Some(&pos) = index.get(&key) {
                entries[pos].1 = v;
            } else {
                index.insert(key.clone(), entries.len());
                entries.push((Value::from(key), v));
            }
        }
        Value::from_object(JsObject { entries, index })
    }
}

impl Object for JsObject {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let pos = match key.as_str() {
            Some(s) => self.index.get(s).copied(),
            // JS turns a numeric key into its string form: `obj[0]` is `obj["0"]`.
            None if key.is_number() => self.index.get(to_js_string(key).as_str()).copied(),
            None => None,
        }?;
        self.entries.get(pos).map(|(_, v)| v.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys: Vec<Value> = self.entries.iter().map(|(k, _)| k.clone()).collect();
        Enumerator::Values(keys)
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.entries.len())
    }

    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[object Object]")
    }
}

/// Converts JSON into template values (arrays and objects wrapped so JS
/// semantics apply).
pub(crate) fn from_json(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                number_value(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => JsArray::new_value(items.iter().map(from_json).collect()),
        serde_json::Value::Object(map) => {
            JsObject::new_value(map.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
        }
    }
}

/// Converts a template value to JSON the way `JSON.parse(JSON.stringify(x))`
/// would; `None` stands for `undefined`.
pub(crate) fn to_json(value: &Value) -> Option<serde_json::Value> {
    let text = json_stringify(value, "")?;
    serde_json::from_str(&text).ok()
}

/// A JS number as a template value: integral values become integers so they
/// can index arrays and print without a fraction.
pub(crate) fn number_value(n: f64) -> Value {
    if n.is_finite() && n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        if n == 0.0 {
            // -0 prints as 0 in JS too.
            return Value::from(0i64);
        }
        Value::from(n as i64)
    } else {
        Value::from(n)
    }
}

/// `Number.prototype.toString()` (radix 10).
pub(crate) fn js_number_string(n: f64) -> String {
    if n.is_nan() {
        return "NaN".to_string();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if n == 0.0 {
        return "0".to_string();
    }
    let sci = format!("{n:e}");
    let exp: i32 = sci.rsplit_once('e').and_then(|(_, e)| e.parse().ok()).unwrap_or(0);
    if (-7 < exp) && (exp < 21) {
        // Rust prints the shortest round-tripping decimal, as JS does.
        format!("{n}")
    } else {
        sci_to_js(&sci)
    }
}

fn sci_to_js(sci: &str) -> String {
    match sci.split_once('e') {
        Some((mantissa, exp)) => {
            if exp.starts_with('-') {
                format!("{mantissa}e{exp}")
            } else {
                format!("{mantissa}e+{exp}")
            }
        }
        None => sci.to_string(),
    }
}

fn value_as_f64(value: &Value) -> Option<f64> {
    if !value.is_number() {
        return None;
    }
    if let Some(i) = value.as_i64() {
        return Some(i as f64);
    }
    f64::try_from(value.clone()).ok()
}

/// JS `String(x)`.
pub(crate) fn to_js_string(value: &Value) -> String {
    if let Some(re) = value.downcast_object_ref::<super::js::JsRegex>() {
        return re.source_text();
    }
    match value.kind() {
        ValueKind::Undefined => "undefined".to_string(),
        ValueKind::None => "null".to_string(),
        ValueKind::Bool => {
            if value.is_true() {
                "true".to_string()
            } else {
                "false".to_string()
            }
        }
        ValueKind::Number => match value.as_i64() {
            Some(i) => i.to_string(),
            None => match value_as_f64(value) {
                Some(f) => js_number_string(f),
                None => value.to_string(),
            },
        },
        ValueKind::String => value.as_str().unwrap_or_default().to_string(),
        ValueKind::Seq | ValueKind::Iterable => match value.try_iter() {
            Ok(iter) => join_js(iter.collect::<Vec<_>>().iter(), ","),
            Err(_) => String::new(),
        },
        ValueKind::Map => "[object Object]".to_string(),
        _ => value.to_string(),
    }
}

/// What `${{ x }}` prints: `null`/`undefined` print nothing, the rest as
/// `String(x)`.
pub(crate) fn to_output(value: &Value) -> String {
    if value.is_undefined() || value.is_none() {
        String::new()
    } else {
        to_js_string(value)
    }
}

/// `Array.prototype.join`: `null`/`undefined` items become empty.
pub(crate) fn join_js<'a>(items: impl Iterator<Item = &'a Value>, sep: &str) -> String {
    let mut out = String::new();
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(&to_output(item));
    }
    out
}

/// JS `Number(x)`.
pub(crate) fn to_number(value: &Value) -> f64 {
    match value.kind() {
        ValueKind::Undefined => f64::NAN,
        ValueKind::None => 0.0,
        ValueKind::Bool => {
            if value.is_true() {
                1.0
            } else {
                0.0
            }
        }
        ValueKind::Number => value_as_f64(value).unwrap_or(f64::NAN),
        ValueKind::String => string_to_number(value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => string_to_number(&to_js_string(value)),
        _ => f64::NAN,
    }
}

/// JS `Number("…")`: whitespace-trimmed decimal, hex/octal/binary literals,
/// `Infinity`; empty is 0; anything else NaN.
pub(crate) fn string_to_number(s: &str) -> f64 {
    let t = s.trim();
    if t.is_empty() {
        return 0.0;
    }
    for (prefix, radix) in [("0x", 16), ("0X", 16), ("0o", 8), ("0O", 8), ("0b", 2), ("0B", 2)] {
        if let Some(digits) = t.strip_prefix(prefix) {
            return u64::from_str_radix(digits, radix).map(|v| v as f64).unwrap_or(f64::NAN);
        }
    }
    match t {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    let valid = t
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if !valid || t.contains("inf") {
        return f64::NAN;
    }
    t.parse::<f64>().unwrap_or(f64::NAN)
}

/// JS truthiness.
pub(crate) fn is_truthy(value: &Value) -> bool {
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => false,
        ValueKind::Number => {
            let n = to_number(value);
            !(n == 0.0 || n.is_nan())
        }
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable | ValueKind::Plain => true,
        _ => value.is_true(),
    }
}

/// `JSON.stringify(value, null, indent)`; `None` is JS `undefined`.
pub(crate) fn json_stringify(value: &Value, indent: &str) -> Option<String> {
    let mut out = String::new();
    if write_json(value, indent, 0, &mut out) {
        Some(out)
    } else {
        None
    }
}

/// The `indent` argument of `JSON.stringify`: a number of spaces (max 10)
/// or a string (its first 10 characters).
pub(crate) fn json_indent(arg: Option<&Value>) -> String {
    match arg {
        Some(v) if v.is_number() => {
            let n = to_number(v);
            if n.is_nan() || n < 1.0 {
                String::new()
            } else {
                " ".repeat(n.min(10.0) as usize)
            }
        }
        Some(v) if v.kind() == ValueKind::String => v.as_str().unwrap_or_default().chars().take(10).collect(),
        _ => String::new(),
    }
}

fn is_json_skipped(value: &Value) -> bool {
    matches!(
        value.kind(),
        ValueKind::Undefined | ValueKind::Plain | ValueKind::Invalid
    ) && value.downcast_object_ref::<super::js::JsRegex>().is_none()
}

fn write_json(value: &Value, indent: &str, depth: usize, out: &mut String) -> bool {
    if value.downcast_object_ref::<super::js::JsRegex>().is_some() {
        out.push_str("{}");
        return true;
    }
    match value.kind() {
        ValueKind::Undefined | ValueKind::Plain | ValueKind::Invalid => return false,
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            let s = to_js_string(value);
            if s == "NaN" || s.contains("Infinity") {
                out.push_str("null");
            } else {
                out.push_str(&s);
            }
        }
        ValueKind::String | ValueKind::Bytes => {
            let s = value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
            match serde_json::to_string(&s) {
                Ok(encoded) => out.push_str(&encoded),
                Err(_) => out.push_str("\"\""),
            }
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter().map(|i| i.collect()).unwrap_or_default();
            if items.is_empty() {
                out.push_str("[]");
                return true;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline_indent(indent, depth + 1, out);
                if is_json_skipped(item) || !write_json(item, indent, depth + 1, out) {
                    out.push_str("null");
                }
            }
            newline_indent(indent, depth, out);
            out.push(']');
        }
        ValueKind::Map => {
            let keys: Vec<Value> = value.try_iter().map(|i| i.collect()).unwrap_or_default();
            let mut wrote_any = false;
            out.push('{');
            for key in keys {
                let item = value.get_item(&key).unwrap_or_default();
                if is_json_skipped(&item) {
                    continue;
                }
                let mut rendered = String::new();
                if !write_json(&item, indent, depth + 1, &mut rendered) {
                    continue;
                }
                if wrote_any {
                    out.push(',');
                }
                wrote_any = true;
                newline_indent(indent, depth + 1, out);
                let key_text = to_js_string(&key);
                match serde_json::to_string(&key_text) {
                    Ok(k) => out.push_str(&k),
                    Err(_) => out.push_str("\"\""),
                }
                out.push(':');
                if !indent.is_empty() {
                    out.push(' ');
                }
                out.push_str(&rendered);
            }
            if wrote_any {
                newline_indent(indent, depth, out);
            }
            out.push('}');
        }
        _ => return false,
    }
    true
}

fn newline_indent(indent: &str, depth: usize, out: &mut String) {
    if !indent.is_empty() {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(indent);
        }
    }
}

/// Length in UTF-16 code units, as JS `String.prototype.length` counts.
pub(crate) fn js_str_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Member lookup that yields `None` for a missing key or index.
pub(crate) fn get_opt(container: &Value, key: &Value) -> Option<Value> {
    container.get_item(key).ok().filter(|v| !v.is_undefined())
}
