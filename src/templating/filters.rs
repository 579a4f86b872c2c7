//! nunjucks 3.2.4's built-in filters, tests and globals, with JS semantics
//! and positional arguments (`src/filters.js`, `src/tests.js`,
//! `src/globals.js`). minijinja's own filters are not exposed: a filter
//! nunjucks lacks is an unknown filter here too.

use minijinja::value::{Rest, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};

use super::js::{self, strict_eq};
use super::values::{
    get_opt, is_truthy, js_str_len, json_indent, json_stringify, number_value, to_js_string, to_number, JsArray,
    JsObject,
};

fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn positional(args: &[Value]) -> Vec<Value> {
    args.iter().filter(|a| !a.is_kwargs()).cloned().collect()
}

fn nth(args: &[Value], i: usize) -> Value {
    args.get(i).cloned().unwrap_or(Value::UNDEFINED)
}

fn is_given(v: &Value) -> bool {
    !v.is_undefined()
}

/// nunjucks `normalize(value, default)`: `null`, `undefined` and `false`
/// become the default.
fn normalize_str(v: &Value) -> String {
    if v.is_undefined() || v.is_none() || (v.kind() == ValueKind::Bool && !v.is_true()) {
        String::new()
    } else {
        to_js_string(v)
    }
}

fn items_of(v: &Value) -> Vec<Value> {
    match v.kind() {
        ValueKind::String => v
            .as_str()
            .unwrap_or_default()
            .chars()
            .map(|c| Value::from(c.to_string()))
            .collect(),
        ValueKind::Seq | ValueKind::Iterable | ValueKind::Map => {
            v.try_iter().map(|it| it.collect()).unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

fn is_seq(v: &Value) -> bool {
    matches!(v.kind(), ValueKind::Seq | ValueKind::Iterable)
}

fn attr_of(item: &Value, attr: &Value) -> Value {
    get_opt(item, attr).unwrap_or(Value::UNDEFINED)
}

fn capitalize_str(s: &str) -> String {
    let lower = s.to_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    }
}

/// JS `parseInt(String(v), 10)`.
fn parse_int(v: &Value) -> Option<f64> {
    let s = to_js_string(v);
    let t = s.trim_start();
    let (sign, digits) = match t.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, t.strip_prefix('+').unwrap_or(t)),
    };
    let num: String = digits.chars().take_while(|c| c.is_ascii_digit()).collect();
    if num.is_empty() {
        return None;
    }
    num.parse::<f64>().ok().map(|n| sign * n)
}

/// JS `parseFloat(String(v))`.
fn parse_float(v: &Value) -> Option<f64> {
    let s = to_js_string(v);
    let t = s.trim_start();
    for inf in ["Infinity", "+Infinity"] {
        if t.starts_with(inf) {
            return Some(f64::INFINITY);
        }
    }
    if t.starts_with("-Infinity") {
        return Some(f64::NEG_INFINITY);
    }
    let bytes = t.as_bytes();
    let mut end = 0;
    let mut best = None;
    if end < bytes.len() && (bytes[end] == b'+' || bytes[end] == b'-') {
        end += 1;
    }
    let mut seen_dot = false;
    let mut seen_digit = false;
    while end < bytes.len() {
        match bytes[end] {
            b'0'..=b'9' => {
                seen_digit = true;
                end += 1;
                best = Some(end);
            }
            b'.' if !seen_dot => {
                seen_dot = true;
                end += 1;
            }
            b'e' | b'E' if seen_digit => {
                let mut j = end + 1;
                if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
                    j += 1;
                }
                let exp_start = j;
                while j < bytes.len() && bytes[j].is_ascii_digit() {
                    j += 1;
                }
                if j > exp_start {
                    best = Some(j);
                }
                break;
            }
            _ => break,
        }
    }
    let end = best?;
    t[..end].parse::<f64>().ok()
}

/// What JavaScript's `encodeURIComponent` escapes: all but alphanumerics and `-_.!~*'()`.
pub(crate) const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// `encodeURIComponent`.
pub(crate) fn encode_uri_component(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, URI_COMPONENT).to_string()
}

