//! Lenient readers for packument fields whose shape varies between packages and eras
//! (`dependencies` as an array, `os` as a string, `deprecated` as `false`, …). Every JSON value
//! is accepted; what does not fit reads as empty, exactly as if the value had been read into a
//! `serde_json::Value` first (for duplicate keys the last one wins). They visit the JSON
//! directly: building a `Value` for every version of every packument was most of the time spent
//! parsing a packument.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, Error, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::packument::Bundled;

/// The `visit_*` methods for numbers (read as `$number`) and null (read as `$null`).
macro_rules! numbers_and_null {
    ($default:expr) => {
        numbers_and_null!($default, $default);
    };
    ($number:expr, $null:expr) => {
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_i64<E: Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($number)
        }
        fn visit_u64<E: Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($number)
        }
        fn visit_f64<E: Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($number)
        }
        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok($null)
        }
        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok($null)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    };
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// A value inside one of these fields: a string, a bool, an object's `optional` flag (when it
/// is a bool), or anything else.
enum Loose {
    Str(String),
    Bool(bool),
    Object { optional: Option<bool> },
    Other,
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Loose;
            numbers_and_null!(Loose::Other);
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Loose, A::Error> {
                skip_seq(seq).map(|()| Loose::Other)
            }
            fn visit_bool<E: Error>(self, v: bool) -> Result<Loose, E> {
                Ok(Loose::Bool(v))
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Loose, E> {
                Ok(Loose::Str(v.to_string()))
            }
            fn visit_string<E: Error>(self, v: String) -> Result<Loose, E> {
                Ok(Loose::Str(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose, A::Error> {
                let mut optional = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "optional" {
                        optional = match map.next_value::<Loose>()? {
                            Loose::Bool(b) => Some(b),
                            _ => None,
                        };
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Loose::Object { optional })
            }
        }
        d.deserialize_any(V)
    }
}

/// `name → range` from an object (non-string values dropped) or, in ancient packages, an array
/// of names (each `*`).
pub fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = BTreeMap<String, String>;
        numbers_and_null!(BTreeMap::new());
        fn visit_bool<E: Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_str<E: Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, Loose>()? {
                match value {
                    Loose::Str(v) => {
                        out.insert(key, v);
                    }
                    _ => {
                        out.remove(&key);
                    }
                }
            }
            Ok(out)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(item) = seq.next_element::<Loose>()? {
                if let Loose::Str(name) = item {
                    out.insert(name, "*".to_string());
                }
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// A list of strings (non-strings dropped), or one string as a list of one.
pub fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        numbers_and_null!(Vec::new());
        fn visit_bool<E: Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![v.to_string()])
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            skip_map(map).map(|()| Vec::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element::<Loose>()? {
                if let Loose::Str(s) = item {
                    out.push(s);
                }
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// `peerDependenciesMeta`: name → whether its `optional` member is `true`.
pub fn peer_meta<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, bool>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = BTreeMap<String, bool>;
        numbers_and_null!(BTreeMap::new());
        fn visit_bool<E: Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_str<E: Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            skip_seq(seq).map(|()| BTreeMap::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, Loose>()? {
                let optional = matches!(value, Loose::Object { optional: Some(true) });
                out.insert(key, optional);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// `bundleDependencies`: `true` is all of them, a list names them, anything else none.
pub fn bundled<'de, D: Deserializer<'de>>(d: D) -> Result<Bundled, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Bundled;
        numbers_and_null!(Bundled::None);
        fn visit_bool<E: Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(if v { Bundled::All } else { Bundled::None })
        }
        fn visit_str<E: Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Bundled::None)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            skip_map(map).map(|()| Bundled::None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element::<Loose>()? {
                if let Loose::Str(s) = item {
                    out.push(s);
                }
            }
            Ok(Bundled::Some(out))
        }
    }
    d.deserialize_any(V)
}

/// JavaScript truthiness as npm reads `deprecated`: a bool as is, a string when not empty,
/// `null` false, anything else true.
pub fn truthy<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = bool;
        numbers_and_null!(true, false);
        fn visit_bool<E: Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<bool, E> {
            Ok(!v.is_empty())
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
            skip_map(map).map(|()| true)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
            skip_seq(seq).map(|()| true)
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// The readers as they were, through `serde_json::Value`: the reference.
    mod reference {
        use super::*;

        pub fn string_map(v: Value) -> BTreeMap<String, String> {
            match v {
                Value::Object(map) => map.into_iter().filter_map(|(k, v)| Some((k, v.as_str()?.to_string()))).collect(),
                Value::Array(names) => {
                    names.into_iter().filter_map(|v| Some((v.as_str()?.to_string(), "*".into()))).collect()
                }
                _ => BTreeMap::new(),
            }
        }

        pub fn string_list(v: Value) -> Vec<String> {
            match v {
                Value::Array(items) => items.into_iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
                Value::String(s) => vec![s],
                _ => Vec::new(),
            }
        }

        pub fn peer_meta(v: Value) -> BTreeMap<String, bool> {
            match v {
                Value::Object(map) => map
                    .into_iter()
                    .map(|(k, v)| (k, v.get("optional").and_then(Value::as_bool).unwrap_or(false)))
                    .collect(),
                _ => BTreeMap::new(),
            }
        }

        pub fn bundled(v: Value) -> Bundled {
            match v {
                Value::Bool(true) => Bundled::All,
                Value::Array(items) => {
                    Bundled::Some(items.into_iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                }
                _ => Bundled::None,
            }
        }

        pub fn truthy(v: Value) -> bool {
            match v {
                Value::Bool(b) => b,
                Value::String(s) => !s.is_empty(),
                Value::Null => false,
                _ => true,
            }
        }
    }

    #[derive(Deserialize)]
    struct Fields {
        #[serde(deserialize_with = "string_map")]
        map: BTreeMap<String, String>,
        #[serde(deserialize_with = "string_list")]
        list: Vec<String>,
        #[serde(deserialize_with = "peer_meta")]
        meta: BTreeMap<String, bool>,
        #[serde(deserialize_with = "bundled")]
        bundled: Bundled,
        #[serde(deserialize_with = "truthy")]
        truthy: bool,
    }

    #[test]
    fn every_shape_reads_as_through_a_value() {
        let values = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-3),
            json!(1.5),
            json!(""),
            json!("x"),
            json!([]),
            json!(["a", 1, null, "b", ["c"], {"d": "e"}, "a"]),
            json!({}),
            json!({"a": "^1", "b": 2, "c": null, "d": {"optional": true}, "e": ["x"], "f": "1.x"}),
            json!({"p": {"optional": true}, "q": {"optional": "yes"}, "r": {"optional": false, "x": [1]}, "s": true}),
            json!({"p": {"other": {"optional": true}}}),
        ];
        for v in &values {
            let doc = json!({"map": v, "list": v, "meta": v, "bundled": v, "truthy": v});
            let read: Fields = serde_json::from_str(&doc.to_string()).unwrap();
            assert_eq!(read.map, reference::string_map(v.clone()), "{v}");
            assert_eq!(read.list, reference::string_list(v.clone()), "{v}");
            assert_eq!(read.meta, reference::peer_meta(v.clone()), "{v}");
            assert_eq!(read.bundled, reference::bundled(v.clone()), "{v}");
            assert_eq!(read.truthy, reference::truthy(v.clone()), "{v}");
        }
        // Duplicate keys: the last one wins, as in a Value.
        let text = r#"{"map": {"a": "1", "a": 2, "b": 3, "b": "4"}, "list": [], "meta": {"p": {"optional": true, "optional": 1}, "q": {"optional": false}, "q": {"optional": true}}, "bundled": false, "truthy": null}"#;
        let read: Fields = serde_json::from_str(text).unwrap();
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(read.map, reference::string_map(value["map"].clone()));
        assert_eq!(read.meta, reference::peer_meta(value["meta"].clone()));
    }
}
