//! [`KafkaSource`]: the [`SourceImpl`] over one librdkafka consumer in assign mode.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::TopicPartitionList;
use serde_json::json;

use super::offsets::{rate_limit, PartitionOffsets, TopicPartition, EARLIEST, LATEST};
use super::rows::{build_batch, raw_layout, Column, Fetched};
use super::{KafkaOptions, KafkaSourceMetrics, Starting, Topics, MAX_BUFFERED_BYTES};
use crate::error::{Error, Result};
use crate::source::file::{FileOptions, FileSource};
use crate::source::{Offset, ReadLimit, SourceImpl};

/// Timeout of one metadata or list-offsets request (librdkafka's own default for
/// `socket.timeout.ms` is 60 s; a trigger should not hang that long on one call, and a failed
/// call is simply retried at the next trigger).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the partitions of the subscribed topics are asked for again: new partitions and
/// topics are picked up within this time. A metadata request costs a round trip to the
/// cluster (hundreds of milliseconds on the tansu test broker: `benches/`, kafka), too
/// much for every trigger of a busy query; librdkafka's own refresh is every 5 minutes.
const METADATA_REFRESH: Duration = Duration::from_secs(1);

/// Per partition: what has been fetched ahead of the current batch.
#[derive(Debug)]
struct Part {
    /// Every record at or after `base` and before `next` is in `buf` (or was a control record).
    base: i64,
    /// One past the last record (or control record) polled.
    next: i64,
    buf: VecDeque<Fetched>,
    /// A position was set and no record has come since: the first one checks for a gap.
    fresh: bool,
}

/// The Kafka source: see the [module documentation](super).
pub struct KafkaSource {
    pub(super) opts: KafkaOptions,
    pub(super) schema: SchemaRef,
    pub(super) metrics: Arc<KafkaSourceMetrics>,
    /// The columns the query reads ([`SourceImpl::project`]), for the continuous readers' own
    /// sources.
    pub(super) projected: Option<Vec<String>>,
    /// The typed path's decoder (a file source that is only asked to decode values).
    decoder: Option<FileSource>,
    /// Spark's columns: which one each field is.
    layout: Option<std::result::Result<Vec<Column>, String>>,
    /// Per field: read by the query (else placeholders are enough).
    read: Vec<bool>,
    consumer: Option<BaseConsumer>,
    parts: BTreeMap<TopicPartition, Part>,
    buffered_bytes: usize,
    /// Where a new query starts (resolved once, logged with batch 0).
    pub(super) initial: Option<PartitionOffsets>,
    /// Under available-now: the end of the run.
    cap: Option<PartitionOffsets>,
    available_now: bool,
    /// An out-of-range error was seen: check every partition for lost data.
    out_of_range: bool,
    last_batch: Instant,
    pattern: Option<regex::Regex>,
    group_id: String,
    /// Since when metadata requests fail (a broker outage).
    failing_since: Option<Instant>,
    /// The partitions, and when the cluster was last asked.
    known: Option<(Instant, Vec<TopicPartition>)>,
}

