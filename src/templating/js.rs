//! JavaScript operators and methods for nunjucks templates.
//!
//! `syntax.rs` turns operators into calls of the `__js*` helpers defined
//! here; method calls on values (`name.split('-')`, `list.join(', ')`) reach
//! [`call_method`] through minijinja's unknown-method callback. Semantics
//! follow ECMAScript; string positions are counted in UTF-16 code units as
//! in JS.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use minijinja::value::{Object, ObjectRepr, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};

use super::values::{get_opt, is_truthy, js_str_len, number_value, to_js_string, to_number, JsArray, JsObject};

fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// A regex literal `r/…/flags`.
#[derive(Debug)]
pub(crate) struct JsRegex {
    source: String,
    flags: String,
    regex: regex::Regex,
}

impl JsRegex {
    pub(crate) fn source_text(&self) -> String {
        format!("/{}/{}", self.source, self.flags)
    }

    fn global(&self) -> bool {
        self.flags.contains('g')
    }
}

impl Object for JsRegex {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source_text())
    }
}

fn make_regex(source: &str, flags: &str) -> Result<Value, Error> {
    let mut prefix = String::new();
    for (flag, inline) in [('i', 'i'), ('m', 'm'), ('s', 's')] {
        if flags.contains(flag) {
            prefix.push(inline);
        }
    }
    let pattern = if prefix.is_empty() {
        source.to_string()
    } else {
        format!("(?{prefix}){source}")
    };
    let regex = regex::Regex::new(&pattern).map_err(|e| err(format!("invalid regular expression /{source}/: {e}")))?;
    Ok(Value::from_object(JsRegex {
        source: source.to_string(),
        flags: flags.to_string(),
        regex,
    }))
}

fn as_regex(v: &Value) -> Option<&JsRegex> {
    v.downcast_object_ref::<JsRegex>()
}

fn is_string(v: &Value) -> bool {
    v.kind() == ValueKind::String
}

fn is_primitive(v: &Value) -> bool {
    matches!(
        v.kind(),
        ValueKind::Undefined | ValueKind::None | ValueKind::Bool | ValueKind::Number | ValueKind::String
    )
}

/// ToPrimitive for operators: arrays and objects become their string form.
fn to_primitive(v: &Value) -> Value {
    if is_primitive(v) {
        v.clone()
    } else {
        Value::from(to_js_string(v))
    }
}

fn int_pair(a: &Value, b: &Value) -> Option<(i64, i64)> {
    if a.is_integer() && b.is_integer() {
        Some((a.as_i64()?, b.as_i64()?))
    } else {
        None
    }
}

/// JS `a + b`.
pub(crate) fn add(a: &Value, b: &Value) -> Value {
    let (pa, pb) = (to_primitive(a), to_primitive(b));
    if is_string(&pa) || is_string(&pb) {
        return Value::from(format!("{}{}", to_js_string(&pa), to_js_string(&pb)));
    }
    if let Some((x, y)) = int_pair(&pa, &pb) {
        if let Some(sum) = x.checked_add(y) {
            return Value::from(sum);
        }
    }
    number_value(to_number(&pa) + to_number(&pb))
}

fn arith(a: &Value, b: &Value, op: fn(f64, f64) -> f64) -> Value {
    number_value(op(to_number(a), to_number(b)))
}

/// JS `%`: the result takes the sign of the dividend.
fn js_mod(x: f64, y: f64) -> f64 {
    x % y
}