fn replace(s: Value, old: Value, new: Value, max: Value) -> Result<Value, Error> {
    if old.downcast_object_ref::<js::JsRegex>().is_some() {
        let text = to_js_string(&s);
        return Ok(Value::from(js::string_replace(&text, &old, &new, false)?));
    }
    let old = if old.is_number() {
        to_js_string(&old)
    } else if old.kind() == ValueKind::String {
        old.as_str().unwrap_or_default().to_string()
    } else {
        return Ok(s);
    };
    let text = if s.is_number() {
        to_js_string(&s)
    } else if s.kind() == ValueKind::String {
        s.as_str().unwrap_or_default().to_string()
    } else {
        return Ok(s);
    };
    let new = to_js_string(&new);
    let max_count = if is_given(&max) { to_number(&max) } else { -1.0 };
    if old.is_empty() {
        // Python behaviour: "abc"|replace("", ".") -> ".a.b.c."
        let chars: Vec<String> = text.chars().map(|c| c.to_string()).collect();
        return Ok(Value::from(format!("{new}{}{new}", chars.join(&new))));
    }
    if max_count == 0.0 || !text.contains(&old) {
        return Ok(Value::from(text));
    }
    let mut out = String::new();
    let mut rest = text.as_str();
    let mut count = 0.0;
    while let Some(idx) = rest.find(&old) {
        if max_count >= 0.0 && count >= max_count {
            break;
        }
        out.push_str(&rest[..idx]);
        out.push_str(&new);
        rest = &rest[idx + old.len()..];
        count += 1.0;
    }
    out.push_str(rest);
    Ok(Value::from(out))
}

fn length(v: &Value) -> Value {
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => Value::from(0),
        ValueKind::Bool if !v.is_true() => Value::from(0),
        ValueKind::String => Value::from(js_str_len(v.as_str().unwrap_or_default())),
        ValueKind::Map => Value::from(v.len().unwrap_or(0)),
        ValueKind::Seq | ValueKind::Iterable => js::js_length(v),
        _ => Value::UNDEFINED,
    }
}

/// The TypeError nunjucks throws when a filter reads a property of
/// `undefined` or `null`.
fn missing_input(v: &Value, property: &str) -> Result<(), Error> {
    if v.is_undefined() || v.is_none() {
        return Err(err(format!(
            "Cannot read properties of {} (reading '{property}')",
            if v.is_none() { "null" } else { "undefined" }
        )));
    }
    Ok(())
}

/// nunjucks' `safe`: a `SafeString` of the value's text (`toString()`);
/// `undefined` and `null` become an empty one (not `undefined`, so `default`
/// no longer applies).
fn safe(v: Value) -> Value {
    if v.is_safe() {
        v
    } else if v.is_undefined() || v.is_none() {
        Value::from_safe_string(String::new())
    } else if v.kind() == ValueKind::String {
        Value::from_safe_string(v.as_str().unwrap_or_default().to_owned())
    } else {
        // `str.toString()`: `[object Object]`, `x,y`, `5`.
        Value::from_safe_string(to_js_string(&v))
    }
}

