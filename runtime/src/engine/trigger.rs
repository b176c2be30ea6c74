//! When micro-batches run, or that the query runs continuously.

use crate::error::Result;
use crate::Duration;

/// When the engine starts the next micro-batch.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Trigger {
    /// As soon as the previous batch ends and new data is there (Spark's default). The engine
    /// polls sources every [`POLL_INTERVAL`] while idle, or wakes up at the time a source says
    /// its next data is due (the rate source's next row) when all of them can tell.
    #[default]
    Default,
    /// At fixed intervals; a batch that overruns is followed at once by the next; an interval
    /// without new data runs no batch.
    ProcessingTime(Duration),
    /// One batch with everything available, then stop.
    Once,
    /// Everything available at start, in as many batches as the sources' limits allow, then stop.
    AvailableNow,
    /// Continuous processing with this epoch interval (see [`super::continuous`]). Made by
    /// [`Trigger::continuous`], which only map-like queries accept as a trigger.
    Continuous(super::continuous::ContinuousTrigger),
    /// A trigger whose interval did not parse; `start()` reports the message.
    Invalid(String),
}

/// How long an idle query waits before asking its sources again (Spark's
/// `spark.sql.streaming.pollingDelay`, 10 ms).
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

impl Trigger {
    /// A processing-time trigger: `Trigger::processing_time("1 second")`.
    ///
    /// A malformed interval ("1 secnd") makes the query's `start()` fail with a message that
    /// says why; [`Trigger::try_processing_time`] reports it at once.
    pub fn processing_time(interval: &str) -> Trigger {
        Self::try_processing_time(interval).unwrap_or_else(|e| Trigger::Invalid(e.to_string()))
    }

    /// A processing-time trigger, reporting a malformed interval.
    pub fn try_processing_time(interval: &str) -> Result<Trigger> {
        let d = Duration::parse(interval)?;
        if d.micros() < 0 {
            return Err(crate::Error::Plan(format!("trigger interval \"{interval}\" is negative")));
        }
        Ok(Trigger::ProcessingTime(d))
    }

    /// One batch, then stop.
    pub fn once() -> Trigger {
        Trigger::Once
    }

    /// Everything available now, then stop.
    pub fn available_now() -> Trigger {
        Trigger::AvailableNow
    }

    /// Continuous processing: long-running tasks, one per source partition, that process rows
    /// as they arrive; every `interval` ("1 second") the query commits an epoch (the interval
    /// is the checkpoint interval, not the latency). Only queries that can run continuously
    /// accept it as their trigger (a type error otherwise, naming what stands in the way): see
    /// [`super::continuous`].
    ///
    /// A malformed interval makes the query's `start()` fail with a message that says why.
    pub fn continuous(interval: &str) -> super::continuous::ContinuousTrigger {
        super::continuous::ContinuousTrigger::parse(interval)
    }
}
