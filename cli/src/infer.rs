//! `flowgate infer-schema FILE...`: a `#[derive(Record)]` struct for sample data.
//!
//! Spark infers a file source's schema at run time when asked
//! (`spark.sql.streaming.schemaInference`); flowgate's records are Rust types, so the
//! inference runs once, here, and its output goes into the user's code, where they review it.
//! A field is `Option<T>` when the sample has a null or a row without it (a gap), and a field
//! whose type was a guess carries a comment saying what was seen.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use arrow_schema::{DataType, Field};
use flowgate::{Error, Result};
use serde_json::{json, Value};

/// Lines read per JSON or CSV file unless told otherwise (Spark's JSON inference reads every
/// line; a sample keeps the command quick on large logs, and `--sample` raises it).
pub const DEFAULT_SAMPLE_LINES: usize = 10_000;

/// A Rust type for a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ty {
    Bool,
    I32,
    I64,
    F64,
    Date,
    Timestamp,
    String,
}

impl Ty {
    fn rust(self) -> &'static str {
        match self {
            Ty::Bool => "bool",
            Ty::I32 => "i32",
            Ty::I64 => "i64",
            Ty::F64 => "f64",
            Ty::Date => "Date",
            Ty::Timestamp => "Timestamp",
            Ty::String => "String",
        }
    }
}

/// What the sample showed of one column.
#[derive(Default, Debug)]
struct Column {
    /// Values seen, by the narrowest type each fits.
    kinds: BTreeMap<Ty, u64>,
    nulls: u64,
    /// Rows that did not have the column at all.
    missing: u64,
    /// Nested values (objects, arrays): `#[derive(Record)]` has no type for them.
    nested: u64,
    /// A declared type (Parquet), when the format has one.
    declared: Option<(Option<Ty>, String)>,
    /// The declared nullability (Parquet).
    declared_nullable: bool,
}

/// The columns of the sample, in first-seen order.
#[derive(Default, Debug)]
struct Sample {
    order: Vec<String>,
    columns: BTreeMap<String, Column>,
    rows: u64,
    textual: bool,
}

impl Sample {
    fn column(&mut self, name: &str) -> &mut Column {
        if !self.columns.contains_key(name) {
            self.order.push(name.to_string());
            // Rows before this column first appeared did not have it.
            self.columns.insert(name.to_string(), Column { missing: self.rows, ..Default::default() });
        }
        self.columns.get_mut(name).unwrap_or_else(|| unreachable!("inserted above"))
    }

    /// Ends a row that had the columns in `seen`.
    fn end_row(&mut self, seen: &[String]) {
        self.rows += 1;
        for (name, c) in &mut self.columns {
            if !seen.contains(name) {
                c.missing += 1;
            }
        }
    }
}

/// The narrowest type a piece of text fits (CSV cells, JSON strings).
fn text_kind(s: &str, numbers: bool) -> Ty {
    if numbers {
        if s.parse::<i64>().is_ok() {
            return Ty::I64;
        }
        if s.parse::<f64>().is_ok() {
            return Ty::F64;
        }
        if s == "true" || s == "false" {
            return Ty::Bool;
        }
    }
    if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() {
        return Ty::Date;
    }
    if chrono::DateTime::parse_from_rfc3339(s).is_ok()
        || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").is_ok()
        || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
    {
        return Ty::Timestamp;
    }
    Ty::String
}