fn compare(a: &Value, op: &str, b: &Value) -> Result<bool, Error> {
    Ok(match op {
        "===" => strict_eq(a, b),
        "!==" => !strict_eq(a, b),
        "==" => loose_eq(a, b),
        "!=" => !loose_eq(a, b),
        "<" | ">" | "<=" | ">=" => {
            let (pa, pb) = (to_primitive(a), to_primitive(b));
            let ord = if is_string(&pa) && is_string(&pb) {
                let (x, y) = (pa.as_str().unwrap_or_default(), pb.as_str().unwrap_or_default());
                Some(x.encode_utf16().cmp(y.encode_utf16()))
            } else {
                to_number(&pa).partial_cmp(&to_number(&pb))
            };
            match (op, ord) {
                (_, None) => false,
                ("<", Some(o)) => o == Ordering::Less,
                (">", Some(o)) => o == Ordering::Greater,
                ("<=", Some(o)) => o != Ordering::Greater,
                (_, Some(o)) => o != Ordering::Less,
            }
        }
        other => return Err(err(format!("unknown comparison operator {other}"))),
    })
}

/// JS `===` (objects compare by content, as values here have no identity).
pub(crate) fn strict_eq(a: &Value, b: &Value) -> bool {
    match (a.kind(), b.kind()) {
        (ValueKind::Number, ValueKind::Number) => {
            if let Some((x, y)) = int_pair(a, b) {
                x == y
            } else {
                to_number(a) == to_number(b)
            }
        }
        (ka, kb) if ka != kb => false,
        (ValueKind::Undefined, _) | (ValueKind::None, _) => true,
        _ => a == b,
    }
}

/// JS `==`.
fn loose_eq(a: &Value, b: &Value) -> bool {
    let nullish = |v: &Value| v.is_undefined() || v.is_none();
    if nullish(a) || nullish(b) {
        return nullish(a) && nullish(b);
    }
    let (ka, kb) = (a.kind(), b.kind());
    if ka == kb {
        return strict_eq(a, b);
    }
    if ka == ValueKind::Bool || kb == ValueKind::Bool {
        let conv = |v: &Value| {
            if v.kind() == ValueKind::Bool {
                Value::from(to_number(v))
            } else {
                v.clone()
            }
        };
        return loose_eq(&conv(a), &conv(b));
    }
    let (pa, pb) = (to_primitive(a), to_primitive(b));
    if is_primitive(a) && is_primitive(b) || !is_primitive(a) || !is_primitive(b) {
        if is_string(&pa) && is_string(&pb) {
            return pa == pb;
        }
        return to_number(&pa) == to_number(&pb);
    }
    false
}

/// nunjucks' `in` operator (`lib.inOperator`).
fn js_in(key: &Value, container: &Value) -> Result<bool, Error> {
    match container.kind() {
        ValueKind::String => {
            let hay = container.as_str().unwrap_or_default();
            Ok(hay.contains(to_js_string(key).as_str()))
        }
        ValueKind::Seq | ValueKind::Iterable => Ok(container
            .try_iter()
            .map(|mut it| it.any(|item| strict_eq(&item, key)))
            .unwrap_or(false)),
        ValueKind::Map => {
            let k = Value::from(to_js_string(key));
            Ok(get_opt(container, &k).is_some())
        }
        _ => Err(err(format!(
            "Cannot use \"in\" operator to search for \"{}\" in unexpected types.",
            to_js_string(key)
        ))),
    }
}

/// `x.length`.
pub(crate) fn js_length(v: &Value) -> Value {
    match v.kind() {
        ValueKind::String => Value::from(js_str_len(v.as_str().unwrap_or_default())),
        ValueKind::Seq | ValueKind::Iterable => Value::from(
            v.len()
                .unwrap_or_else(|| v.try_iter().map(|it| it.count()).unwrap_or(0)),
        ),
        ValueKind::Map => get_opt(v, &Value::from("length")).unwrap_or(Value::UNDEFINED),
        _ => Value::UNDEFINED,
    }
}

