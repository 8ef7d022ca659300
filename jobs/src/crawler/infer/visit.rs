//! Observing JSON text straight into a [`Node`], as serde parses it: the same observations as
//! [`Node::observe`] on a parsed `Value`, without building one (no map, no hashing, no
//! allocation per value), which is most of what sampling a record costs.
//!
//! The text must already be known to be valid JSON: a parse error half-way would leave the
//! observations made before it. Keys given twice are both observed (a `Value` keeps the last).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{Kind, Node};

/// Observes one JSON value into `node`; `name` is the field it is the value of.
pub struct ObserveSeed<'n> {
    pub node: &'n mut Node,
    pub name: &'n str,
}

impl<'de> DeserializeSeed<'de> for ObserveSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ObserveSeed<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.node.mark(Kind::Null, String::new);
        Ok(())
    }

    fn visit_bool<E>(self, value: bool) -> Result<(), E> {
        self.node.mark(Kind::Bool, || value.to_string());
        Ok(())
    }

    fn visit_i64<E>(self, value: i64) -> Result<(), E> {
        self.node.observe_int(value, self.name);
        Ok(())
    }

    fn visit_u64<E>(self, value: u64) -> Result<(), E> {
        match i64::try_from(value) {
            Ok(int) => self.node.observe_int(int, self.name),
            Err(_) => self.node.mark(Kind::Float, || value.to_string()),
        }
        Ok(())
    }

    fn visit_f64<E>(self, value: f64) -> Result<(), E> {
        self.node.mark(Kind::Float, || {
            serde_json::Number::from_f64(value).map_or_else(String::new, |n| n.to_string())
        });
        Ok(())
    }

    fn visit_str<E>(self, value: &str) -> Result<(), E> {
        self.node.observe_str(value);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.node.mark(Kind::List, String::new);
        let item = self.node.item.get_or_insert_with(Box::default);
        while seq
            .next_element_seed(ObserveSeed {
                node: item,
                name: self.name,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.node.mark(Kind::Struct, String::new);
        let mut owned = String::new();
        while let Some(key) = map.next_key_seed(KeySeed(&mut owned))? {
            let key = match key {
                Some(borrowed) => borrowed,
                None => owned.as_str(),
            };
            map.next_value_seed(ObserveSeed {
                node: self.node.field_mut(key),
                name: key,
            })?;
        }
        Ok(())
    }
}

/// A key, borrowed from the text where it has no escapes (`Some`), else unescaped into the
/// given buffer (`None`).
struct KeySeed<'b>(&'b mut String);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<&'de str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<&'de str>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Some(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        self.0.clear();
        self.0.push_str(value);
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn both_ways(text: &str) -> (Node, Node) {
        let mut from_value = Node::new();
        from_value.observe(&serde_json::from_str::<Value>(text).unwrap(), "");
        let mut direct = Node::new();
        let mut deserializer = serde_json::Deserializer::from_str(text);
        ObserveSeed {
            node: &mut direct,
            name: "",
        }
        .deserialize(&mut deserializer)
        .unwrap();
        (from_value, direct)
    }

    #[test]
    fn observing_text_equals_observing_its_value() {
        for text in [
            r#"{"device_id":"dev-1","ts":"2024-05-30T12:00:00.5Z","at_ms":1717027201000,"n":3,"big":18446744073709551615,"x":1.5e3,"ok":true,"none":null}"#,
            r#"{"location":{"lat":1.0,"alt":null},"tags":["a",1,{"b":[]}],"naive":"2024-05-30 12:00:00","t\u0061b":"\"esc\""}"#,
            r#"{"created_at":1717027201,"Time_S":1717027201,"v":-0.0,"empty":{}}"#,
        ] {
            let (from_value, direct) = both_ways(text);
            assert_eq!(
                from_value.resolve_schema(),
                direct.resolve_schema(),
                "{text}"
            );
            assert_eq!(from_value.examples, direct.examples, "{text}");
            assert_eq!(
                from_value.field_names().collect::<Vec<_>>(),
                direct.field_names().collect::<Vec<_>>()
            );
        }
    }
}
