/// Inferred by `flowgate infer-schema` from sensor-readings.jsonl (3 rows sampled). Review the guesses.
#[derive(Record, Clone, Debug)]
pub struct SensorReadings {
    pub sensor: String,
    /// guessed: 3 whole numbers seen; use f64 if it can have a fraction
    pub value: i64,
    /// guessed: whole and decimal numbers seen; optional: missing in 1 of 3 rows
    pub temp: Option<f64>,
    /// guessed from text: all 3 values read as timestamps (UTC); use String to keep the text
    pub ts: Timestamp,
    /// optional: 1 nulls
    pub ok: Option<bool>,
    // column `tags`: nested values (1 seen) have no #[derive(Record)] type: left out
    // column `user-id` (Option<String>) is not a Rust field name; a record's fields are named after its columns: rename the column to use it
}