/// nunjucks' `memberLookup`: `obj.key` / `obj[key]` with JS semantics
/// (`undefined` base or missing key → `undefined`, no negative indexes).
fn js_get(obj: &Value, key: &Value) -> Value {
    let index = if key.is_number() {
        let n = to_number(key);
        (n >= 0.0 && n.fract() == 0.0).then_some(n as usize)
    } else {
        key.as_str().and_then(|s| s.parse::<usize>().ok()).filter(|_| {
            key.as_str()
                .is_some_and(|s| !s.starts_with('+') && (s == "0" || !s.starts_with('0')))
        })
    };
    match obj.kind() {
        ValueKind::Undefined | ValueKind::None => Value::UNDEFINED,
        ValueKind::String => {
            let s = obj.as_str().unwrap_or_default();
            if key.as_str() == Some("length") {
                return Value::from(js_str_len(s));
            }
            match index {
                Some(i) => {
                    let u = utf16(s);
                    u.get(i)
                        .map(|_| Value::from(from_utf16(&u[i..i + 1])))
                        .unwrap_or(Value::UNDEFINED)
                }
                None => Value::UNDEFINED,
            }
        }
        ValueKind::Seq | ValueKind::Iterable => {
            if key.as_str() == Some("length") {
                return js_length(obj);
            }
            match index {
                Some(i) => obj.get_item(&Value::from(i)).unwrap_or(Value::UNDEFINED),
                None => Value::UNDEFINED,
            }
        }
        ValueKind::Map => {
            let k = if key.kind() == ValueKind::String {
                key.clone()
            } else {
                Value::from(to_js_string(key))
            };
            obj.get_item(&k).unwrap_or(Value::UNDEFINED)
        }
        ValueKind::Number | ValueKind::Bool => Value::UNDEFINED,
        _ => match key.as_str() {
            Some(k) => obj.get_attr(k).unwrap_or(Value::UNDEFINED),
            None => obj.get_item(key).unwrap_or(Value::UNDEFINED),
        },
    }
}

/// `for k, v in obj`: nunjucks iterates an object's `[key, value]` pairs.
fn entries(v: &Value) -> Value {
    if v.kind() == ValueKind::Map {
        let pairs: Vec<Value> = v
            .try_iter()
            .map(|it| {
                it.map(|k| {
                    let item = v.get_item(&k).unwrap_or_default();
                    JsArray::new_value(vec![k, item])
                })
                .collect()
            })
            .unwrap_or_default();
        JsArray::new_value(pairs)
    } else if v.is_undefined() || v.is_none() {
        JsArray::new_value(Vec::new())
    } else {
        v.clone()
    }
}

/// Registers the operator helpers used by translated templates.
pub(crate) fn register_operators(env: &mut Environment<'static>) {
    env.add_function("__jsadd", |a: Value, b: Value| add(&a, &b));
    env.add_function("__jssub", |a: Value, b: Value| arith(&a, &b, |x, y| x - y));
    env.add_function("__jsmul", |a: Value, b: Value| arith(&a, &b, |x, y| x * y));
    env.add_function("__jsdiv", |a: Value, b: Value| arith(&a, &b, |x, y| x / y));
    env.add_function("__jsfloordiv", |a: Value, b: Value| {
        arith(&a, &b, |x, y| (x / y).floor())
    });
    env.add_function("__jsmod", |a: Value, b: Value| arith(&a, &b, js_mod));
    env.add_function("__jspow", |a: Value, b: Value| arith(&a, &b, f64::powf));
    env.add_function("__jsneg", |a: Value| number_value(-to_number(&a)));
    env.add_function("__jsnum", |a: Value| number_value(to_number(&a)));
    // nunjucks compiles `a ~ b` to `"" + a + b`.
    env.add_function("__jscat", |a: Value, b: Value| {
        Value::from(format!("{}{}", to_js_string(&a), to_js_string(&b)))
    });
    env.add_function("__jscmp", |a: Value, op: String, b: Value| compare(&a, &op, &b));
    env.add_function("__jsin", |a: Value, b: Value| js_in(&a, &b));
    env.add_function("__jslen", |a: Value| js_length(&a));
    env.add_function("__jsentries", |a: Value| entries(&a));
    env.add_function("__jstruth", |a: Value| is_truthy(&a));
    env.add_function("__jsget", |obj: Value, key: Value| js_get(&obj, &key));
    env.add_function("__jsvar", |state: &State, name: String| {
        state.lookup(&name).unwrap_or(Value::UNDEFINED)
    });
    env.add_function("__jsregex", |p: String, f: String| make_regex(&p, &f));
}