fn indent(s: &Value, width: &Value, first: &Value) -> Value {
    let text = normalize_str(s);
    // nunjucks returns '' for an empty string, but a SafeString is an object
    // and skips that shortcut: `undefined | safe | indent(8, true)` is eight
    // spaces. The result keeps the input's safeness (`copySafeness`).
    if text.is_empty() && !s.is_safe() {
        return Value::from("");
    }
    let w = if is_truthy(width) {
        to_number(width).max(0.0) as usize
    } else {
        4
    };
    let pad = " ".repeat(w);
    let indent_first = is_truthy(first);
    let lines: Vec<String> = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| {
            if i == 0 && !indent_first {
                l.to_string()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect();
    if s.is_safe() {
        Value::from_safe_string(lines.join("\n"))
    } else {
        Value::from(lines.join("\n"))
    }
}

fn truncate(input: &Value, length: &Value, killwords: &Value, end: &Value) -> Value {
    let text = normalize_str(input);
    let len = if is_truthy(length) {
        to_number(length) as usize
    } else {
        255
    };
    let units: Vec<u16> = text.encode_utf16().collect();
    if units.len() <= len {
        return Value::from(text);
    }
    let cut = if is_truthy(killwords) {
        len
    } else {
        // lastIndexOf(' ', len)
        let upto = len.min(units.len() - 1);
        (0..=upto).rev().find(|&i| units[i] == b' ' as u16).unwrap_or(len)
    };
    let mut out = String::from_utf16_lossy(&units[..cut]);
    if end.is_undefined() || end.is_none() {
        out.push_str("...");
    } else {
        out.push_str(&to_js_string(end));
    }
    Value::from(out)
}

fn sort(arr: &Value, reverse: bool, case_sensitive: bool, attr: &Value) -> Value {
    let mut items = items_of(arr);
    let key = |v: &Value| -> Value {
        let x = if is_given(attr) { attr_of(v, attr) } else { v.clone() };
        if !case_sensitive {
            if let Some(s) = x.as_str() {
                return Value::from(s.to_lowercase());
            }
        }
        x
    };
    items.sort_by(|a, b| {
        let (x, y) = (key(a), key(b));
        let less = js_less(&x, &y);
        let greater = js_less(&y, &x);
        let ord = if less {
            std::cmp::Ordering::Less
        } else if greater {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        };
        if reverse {
            ord.reverse()
        } else {
            ord
        }
    });
    JsArray::new_value(items)
}

fn js_less(a: &Value, b: &Value) -> bool {
    if a.kind() == ValueKind::String && b.kind() == ValueKind::String {
        return a
            .as_str()
            .unwrap_or_default()
            .encode_utf16()
            .lt(b.as_str().unwrap_or_default().encode_utf16());
    }
    let (x, y) = (to_number(a), to_number(b));
    x < y
}

fn striptags(input: &Value, preserve: &Value) -> Result<Value, Error> {
    let text = normalize_str(input);
    let tags = regex::Regex::new(r"(?i)</?([a-z][a-z0-9]*)\b[^>]*>|<!--[\s\S]*?-->").map_err(|e| err(e.to_string()))?;
    let stripped = tags.replace_all(&text, "");
    let trimmed = stripped.trim();
    let out = if is_truthy(preserve) {
        let edge = regex::Regex::new(r"(?m)^ +| +$").map_err(|e| err(e.to_string()))?;
        let spaces = regex::Regex::new(r" +").map_err(|e| err(e.to_string()))?;
        let blank = regex::Regex::new(r"\n\n\n+").map_err(|e| err(e.to_string()))?;
        let a = edge.replace_all(trimmed, "");
        let b = spaces.replace_all(&a, " ");
        let c = b.replace("\r\n", "\n");
        blank.replace_all(&c, "\n\n").into_owned()
    } else {
        let ws = regex::Regex::new(r"\s+").map_err(|e| err(e.to_string()))?;
        ws.replace_all(trimmed, " ").into_owned()
    };
    Ok(Value::from(out))
}

fn urlencode(v: &Value) -> Value {
    if v.is_undefined() || v.is_none() {
        return Value::from("");
    }
    if v.kind() == ValueKind::String {
        return Value::from(encode_uri_component(v.as_str().unwrap_or_default()));
    }
    let pairs: Vec<(Value, Value)> = if is_seq(v) {
        items_of(v)
            .into_iter()
            .map(|p| (nth(&items_of(&p), 0), nth(&items_of(&p), 1)))
            .collect()
    } else if v.kind() == ValueKind::Map {
        items_of(v)
            .into_iter()
            .map(|k| {
                let val = attr_of(v, &k);
                (k, val)
            })
            .collect()
    } else {
        return Value::from(encode_uri_component(&to_js_string(v)));
    };
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, val)| {
            format!(
                "{}={}",
                encode_uri_component(&to_js_string(k)),
                encode_uri_component(&to_js_string(val))
            )
        })
        .collect();
    Value::from(parts.join("&"))
}

fn round(v: &Value, precision: &Value, method: &Value) -> Value {
    let p = if is_truthy(precision) {
        to_number(precision)
    } else {
        0.0
    };
    let factor = 10f64.powf(p);
    let x = to_number(v) * factor;
    let r = match method.as_str() {
        Some("ceil") => x.ceil(),
        Some("floor") => x.floor(),
        // Math.round rounds half up.
        _ => (x + 0.5).floor(),
    };
    number_value(r / factor)
}

