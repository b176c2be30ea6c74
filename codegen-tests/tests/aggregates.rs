//! The aggregates after the first five, end to end: over string columns (the accumulators'
//! state borrows nothing from a batch), and through a checkpoint restart (each accumulator's
//! state is encoded, restored and combined with the next batch's rows).

use std::path::Path;

use flowgate::prelude::*;

#[derive(Record)]
struct Visit {
    site: String,
    user: Option<String>,
    ms: Option<i64>,
}

#[derive(Record, Debug, PartialEq, Clone)]
struct SiteStats {
    site: String,
    first_user: Option<String>,
    last_user: Option<String>,
    min_user: Option<String>,
    max_user: Option<String>,
    users: Vec<String>,
    distinct_users: i64,
    all_ms: Vec<i64>,
    sd_ms: Option<f64>,
    var_pop_ms: Option<f64>,
}

stream_query! {
    query Sites(visits: Visit) -> SiteStats, mode = update {
        visits
            .group_by(site)
            .agg(
                first(user) as first_user,
                last(user, true) as last_user,
                min(user) as min_user,
                max(user) as max_user,
                collect_set(user) as users,
                approx_count_distinct(user) as distinct_users,
                collect_list(ms) as all_ms,
                stddev(ms) as sd_ms,
                var_pop(ms) as var_pop_ms,
            )
    }
}

fn write(dir: &Path, name: &str, rows: &[(&str, Option<&str>, Option<i64>)]) {
    let text: String = rows
        .iter()
        .map(|(site, user, ms)| serde_json::json!({"site": site, "user": user, "ms": ms}).to_string() + "\n")
        .collect();
    let tmp = dir.join(format!(".{name}"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

/// Runs `Sites` over what is in `input` until it has processed everything, then stops.
fn run(input: &Path, checkpoint: &Path) -> Vec<SiteStats> {
    let table = MemoryTable::new();
    let q = Sites::builder()
        .visits(Source::file(input).json().max_files_per_trigger(1))
        .sink(Sink::memory(&table))
        .checkpoint(checkpoint)
        .shuffle_partitions(3)
        .trigger(Trigger::available_now())
        .start()
        .unwrap();
    q.await_termination().unwrap();
    let mut rows: Vec<SiteStats> = table.rows().unwrap();
    rows.sort_by(|a, b| a.site.cmp(&b.site));
    rows
}

#[test]
fn string_inputs_and_every_accumulator_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (input, cp) = (dir.path().join("in"), dir.path().join("cp"));
    std::fs::create_dir_all(&input).unwrap();
    write(
        &input,
        "1.json",
        &[("a", None, Some(1)), ("a", Some("bob"), Some(3)), ("a", Some("amy"), None), ("b", Some("cy"), Some(5))],
    );
    let first = run(&input, &cp);
    assert_eq!(first.len(), 2);
    let a = &first[0];
    assert_eq!((a.first_user.as_deref(), a.last_user.as_deref()), (None, Some("amy")), "first keeps the null row");
    assert_eq!((a.min_user.as_deref(), a.max_user.as_deref()), (Some("amy"), Some("bob")));
    assert_eq!((a.users.clone(), a.distinct_users), (vec!["bob".to_string(), "amy".into()], 2));
    assert_eq!((a.all_ms.clone(), a.sd_ms, a.var_pop_ms), (vec![1, 3], Some(2f64.sqrt()), Some(1.0)));
    assert_eq!((first[1].sd_ms, first[1].var_pop_ms), (None, Some(0.0)), "one value: no sample deviation");

    // A new run restores every accumulator from the checkpoint and goes on.
    write(&input, "2.json", &[("a", Some("bob"), Some(5)), ("a", None, Some(7)), ("a", Some("dan"), None)]);
    let second = run(&input, &cp);
    assert_eq!(second.len(), 1, "only site a changed");
    let a = &second[0];
    assert_eq!((a.first_user.as_deref(), a.last_user.as_deref()), (None, Some("dan")));
    assert_eq!((a.min_user.as_deref(), a.max_user.as_deref()), (Some("amy"), Some("dan")));
    assert_eq!(a.users, ["bob", "amy", "dan"]);
    assert_eq!(a.distinct_users, 3);
    assert_eq!(a.all_ms, [1, 3, 5, 7]);
    assert_eq!(a.var_pop_ms, Some(5.0));
    assert_eq!(a.sd_ms, Some((20.0f64 / 3.0).sqrt()));
}