// ---------------------------------------------------------------------------
// Methods

fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn from_utf16(units: &[u16]) -> String {
    String::from_utf16_lossy(units)
}

/// ToIntegerOrInfinity.
fn to_integer(v: Option<&Value>, default: f64) -> f64 {
    match v {
        None => default,
        Some(v) if v.is_undefined() => default,
        Some(v) => {
            let n = to_number(v);
            if n.is_nan() {
                0.0
            } else {
                n.trunc()
            }
        }
    }
}

/// Resolves a relative index (negative counts from the end) into `0..=len`.
fn relative_index(v: Option<&Value>, default: f64, len: usize) -> usize {
    let n = to_integer(v, default);
    let len_f = len as f64;
    let idx = if n < 0.0 { (len_f + n).max(0.0) } else { n.min(len_f) };
    idx as usize
}

fn find_units(hay: &[u16], needle: &[u16], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return Some(from.min(hay.len()));
    }
    if needle.len() > hay.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

fn rfind_units(hay: &[u16], needle: &[u16], from: usize) -> Option<usize> {
    if needle.len() > hay.len() {
        return None;
    }
    let last = (hay.len() - needle.len()).min(from);
    (0..=last).rev().find(|&i| &hay[i..i + needle.len()] == needle)
}

fn arg(args: &[Value], i: usize) -> Option<&Value> {
    args.get(i).filter(|v| !v.is_kwargs())
}

fn arg_string(args: &[Value], i: usize) -> String {
    arg(args, i)
        .map(to_js_string)
        .unwrap_or_else(|| "undefined".to_string())
}

/// JS `GetSubstitution` for replacement patterns: `$$`, `$&`, `` $` ``,
/// `$'`, `$1`…`$99`, `$<name>`.
fn substitute(replacement: &str, caps: &regex::Captures<'_>, hay: &str) -> String {
    let m = caps.get(0).map(|m| (m.start(), m.end())).unwrap_or((0, 0));
    let mut out = String::new();
    let chars: Vec<char> = replacement.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '$' || i + 1 >= chars.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let next = chars[i + 1];
        match next {
            '$' => {
                out.push('$');
                i += 2;
            }
            '&' => {
                out.push_str(&hay[m.0..m.1]);
                i += 2;
            }
            '`' => {
                out.push_str(&hay[..m.0]);
                i += 2;
            }
            '\'' => {
                out.push_str(&hay[m.1..]);
                i += 2;
            }
            '<' => {
                let close = chars[i + 2..].iter().position(|&c| c == '>');
                match close {
                    Some(len) => {
                        let name: String = chars[i + 2..i + 2 + len].iter().collect();
                        if let Some(g) = caps.name(&name) {
                            out.push_str(g.as_str());
                        }
                        i += 3 + len;
                    }
                    None => {
                        out.push('$');
                        i += 1;
                    }
                }
            }
            d if d.is_ascii_digit() => {
                let one = d.to_digit(10).unwrap_or(0) as usize;
                let two = chars
                    .get(i + 2)
                    .and_then(|c| c.to_digit(10))
                    .map(|d2| one * 10 + d2 as usize);
                let groups = caps.len() - 1;
                if let Some(n) = two.filter(|n| *n >= 1 && *n <= groups) {
                    if let Some(g) = caps.get(n) {
                        out.push_str(g.as_str());
                    }
                    i += 3;
                } else if one >= 1 && one <= groups {
                    if let Some(g) = caps.get(one) {
                        out.push_str(g.as_str());
                    }
                    i += 2;
                } else {
                    out.push('$');
                    i += 1;
                }
            }
            _ => {
                out.push('$');
                i += 1;
            }
        }
    }
    out
}

