//! Plain-text tables for people.

use comfy_table::presets::ASCII_BORDERS_ONLY_CONDENSED;
use comfy_table::{ContentArrangement, Table};

/// A table with `header`, one row per `rows` entry.
pub fn render(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_style(ASCII_BORDERS_ONLY_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
}

/// `12.3 KiB`-style sizes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(super::bytes(17), "17 B");
        assert_eq!(super::bytes(2048), "2.0 KiB");
        assert_eq!(super::bytes(5 * 1024 * 1024 + 1), "5.0 MiB");
    }
}
