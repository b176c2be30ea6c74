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
use std::time::{Duration, Instant, SystemTime};

const DEFAULT_KILLS: usize = 20;
const IMPRESSIONS_PER_FILE: usize = 20;
const ADS: u64 = 200;
const BASE: i64 = 1_704_110_400; // 2024-01-01 12:00 UTC

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

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

fn last_entry(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).max()
}

fn written_since(checkpoint: &Path, since: SystemTime) -> Option<u64> {
    let last = last_entry(&checkpoint.join("offsets"))?;
    let modified = std::fs::metadata(checkpoint.join(format!("offsets/{last}"))).ok()?.modified().ok()?;
    (modified >= since).then_some(last)
}

fn command(bin: &Path, dirs: &[&Path; 4]) -> Command {
    let mut c = Command::new(bin);
    for (flag, d) in ["--impressions", "--clicks", "--output", "--checkpoint"].iter().zip(dirs) {
        c.args([*flag, d.to_str().unwrap()]);
    }
    c
}

fn run_to_end(bin: &Path, dirs: &[&Path; 4]) {
    let out = command(bin, dirs).output().unwrap();
    assert!(out.status.success(), "the example failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn committed_batches(output: &Path) -> Vec<(u64, Vec<String>)> {
    flowgate::sink::file::read_committed_json_rows(output)
        .unwrap()
        .into_iter()
        .map(|(b, rows)| {
            let mut rows: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
            rows.sort();
            (b, rows)
        })
        .collect()
}

#[test]
fn killed_and_restarted_join_gives_the_exact_answer() {
    let bin = flowgate_examples::example_binary("ad_clicks");
    assert!(bin.exists(), "{} not built (cargo test builds examples)", bin.display());
    let kills_wanted: usize =
        std::env::var("FLOWGATE_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_KILLS);
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
    let mut clean_exits = Vec::new();
    let (mut kills, mut mid_batch) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(600);
    while kills < kills_wanted {
        assert!(Instant::now() < deadline, "fault injection took too long ({kills} kills)");
        let started = SystemTime::now();
        let mut child = command(&bin, &dirs).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        if rng.below(4) != 0 {
            let wait_until = Instant::now() + Duration::from_secs(5);
            while written_since(&cp, started).is_none()
                && child.try_wait().unwrap().is_none()
                && Instant::now() < wait_until
            {
                std::thread::sleep(Duration::from_micros(500));
            }
            std::thread::sleep(Duration::from_millis(rng.below(12)));
        } else {
            std::thread::sleep(Duration::from_millis(2 + rng.below(40)));
        }
        match child.try_wait().unwrap() {
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                if let Some(planned) = written_since(&cp, started) {
                    if last_entry(&cp.join("commits")) < Some(planned) {
                        mid_batch += 1;
                    }
                }
            }
            Some(status) => {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                assert!(status.success(), "the example failed: {status}\n{err}");
                clean_exits.push(input.files);
                for _ in 0..8 {
                    write_pair(&imp, &clk, &mut rng, &mut input);
                }
            }
        }
    }
    run_to_end(&bin, &dirs);
    clean_exits.push(input.files);

    // The uninterrupted run over the same files, arriving at the same points.
    let (rimp, rclk, rout, rcp) = (p("rimp"), p("rclk"), p("rout"), p("rcp"));
    std::fs::create_dir_all(&rimp).unwrap();
    std::fs::create_dir_all(&rclk).unwrap();
    let mut copied = 0;
    for &upto in &clean_exits {
        for i in copied..upto {
            let name = format!("{i:05}.json");
            for (from, to) in [(&imp, &rimp), (&clk, &rclk)] {
                let tmp = to.join(format!(".{name}"));
                std::fs::copy(from.join(&name), &tmp).unwrap();
                std::fs::rename(&tmp, to.join(&name)).unwrap();
            }
        }
        copied = upto;
        run_to_end(&bin, &[rimp.as_path(), rclk.as_path(), rout.as_path(), rcp.as_path()]);
    }
    let got = committed_batches(&out);
    let want = committed_batches(&rout);
    let ids: Vec<u64> = got.iter().map(|(b, _)| *b).collect();
    assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>(), "committed batches are 0..n, each once");
    assert_eq!(got.len(), want.len(), "batches committed: killed run vs uninterrupted run");
    for ((b, rows), (_, want_rows)) in got.iter().zip(&want) {
        assert_eq!(rows, want_rows, "batch {b}: the killed run's rows differ from the uninterrupted run's");
    }

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
        ids.len(),
        want_pairs.values().sum::<usize>(),
        alone.len()
    );
}