fn batch(arr: &Value, count: &Value, fill: &Value) -> Value {
    let n = to_number(count).max(1.0) as usize;
    let mut out: Vec<Value> = Vec::new();
    let mut tmp: Vec<Value> = Vec::new();
    for (i, item) in items_of(arr).into_iter().enumerate() {
        if i % n == 0 && !tmp.is_empty() {
            out.push(JsArray::new_value(std::mem::take(&mut tmp)));
        }
        tmp.push(item);
    }
    if !tmp.is_empty() {
        if is_truthy(fill) {
            while tmp.len() < n {
                tmp.push(fill.clone());
            }
        }
        out.push(JsArray::new_value(tmp));
    }
    JsArray::new_value(out)
}

fn slice(arr: &Value, slices: &Value, fill: &Value) -> Value {
    let items = items_of(arr);
    let n = to_number(slices).max(1.0) as usize;
    let per = items.len() / n;
    let extra = items.len() % n;
    let mut out = Vec::new();
    let mut offset = 0;
    for i in 0..n {
        let start = offset + i * per;
        if i < extra {
            offset += 1;
        }
        let end = offset + (i + 1) * per;
        let mut chunk: Vec<Value> = items.get(start..end.min(items.len())).unwrap_or(&[]).to_vec();
        if is_given(fill) && i >= extra {
            chunk.push(fill.clone());
        }
        out.push(JsArray::new_value(chunk));
    }
    JsArray::new_value(out)
}

fn dictsort(v: &Value, case_sensitive: bool, by: &Value) -> Result<Value, Error> {
    if v.kind() != ValueKind::Map {
        return Err(err("dictsort filter: val must be an object"));
    }
    let mut pairs: Vec<(Value, Value)> = items_of(v)
        .into_iter()
        .map(|k| {
            let val = attr_of(v, &k);
            (k, val)
        })
        .collect();
    let by_value = match by.as_str() {
        None | Some("key") => false,
        Some("value") => true,
        Some(_) => return Err(err("dictsort filter: You can only sort by either key or value")),
    };
    pairs.sort_by(|a, b| {
        let (mut x, mut y) = if by_value {
            (a.1.clone(), b.1.clone())
        } else {
            (a.0.clone(), b.0.clone())
        };
        if !case_sensitive {
            if let (Some(p), Some(q)) = (x.as_str(), y.as_str()) {
                let (p, q) = (p.to_lowercase(), q.to_lowercase());
                x = Value::from(p);
                y = Value::from(q);
            }
        }
        if js_less(&x, &y) {
            std::cmp::Ordering::Less
        } else if js_less(&y, &x) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    Ok(JsArray::new_value(
        pairs.into_iter().map(|(k, v)| JsArray::new_value(vec![k, v])).collect(),
    ))
}

fn groupby(arr: &Value, attr: &Value) -> Value {
    let mut groups: Vec<(String, Vec<Value>)> = Vec::new();
    for item in items_of(arr) {
        let key = to_js_string(&attr_of(&item, attr));
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(item),
            None => groups.push((key, vec![item])),
        }
    }
    JsObject::new_value(
        groups
            .into_iter()
            .map(|(k, items)| (k, JsArray::new_value(items)))
            .collect(),
    )
}

fn escape_html(v: &Value) -> Value {
    let s = normalize_str(v);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            other => out.push(other),
        }
    }
    Value::from(out)
}

fn random_index(len: usize) -> usize {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_usize(len);
    (h.finish() as usize) % len.max(1)
}

/// nunjucks' tests (`src/tests.js`), shared by `is` and `select`/`reject`.
fn run_test(name: &str, v: &Value, args: &[Value]) -> Result<bool, Error> {
    let a0 = nth(args, 0);
    Ok(match name {
        "callable" => v.kind() == ValueKind::Plain,
        "defined" => !v.is_undefined(),
        "undefined" => v.is_undefined(),
        "divisibleby" => to_number(v) % to_number(&a0) == 0.0,
        "escaped" => v.is_safe(),
        "equalto" | "eq" | "sameas" => strict_eq(v, &a0),
        "ne" => !strict_eq(v, &a0),
        "even" => to_number(v) % 2.0 == 0.0,
        "odd" => to_number(v) % 2.0 == 1.0 || to_number(v) % 2.0 == -1.0,
        "falsy" => !is_truthy(v),
        "truthy" => is_truthy(v),
        "ge" => to_number(v) >= to_number(&a0),
        "gt" | "greaterthan" => to_number(v) > to_number(&a0),
        "le" => to_number(v) <= to_number(&a0),
        "lt" | "lessthan" => to_number(v) < to_number(&a0),
        "lower" => v.as_str().is_some_and(|s| s.to_lowercase() == s),
        "upper" => v.as_str().is_some_and(|s| s.to_uppercase() == s),
        "null" | "none" => v.is_none(),
        "number" => v.is_number(),
        "string" => v.kind() == ValueKind::String,
        "iterable" => matches!(v.kind(), ValueKind::Seq | ValueKind::Iterable | ValueKind::String),
        "mapping" => v.kind() == ValueKind::Map,
        other => return Err(Error::new(ErrorKind::UnknownTest, format!("No test named \"{other}\""))),
    })
}

