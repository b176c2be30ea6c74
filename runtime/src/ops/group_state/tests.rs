use super::*;
use crate::OutputMode;

type Op = GroupStateOp<(String,), i64, i64>;

fn ctx(batch: u64, ts_ms: i64, watermark_ms: Option<i64>) -> BatchContext {
    BatchContext {
        watermark_for_late: watermark_ms.map(|w| w * 1000),
        watermark_for_eviction: watermark_ms.map(|w| w * 1000),
        batch_timestamp_ms: ts_ms,
        ..BatchContext::new(batch, OutputMode::Update)
    }
}

/// Runs one batch of `(key, value)` rows with a running sum per key; returns what each call
/// saw: (key, rows, timed out).
fn sum_batch(
    op: &mut Op,
    c: &BatchContext,
    rows: &[(&str, i64)],
    after: impl FnMut(&str, &mut GroupState<i64>),
) -> Vec<(String, Vec<i64>, bool)> {
    sum_batch_from(op, c, rows, &[], after).unwrap()
}

/// [`sum_batch`] with an initial state (applied in batch 0).
fn sum_batch_from(
    op: &mut Op,
    c: &BatchContext,
    rows: &[(&str, i64)],
    initial: &[(&str, i64)],
    mut after: impl FnMut(&str, &mut GroupState<i64>),
) -> Result<Vec<(String, Vec<i64>, bool)>> {
    op.begin_batch();
    for (k, v) in rows {
        op.push_row((*k,), *v);
    }
    let mut calls = Vec::new();
    op.run_with_initial_state(
        c,
        |key, rows, state| {
            let rows: Vec<i64> = rows.collect();
            calls.push((key.0.clone(), rows.clone(), state.has_timed_out()));
            if !state.has_timed_out() {
                let total = state.get_option().copied().unwrap_or(0) + rows.iter().sum::<i64>();
                state.update(total);
            }
            after(&key.0, state);
        },
        || initial.iter().map(|(k, v)| ((k.to_string(),), *v)),
    )?;
    Ok(calls)
}

#[test]
fn keys_are_called_in_first_seen_order_with_their_rows_in_input_order() {
    let mut op = Op::new(2, GroupStateTimeout::NoTimeout);
    let calls = sum_batch(&mut op, &ctx(0, 0, None), &[("b", 1), ("a", 2), ("b", 3)], |_, _| {});
    assert_eq!(calls, vec![("b".into(), vec![1, 3], false), ("a".into(), vec![2], false)]);
    let calls = sum_batch(&mut op, &ctx(1, 0, None), &[("a", 10)], |_, s| assert_eq!(s.get(), &12));
    assert_eq!(calls.len(), 1, "keys without rows are not called without a timeout");
    let m = op.metrics();
    assert_eq!((m.num_rows_total, m.num_rows_updated, m.operator_name.as_str()), (2, 1, OPERATOR_NAME));
}

#[test]
fn processing_time_timeouts_fire_strictly_after_their_time_with_no_rows() {
    let mut op = Op::new(2, GroupStateTimeout::ProcessingTimeTimeout);
    sum_batch(&mut op, &ctx(0, 1_000, None), &[("a", 1), ("b", 1)], |k, s| {
        if k == "a" {
            s.set_timeout_duration(500);
        }
    });
    assert_eq!(op.next_processing_timeout_ms(), Some(1_500));
    // At exactly the timeout nothing fires (Spark: timeout < batch timestamp).
    assert!(sum_batch(&mut op, &ctx(1, 1_500, None), &[], |_, _| {}).is_empty());
    let mut removed = false;
    let calls = sum_batch(&mut op, &ctx(2, 1_501, None), &[], |_, s| {
        assert_eq!(s.get(), &1);
        s.remove();
        removed = true;
    });
    assert!(removed);
    assert_eq!(calls, vec![("a".into(), vec![], true)]);
    assert_eq!(op.len(), 1, "the timed-out key removed its state");
    assert_eq!(op.next_processing_timeout_ms(), None);
}

#[test]
fn a_call_that_sets_no_timeout_clears_it() {
    let mut op = Op::new(1, GroupStateTimeout::ProcessingTimeTimeout);
    sum_batch(&mut op, &ctx(0, 0, None), &[("a", 1)], |_, s| s.set_timeout_duration(10));
    sum_batch(&mut op, &ctx(1, 5, None), &[("a", 1)], |_, _| {});
    assert!(sum_batch(&mut op, &ctx(2, 100, None), &[], |_, _| {}).is_empty());
}

#[test]
fn event_time_timeouts_fire_on_the_watermark_and_a_removed_state_keeps_its_timeout() {
    let mut op = Op::new(2, GroupStateTimeout::EventTimeTimeout);
    sum_batch(&mut op, &ctx(0, 0, Some(0)), &[("a", 1)], |_, s| {
        s.remove();
        s.set_timeout_timestamp(2_000);
    });
    assert_eq!(op.len(), 1, "a removed state with a timeout keeps its row (as Spark)");
    assert!(sum_batch(&mut op, &ctx(1, 0, Some(2_000)), &[], |_, _| {}).is_empty());
    let mut existed = None;
    let mut op2 = op;
    op2.begin_batch();
    op2.run(&ctx(2, 0, Some(2_001)), |k, rows, s| {
        assert!(rows.is_empty() && s.has_timed_out() && k.0 == "a");
        existed = Some(s.exists());
    })
    .unwrap();
    assert_eq!(existed, Some(false));
    assert_eq!(op2.len(), 0, "the timeout was not set again: the row is gone");
}