impl KafkaSource {
    pub(crate) fn new(opts: KafkaOptions, schema: SchemaRef, metrics: Arc<KafkaSourceMetrics>) -> Self {
        let decoder = opts.format.map(|format| {
            let mut fo = FileOptions::new(std::path::PathBuf::from("<kafka>"), schema.clone());
            fo.format = format;
            fo.mode = opts.mode;
            fo.csv_header = false;
            fo.csv_delimiter = opts.csv_delimiter;
            fo.corrupt_record_column = opts.corrupt_record_column.clone();
            FileSource::new(fo)
        });
        let layout = decoder.is_none().then(|| raw_layout(&schema, opts.include_headers).map_err(|e| e.to_string()));
        let pattern = match &opts.topics {
            Some(Topics::Pattern(p)) => regex::Regex::new(p).ok(),
            _ => None,
        };
        let group_id = opts
            .kafka
            .iter()
            .find(|(k, _)| k == "group.id")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| format!("flowgate-{:016x}", rand_u64()));
        KafkaSource {
            read: vec![true; schema.fields().len()],
            opts,
            schema,
            metrics,
            projected: None,
            decoder,
            layout,
            consumer: None,
            parts: BTreeMap::new(),
            buffered_bytes: 0,
            initial: None,
            cap: None,
            available_now: false,
            out_of_range: false,
            last_batch: Instant::now(),
            pattern,
            group_id,
            failing_since: None,
            known: None,
        }
    }

    pub(super) fn check(&self) -> Result<()> {
        if let Some(e) = self.opts.errors.first() {
            return Err(Error::Plan(format!("Kafka source: {e}")));
        }
        if self.opts.topics.is_none() {
            return Err(Error::Plan(
                "Kafka source: set one of subscribe, subscribePattern or assign (`.subscribe(\"topic\")`)".into(),
            ));
        }
        if let Some(Err(e)) = &self.layout {
            return Err(Error::Plan(e.clone()));
        }
        Ok(())
    }

    fn consumer(&mut self) -> Result<&BaseConsumer> {
        if self.consumer.is_none() {
            let mut cfg = ClientConfig::new();
            cfg.set("bootstrap.servers", &self.opts.bootstrap)
                .set("group.id", &self.group_id)
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                // Positions come from the checkpoint; a position that is gone is data loss.
                .set("auto.offset.reset", "error")
                .set("enable.partition.eof", "false");
            for (k, v) in &self.opts.kafka {
                if k != "group.id" {
                    cfg.set(k, v);
                }
            }
            let c: BaseConsumer =
                cfg.create().map_err(|e| Error::Plan(format!("Kafka source: cannot create a consumer: {e}")))?;
            self.consumer = Some(c);
        }
        self.consumer.as_ref().ok_or_else(|| Error::Internal("Kafka consumer missing".into()))
    }

    /// The partitions the options name, as the cluster has them now.
    /// The partitions now; `None` while the cluster does not answer (a broker outage: the
    /// query waits, up to the poll timeout, then fails with the error).
    pub(super) fn partitions(&mut self) -> Result<Option<Vec<TopicPartition>>> {
        if let Some((at, tps)) = &self.known {
            if at.elapsed() < METADATA_REFRESH {
                return Ok(Some(tps.clone()));
            }
        }
        match self.fetch_partitions() {
            Ok(tps) => {
                self.failing_since = None;
                self.known = Some((Instant::now(), tps.clone()));
                Ok(Some(tps))
            }
            Err(e) => {
                let since = *self.failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(self.opts.poll_timeout_ms) {
                    return Err(e);
                }
                tracing::warn!("Kafka source: {e}; retrying");
                Ok(None)
            }
        }
    }

    fn fetch_partitions(&mut self) -> Result<Vec<TopicPartition>> {
        let topics = self.opts.topics.clone();
        let pattern = self.pattern.clone();
        let c = self.consumer()?;
        let mut out = Vec::new();
        let meta_error = |e: KafkaError| Error::Execution(format!("Kafka source: fetching metadata: {e}"));
        match topics {
            Some(Topics::Assign(tps)) => out = tps,
            Some(Topics::Subscribe(names)) => {
                for name in names {
                    let md = c.fetch_metadata(Some(&name), REQUEST_TIMEOUT).map_err(meta_error)?;
                    for t in md.topics() {
                        if t.error().is_some() {
                            continue; // not there (yet): Spark waits for it too
                        }
                        out.extend(t.partitions().iter().map(|p| TopicPartition::new(t.name(), p.id())));
                    }
                }
            }
            Some(Topics::Pattern(_)) => {
                let md = c.fetch_metadata(None, REQUEST_TIMEOUT).map_err(meta_error)?;
                for t in md.topics() {
                    if t.error().is_none() && pattern.as_ref().is_some_and(|p| p.is_match(t.name())) {
                        out.extend(t.partitions().iter().map(|p| TopicPartition::new(t.name(), p.id())));
                    }
                }
            }
            None => {}
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The earliest and latest offsets the broker reports for `tp` (ListOffsets).
    fn watermarks(&mut self, tp: &TopicPartition) -> Result<(i64, i64)> {
        let c = self.consumer()?;
        c.fetch_watermarks(&tp.topic, tp.partition, REQUEST_TIMEOUT)
            .map_err(|e| Error::Execution(format!("Kafka source: listing offsets of {tp}: {e}")))
    }

    /// The high watermark of `tp` from the last fetch response, if there was one.
    fn cached_high(&self, tp: &TopicPartition) -> Option<i64> {
        let c = self.consumer.as_ref()?;
        let topic = std::ffi::CString::new(tp.topic.as_str()).ok()?;
        let (mut low, mut high) = (-1i64, -1i64);
        // SAFETY: the client pointer is valid while `c` lives; the topic is a NUL-terminated
        // string that outlives the call; librdkafka only writes the two out-parameters.
        let err = unsafe {
            rdkafka::bindings::rd_kafka_get_watermark_offsets(
                c.client().native_ptr(),
                topic.as_ptr(),
                tp.partition,
                &mut low,
                &mut high,
            )
        };
        (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
    }

    /// Where a new query starts, per partition in `tps` (Spark's `startingOffsets` /
    /// `startingTimestamp`).
    pub(super) fn resolve_initial(&mut self, tps: &[TopicPartition]) -> Result<PartitionOffsets> {
        let mut out = BTreeMap::new();
        match self.opts.starting.clone() {
            Starting::Earliest | Starting::Latest => {
                let latest = self.opts.starting == Starting::Latest;
                for tp in tps {
                    let (low, high) = self.watermarks(tp)?;
                    out.insert(tp.clone(), if latest { high.max(self.cached_high(tp).unwrap_or(0)) } else { low });
                }
            }
            Starting::Offsets(given) => {
                for tp in tps {
                    let off = given.get(tp).ok_or_else(|| {
                        Error::Plan(format!(
                            "Kafka source: startingOffsets names specific offsets but not partition {tp}: give every \
                             partition (-2 earliest, -1 latest), as Spark requires"
                        ))
                    })?;
                    let (low, high) = self.watermarks(tp)?;
                    let off = match off {
                        EARLIEST => low,
                        LATEST => high,
                        o if o < low => {
                            self.data_loss(&format!(
                                "startingOffsets gives {tp} offset {o}, but its earliest available offset is {low}"
                            ))?;
                            low
                        }
                        o => o,
                    };
                    out.insert(tp.clone(), off);
                }
            }
            Starting::Timestamp(ms) => {
                let c = self.consumer()?;
                let mut q = TopicPartitionList::new();
                for tp in tps {
                    q.add_partition_offset(&tp.topic, tp.partition, rdkafka::Offset::Offset(ms))
                        .map_err(|e| Error::Plan(format!("Kafka source: {e}")))?;
                }
                let found = c
                    .offsets_for_times(q, REQUEST_TIMEOUT)
                    .map_err(|e| Error::Execution(format!("Kafka source: offsets for timestamp {ms}: {e}")))?;
                for tp in tps {
                    let off = match found.find_partition(&tp.topic, tp.partition).map(|e| e.offset()) {
                        Some(rdkafka::Offset::Offset(o)) => o,
                        // No record at or after the time: start at the end (Spark's default).
                        _ => self.watermarks(tp)?.1,
                    };
                    out.insert(tp.clone(), off);
                }
            }
        }
        Ok(PartitionOffsets(out))
    }

    /// Reports lost data: an error under `failOnDataLoss`, else a warning and a count.
    fn data_loss(&self, what: &str) -> Result<()> {
        self.metrics.data_loss_events.fetch_add(1, Ordering::Relaxed);
        if self.opts.fail_on_data_loss {
            return Err(Error::Execution(format!(
                "Kafka source: {what}. Some data may have been lost because it is not available in Kafka any more: \
                 the data aged out or the topic was deleted before the query read it. Set failOnDataLoss to false \
                 to skip it and go on"
            )));
        }
        tracing::warn!("Kafka source: {what}; skipped (failOnDataLoss = false)");
        Ok(())
    }

    /// Makes `tp` read from `pos`; returns whether the consumer must be told (a new position).
    fn position(&mut self, tp: &TopicPartition, pos: i64) -> bool {
        if let Some(p) = self.parts.get_mut(tp) {
            if p.base <= pos && pos <= p.next {
                while p.buf.front().is_some_and(|r| r.offset < pos) {
                    let r = p.buf.pop_front().map_or(0, |r| r.bytes());
                    self.buffered_bytes -= r;
                }
                p.base = pos;
                return false;
            }
            let freed: usize = p.buf.iter().map(Fetched::bytes).sum();
            self.buffered_bytes -= freed;
        }
        self.parts.insert(tp.clone(), Part { base: pos, next: pos, buf: VecDeque::new(), fresh: true });
        true
    }

    fn assign(&mut self) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        for (tp, p) in &self.parts {
            tpl.add_partition_offset(&tp.topic, tp.partition, rdkafka::Offset::Offset(p.next))
                .map_err(|e| Error::Plan(format!("Kafka source: {e}")))?;
        }
        self.consumer()?.assign(&tpl).map_err(|e| Error::Execution(format!("Kafka source: assigning partitions: {e}")))
    }

    /// Takes fetched records from librdkafka into the per-partition buffers: waits up to
    /// `wait` for the first, then takes what is there, up to [`MAX_BUFFERED_BYTES`] unless
    /// `force`.
    fn drain(&mut self, wait: Duration, force: bool) -> Result<()> {
        let want_key = self.reads(|c| matches!(c, Column::Key { .. }));
        let want_value = self.decoder.is_some() || self.reads(|c| matches!(c, Column::Value { .. }));
        let want_headers = self.opts.include_headers && self.reads(|c| matches!(c, Column::Headers));
        let Some(c) = self.consumer.as_ref() else { return Ok(()) };
        let mut timeout = wait;
        let mut taken: Vec<(TopicPartition, Fetched)> = Vec::new();
        let mut bytes = self.buffered_bytes;
        let mut out_of_range = false;
        while force || bytes < MAX_BUFFERED_BYTES {
            let Some(m) = c.poll(timeout) else { break };
            timeout = Duration::ZERO;
            let m = match m {
                Ok(m) => m,
                Err(KafkaError::MessageConsumption(RDKafkaErrorCode::OffsetOutOfRange)) => {
                    out_of_range = true;
                    continue;
                }
                Err(e) => {
                    // Transport errors during a broker outage land here; librdkafka retries.
                    tracing::debug!("Kafka source: consumer: {e}");
                    continue;
                }
            };
            let (timestamp_ms, timestamp_type) = match m.timestamp() {
                rdkafka::Timestamp::CreateTime(t) => (t, 0),
                rdkafka::Timestamp::LogAppendTime(t) => (t, 1),
                rdkafka::Timestamp::NotAvailable => (-1, -1),
            };
            let headers = want_headers.then(|| {
                m.headers()
                    .map(|hs| hs.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect())
                    .unwrap_or_default()
            });
            let r = Fetched {
                offset: m.offset(),
                key: if want_key { m.key().map(<[u8]>::to_vec) } else { None },
                value: if want_value { m.payload().map(<[u8]>::to_vec) } else { None },
                timestamp_ms,
                timestamp_type,
                headers,
            };
            bytes += r.bytes();
            taken.push((TopicPartition::new(m.topic(), m.partition()), r));
        }
        // Control records (transaction markers) are never handed out, but move the position.
        let positions = if taken.is_empty() { None } else { c.position().ok() };
        self.out_of_range |= out_of_range;
        for (tp, r) in taken {
            let Some(part) = self.parts.get_mut(&tp) else { continue };
            if r.offset < part.next {
                continue; // fetched before the partition was positioned again
            }
            let gap = (part.fresh && r.offset > part.next).then_some(part.next);
            part.fresh = false;
            part.next = r.offset + 1;
            self.buffered_bytes += r.bytes();
            part.buf.push_back(r);
            if let Some(expected) = gap {
                self.check_gap(&tp, expected)?;
            }
        }
        if let Some(pos) = positions {
            for e in pos.elements() {
                if let (Some(p), rdkafka::Offset::Offset(o)) =
                    (self.parts.get_mut(&TopicPartition::new(e.topic(), e.partition())), e.offset())
                {
                    p.next = p.next.max(o);
                }
            }
        }
        Ok(())
    }

    /// The first record after `expected` came later than it: a gap is lost data if the
    /// broker no longer has `expected` (else it was control records or compaction).
    fn check_gap(&mut self, tp: &TopicPartition, expected: i64) -> Result<()> {
        let (low, _) = self.watermarks(tp)?;
        if low > expected {
            self.data_loss(&format!(
                "{tp}: offsets {expected} to {} are gone (the earliest available offset is {low})",
                low - 1
            ))?;
        }
        Ok(())
    }

    /// After an out-of-range error: every partition whose position the broker no longer has
    /// is lost data (a topic deleted and created again, records aged out); under
    /// `failOnDataLoss = false` it goes on from the earliest offset there is.
    fn recover_out_of_range(&mut self) -> Result<bool> {
        if !std::mem::take(&mut self.out_of_range) {
            return Ok(false);
        }
        let mut moved = false;
        let tps: Vec<(TopicPartition, i64)> = self.parts.iter().map(|(tp, p)| (tp.clone(), p.next)).collect();
        for (tp, next) in tps {
            let (low, high) = self.watermarks(&tp)?;
            let high = high.max(self.cached_high(&tp).unwrap_or(-1));
            if next < low || next > high {
                self.data_loss(&format!("{tp}: offset {next} is out of range (the broker has {low} to {high})"))?;
                self.position(&tp, low);
                moved = true;
            }
        }
        Ok(moved)
    }

    /// Fetches until every partition has reached the high watermark of its last fetch
    /// response (or `deadline`).
    fn catch_up(&mut self, deadline: Instant) -> Result<()> {
        loop {
            let pending =
                self.parts.iter().any(|(tp, p)| self.cached_high(tp).is_none_or(|h| p.next < h && h > p.base));
            if !pending || Instant::now() > deadline {
                return Ok(());
            }
            self.drain(Duration::from_millis(50), true)?;
        }
    }

    /// The next offset to read per partition, for `start` (the last batch's end; `None` for a
    /// new query), new partitions at their earliest offset.
    fn starts(&mut self, start: Option<&Offset>, tps: &[TopicPartition]) -> Result<PartitionOffsets> {
        let mut starts = match start {
            Some(o) => PartitionOffsets::from_offset(o)?,
            None => {
                if self.initial.is_none() {
                    self.initial = Some(self.resolve_initial(tps)?);
                }
                self.initial.clone().unwrap_or_default()
            }
        };
        for tp in tps {
            if !starts.0.contains_key(tp) {
                let (low, _) = self.watermarks(tp)?;
                tracing::info!("Kafka source: new partition {tp}, read from its earliest offset {low}");
                starts.0.insert(tp.clone(), low);
            }
        }
        Ok(starts)
    }

    /// Positions every partition at `starts` (telling the consumer when one moved).
    fn position_all(&mut self, starts: &PartitionOffsets) -> Result<()> {
        let mut moved = false;
        for (tp, off) in &starts.0 {
            moved |= self.position(tp, *off);
        }
        let before = self.parts.len();
        let mut freed = 0;
        self.parts.retain(|tp, p| {
            let keep = starts.0.contains_key(tp);
            if !keep {
                freed += p.buf.iter().map(Fetched::bytes).sum::<usize>();
            }
            keep
        });
        self.buffered_bytes -= freed;
        if moved || before != self.parts.len() {
            self.assign()?;
        }
        Ok(())
    }

    /// The rows of `records` (per partition) as batches of the source's schema.
    fn rows(&self, records: &[(TopicPartition, Vec<Fetched>)]) -> Result<Vec<RecordBatch>> {
        let n: usize = records.iter().map(|(_, r)| r.len()).sum();
        self.metrics.records.fetch_add(n as u64, Ordering::Relaxed);
        if n == 0 {
            return Ok(Vec::new());
        }
        if let Some(decoder) = &self.decoder {
            let mut data = Vec::new();
            let mut ranges = Vec::with_capacity(n);
            let mut places = Vec::with_capacity(n);
            for (tp, recs) in records {
                for r in recs {
                    let start = data.len();
                    data.extend_from_slice(r.value.as_deref().unwrap_or_default());
                    ranges.push((start, data.len()));
                    data.push(b'\n');
                    places.push((tp, r.offset));
                }
            }
            let before = decoder.malformed_count();
            let place = |i: usize| format!("the value of Kafka record {} at offset {}", places[i].0, places[i].1);
            let out = decoder.decode_values(&data, &ranges, &place);
            self.metrics.malformed.fetch_add(decoder.malformed_count() - before, Ordering::Relaxed);
            return out;
        }
        let layout = match &self.layout {
            Some(Ok(l)) => l,
            _ => return Err(Error::Internal("Kafka source: no layout".into())),
        };
        let parts: Vec<(&str, i32, &[Fetched])> =
            records.iter().map(|(tp, r)| (tp.topic.as_str(), tp.partition, r.as_slice())).collect();
        Ok(vec![build_batch(&self.schema, layout, &self.read, &parts)?])
    }

    fn reads(&self, f: impl Fn(&Column) -> bool) -> bool {
        match &self.layout {
            Some(Ok(cols)) => cols.iter().zip(&self.read).any(|(c, r)| *r && f(c)),
            _ => false,
        }
    }
}

impl SourceImpl for KafkaSource {
    fn description(&self) -> String {
        // Spark's form, e.g. `KafkaV2[Subscribe[events]]`.
        match &self.opts.topics {
            Some(Topics::Subscribe(t)) => format!("KafkaV2[Subscribe[{}]]", t.join(",")),
            Some(Topics::Pattern(p)) => format!("KafkaV2[SubscribePattern[{p}]]"),
            Some(Topics::Assign(tps)) => {
                format!("KafkaV2[Assign[{}]]", tps.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
            }
            None => "KafkaV2[no topics]".into(),
        }
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn project(&mut self, columns: &[&str]) {
        self.projected = Some(columns.iter().map(|c| c.to_string()).collect());
        if let Some(d) = &mut self.decoder {
            d.project(columns);
            return;
        }
        self.read = self.schema.fields().iter().map(|f| columns.contains(&f.name().as_str())).collect();
    }

    fn prepare_available_now(&mut self) -> Result<()> {
        self.available_now = true;
        Ok(())
    }

    fn latest_offset(&mut self, start: Option<&Offset>, limit: ReadLimit) -> Result<Option<Offset>> {
        self.check()?;
        let Some(tps) = self.partitions()? else {
            return Ok(start.cloned());
        };
        let mut starts = self.starts(start, &tps)?;
        // Partitions that went away (a topic deleted).
        let gone: Vec<TopicPartition> = starts.0.keys().filter(|tp| !tps.contains(tp)).cloned().collect();
        for tp in &gone {
            self.data_loss(&format!("partition {tp} is gone (its topic was deleted?), at offset {}", starts.0[tp]))?;
            starts.0.remove(tp);
        }
        self.position_all(&starts)?;
        let idle = self.parts.values().all(|p| p.buf.is_empty());
        self.drain(if idle { Duration::from_millis(10) } else { Duration::ZERO }, false)?;
        if self.recover_out_of_range()? {
            self.assign()?;
        }
        let deadline = Instant::now() + Duration::from_millis(self.opts.poll_timeout_ms);
        if self.available_now && self.cap.is_none() {
            self.catch_up(deadline)?;
        }
        // A position past what the broker has (the topic was deleted and created again).
        let mut moved = false;
        for (tp, off) in starts.0.iter_mut() {
            if let Some(high) = self.cached_high(tp) {
                if high < *off && self.parts.get(tp).is_some_and(|p| p.buf.is_empty() && p.next == *off) {
                    self.data_loss(&format!("{tp}: offsets went back from {off} to {high}"))?;
                    let (low, _) = self.watermarks(tp)?;
                    *off = low;
                    self.position(tp, low);
                    moved = true;
                }
            }
        }
        if moved {
            self.assign()?;
        }
        if self.available_now && self.cap.is_none() {
            // The run's end: what the broker had when it was prepared (fetch-response high
            // watermarks, which tansu gets right where its ListOffsets does not).
            self.catch_up(deadline)?;
            self.cap = Some(PartitionOffsets(self.parts.iter().map(|(tp, p)| (tp.clone(), p.next)).collect()));
        }
        let mut available: Vec<(TopicPartition, i64, i64)> = Vec::new();
        for (tp, s) in &starts.0 {
            let mut end = self.parts.get(tp).map_or(*s, |p| p.next.max(*s));
            if let Some(cap) = &self.cap {
                end = end.min(cap.get(tp).unwrap_or(*s)).max(*s);
            }
            available.push((tp.clone(), *s, end));
        }
        let total: i64 = available.iter().map(|(_, s, e)| e - s).sum();
        if limit == ReadLimit::Default {
            if let Some(min) = self.opts.min_offsets_per_trigger {
                let waited = self.last_batch.elapsed() >= Duration::from_millis(self.opts.max_trigger_delay_ms);
                if (total as u64) < min && !waited {
                    return Ok(start.cloned());
                }
            }
        }
        let ends: Vec<(TopicPartition, i64)> = match (limit, self.opts.max_offsets_per_trigger) {
            (ReadLimit::Default, Some(max)) => rate_limit(&available, max),
            _ => available.iter().map(|(tp, _, e)| (tp.clone(), *e)).collect(),
        };
        if total == 0 && start.is_none() {
            return Ok(None);
        }
        Ok(Some(PartitionOffsets(ends.into_iter().collect()).to_offset()))
    }

    fn get_batch(&mut self, start: Option<&Offset>, end: &Offset) -> Result<Vec<RecordBatch>> {
        self.check()?;
        let end = PartitionOffsets::from_offset(end)?;
        let tps: Vec<TopicPartition> = end.0.keys().cloned().collect();
        let mut starts = self.starts(start, &tps)?;
        starts.0.retain(|tp, _| end.0.contains_key(tp));
        let mut ranges = Vec::new();
        for (tp, e) in &end.0 {
            let mut s = starts.get(tp).unwrap_or(*e);
            if *e < s {
                // Planned after the partition's offsets went back (data loss, reported then).
                s = self.watermarks(tp)?.0.min(*e);
                starts.0.insert(tp.clone(), s);
            }
            ranges.push((tp.clone(), s, *e));
        }
        self.position_all(&starts)?;
        let deadline = Instant::now() + Duration::from_millis(self.opts.poll_timeout_ms);
        loop {
            let missing = ranges.iter().find(|(tp, _, e)| self.parts.get(tp).is_none_or(|p| p.next < *e));
            let Some((tp, s, e)) = missing else { break };
            if Instant::now() > deadline {
                let got = self.parts.get(tp).map_or(*s, |p| p.next);
                return Err(Error::Execution(format!(
                    "Kafka source: could not read {tp} offsets {s} to {} within {} ms (read up to {got}); is the \
                     broker up? (raise kafkaConsumer.pollTimeoutMs to wait longer)",
                    e - 1,
                    self.opts.poll_timeout_ms
                )));
            }
            self.drain(Duration::from_millis(100), true)?;
            if self.recover_out_of_range()? {
                self.assign()?;
            }
        }
        let mut records = Vec::with_capacity(ranges.len());
        for (tp, _, e) in &ranges {
            let Some(p) = self.parts.get_mut(tp) else { continue };
            let mut recs = Vec::new();
            while p.buf.front().is_some_and(|r| r.offset < *e) {
                if let Some(r) = p.buf.pop_front() {
                    self.buffered_bytes -= r.bytes();
                    recs.push(r);
                }
            }
            p.base = *e;
            records.push((tp.clone(), recs));
        }
        self.last_batch = Instant::now();
        self.rows(&records)
    }

    fn batch_log(&self, start: Option<&Offset>, _end: &Offset) -> Result<Option<serde_json::Value>> {
        // The first batch has no start offset in the log: its resolved starting offsets go here.
        Ok(match (start, &self.initial) {
            (None, Some(initial)) => Some(json!({ "initial": initial.to_json() })),
            _ => None,
        })
    }

    fn restore_log(&mut self, entries: Vec<serde_json::Value>) -> Result<()> {
        if let Some(v) = entries.iter().find_map(|e| e.get("initial")) {
            self.initial =
                Some(PartitionOffsets::from_json(v, "Kafka source log").map_err(|e| Error::Checkpoint(e.to_string()))?);
        }
        Ok(())
    }

    fn commit(&mut self, end: &Offset) -> Result<()> {
        // For monitoring tools only (consumer lag); positions come from the checkpoint.
        let end = PartitionOffsets::from_offset(end)?;
        if let Some(c) = &self.consumer {
            let mut tpl = TopicPartitionList::new();
            for (tp, off) in &end.0 {
                let _ = tpl.add_partition_offset(&tp.topic, tp.partition, rdkafka::Offset::Offset(*off));
            }
            if let Err(e) = c.commit(&tpl, CommitMode::Async) {
                tracing::debug!("Kafka source: committing offsets to group {} (monitoring only): {e}", self.group_id);
            }
        }
        Ok(())
    }

    /// One partition per topic-partition, each with a consumer of its own (see
    /// `kafka/continuous.rs`).
    fn continuous_readers(
        &mut self,
        start: Option<&[serde_json::Value]>,
    ) -> Result<Option<Vec<Box<dyn crate::source::continuous::PartitionReader>>>> {
        super::continuous::readers(self, start).map(Some)
    }

    fn stop(&mut self) {
        self.consumer = None;
        self.parts.clear();
        self.buffered_bytes = 0;
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.write_u32(std::process::id());
    h.finish()
}
