//! Deserializes the settings tree by the type of each field. Environment
//! values arrive as text and become what their field asks for: a number
//! field parses a number, a `bool` field `true`/`false`, a list field splits
//! on commas, a string field keeps the text untouched (`12345678` stays a
//! token). Nothing is guessed from how a value looks.
//!
//! `serde_json::Value`'s own deserializer is strict about types, and the
//! `config` crate splits lists only when it also guesses types
//! (`try_parsing`), which turns an all-digit token into a number. This
//! adapter forwards everything else to `serde_json::Value`.

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};

/// A node of the settings tree and its dotted key, for error messages.
pub(super) struct Typed {
    value: Value,
    path: String,
}

impl Typed {
    pub(super) fn root(value: Value) -> Typed {
        Typed {
            value,
            path: String::new(),
        }
    }

    fn invalid(&self, expected: &str, got: &str) -> serde_json::Error {
        let at = if self.path.is_empty() { "settings" } else { &self.path };
        de::Error::custom(format!("{at}: expected {expected}, got {got:?}"))
    }

    fn visit_object<'de, V: Visitor<'de>>(
        path: String,
        map: Map<String, Value>,
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        let entries = map.into_iter().map(|(key, value)| {
            let path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            (key, Typed { value, path })
        });
        let mut access = MapDeserializer::new(entries);
        let out = visitor.visit_map(&mut access)?;
        access.end()?;
        Ok(out)
    }

    fn visit_list<'de, V: Visitor<'de>>(
        path: String,
        items: Vec<Value>,
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        let entries = items.into_iter().enumerate().map(|(i, value)| Typed {
            value,
            path: format!("{path}[{i}]"),
        });
        let mut access = SeqDeserializer::new(entries);
        let out = visitor.visit_seq(&mut access)?;
        access.end()?;
        Ok(out)
    }
}

impl<'de> IntoDeserializer<'de, serde_json::Error> for Typed {
    type Deserializer = Typed;

    fn into_deserializer(self) -> Typed {
        self
    }
}

/// Integer settings given as text are parsed; others go to `Value`.
macro_rules! numbers_from_text {
    ($($method:ident => $visit:ident: $ty:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            match &self.value {
                Value::String(text) => match text.trim().parse::<$ty>() {
                    Ok(n) => visitor.$visit(n),
                    Err(_) => Err(self.invalid(concat!("a number (", stringify!($ty), ")"), text)),
                },
                _ => self.value.$method(visitor),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Typed {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Object(map) => Typed::visit_object(self.path, map, visitor),
            Value::Array(items) => Typed::visit_list(self.path, items, visitor),
            other => other.deserialize_any(visitor),
        }
    }

    numbers_from_text! {
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_f32 => visit_f32: f32,
        deserialize_f64 => visit_f64: f64,
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match &self.value {
            Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" => visitor.visit_bool(true),
                "false" => visitor.visit_bool(false),
                _ => Err(self.invalid("true or false", text)),
            },
            _ => self.value.deserialize_bool(visitor),
        }
    }

    /// A string field takes text as it is, and a YAML number or boolean as its text.
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Number(n) => visitor.visit_string(n.to_string()),
            Value::Bool(b) => visitor.visit_string(b.to_string()),
            other => other.deserialize_string(visitor),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    /// A list field takes a comma-separated text (`a,b`; empty items dropped).
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::String(text) => {
                let items = text
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| Value::String(item.to_owned()))
                    .collect();
                Typed::visit_list(self.path, items, visitor)
            }
            Value::Array(items) => Typed::visit_list(self.path, items, visitor),
            other => other.deserialize_seq(visitor),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Object(map) => Typed::visit_object(self.path, map, visitor),
            other => other.deserialize_map(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.value.deserialize_enum(name, variants, visitor)
    }

    forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        token: String,
        count: u64,
        small: Option<usize>,
        on: bool,
        list: Vec<std::path::PathBuf>,
        nested: Option<Inner>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        level: i32,
    }

    fn load(value: Value) -> Result<Sample, serde_json::Error> {
        Sample::deserialize(Typed::root(value))
    }

    #[test]
    fn text_becomes_the_type_of_its_field() {
        let s = load(json!({
            "token": "00012345678", "count": "42", "small": "7", "on": "TRUE",
            "list": "a, b,,c", "nested": {"level": "-3"},
        }))
        .unwrap();
        assert_eq!(s.token, "00012345678");
        assert_eq!((s.count, s.small, s.on), (42, Some(7), true));
        let paths: Vec<std::path::PathBuf> = ["a", "b", "c"].into_iter().map(Into::into).collect();
        assert_eq!(s.list, paths);
        assert_eq!(s.nested, Some(Inner { level: -3 }));
    }

    #[test]
    fn typed_values_still_work_and_scalars_serve_string_fields() {
        let s = load(json!({
            "token": 12345678, "count": 42, "small": null, "on": false, "list": ["x"], "nested": null,
        }))
        .unwrap();
        assert_eq!(s.token, "12345678");
        assert_eq!((s.count, s.small, s.on), (42, None, false));
        assert_eq!(s.list, vec![std::path::PathBuf::from("x")]);
    }

    #[test]
    fn errors_name_the_key() {
        let base = json!({"token": "t", "count": "1", "on": "true", "list": ""});
        let with = |key: &str, value: Value| {
            let mut v = base.clone();
            v[key] = value;
            load(v).unwrap_err().to_string()
        };
        let err = with("count", json!("twelve"));
        assert!(err.contains("count") && err.contains("twelve"), "{err}");
        let err = with("on", json!("yes please"));
        assert!(err.contains("on: expected true or false"), "{err}");
        let err = with("nested", json!({"level": "x"}));
        assert!(err.contains("nested.level"), "{err}");
        let err = with("extra", json!("1"));
        assert!(err.contains("unknown field `extra`"), "{err}");
    }
}