/// `String.prototype.replace` / `replaceAll` with a string or regex pattern.
pub(crate) fn string_replace(s: &str, pattern: &Value, replacement: &Value, all: bool) -> Result<String, Error> {
    let repl = to_js_string(replacement);
    if let Some(re) = as_regex(pattern) {
        if all && !re.global() {
            return Err(err("replaceAll must be called with a global RegExp"));
        }
        let limit = if re.global() { 0 } else { 1 };
        let mut out = String::new();
        let mut last = 0;
        for (n, caps) in re.regex.captures_iter(s).enumerate() {
            if limit == 1 && n >= 1 {
                break;
            }
            let Some(m) = caps.get(0) else { continue };
            out.push_str(&s[last..m.start()]);
            out.push_str(&substitute(&repl, &caps, s));
            last = m.end();
        }
        out.push_str(&s[last..]);
        return Ok(out);
    }
    let needle = to_js_string(pattern);
    let literal = regex::Regex::new(&regex::escape(&needle)).map_err(|e| err(e.to_string()))?;
    let mut out = String::new();
    let mut last = 0;
    for caps in literal.captures_iter(s) {
        let Some(m) = caps.get(0) else { continue };
        out.push_str(&s[last..m.start()]);
        out.push_str(&substitute(&repl, &caps, s));
        last = m.end();
        if !all {
            break;
        }
    }
    if needle.is_empty() && all {
        // "abc".replaceAll("", "-") === "-a-b-c-"
        let mut out = String::new();
        for ch in s.chars() {
            out.push_str(&repl);
            out.push(ch);
        }
        out.push_str(&repl);
        return Ok(out);
    }
    out.push_str(&s[last..]);
    Ok(out)
}

fn string_split(s: &str, sep: Option<&Value>, limit: Option<&Value>) -> Value {
    let limit = match limit {
        Some(l) if !l.is_undefined() => to_number(l).max(0.0) as usize,
        _ => usize::MAX,
    };
    let parts: Vec<String> = match sep {
        None => vec![s.to_string()],
        Some(v) if v.is_undefined() => vec![s.to_string()],
        Some(v) => {
            if let Some(re) = as_regex(v) {
                re.regex.split(s).map(str::to_string).collect()
            } else {
                let sep = to_js_string(v);
                if sep.is_empty() {
                    s.chars().map(|c| c.to_string()).collect()
                } else {
                    s.split(sep.as_str()).map(str::to_string).collect()
                }
            }
        }
    };
    JsArray::new_value(parts.into_iter().take(limit).map(Value::from).collect())
}