#[test]
fn misusing_the_api_fails_the_batch_with_sparks_message() {
    let mut op = Op::new(1, GroupStateTimeout::NoTimeout);
    op.push_row(("a",), 1);
    let err = op.run(&ctx(0, 0, None), |_, _, s| s.set_timeout_duration(5)).unwrap_err().to_string();
    assert!(err.contains("without enabling processing time timeout") && err.contains("\"a\""), "{err}");
    let mut op = Op::new(1, GroupStateTimeout::EventTimeTimeout);
    op.push_row(("a",), 1);
    let err = op.run(&ctx(0, 0, Some(100)), |_, _, s| s.set_timeout_timestamp(99)).unwrap_err().to_string();
    assert!(err.contains("cannot be earlier than the current watermark (100)"), "{err}");
    let mut op = Op::new(1, GroupStateTimeout::NoTimeout);
    op.push_row(("a",), 1);
    let err = op
        .run(&ctx(0, 0, None), |_, _, s| {
            let _ = s.get();
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("panicked") && err.contains("not defined"), "{err}");
    let mut op = Op::new(1, GroupStateTimeout::NoTimeout);
    op.push_row(("a",), 1);
    let err = op
        .run(&ctx(0, 0, None), |_, _, s| {
            let _ = s.get_current_watermark_ms();
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("without `with_watermark`"), "{err}");
}

#[test]
fn changes_round_trip_through_restore_with_timeouts() {
    let mut op = Op::new(3, GroupStateTimeout::ProcessingTimeTimeout);
    op.set_tracking(true);
    sum_batch(&mut op, &ctx(0, 0, None), &[("a", 1), ("b", 2), ("c", 3)], |k, s| {
        if k == "b" {
            s.set_timeout_duration(7);
        }
        if k == "c" {
            s.remove();
        }
    });
    let changes = op.take_changes();
    let mut maps: Vec<StateMap> = (0..3).map(|_| StateMap::new()).collect();
    for (p, c) in changes.into_iter().enumerate() {
        for (k, v) in c {
            match v {
                Some(v) => maps[p].insert(k, v),
                None => maps[p].remove(&k),
            };
        }
    }
    let mut back = Op::new(3, GroupStateTimeout::ProcessingTimeTimeout);
    back.restore(maps).unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back.next_processing_timeout_ms(), Some(7));
    let calls = sum_batch(&mut back, &ctx(1, 8, None), &[("a", 5)], |k, s| {
        if k == "a" {
            assert_eq!(s.get(), &6);
        }
    });
    assert_eq!(calls, vec![("a".into(), vec![5], false), ("b".into(), vec![], true)]);
    assert_eq!(back.state_schema().value_layout, "group_state[i64]");
}

#[test]
fn an_initial_state_is_stored_in_batch_0_and_every_key_with_rows_or_initial_state_is_called_once() {
    let mut op = Op::new(2, GroupStateTimeout::NoTimeout);
    op.set_tracking(true);
    let mut seen = Vec::new();
    let initial = [("z", 7), ("a", 10), ("y", 1)];
    let calls = sum_batch_from(&mut op, &ctx(0, 0, None), &[("b", 1), ("a", 2)], &initial, |k, s| {
        seen.push((k.to_string(), *s.get()));
        if k == "y" {
            s.remove();
        }
    })
    .unwrap();
    // The keys with rows first (first-seen order), then those with only an initial state.
    assert_eq!(
        calls,
        vec![
            ("b".into(), vec![1], false),
            ("a".into(), vec![2], false),
            ("z".into(), vec![], false),
            ("y".into(), vec![], false)
        ]
    );
    assert_eq!(seen, vec![("b".into(), 1), ("a".into(), 12), ("z".into(), 7), ("y".into(), 1)]);
    assert_eq!(op.len(), 3, "y removed by its call");
    let changed: usize = op.take_changes().iter().map(|p| p.len()).sum();
    assert_eq!(changed, 4, "every initial key is in batch 0's delta (y as a removal)");
    // Not applied again in a later batch.
    let calls =
        sum_batch_from(&mut op, &ctx(1, 0, None), &[("z", 1)], &initial, |k, s| assert_eq!((k, *s.get()), ("z", 8)));
    assert_eq!(calls.unwrap().len(), 1);
}

#[test]
fn an_initial_state_after_batch_0_is_ignored_as_spark_applies_it_in_the_first_batch_only() {
    let mut op = Op::new(2, GroupStateTimeout::NoTimeout);
    let calls = sum_batch_from(&mut op, &ctx(3, 0, None), &[("b", 1)], &[("a", 10)], |_, _| {}).unwrap();
    assert_eq!(calls, vec![("b".into(), vec![1], false)]);
    assert_eq!(op.len(), 1);
}

#[test]
fn a_key_twice_in_the_initial_state_fails_batch_0_with_sparks_message() {
    let mut op = Op::new(2, GroupStateTimeout::NoTimeout);
    let initial = [("a", 1), ("b", 2), ("a", 3)];
    let err =
        sum_batch_from(&mut op, &ctx(0, 0, None), &[], &initial, |_, _| panic!("no call")).unwrap_err().to_string();
    assert!(err.contains("multiple rows(state) with the same key") && err.contains("\"a\""), "{err}");
}