const TEST_NAMES: [&str; 29] = [
    "callable",
    "defined",
    "undefined",
    "divisibleby",
    "escaped",
    "equalto",
    "eq",
    "sameas",
    "ne",
    "even",
    "odd",
    "falsy",
    "truthy",
    "ge",
    "gt",
    "greaterthan",
    "le",
    "lt",
    "lessthan",
    "lower",
    "upper",
    "null",
    "none",
    "number",
    "string",
    "iterable",
    "mapping",
    "true",
    "false",
];

fn select(arr: &Value, args: &[Value], keep: bool) -> Result<Value, Error> {
    let test = nth(args, 0);
    let rest = args.get(1..).unwrap_or(&[]);
    let mut out = Vec::new();
    for item in items_of(arr) {
        let passed = if is_given(&test) {
            run_test(&to_js_string(&test), &item, rest)?
        } else {
            is_truthy(&item)
        };
        if passed == keep {
            out.push(item);
        }
    }
    Ok(JsArray::new_value(out))
}

fn range(args: &[Value]) -> Result<Value, Error> {
    let (start, stop, step) = match args.len() {
        0 => return Err(err("range expects at least one argument")),
        1 => (0.0, to_number(&args[0]), 1.0),
        2 => (to_number(&args[0]), to_number(&args[1]), 1.0),
        _ => (to_number(&args[0]), to_number(&args[1]), to_number(&args[2])),
    };
    let step = if step == 0.0 { 1.0 } else { step };
    let count = ((stop - start) / step).ceil();
    if count.is_nan() || count <= 0.0 {
        return Ok(JsArray::new_value(Vec::new()));
    }
    if count > 100_000.0 {
        return Err(err(format!(
            "range has too many elements ({count}); the limit is 100000"
        )));
    }
    let items = (0..count as usize)
        .map(|i| number_value(start + step * i as f64))
        .collect();
    Ok(JsArray::new_value(items))
}

