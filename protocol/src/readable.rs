//! The readable JSON form of the wire types, for API users.
//!
//! On the wire, tagged enums travel with one-letter tags (`{"F": ...}`, `{"g": ...}`) and small
//! enums as integer codes: compact, and the format's byte layout is fixed. The JSON events API
//! serializes through [`Readable`] instead, which renames, as the value is written, every tag
//! and short field name found in [`NAMES`] (`{"freeze": ...}`, `{"long_frame": ...}`,
//! `"offset_ms"`); the small code enums write their variant's snake-case name in every
//! human-readable format (`"level": "error"`). The MessagePack encoding never goes through
//! here and stays byte for byte what it was.
//!
//! [`NAMES`] is the one table: a test walks every tagged wire enum's variants (as serde
//! derives them) and fails on a tag without a readable name, so a new variant cannot be
//! forgotten. The readable form is for reading; batches are only ever decoded from their wire
//! form.

use serde::ser::{
    Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple,
    SerializeTupleStruct, SerializeTupleVariant, Serializer,
};

/// `(type, wire name, readable name)`: the readable name of every tag of the tagged wire enums
/// and of the struct fields whose wire name is a letter.
pub const NAMES: &[(&str, &str, &str)] = &[
    ("EventData", "p", "page"),
    ("EventData", "s", "full_snapshot"),
    ("EventData", "m", "mutations"),
    ("EventData", "i", "input"),
    ("EventData", "v", "mouse_move"),
    ("EventData", "c", "click"),
    ("EventData", "o", "scroll"),
    ("EventData", "w", "viewport"),
    ("EventData", "x", "custom"),
    ("EventData", "n", "navigation"),
    ("EventData", "f", "focus"),
    ("EventData", "l", "selection"),
    ("EventData", "d", "media"),
    ("EventData", "h", "touch"),
    ("EventData", "y", "visibility"),
    ("EventData", "z", "css"),
    ("EventData", "k", "console"),
    ("EventData", "e", "error"),
    ("EventData", "r", "network"),
    ("EventData", "g", "long_frame"),
    ("EventData", "u", "metric"),
    ("EventData", "j", "environment"),
    ("EventData", "a", "app"),
    ("EventData", "F", "freeze"),
    ("EventData", "N", "note"),
    ("EventData", "O", "dialog"),
    ("EventData", "P", "canvas"),
    ("EventData", "W", "websocket"),
    ("EventData", "X", "frame"),
    ("EventData", "G", "font"),
    ("EventData", "M", "scroll_depth"),
    ("NodeKind", "D", "document"),
    ("NodeKind", "T", "doctype"),
    ("NodeKind", "E", "element"),
    ("NodeKind", "t", "text"),
    ("NodeKind", "C", "comment"),
    ("NodeKind", "S", "shadow_root"),
    ("CssOp", "t", "sheet_text"),
    ("CssOp", "i", "insert_rule"),
    ("CssOp", "d", "delete_rule"),
    ("CssOp", "p", "set_property"),
    ("CssOp", "r", "remove_property"),
    ("CssOp", "a", "adopt_sheets"),
    ("AppFact", "u", "identify"),
    ("AppFact", "r", "release"),
    ("AppFact", "e", "environment"),
    ("AppFact", "f", "flags"),
    ("Freeze", "s", "started"),
    ("Freeze", "e", "ended"),
    ("Event", "t", "offset_ms"),
];

/// The readable name of `wire` in `ty` (the wire name itself when the table has none).
pub fn readable_name(ty: &str, wire: &'static str) -> &'static str {
    NAMES.iter().find(|(t, w, _)| *t == ty && *w == wire).map_or(wire, |(_, _, r)| r)
}

/// A variant name as snake case (`RateChange` → `rate_change`): the readable form of the
/// small code enums.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Serializes `T` with the readable names of [`NAMES`] (meant for JSON).
pub struct Readable<'a, T: ?Sized>(pub &'a T);

impl<T: Serialize + ?Sized> Serialize for Readable<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Names { inner: s, ty: "" })
    }
}