/// A JSON object's fields in the order the line has them (serde_json's `Value` sorts them),
/// so the struct's fields follow the data.
struct Ordered(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn json_file(path: &Path, limit: usize, sample: &mut Sample) -> Result<()> {
    let f = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    for (i, line) in BufReader::new(f).lines().enumerate().take(limit) {
        let line = line.map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if line.trim().is_empty() {
            continue;
        }
        let obj: Ordered = serde_json::from_str(&line).map_err(|e| {
            Error::MalformedInput(format!(
                "line {} of {} is not a JSON object: {e} (one object per line expected)",
                i + 1,
                path.display()
            ))
        })?;
        let obj = obj.0;
        let mut seen = Vec::new();
        for (k, v) in obj {
            let c = sample.column(&k);
            match &v {
                Value::Null => c.nulls += 1,
                Value::Bool(_) => *c.kinds.entry(Ty::Bool).or_default() += 1,
                Value::Number(n) if n.is_i64() || n.is_u64() => *c.kinds.entry(Ty::I64).or_default() += 1,
                Value::Number(_) => *c.kinds.entry(Ty::F64).or_default() += 1,
                Value::String(s) => *c.kinds.entry(text_kind(s, false)).or_default() += 1,
                Value::Array(_) | Value::Object(_) => c.nested += 1,
            }
            seen.push(k);
        }
        sample.end_row(&seen);
    }
    Ok(())
}

fn csv_file(path: &Path, limit: usize, sample: &mut Sample) -> Result<()> {
    sample.textual = true;
    let f = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let format = arrow_csv::reader::Format::default().with_header(true);
    // The header and the cells as text: every column read as Utf8, then typed here.
    let (schema, _) = format.infer_schema(BufReader::new(&f), Some(1))?;
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let text_schema =
        arrow_schema::Schema::new(names.iter().map(|n| Field::new(n, DataType::Utf8, true)).collect::<Vec<_>>());
    let f = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let reader = arrow_csv::ReaderBuilder::new(std::sync::Arc::new(text_schema))
        .with_format(format)
        .with_batch_size(limit.clamp(1, 8192))
        .build(f)?;
    for n in &names {
        sample.column(n);
    }
    let mut read = 0usize;
    for batch in reader {
        let batch = batch?;
        for row in 0..batch.num_rows() {
            if read >= limit {
                return Ok(());
            }
            read += 1;
            for (i, n) in names.iter().enumerate() {
                let col = arrow_array::cast::AsArray::as_string::<i32>(batch.column(i));
                let c = sample.column(n);
                if arrow_array::Array::is_null(col, row) || col.value(row).is_empty() {
                    c.nulls += 1;
                } else {
                    *c.kinds.entry(text_kind(col.value(row), true)).or_default() += 1;
                }
            }
            sample.end_row(&names);
        }
    }
    Ok(())
}

fn arrow_ty(dt: &DataType) -> Option<Ty> {
    Some(match dt {
        DataType::Boolean => Ty::Bool,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::UInt8 | DataType::UInt16 => Ty::I32,
        DataType::Int64 | DataType::UInt32 => Ty::I64,
        DataType::Float32 | DataType::Float64 => Ty::F64,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ty::String,
        DataType::Date32 => Ty::Date,
        DataType::Timestamp(_, _) => Ty::Timestamp,
        _ => return None,
    })
}

fn parquet_file(path: &Path, sample: &mut Sample) -> Result<()> {
    let f = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| Error::MalformedInput(format!("{} is not a readable Parquet file: {e}", path.display())))?;
    let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
    let schema = builder.schema().clone();
    for field in schema.fields() {
        let c = sample.column(field.name());
        c.declared = Some((arrow_ty(field.data_type()), field.data_type().to_string()));
        c.declared_nullable |= field.is_nullable();
    }
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    sample.rows += rows.saturating_sub(1);
    sample.end_row(&names);
    Ok(())
}

/// Whether `name` can be a field name as written (the derive names the column after the field).
fn is_plain_ident(name: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false", "fn",
        "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self",
        "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while", "yield",
    ];
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        && !KEYWORDS.contains(&name)
}

/// One field of the struct.
struct FieldOut {
    name: String,
    ty: Option<String>,
    comment: Option<String>,
}

fn decide(name: &str, c: &Column, rows: u64, textual: bool) -> FieldOut {
    let nullable = c.nulls > 0 || c.missing > 0 || c.declared_nullable;
    let wrap = |t: &str| if nullable { format!("Option<{t}>") } else { t.to_string() };
    let gaps = || {
        let mut why = Vec::new();
        if c.nulls > 0 {
            why.push(format!("{} nulls", c.nulls));
        }
        if c.missing > 0 {
            why.push(format!("missing in {} of {rows} rows", c.missing));
        }
        why.join(", ")
    };
    if let Some((ty, arrow_name)) = &c.declared {
        return match ty {
            Some(t) => FieldOut { name: name.into(), ty: Some(wrap(t.rust())), comment: None },
            None => FieldOut {
                name: name.into(),
                ty: None,
                comment: Some(format!("Parquet type {arrow_name} has no #[derive(Record)] type: left out")),
            },
        };
    }
    if c.nested > 0 {
        return FieldOut {
            name: name.into(),
            ty: None,
            comment: Some(format!("nested values ({} seen) have no #[derive(Record)] type: left out", c.nested)),
        };
    }
    let seen: u64 = c.kinds.values().sum();
    let kinds: Vec<Ty> = c.kinds.keys().copied().collect();
    let (ty, comment) = match kinds.as_slice() {
        [] => (Ty::String, Some("only nulls seen: the type is a guess".to_string())),
        [Ty::I64] => (Ty::I64, Some(format!("guessed: {seen} whole numbers seen; use f64 if it can have a fraction"))),
        [Ty::F64] => (Ty::F64, textual.then(|| format!("guessed from text: {seen} decimal numbers seen"))),
        [Ty::I64, Ty::F64] => (Ty::F64, Some("guessed: whole and decimal numbers seen".to_string())),
        [Ty::Bool] => (Ty::Bool, textual.then(|| "guessed from text: only true/false seen".to_string())),
        [Ty::Timestamp] | [Ty::Date, Ty::Timestamp] => (
            Ty::Timestamp,
            Some(format!("guessed from text: all {seen} values read as timestamps (UTC); use String to keep the text")),
        ),
        [Ty::Date] => {
            (Ty::Date, Some(format!("guessed from text: all {seen} values read as dates; use String to keep the text")))
        }
        [Ty::String] => (Ty::String, None),
        _ => (
            Ty::String,
            Some(format!(
                "mixed kinds seen ({}): kept as text",
                kinds.iter().map(|k| k.rust()).collect::<Vec<_>>().join(", ")
            )),
        ),
    };
    let comment = match (comment, nullable) {
        (Some(c), true) => Some(format!("{c}; optional: {}", gaps())),
        (None, true) => Some(format!("optional: {}", gaps())),
        (c, false) => c,
    };
    FieldOut { name: name.into(), ty: Some(wrap(ty.rust())), comment }
}