/// Registers nunjucks' filters, tests and globals.
pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_filter("abs", |v: Value| number_value(to_number(&v).abs()));
    env.add_filter("batch", |v: Value, a: Rest<Value>| {
        let a = positional(&a);
        batch(&v, &nth(&a, 0), &nth(&a, 1))
    });
    env.add_filter("capitalize", |v: Value| Value::from(capitalize_str(&normalize_str(&v))));
    env.add_filter("center", |v: Value, a: Rest<Value>| {
        let a = positional(&a);
        let s = normalize_str(&v);
        let width = if is_truthy(&nth(&a, 0)) {
            to_number(&nth(&a, 0)) as usize
        } else {
            80
        };
        let len = js_str_len(&s);
        if len >= width {
            return Value::from(s);
        }
        // nunjucks' `lib.repeat` loops `i < n` over fractional counts: both
        // halves round up (`center(5)` of '' is five spaces).
        let spaces = (width - len) as f64;
        let pre = " ".repeat((spaces / 2.0 - spaces % 2.0).max(0.0).ceil() as usize);
        let post = " ".repeat((spaces / 2.0).ceil() as usize);
        Value::from(format!("{pre}{s}{post}"))
    });
    let default = |v: Value, a: Rest<Value>| {
        let a = positional(&a);
        let fallback = nth(&a, 0);
        if is_truthy(&nth(&a, 1)) {
            if is_truthy(&v) {
                v
            } else {
                fallback
            }
        } else if v.is_undefined() {
            fallback
        } else {
            v
        }
    };
    env.add_filter("default", default);
    env.add_filter("d", default);
    env.add_filter("dictsort", |v: Value, a: Rest<Value>| {
        let a = positional(&a);
        dictsort(&v, is_truthy(&nth(&a, 0)), &nth(&a, 1))
    });
    env.add_filter("dump", |v: Value, a: Rest<Value>| {
        let a = positional(&a);
        let indent = json_indent(a.first());
        json_stringify(&v, &indent).map(Value::from).unwrap_or(Value::UNDEFINED)
    });
    env.add_filter("escape", |v: Value| escape_html(&v));
    env.add_filter("e", |v: Value| escape_html(&v));
    env.add_filter("forceescape", |v: Value| escape_html(&v));
    // `undefined[0]` throws in nunjucks and nunjitsu alike.
    env.add_filter("first", |v: Value| -> Result<Value, Error> {
        missing_input(&v, "0")?;
        Ok(match v.kind() {
            ValueKind::String | ValueKind::Seq | ValueKind::Iterable => {
                items_of(&v).into_iter().next().unwrap_or(Value::UNDEFINED)
            }
            _ => Value::UNDEFINED,
        })
    });
    env.add_filter("last", |v: Value| -> Result<Value, Error> {
        missing_input(&v, "length")?;
        Ok(match v.kind() {
            ValueKind::String | ValueKind::Seq | ValueKind::Iterable => items_of(&v).pop().unwrap_or(Value::UNDEFINED),
            _ => Value::UNDEFINED,
        })
    });
    env.add_filter("float", |v: Value, a: Rest<Value>| {
        let a = positional(&a);
        match parse_float(&v) {
            Some(f) => number_value(f),
            None => nth(&a, 0),
        }
    });
    env.add_filter("int", |v: Value, a: Rest<Value>| {
        let a = positional(&a);
        match parse_int(&v) {
            Some(i) => number_value(i),
            None => nth(&a, 0),
        }
    });
    env.add_filter("groupby", |v: Value, attr: Value| groupby(&v, &attr));
    env.add_filter("indent", |v: Value, a: Rest<Value>| {
        let a = positional(&a);
        indent(&v, &nth(&a, 0), &nth(&a, 1))
    });
    env.add_filter("join", |v: Value, a: Rest<Value>| {
        let a = positional(&a);
        let sep = if is_truthy(&nth(&a, 0)) {
            to_js_string(&nth(&a, 0))
        } else {
            String::new()
        };
        let attr = nth(&a, 1);
        let mut items = items_of(&v);
        if is_given(&attr) {
            items = items.iter().map(|i| attr_of(i, &attr)).collect();
        }
        Value::from(super::values::join_js(items.iter(), &sep))
    });
    env.add_filter("length", |v: Value| length(&v));
    env.add_filter("list", |v: Value| -> Result<Value, Error> {
        match v.kind() {
            ValueKind::String | ValueKind::Seq | ValueKind::Iterable => Ok(JsArray::new_value(items_of(&v))),
            ValueKind::Map => Ok(JsArray::new_value(
                items_of(&v)
                    .into_iter()
                    .map(|k| {
                        let val = attr_of(&v, &k);
                        js::object(vec![("key", k), ("value", val)])
                    })
                    .collect(),
            )),
            _ => Err(err("list filter: type not iterable")),
        }
    });
    env.add_filter("lower", |v: Value| Value::from(normalize_str(&v).to_lowercase()));
    env.add_filter("upper", |v: Value| Value::from(normalize_str(&v).to_uppercase()));
    env.add_filter("nl2br", |v: Value| {
        if v.is_undefined() || v.is_none() {
            return Value::from("");
        }
        let s = to_js_string(&v).replace("\r\n", "\n").replace('\n', "<br />\n");
        Value::from(s)
    });
    env.add_filter("random", |v: Value| {
        let items = items_of(&v);
        if items.is_empty() {
            Value::UNDEFINED
        } else {
            items[random_index(items.len())].clone()
        }
    });
    env.add_filter("reject", |v: Value, a: Rest<Value>| select(&v, &positional(&a), false));
    env.add_filter("select", |v: Value, a: Rest<Value>| select(&v, &positional(&a), true));
    env.add_filter("rejectattr", |v: Value, attr: Value| {
        JsArray::new_value(
            items_of(&v)
                .into_iter()
                .filter(|i| !is_truthy(&attr_of(i, &attr)))
                .collect(),
        )
    });
    env.add_filter("selectattr", |v: Value, attr: Value| {
        JsArray::new_value(
            items_of(&v)
                .into_iter()
                .filter(|i| is_truthy(&attr_of(i, &attr)))
                .collect(),
        )
    });
    env.add_filter("replace", |v: Value, a: Rest<Value>| {
        let a = positional(&a);
        replace(v, nth(&a, 0), nth(&a, 1), nth(&a, 2))
    });
    env.add_filter("reverse", |v: Value| {
        let mut items = items_of(&v);
        items.reverse();
        if v.kind() == ValueKind::String {
            Value::from(items.iter().map(to_js_string).collect::<String>())
        } else {
            JsArray::new_value(items)
        }
    });
    env.add_filter("round", |v: Value, a: Rest<Value>| {
        let a = positional(&a);
        round(&v, &nth(&a, 0), &nth(&a, 1))
    });
    env.add_filter("safe", safe);
    env.add_filter("slice", |v: Value, a: Rest<Value>| {
        let a = positional(&a);
        slice(&v, &nth(&a, 0), &nth(&a, 1))
    });
    env.add_filter("sort", |v: Value, a: Rest<Value>| {
        let a = positional(&a);
        sort(&v, is_truthy(&nth(&a, 0)), is_truthy(&nth(&a, 1)), &nth(&a, 2))
    });
    env.add_filter("string", |v: Value| -> Result<Value, Error> {
        if v.is_undefined() || v.is_none() {
            return Err(err(format!(
                "Cannot read properties of {} (reading 'toString')",
                if v.is_none() { "null" } else { "undefined" }
            )));
        }
        Ok(Value::from(to_js_string(&v)))
    });
    env.add_filter("striptags", |v: Value, a: Rest<Value>| {
        let a = positional(&a);
        striptags(&v, &nth(&a, 0))
    });
    env.add_filter("sum", |v: Value, a: Rest<Value>| {
        let a = positional(&a);
        let attr = nth(&a, 0);
        let mut total = if is_given(&nth(&a, 1)) {
            nth(&a, 1)
        } else {
            Value::from(0)
        };
        for item in items_of(&v) {
            let x = if is_given(&attr) { attr_of(&item, &attr) } else { item };
            total = js::add(&total, &x);
        }
        total
    });
    env.add_filter("title", |v: Value| {
        let s = normalize_str(&v);
        Value::from(s.split(' ').map(capitalize_str).collect::<Vec<_>>().join(" "))
    });
    env.add_filter("trim", |v: Value| -> Result<Value, Error> {
        missing_input(&v, "replace")?;
        let trimmed = normalize_str(&v).trim().to_string();
        Ok(if v.is_safe() {
            Value::from_safe_string(trimmed)
        } else {
            Value::from(trimmed)
        })
    });
    env.add_filter("truncate", |v: Value, a: Rest<Value>| {
        let a = positional(&a);
        truncate(&v, &nth(&a, 0), &nth(&a, 1), &nth(&a, 2))
    });
    env.add_filter("urlencode", |v: Value| urlencode(&v));
    env.add_filter("wordcount", |v: Value| -> Result<Value, Error> {
        let s = normalize_str(&v);
        let words = regex::Regex::new(r"\w+").map_err(|e| err(e.to_string()))?;
        let n = words.find_iter(&s).count();
        Ok(if n == 0 { Value::from(()) } else { Value::from(n) })
    });

    for name in TEST_NAMES {
        env.add_test(name, move |v: Value, a: Rest<Value>| -> Result<bool, Error> {
            match name {
                "true" => Ok(v.kind() == ValueKind::Bool && v.is_true()),
                "false" => Ok(v.kind() == ValueKind::Bool && !v.is_true()),
                _ => run_test(name, &v, &positional(&a)),
            }
        });
    }

    env.add_function("range", |a: Rest<Value>| range(&positional(&a)));
}

/// The `jsonify` filter of `cookiecutterCompat` (nunjucks' `dump`).
pub(crate) fn register_jsonify(env: &mut Environment<'static>) {
    env.add_filter("jsonify", |v: Value, a: Rest<Value>| {
        let a = positional(&a);
        let indent = json_indent(a.first());
        json_stringify(&v, &indent).map(Value::from).unwrap_or(Value::UNDEFINED)
    });
}