fn string_method(s: &str, name: &str, args: &[Value]) -> Result<Value, Error> {
    let units = || utf16(s);
    Ok(match name {
        "split" => string_split(s, arg(args, 0), arg(args, 1)),
        "replace" => Value::from(string_replace(
            s,
            arg(args, 0).unwrap_or(&Value::UNDEFINED),
            arg(args, 1).unwrap_or(&Value::UNDEFINED),
            false,
        )?),
        "replaceAll" => Value::from(string_replace(
            s,
            arg(args, 0).unwrap_or(&Value::UNDEFINED),
            arg(args, 1).unwrap_or(&Value::UNDEFINED),
            true,
        )?),
        "slice" => {
            let u = units();
            let start = relative_index(arg(args, 0), 0.0, u.len());
            let end = relative_index(arg(args, 1), u.len() as f64, u.len());
            Value::from(if start < end {
                from_utf16(&u[start..end])
            } else {
                String::new()
            })
        }
        "substring" => {
            let u = units();
            let clamp = |v: Option<&Value>, d: f64| to_integer(v, d).clamp(0.0, u.len() as f64) as usize;
            let (mut a, mut b) = (clamp(arg(args, 0), 0.0), clamp(arg(args, 1), u.len() as f64));
            if a > b {
                std::mem::swap(&mut a, &mut b);
            }
            Value::from(from_utf16(&u[a..b]))
        }
        "substr" => {
            let u = units();
            let start = relative_index(arg(args, 0), 0.0, u.len());
            let len = to_integer(arg(args, 1), f64::INFINITY).max(0.0);
            let end = (start as f64 + len).min(u.len() as f64) as usize;
            Value::from(from_utf16(&u[start..end.max(start)]))
        }
        "trim" => Value::from(s.trim()),
        "trimStart" | "trimLeft" => Value::from(s.trim_start()),
        "trimEnd" | "trimRight" => Value::from(s.trim_end()),
        "toLowerCase" | "toLocaleLowerCase" => Value::from(s.to_lowercase()),
        "toUpperCase" | "toLocaleUpperCase" => Value::from(s.to_uppercase()),
        "toString" | "valueOf" => Value::from(s),
        "startsWith" => {
            let u = units();
            let needle = utf16(&arg_string(args, 0));
            let pos = to_integer(arg(args, 1), 0.0).clamp(0.0, u.len() as f64) as usize;
            Value::from(u[pos..].starts_with(&needle))
        }
        "endsWith" => {
            let u = units();
            let needle = utf16(&arg_string(args, 0));
            let end = to_integer(arg(args, 1), u.len() as f64).clamp(0.0, u.len() as f64) as usize;
            Value::from(u[..end].ends_with(&needle))
        }
        "includes" => {
            let u = units();
            let needle = utf16(&arg_string(args, 0));
            let pos = to_integer(arg(args, 1), 0.0).clamp(0.0, u.len() as f64) as usize;
            Value::from(find_units(&u, &needle, pos).is_some())
        }
        "indexOf" => {
            let u = units();
            let needle = utf16(&arg_string(args, 0));
            let pos = to_integer(arg(args, 1), 0.0).clamp(0.0, u.len() as f64) as usize;
            Value::from(find_units(&u, &needle, pos).map(|i| i as i64).unwrap_or(-1))
        }
        "lastIndexOf" => {
            let u = units();
            let needle = utf16(&arg_string(args, 0));
            let pos = to_integer(arg(args, 1), f64::INFINITY).clamp(0.0, u.len() as f64) as usize;
            Value::from(rfind_units(&u, &needle, pos).map(|i| i as i64).unwrap_or(-1))
        }
        "padStart" | "padEnd" => {
            let u = units();
            let target = to_integer(arg(args, 0), 0.0).max(0.0) as usize;
            let fill = match arg(args, 1) {
                Some(v) if !v.is_undefined() => utf16(&to_js_string(v)),
                _ => utf16(" "),
            };
            if target <= u.len() || fill.is_empty() {
                Value::from(s)
            } else {
                let pad: Vec<u16> = fill.iter().copied().cycle().take(target - u.len()).collect();
                let padded = if name == "padStart" {
                    [pad, u].concat()
                } else {
                    [u, pad].concat()
                };
                Value::from(from_utf16(&padded))
            }
        }
        "concat" => {
            let mut out = s.to_string();
            for a in args.iter().filter(|a| !a.is_kwargs()) {
                out.push_str(&to_js_string(a));
            }
            Value::from(out)
        }
        "charAt" | "at" => {
            let u = units();
            let idx = to_integer(arg(args, 0), 0.0);
            let idx = if name == "at" && idx < 0.0 {
                u.len() as f64 + idx
            } else {
                idx
            };
            if idx < 0.0 || idx >= u.len() as f64 {
                if name == "at" {
                    Value::UNDEFINED
                } else {
                    Value::from("")
                }
            } else {
                let i = idx as usize;
                Value::from(from_utf16(&u[i..i + 1]))
            }
        }
        "charCodeAt" => {
            let u = units();
            let idx = to_integer(arg(args, 0), 0.0);
            if idx < 0.0 || idx >= u.len() as f64 {
                Value::from(f64::NAN)
            } else {
                Value::from(u[idx as usize] as i64)
            }
        }
        "repeat" => {
            let n = to_integer(arg(args, 0), 0.0);
            if n < 0.0 || !n.is_finite() {
                return Err(err("Invalid count value"));
            }
            let count = n as usize;
            if s.len().saturating_mul(count) > 16 * 1024 * 1024 {
                return Err(err("repeated string is too large"));
            }
            Value::from(s.repeat(count))
        }
        "match" => {
            let Some(pattern) = arg(args, 0) else {
                return Ok(JsArray::new_value(vec![Value::from("")]));
            };
            let re_val;
            let re = match as_regex(pattern) {
                Some(r) => r,
                None => {
                    re_val = make_regex(&to_js_string(pattern), "")?;
                    as_regex(&re_val).ok_or_else(|| err("invalid pattern"))?
                }
            };
            if re.global() {
                let found: Vec<Value> = re.regex.find_iter(s).map(|m| Value::from(m.as_str())).collect();
                if found.is_empty() {
                    Value::from(())
                } else {
                    JsArray::new_value(found)
                }
            } else {
                match re.regex.captures(s) {
                    Some(caps) => JsArray::new_value(
                        caps.iter()
                            .map(|g| g.map(|m| Value::from(m.as_str())).unwrap_or(Value::UNDEFINED))
                            .collect(),
                    ),
                    None => Value::from(()),
                }
            }
        }
        _ => return Err(Error::from(ErrorKind::UnknownMethod)),
    })
}