/// A serializer (or one of its compound serializers) renaming as it goes; `ty` is the struct
/// being written, for its field names.
struct Names<S> {
    inner: S,
    ty: &'static str,
}

impl<S> Names<S> {
    fn of(inner: S) -> Self {
        Names { inner, ty: "" }
    }
}

impl<S: Serializer> Serializer for Names<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Names<S::SerializeSeq>;
    type SerializeTuple = Names<S::SerializeTuple>;
    type SerializeTupleStruct = Names<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Names<S::SerializeTupleVariant>;
    type SerializeMap = Names<S::SerializeMap>;
    type SerializeStruct = Names<S::SerializeStruct>;
    type SerializeStructVariant = Names<S::SerializeStructVariant>;

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
    fn serialize_bool(self, v: bool) -> Result<S::Ok, S::Error> {
        self.inner.serialize_bool(v)
    }
    fn serialize_i8(self, v: i8) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i8(v)
    }
    fn serialize_i16(self, v: i16) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i16(v)
    }
    fn serialize_i32(self, v: i32) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i32(v)
    }
    fn serialize_i64(self, v: i64) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i64(v)
    }
    fn serialize_i128(self, v: i128) -> Result<S::Ok, S::Error> {
        self.inner.serialize_i128(v)
    }
    fn serialize_u8(self, v: u8) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u8(v)
    }
    fn serialize_u16(self, v: u16) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u16(v)
    }
    fn serialize_u32(self, v: u32) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u32(v)
    }
    fn serialize_u64(self, v: u64) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u64(v)
    }
    fn serialize_u128(self, v: u128) -> Result<S::Ok, S::Error> {
        self.inner.serialize_u128(v)
    }
    fn serialize_f32(self, v: f32) -> Result<S::Ok, S::Error> {
        self.inner.serialize_f32(v)
    }
    fn serialize_f64(self, v: f64) -> Result<S::Ok, S::Error> {
        self.inner.serialize_f64(v)
    }
    fn serialize_char(self, v: char) -> Result<S::Ok, S::Error> {
        self.inner.serialize_char(v)
    }
    fn serialize_str(self, v: &str) -> Result<S::Ok, S::Error> {
        self.inner.serialize_str(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<S::Ok, S::Error> {
        self.inner.serialize_bytes(v)
    }
    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_none()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<S::Ok, S::Error> {
        self.inner.serialize_some(&Readable(v))
    }
    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit()
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit_struct(name)
    }
    fn serialize_unit_variant(self, name: &'static str, i: u32, variant: &'static str) -> Result<S::Ok, S::Error> {
        self.inner.serialize_unit_variant(name, i, readable_name(name, variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, v: &T) -> Result<S::Ok, S::Error> {
        self.inner.serialize_newtype_struct(name, &Readable(v))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        i: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<S::Ok, S::Error> {
        self.inner.serialize_newtype_variant(name, i, readable_name(name, variant), &Readable(v))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.inner.serialize_seq(len).map(Names::of)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.inner.serialize_tuple(len).map(Names::of)
    }
    fn serialize_tuple_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.inner.serialize_tuple_struct(name, len).map(Names::of)
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        i: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.inner.serialize_tuple_variant(name, i, readable_name(name, variant), len).map(Names::of)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        self.inner.serialize_map(len).map(Names::of)
    }
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeStruct, S::Error> {
        self.inner.serialize_struct(name, len).map(|inner| Names { inner, ty: name })
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        i: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.inner.serialize_struct_variant(name, i, readable_name(name, variant), len).map(Names::of)
    }
}

impl<S: SerializeSeq> SerializeSeq for Names<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), S::Error> {
        self.inner.serialize_element(&Readable(v))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: SerializeTuple> SerializeTuple for Names<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), S::Error> {
        self.inner.serialize_element(&Readable(v))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: SerializeTupleStruct> SerializeTupleStruct for Names<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), S::Error> {
        self.inner.serialize_field(&Readable(v))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: SerializeTupleVariant> SerializeTupleVariant for Names<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), S::Error> {
        self.inner.serialize_field(&Readable(v))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: SerializeMap> SerializeMap for Names<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), S::Error> {
        self.inner.serialize_key(&Readable(k))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), S::Error> {
        self.inner.serialize_value(&Readable(v))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: SerializeStruct> SerializeStruct for Names<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<(), S::Error> {
        self.inner.serialize_field(readable_name(self.ty, key), &Readable(v))
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.inner.skip_field(readable_name(self.ty, key))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

impl<S: SerializeStructVariant> SerializeStructVariant for Names<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<(), S::Error> {
        self.inner.serialize_field(key, &Readable(v))
    }
    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{AppFact, CssOp, EventData, Freeze, NodeKind};
    use serde::Deserialize;
    use serde::de::{self, Deserializer, Visitor};

    /// A deserializer that only records the variant names serde's derive hands to
    /// `deserialize_enum`: every tag of the enum, in declaration order.
    struct VariantsOf<'a>(&'a mut Vec<&'static str>);

    impl<'de> Deserializer<'de> for VariantsOf<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not an enum"))
        }
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.extend_from_slice(variants);
            Err(de::Error::custom("probed"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
        }
    }

    fn tags_of<T: for<'de> Deserialize<'de>>() -> Vec<&'static str> {
        let mut tags = Vec::new();
        assert!(T::deserialize(VariantsOf(&mut tags)).is_err());
        assert!(!tags.is_empty(), "an externally tagged enum");
        tags
    }

    #[test]
    fn every_tag_of_every_tagged_wire_enum_has_a_readable_name() {
        let enums = [
            ("EventData", tags_of::<EventData>()),
            ("NodeKind", tags_of::<NodeKind>()),
            ("CssOp", tags_of::<CssOp>()),
            ("AppFact", tags_of::<AppFact>()),
            ("Freeze", tags_of::<Freeze>()),
        ];
        for (ty, tags) in &enums {
            let mut seen = std::collections::HashSet::new();
            for tag in tags {
                let name = readable_name(ty, tag);
                assert!(name.len() > 1 && name != *tag, "{ty}::{tag} has no readable name in NAMES");
                assert!(seen.insert(name), "{ty}: two tags read as {name}");
            }
        }
        // And the table names nothing that is not a tag (or a field) any more.
        for (ty, wire, _) in NAMES {
            let known = enums.iter().any(|(t, tags)| t == ty && tags.contains(wire)) || (*ty, *wire) == ("Event", "t");
            assert!(known, "NAMES has a stale entry {ty}::{wire}");
        }
    }

    #[test]
    fn json_reads_with_names_and_the_wire_is_unchanged() {
        use crate::batch::{Batch, Console, ConsoleLevel, Event, Node, Snapshot};
        let mut b = Batch::new("s", "p", 0, 1_700_000_040_000);
        b.events.push(Event {
            t: 5,
            data: EventData::Snapshot(Snapshot {
                nodes: vec![Node { id: 1, parent: 0, kind: NodeKind::Document }],
                scroll_x: 0,
                scroll_y: 0,
            }),
        });
        b.events
            .push(Event { t: 6, data: EventData::Freeze(Freeze::Started { url: "u".into(), last_action: "".into() }) });
        b.events.push(Event {
            t: 7,
            data: EventData::Console(Console { level: ConsoleLevel::Error, args: vec!["x".into()], stack: "".into() }),
        });
        let wire = crate::encode_batch(&b).expect("encode");
        let json = serde_json::to_value(Readable(&b)).expect("json");
        let events = &json["events"];
        assert_eq!(events[0]["offset_ms"], 5);
        assert_eq!(events[0]["data"]["full_snapshot"]["nodes"][0]["kind"], "document");
        assert_eq!(events[1]["data"]["freeze"]["started"]["url"], "u");
        assert_eq!(events[2]["data"]["console"]["level"], "error");
        assert_eq!(crate::encode_batch(&b).expect("encode"), wire, "the wire form does not change");
        assert_eq!(wire, rmp_serde::to_vec(&b).expect("encode"));
    }

    #[test]
    fn snake_case_names() {
        assert_eq!(snake_case("RateChange"), "rate_change");
        assert_eq!(snake_case("Push"), "push");
    }
}
