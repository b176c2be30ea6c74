//! Exactly-once for a stream-stream join under failure: the `ad_clicks` example (a left outer
//! join of two file streams, both sides buffered in checkpointed state) is killed with SIGKILL
//! at random moments and restarted until it has read every file. Then every committed batch
//! must hold exactly the rows of the same batch of an uninterrupted run over the same input,
//! batch by batch; every impression-click pair in range must appear exactly once (computed
//! here by nested loops); and the impressions written without a click must be exactly those
//! with none, once the watermark has passed them.
//!
//! Some clicks arrive 30 to 32 minutes behind, around the 30-minute watermark: a watermark
//! restored too low after a kill joins a click the uninterrupted run drops, one restored too
//! high drops a click it joins.
//!
//! `FLOWGATE_KILLS=200 cargo test -p flowgate-examples --test join_kill` for a longer run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};

mod common;
use common::{rfc3339, Rng};

const DEFAULT_KILLS: usize = 20;
const IMPRESSIONS_PER_FILE: usize = 20;
const ADS: u64 = 200;
const BASE: i64 = 1_704_110_400; // 2024-01-01 12:00 UTC

/// The input so far: on-time impressions and clicks (ad, seconds), and late clicks.
#[derive(Default)]
struct Input {
    impressions: Vec<(String, i64)>,
    clicks: Vec<(String, i64)>,
    files: usize,
}

/// Writes file `i` of a side; the `late` rows half a second past their second, so the output
/// tells them from on-time rows.
fn put(dir: &Path, i: usize, rows: &[(String, i64)], late: &[(String, i64)]) {
    let mut text: String =
        rows.iter().map(|(ad, t)| format!("{{\"ad\": \"{ad}\", \"ts\": \"{}\"}}\n", rfc3339(*t))).collect();
    for (ad, t) in late {
        text.push_str(&format!("{{\"ad\": \"{ad}\", \"ts\": \"{}\"}}\n", rfc3339(*t).replace('Z', ".500Z")));
    }
    let tmp = dir.join(format!(".{i:05}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{i:05}.json"))).unwrap();
}

/// File pair number `i`: impressions about a minute apart per file, with up to 5 minutes of
/// disorder; clicks 0 to 15 minutes after some impression of the last few files (on time,
/// within the 30-minute delay), and four clicks 30 to 32 minutes behind the file's time
/// (their fate depends on the watermark the batch runs with).
fn write_pair(imp_dir: &Path, click_dir: &Path, rng: &mut Rng, input: &mut Input) {
    let i = input.files;
    let now = BASE + i as i64 * 60;
    let mut imps = Vec::new();
    for _ in 0..IMPRESSIONS_PER_FILE {
        let row = (format!("a{}", rng.below(ADS)), now + rng.below(300) as i64 - 300);
        imps.push(row.clone());
        input.impressions.push(row);
    }
    let mut clicks = Vec::new();
    let recent = input.impressions.len().saturating_sub(5 * IMPRESSIONS_PER_FILE);
    for _ in 0..IMPRESSIONS_PER_FILE / 2 {
        let k = recent + rng.below((input.impressions.len() - recent) as u64) as usize;
        let (ad, t) = input.impressions[k].clone();
        let ct = (t + rng.below(900) as i64).min(now);
        clicks.push((ad.clone(), ct));
        input.clicks.push((ad, ct));
    }
    let mut late = Vec::new();
    for _ in 0..4 {
        // Behind the impressions of about 31 files ago: the watermark this batch runs with is
        // about `now - 1860` s, so some of these are late and some are not.
        let k = input.impressions.len().saturating_sub(31 * IMPRESSIONS_PER_FILE + rng.below(40) as usize);
        let (ad, _) = input.impressions[k.min(input.impressions.len() - 1)].clone();
        late.push((ad, now - 1800 - rng.below(120) as i64));
    }
    put(imp_dir, i, &imps, &[]);
    put(click_dir, i, &clicks, &late);
    input.files += 1;
}

fn command(bin: &Path, dirs: &[&Path; 4]) -> Command {
    let mut c = Command::new(bin);
    for (flag, d) in ["--impressions", "--clicks", "--output", "--checkpoint"].iter().zip(dirs) {
        c.args([*flag, d.to_str().unwrap()]);
    }
    c
}