fn seq_items(v: &Value) -> Vec<Value> {
    v.try_iter().map(|it| it.collect()).unwrap_or_default()
}

fn array_method(v: &Value, name: &str, args: &[Value]) -> Result<Value, Error> {
    let items = seq_items(v);
    let len = items.len();
    Ok(match name {
        "join" => {
            let sep = match arg(args, 0) {
                Some(s) if !s.is_undefined() => to_js_string(s),
                _ => ",".to_string(),
            };
            Value::from(super::values::join_js(items.iter(), &sep))
        }
        "toString" => Value::from(super::values::join_js(items.iter(), ",")),
        "includes" => {
            let needle = arg(args, 0).cloned().unwrap_or(Value::UNDEFINED);
            Value::from(items.iter().any(|i| {
                strict_eq(i, &needle)
                    || (to_number(i).is_nan() && to_number(&needle).is_nan() && i.is_number() && needle.is_number())
            }))
        }
        "indexOf" => {
            let needle = arg(args, 0).cloned().unwrap_or(Value::UNDEFINED);
            let from = relative_index(arg(args, 1), 0.0, len);
            Value::from(
                items
                    .iter()
                    .enumerate()
                    .skip(from)
                    .find(|(_, i)| strict_eq(i, &needle))
                    .map(|(i, _)| i as i64)
                    .unwrap_or(-1),
            )
        }
        "lastIndexOf" => {
            let needle = arg(args, 0).cloned().unwrap_or(Value::UNDEFINED);
            Value::from(
                items
                    .iter()
                    .rposition(|i| strict_eq(i, &needle))
                    .map(|i| i as i64)
                    .unwrap_or(-1),
            )
        }
        "slice" => {
            let start = relative_index(arg(args, 0), 0.0, len);
            let end = relative_index(arg(args, 1), len as f64, len);
            JsArray::new_value(if start < end {
                items[start..end].to_vec()
            } else {
                Vec::new()
            })
        }
        "concat" => {
            let mut out = items;
            for a in args.iter().filter(|a| !a.is_kwargs()) {
                if matches!(a.kind(), ValueKind::Seq | ValueKind::Iterable) {
                    out.extend(seq_items(a));
                } else {
                    out.push(a.clone());
                }
            }
            JsArray::new_value(out)
        }
        "reverse" => {
            let mut out = items;
            out.reverse();
            JsArray::new_value(out)
        }
        "at" => {
            let idx = to_integer(arg(args, 0), 0.0);
            let idx = if idx < 0.0 { len as f64 + idx } else { idx };
            if idx < 0.0 || idx >= len as f64 {
                Value::UNDEFINED
            } else {
                items[idx as usize].clone()
            }
        }
        "sort" => {
            // Default JS sort: by string form, undefined last.
            let mut out = items;
            out.sort_by(|a, b| match (a.is_undefined(), b.is_undefined()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                _ => to_js_string(a).encode_utf16().cmp(to_js_string(b).encode_utf16()),
            });
            JsArray::new_value(out)
        }
        "flat" => {
            let mut out = Vec::new();
            for i in items {
                if matches!(i.kind(), ValueKind::Seq | ValueKind::Iterable) {
                    out.extend(seq_items(&i));
                } else {
                    out.push(i);
                }
            }
            JsArray::new_value(out)
        }
        _ => return Err(Error::from(ErrorKind::UnknownMethod)),
    })
}