fn struct_name(first: &Path) -> String {
    let stem = first.file_stem().and_then(|s| s.to_str()).unwrap_or("Row");
    let stem = stem.split('.').next().unwrap_or(stem);
    let mut out = String::new();
    let mut upper = true;
    for ch in stem.chars() {
        if ch.is_ascii_alphanumeric() {
            if upper {
                out.push(ch.to_ascii_uppercase());
            } else {
                out.push(ch);
            }
            upper = false;
        } else {
            upper = true;
        }
    }
    match out.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => out,
        _ => format!("Row{out}"),
    }
}

/// The struct's source text and the fields as JSON.
fn render(name: &str, sample: &Sample, files: &[&Path]) -> (String, Value) {
    let mut text = String::new();
    let listed: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    text.push_str(&format!(
        "/// Inferred by `flowgate infer-schema` from {} ({} rows sampled). Review the guesses.\n",
        listed.join(", "),
        sample.rows
    ));
    text.push_str("#[derive(Record, Clone, Debug)]\n");
    text.push_str(&format!("pub struct {name} {{\n"));
    let mut fields = Vec::new();
    for col in &sample.order {
        let f = decide(col, &sample.columns[col], sample.rows, sample.textual);
        fields.push(json!({"column": f.name, "type": f.ty, "comment": f.comment}));
        match (&f.ty, is_plain_ident(&f.name)) {
            (Some(ty), true) => {
                if let Some(c) = &f.comment {
                    text.push_str(&format!("    /// {c}\n"));
                }
                text.push_str(&format!("    pub {}: {ty},\n", f.name));
            }
            (Some(ty), false) => text.push_str(&format!(
                "    // column `{}` ({ty}) is not a Rust field name; a record's fields are named after its \
                 columns: rename the column to use it\n",
                f.name
            )),
            (None, _) => {
                text.push_str(&format!("    // column `{}`: {}\n", f.name, f.comment.clone().unwrap_or_default()))
            }
        }
    }
    text.push_str("}\n");
    (text, json!({"struct": name, "rows": sample.rows, "fields": fields}))
}

/// `flowgate infer-schema FILE...`.
pub fn run(files: &[std::path::PathBuf], name: Option<&str>, limit: usize, as_json: bool) -> Result<()> {
    let mut sample = Sample::default();
    let mut kind = None;
    for f in files {
        let ext = f.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
        let this = match ext.as_str() {
            "json" | "jsonl" | "ndjson" => "json",
            "csv" => "csv",
            "parquet" => "parquet",
            other => {
                return Err(Error::Plan(format!(
                    "{}: unknown file type `.{other}`: infer-schema reads JSON lines (.json, .jsonl), CSV with a \
                     header (.csv) and Parquet (.parquet)",
                    f.display()
                )))
            }
        };
        if kind.is_some_and(|k| k != this) {
            return Err(Error::Plan(format!(
                "{}: all files must have one format (a source reads one format); this one is {this}",
                f.display()
            )));
        }
        kind = Some(this);
        match this {
            "json" => json_file(f, limit, &mut sample)?,
            "csv" => csv_file(f, limit, &mut sample)?,
            _ => parquet_file(f, &mut sample)?,
        }
    }
    let name = name.map(str::to_string).unwrap_or_else(|| struct_name(&files[0]));
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let (text, value) = render(&name, &sample, &paths);
    if as_json {
        out!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
    } else {
        out!("{}", text.trim_end_matches('\n'));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_kinds() {
        assert_eq!(text_kind("12", true), Ty::I64);
        assert_eq!(text_kind("1.5", true), Ty::F64);
        assert_eq!(text_kind("true", true), Ty::Bool);
        assert_eq!(text_kind("2024-01-01", true), Ty::Date);
        assert_eq!(text_kind("2024-01-01T00:00:01Z", false), Ty::Timestamp);
        assert_eq!(text_kind("2024-01-01 00:00:01.5", false), Ty::Timestamp);
        assert_eq!(text_kind("12", false), Ty::String, "a JSON string of digits stays a string");
    }

    #[test]
    fn names() {
        assert_eq!(struct_name(Path::new("/x/sensor-readings.2024.jsonl")), "SensorReadings");
        assert_eq!(struct_name(Path::new("2024.csv")), "Row2024");
        assert!(is_plain_ident("user_id") && !is_plain_ident("user-id") && !is_plain_ident("type"));
    }
}
