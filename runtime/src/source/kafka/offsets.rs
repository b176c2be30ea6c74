//! Offsets of a Kafka source: per topic-partition, the offset of the next record to read, in
//! Spark's JSON shape (`{"topic": {"0": 42, "1": 7}}`), which is what the offset log holds.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::source::Offset;

/// Spark's special offset for "the earliest available" in a `startingOffsets` JSON.
pub const EARLIEST: i64 = -2;
/// Spark's special offset for "the latest" in a `startingOffsets` JSON.
pub const LATEST: i64 = -1;

/// A topic-partition.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`-`partition`.
    pub fn new(topic: &str, partition: i32) -> Self {
        TopicPartition { topic: topic.to_string(), partition }
    }
}

impl std::fmt::Display for TopicPartition {
    /// As Kafka and Spark print it: `topic-3`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Next offset to read per topic-partition.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct PartitionOffsets(pub BTreeMap<TopicPartition, i64>);

impl PartitionOffsets {
    /// The offset of `tp`, if it has one.
    pub fn get(&self, tp: &TopicPartition) -> Option<i64> {
        self.0.get(tp).copied()
    }

    /// Spark's JSON: `{"topic": {"0": 42}}`, topics and partitions in order.
    pub fn to_json(&self) -> Value {
        let mut topics: Map<String, Value> = Map::new();
        for (tp, off) in &self.0 {
            let entry = topics.entry(tp.topic.clone()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(parts) = entry {
                parts.insert(tp.partition.to_string(), Value::from(*off));
            }
        }
        Value::Object(topics)
    }

    /// Parses Spark's JSON (also what `startingOffsets` takes, where -2 is earliest and -1
    /// latest). `what` names the JSON in errors.
    pub fn from_json(v: &Value, what: &str) -> Result<Self> {
        let bad = |msg: String| {
            Error::Plan(format!("{what}: {msg} (expected Spark's JSON, e.g. {{\"topic\":{{\"0\":23,\"1\":-2}}}})"))
        };
        let topics = v.as_object().ok_or_else(|| bad(format!("{v} is not a JSON object")))?;
        let mut out = BTreeMap::new();
        for (topic, parts) in topics {
            let parts =
                parts.as_object().ok_or_else(|| bad(format!("topic `{topic}` maps to {parts}, not an object")))?;
            for (p, off) in parts {
                let partition: i32 = p.parse().map_err(|_| bad(format!("`{p}` is not a partition number")))?;
                let off = off.as_i64().ok_or_else(|| bad(format!("offset {off} of {topic}-{p} is not an integer")))?;
                out.insert(TopicPartition::new(topic, partition), off);
            }
        }
        Ok(PartitionOffsets(out))
    }

    /// As a source [`Offset`].
    pub fn to_offset(&self) -> Offset {
        Offset(self.to_json())
    }

    /// From a source [`Offset`] this source wrote.
    pub fn from_offset(o: &Offset) -> Result<Self> {
        Self::from_json(&o.0, "Kafka source offset").map_err(|e| Error::Checkpoint(e.to_string()))
    }
}

/// Spark's `assign` option: `{"topicA": [0, 1], "topicB": [2, 4]}`.
pub fn parse_assign(text: &str) -> Result<Vec<TopicPartition>> {
    let bad =
        |msg: String| Error::Plan(format!("option assign: {msg} (expected e.g. {{\"topicA\":[0,1],\"topicB\":[2]}})"));
    let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let topics = v.as_object().ok_or_else(|| bad("not a JSON object".into()))?;
    let mut out = Vec::new();
    for (topic, parts) in topics {
        let parts = parts.as_array().ok_or_else(|| bad(format!("topic `{topic}` maps to {parts}, not a list")))?;
        for p in parts {
            let p = p
                .as_i64()
                .and_then(|p| i32::try_from(p).ok())
                .ok_or_else(|| bad(format!("`{p}` is not a partition")))?;
            out.push(TopicPartition::new(topic, p));
        }
    }
    if out.is_empty() {
        return Err(bad("no partitions".into()));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Spark's rule for `maxOffsetsPerTrigger`: the `limit` offsets are shared between the
/// partitions in proportion to how many each has available (`(tp, start, latest)`), each
/// partition's share rounded down, but at least one for a partition with data (so that every
/// partition makes progress). Returns the capped end per partition.
pub fn rate_limit(available: &[(TopicPartition, i64, i64)], limit: u64) -> Vec<(TopicPartition, i64)> {
    let total: u64 = available.iter().map(|(_, s, e)| (e - s).max(0) as u64).sum();
    if total <= limit {
        return available.iter().map(|(tp, _, e)| (tp.clone(), *e)).collect();
    }
    available
        .iter()
        .map(|(tp, s, e)| {
            let size = (e - s).max(0) as u64;
            let share = ((size as f64 / total as f64) * limit as f64).floor() as u64;
            let share = if size > 0 { share.max(1) } else { 0 };
            (tp.clone(), s + share.min(size) as i64)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn offsets_round_trip_in_sparks_shape() {
        let v = json!({"b": {"0": 5, "10": 7}, "a": {"2": 0}});
        let o = PartitionOffsets::from_json(&v, "test").unwrap();
        assert_eq!(o.get(&TopicPartition::new("b", 10)), Some(7));
        assert_eq!(o.to_json(), v);
        assert_eq!(o.to_offset().to_string(), r#"{"a":{"2":0},"b":{"0":5,"10":7}}"#);
    }

    #[test]
    fn bad_offsets_json_is_a_clear_error() {
        let e = PartitionOffsets::from_json(&json!({"t": {"x": 1}}), "option startingOffsets").unwrap_err().to_string();
        assert!(e.contains("`x` is not a partition number") && e.contains("startingOffsets"), "{e}");
        let e = PartitionOffsets::from_json(&json!([1]), "option startingOffsets").unwrap_err().to_string();
        assert!(e.contains("not a JSON object"), "{e}");
    }

    #[test]
    fn assign_parses_sparks_json() {
        let tps = parse_assign(r#"{"t": [1, 0], "u": [3]}"#).unwrap();
        assert_eq!(tps, vec![TopicPartition::new("t", 0), TopicPartition::new("t", 1), TopicPartition::new("u", 3)]);
        assert!(parse_assign("{}").is_err());
        assert!(parse_assign(r#"{"t": ["a"]}"#).unwrap_err().to_string().contains("not a partition"));
    }

    #[test]
    fn rate_limit_shares_in_proportion_and_moves_every_partition() {
        let a = TopicPartition::new("t", 0);
        let b = TopicPartition::new("t", 1);
        let c = TopicPartition::new("t", 2);
        let ends = rate_limit(&[(a.clone(), 0, 900), (b.clone(), 100, 200), (c.clone(), 5, 5)], 100);
        assert_eq!(ends, vec![(a.clone(), 90), (b.clone(), 110), (c.clone(), 5)]);
        let ends = rate_limit(&[(a.clone(), 0, 10_000), (b.clone(), 0, 1)], 10);
        assert_eq!(ends, vec![(a.clone(), 9), (b.clone(), 1)], "a partition with data moves by at least one");
        let ends = rate_limit(&[(a.clone(), 0, 3)], 10);
        assert_eq!(ends, vec![(a, 3)], "under the limit: everything");
    }
}