fn number_method(v: &Value, name: &str, args: &[Value]) -> Result<Value, Error> {
    let n = to_number(v);
    Ok(match name {
        "toString" => match arg(args, 0).map(|r| to_integer(Some(r), 10.0) as u32) {
            Some(radix) if radix != 10 && (2..=36).contains(&radix) && n.fract() == 0.0 && n.is_finite() => {
                let mut x = n.abs() as u64;
                let mut digits = Vec::new();
                loop {
                    let d = (x % radix as u64) as u32;
                    digits.push(std::char::from_digit(d, radix).unwrap_or('0'));
                    x /= radix as u64;
                    if x == 0 {
                        break;
                    }
                }
                if n < 0.0 {
                    digits.push('-');
                }
                Value::from(digits.into_iter().rev().collect::<String>())
            }
            _ => Value::from(to_js_string(v)),
        },
        "toFixed" => {
            let digits = to_integer(arg(args, 0), 0.0).clamp(0.0, 100.0) as usize;
            Value::from(format!("{n:.digits$}"))
        }
        "valueOf" => v.clone(),
        _ => return Err(Error::from(ErrorKind::UnknownMethod)),
    })
}

fn object_method(v: &Value, name: &str, args: &[Value]) -> Result<Value, Error> {
    match name {
        "hasOwnProperty" => {
            let key = Value::from(arg_string(args, 0));
            Ok(Value::from(get_opt(v, &key).is_some()))
        }
        "toString" => Ok(Value::from(to_js_string(v))),
        _ => Err(Error::from(ErrorKind::UnknownMethod)),
    }
}

/// The unknown-method callback: JS methods of strings, arrays, numbers and
/// objects.
pub(crate) fn call_method(_state: &State, value: &Value, name: &str, args: &[Value]) -> Result<Value, Error> {
    match value.kind() {
        ValueKind::String => string_method(value.as_str().unwrap_or_default(), name, args),
        ValueKind::Seq | ValueKind::Iterable => array_method(value, name, args),
        ValueKind::Number => number_method(value, name, args),
        ValueKind::Bool if name == "toString" => Ok(Value::from(to_js_string(value))),
        ValueKind::Map => object_method(value, name, args),
        ValueKind::Undefined | ValueKind::None => Err(err(format!(
            "Unable to call `{name}`, which is undefined or falsey (called on {})",
            if value.is_none() { "null" } else { "undefined" }
        ))),
        _ => Err(Error::from(ErrorKind::UnknownMethod)),
    }
}

/// Builds an object value from key/value pairs (used by filters returning
/// records).
pub(crate) fn object(pairs: Vec<(&str, Value)>) -> Value {
    JsObject::new_value(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}
