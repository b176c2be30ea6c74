//! JSON keys matched to field names ignoring case (Spark's `spark.sql.caseSensitive=false`)
//! for the arrow-json path, whose decoder matches keys exactly: a line whose top-level keys
//! match fields only ignoring case is rewritten with the fields' spellings before decoding.
//!
//! Only lines that need it are rewritten, and values are copied verbatim (as raw JSON text,
//! never re-encoded), so numbers keep every digit. Two different keys of one line that match
//! the same field are a clash: the line is malformed, with a reason that says so. Keys of
//! nested objects are matched exactly.

use std::collections::HashMap;
use std::fmt;

use arrow_schema::Schema;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The fields of a decode schema by lowercase name.
#[derive(Debug)]
pub(super) struct KeyCase {
    by_lower: HashMap<String, String>,
}

/// A JSON object's entries in order, values as raw text.
struct Entries<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl KeyCase {
    /// For the fields of `schema` (whose names differ in more than case: the layout checks).
    pub(super) fn new(schema: &Schema) -> KeyCase {
        KeyCase { by_lower: schema.fields().iter().map(|f| (f.name().to_lowercase(), f.name().clone())).collect() }
    }

    /// `line` with its top-level keys spelled as the fields they match ignoring case; `None`
    /// when no key needs it, or when the line is not one JSON object (arrow-json then reports
    /// it as before). Fails with the reason when two keys match one field.
    pub(super) fn rename(&self, line: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let Ok(Entries(entries)) = serde_json::from_slice::<Entries<'_>>(line) else { return Ok(None) };
        // Per field: the first key spelling that matched it.
        let mut matched: HashMap<&str, &str> = HashMap::new();
        let mut renamed = false;
        let mut names = Vec::with_capacity(entries.len());
        for (key, _) in &entries {
            let name = match self.by_lower.get(key.as_str()).filter(|n| *n == key) {
                Some(exact) => Some(exact),
                None => self.by_lower.get(&key.to_lowercase()),
            };
            if let Some(name) = name {
                match matched.get(name.as_str()) {
                    Some(first) if *first != key.as_str() => {
                        return Err(format!(
                            "keys `{first}` and `{key}` both match field `{name}` ignoring case (Spark's \
                             spark.sql.caseSensitive=false): match names exactly with `.case_sensitive(true)`"
                        ))
                    }
                    _ => {
                        matched.insert(name, key);
                    }
                }
                renamed |= name != key;
            }
            names.push(name.unwrap_or(key));
        }
        if !renamed {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(line.len() + 8);
        out.push(b'{');
        for (i, ((_, value), name)) in entries.iter().zip(names).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(serde_json::Value::from(name.as_str()).to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        }
        out.push(b'}');
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use arrow_schema::{DataType, Field};

    use super::*;

    fn keys() -> KeyCase {
        KeyCase::new(&Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("userName", DataType::Utf8, true),
        ]))
    }

    fn rename(line: &str) -> Result<Option<String>, String> {
        keys().rename(line.as_bytes()).map(|o| o.map(|v| String::from_utf8(v).unwrap()))
    }

    #[test]
    fn keys_are_respelled_only_when_needed_and_values_kept_verbatim() {
        assert_eq!(rename(r#"{"id": 1, "userName": "a"}"#), Ok(None));
        assert_eq!(rename(r#"{"other": 1}"#), Ok(None));
        assert_eq!(
            rename(r#"{"ID": 123456789012345678901234567890, "USERNAME": "a\"b", "x": [1, {"Id": 2}]}"#),
            Ok(Some(r#"{"id":123456789012345678901234567890,"userName":"a\"b","x":[1, {"Id": 2}]}"#.into()))
        );
        // Not one JSON object: left to arrow-json.
        assert_eq!(rename("[1]"), Ok(None));
        assert_eq!(rename(r#"{"ID": 1"#), Ok(None));
        // A key repeated exactly is arrow-json's business too.
        assert_eq!(rename(r#"{"id": 1, "id": 2}"#), Ok(None));
    }

    #[test]
    fn two_spellings_of_one_field_are_a_clash() {
        let e = rename(r#"{"id": 1, "ID": 2}"#).unwrap_err();
        assert!(e.contains("`id` and `ID`") && e.contains("field `id`"), "{e}");
        let e = rename(r#"{"Id": 1, "iD": 2}"#).unwrap_err();
        assert!(e.contains("`Id` and `iD`"), "{e}");
    }
}