#[test]
fn killed_and_restarted_join_gives_the_exact_answer() {
    let bin = flowgate_examples::example_binary("ad_clicks");
    assert!(bin.exists(), "{} not built (cargo test builds examples)", bin.display());
    let kills_wanted = common::kills_wanted(DEFAULT_KILLS);
    let root = tempfile::tempdir().unwrap();
    let p = |n: &str| root.path().join(n);
    let (imp, clk, out, cp) = (p("imp"), p("clk"), p("out"), p("cp"));
    std::fs::create_dir_all(&imp).unwrap();
    std::fs::create_dir_all(&clk).unwrap();
    let mut rng = Rng(7);
    let mut input = Input::default();
    for _ in 0..60 {
        write_pair(&imp, &clk, &mut rng, &mut input);
    }
    let dirs = [imp.as_path(), clk.as_path(), out.as_path(), cp.as_path()];
    let spawn = || command(&bin, &dirs).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let k = common::kill_at_random(kills_wanted, &mut rng, &cp, &out, spawn, |rng| {
        let before = input.files;
        for _ in 0..8 {
            write_pair(&imp, &clk, rng, &mut input);
        }
        before
    });
    common::run_to_end(command(&bin, &dirs));
    let common::Kills { kills, mid_batch, mut clean_exits, .. } = k;
    clean_exits.push(input.files);
    let (rimp, rclk, rout, rcp) = (p("rimp"), p("rclk"), p("rout"), p("rcp"));
    common::uninterrupted_run(&[(&imp, &rimp), (&clk, &rclk)], &clean_exits, || {
        common::run_to_end(command(&bin, &[rimp.as_path(), rclk.as_path(), rout.as_path(), rcp.as_path()]))
    });
    let ids = common::assert_same_batches(&out, &rout).len();

    // Independently: every on-time pair in range, once; the unmatched impressions.
    let mut pairs: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    let mut alone: BTreeSet<(String, String)> = BTreeSet::new();
    let mut late_joined = 0usize;
    // Impressions a late click (one the watermark let through) matched.
    let mut late_matched: BTreeSet<(String, String)> = BTreeSet::new();
    let on_time: BTreeSet<(String, String)> = input.clicks.iter().map(|(a, t)| (a.clone(), rfc3339(*t))).collect();
    for (_, rows) in flowgate::sink::file::read_committed_json_rows(&out).unwrap() {
        for r in rows {
            let ad = r["ad"].as_str().unwrap().to_string();
            let it = r["impression_time"].as_str().unwrap().to_string();
            match r["click_time"].as_str() {
                Some(ct) => {
                    if on_time.contains(&(ad.clone(), ct.to_string())) {
                        *pairs.entry((ad, it, ct.to_string())).or_default() += 1;
                    } else {
                        late_joined += 1;
                        late_matched.insert((ad, it));
                    }
                }
                None => {
                    alone.insert((ad, it));
                }
            }
        }
    }
    let mut want_pairs: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for (ia, it) in &input.impressions {
        for (ca, ct) in &input.clicks {
            if ia == ca && *it <= *ct && *ct <= it + 600 {
                *want_pairs.entry((ia.clone(), rfc3339(*it), rfc3339(*ct))).or_default() += 1;
            }
        }
    }
    let missing: Vec<_> = want_pairs.iter().filter(|(k, n)| pairs.get(*k) != Some(n)).take(5).collect();
    let extra: Vec<_> = pairs.iter().filter(|(k, n)| want_pairs.get(*k) != Some(n)).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "impression-click pairs: each on-time pair in range exactly once; differing (first 5): want {missing:?}, got {extra:?}"
    );
    let final_watermark = input.impressions.iter().map(|(_, t)| *t).max().unwrap() - 1800;
    for (ia, it) in &input.impressions {
        let matched = input.clicks.iter().any(|(ca, ct)| ca == ia && *it <= *ct && *ct <= it + 600)
            || late_matched.contains(&(ia.clone(), rfc3339(*it)));
        let emitted = alone.contains(&(ia.clone(), rfc3339(*it)));
        assert!(!(matched && emitted), "impression {ia} at {it} has a click but was written alone");
        if !matched && *it + 600 < final_watermark - 120 {
            assert!(emitted, "impression {ia} at {it} has no click and its time has passed: it must be written alone");
        }
    }
    assert!(!alone.is_empty(), "some impressions had no click");
    assert!(late_joined > 0, "some clicks near the watermark were joined");
    assert!(
        mid_batch >= kills / 4,
        "{mid_batch} of {kills} kills landed between a batch's offset entry and its commit"
    );
    eprintln!(
        "{kills} kills ({mid_batch} mid-batch), {} clean exits, {} files per side, {} committed batches equal to the \
         uninterrupted run's, {} pairs exact, {} impressions alone, {late_joined} late clicks joined",
        clean_exits.len(),
        input.files,
        ids,
        want_pairs.values().sum::<usize>(),
        alone.len()
    );
}
