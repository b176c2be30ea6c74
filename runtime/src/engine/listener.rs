//! Query listeners, after Spark's `StreamingQueryListener`: a query posts an event when it
//! starts, after every batch (its progress), when it finds no new data (idle) and when it
//! terminates (with the error that stopped it, if any).
//!
//! Listeners are registered per query ([`crate::QueryBuilder::listener`]), for every query of a
//! [`super::manager::QueryManager`] (Spark's `spark.streams.addListener`), or for every query of
//! the process ([`add_global_listener`]).
//!
//! Events are called **off the query's thread**: the query puts them on a bounded channel that
//! one process-wide dispatcher thread drains (Spark's listener bus), so a slow listener delays
//! other listeners, never a batch. The query never blocks on the channel: when it is full
//! (a listener far behind), the event is dropped and counted in a warning. Events of one query
//! reach each listener in the order they happened: started, then progress and idle events,
//! then terminated, last. A listener that panics is reported and skipped for that event only.
//! A query with no listener anywhere posts nothing (no clone of its progress).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use super::QueryProgress;
use crate::error::Error;

/// Events waiting for the dispatcher at most (Spark's
/// `spark.scheduler.listenerbus.eventqueue.capacity` default).
pub const EVENT_QUEUE_CAPACITY: usize = 10_000;

/// While a query stays idle it posts an idle event at most this often (Spark's
/// `spark.sql.streaming.noDataProgressEventInterval` default, 10 s).
pub const IDLE_EVENT_INTERVAL: Duration = Duration::from_secs(10);

/// Receives a query's lifecycle events. Every method has an empty default; implement the ones
/// you need. Called on the dispatcher thread, never on the query's.
///
/// ```
/// use flowgate::engine::listener::{QueryListener, QueryTerminatedEvent};
///
/// struct Alert;
/// impl QueryListener for Alert {
///     fn on_query_terminated(&self, event: &QueryTerminatedEvent) {
///         if let Some(e) = &event.error {
///             eprintln!("query {} failed: {e}", event.name);
///         }
///     }
/// }
/// ```
pub trait QueryListener: Send + Sync {
    /// The query started (posted from its thread before the first batch).
    fn on_query_started(&self, event: &QueryStartedEvent) {
        let _ = event;
    }
    /// A batch finished.
    fn on_query_progress(&self, progress: &QueryProgress) {
        let _ = progress;
    }
    /// The query found no new data (once when it goes idle, then every
    /// [`IDLE_EVENT_INTERVAL`] while it stays idle).
    fn on_query_idle(&self, event: &QueryIdleEvent) {
        let _ = event;
    }
    /// The query stopped: by `stop()`, its trigger, or an error (`event.error`).
    fn on_query_terminated(&self, event: &QueryTerminatedEvent) {
        let _ = event;
    }
}

/// Posted when a query starts (Spark's `QueryStartedEvent`).
#[derive(Clone, Debug)]
pub struct QueryStartedEvent {
    /// Stable id of the query (kept in its checkpoint).
    pub id: String,
    /// Id of this run.
    pub run_id: String,
    /// The query's name.
    pub name: String,
    /// When it started (RFC 3339).
    pub timestamp: String,
}

/// Posted when a query finds no new data (Spark's `QueryIdleEvent`).
#[derive(Clone, Debug)]
pub struct QueryIdleEvent {
    /// Stable id of the query.
    pub id: String,
    /// Id of this run.
    pub run_id: String,
    /// The query's name.
    pub name: String,
    /// When (RFC 3339).
    pub timestamp: String,
}

/// Posted when a query stops (Spark's `QueryTerminatedEvent`).
#[derive(Clone, Debug)]
pub struct QueryTerminatedEvent {
    /// Stable id of the query.
    pub id: String,
    /// Id of this run.
    pub run_id: String,
    /// The query's name.
    pub name: String,
    /// The error that stopped it; `None` when it was stopped or its trigger ended it.
    pub error: Option<Arc<Error>>,
}

/// One event of a query.
#[derive(Clone, Debug)]
pub enum QueryEvent {
    /// See [`QueryListener::on_query_started`].
    Started(QueryStartedEvent),
    /// See [`QueryListener::on_query_progress`].
    Progress(Box<QueryProgress>),
    /// See [`QueryListener::on_query_idle`].
    Idle(QueryIdleEvent),
    /// See [`QueryListener::on_query_terminated`].
    Terminated(QueryTerminatedEvent),
}

impl QueryEvent {
    fn deliver(&self, l: &dyn QueryListener) {
        match self {
            QueryEvent::Started(e) => l.on_query_started(e),
            QueryEvent::Progress(p) => l.on_query_progress(p),
            QueryEvent::Idle(e) => l.on_query_idle(e),
            QueryEvent::Terminated(e) => l.on_query_terminated(e),
        }
    }
}

/// A shared, growable list of listeners (a manager's, the process's).
pub(crate) type ListenerList = Arc<RwLock<Vec<Arc<dyn QueryListener>>>>;

fn global_list() -> &'static ListenerList {
    static GLOBAL: OnceLock<ListenerList> = OnceLock::new();
    GLOBAL.get_or_init(Default::default)
}

/// Registers `listener` for every query of this process, started before or after (Spark's
/// `spark.streams.addListener`, for all sessions). Returns a handle for
/// [`remove_global_listener`].
pub fn add_global_listener(listener: Arc<dyn QueryListener>) -> Arc<dyn QueryListener> {
    global_list().write().unwrap_or_else(|e| e.into_inner()).push(listener.clone());
    listener
}

/// Unregisters a listener added by [`add_global_listener`] (compared by pointer).
pub fn remove_global_listener(listener: &Arc<dyn QueryListener>) {
    global_list().write().unwrap_or_else(|e| e.into_inner()).retain(|l| !Arc::ptr_eq(l, listener));
}

pub(crate) fn remove_from(list: &ListenerList, listener: &Arc<dyn QueryListener>) {
    list.write().unwrap_or_else(|e| e.into_inner()).retain(|l| !Arc::ptr_eq(l, listener));
}

/// Where one query's events go: its own listeners, its manager's, the process's.
#[derive(Clone)]
struct Targets {
    query: Arc<Vec<Arc<dyn QueryListener>>>,
    manager: Option<ListenerList>,
}

impl Targets {
    fn any(&self) -> bool {
        let read = |l: &ListenerList| !l.read().unwrap_or_else(|e| e.into_inner()).is_empty();
        !self.query.is_empty() || self.manager.as_ref().is_some_and(read) || read(global_list())
    }

    fn deliver(&self, event: &QueryEvent) {
        let mut all: Vec<Arc<dyn QueryListener>> = self.query.iter().cloned().collect();
        if let Some(m) = &self.manager {
            all.extend(m.read().unwrap_or_else(|e| e.into_inner()).iter().cloned());
        }
        all.extend(global_list().read().unwrap_or_else(|e| e.into_inner()).iter().cloned());
        for l in all {
            if catch_unwind(AssertUnwindSafe(|| event.deliver(&*l))).is_err() {
                tracing::error!("a query listener panicked on {event:?}; it keeps receiving later events");
            }
        }
    }
}

fn bus() -> &'static SyncSender<(Targets, QueryEvent)> {
    static BUS: OnceLock<SyncSender<(Targets, QueryEvent)>> = OnceLock::new();
    BUS.get_or_init(|| {
        let (tx, rx) = sync_channel::<(Targets, QueryEvent)>(EVENT_QUEUE_CAPACITY);
        // If the thread cannot start, sends fail and events are dropped with a warning.
        let _ = std::thread::Builder::new().name("flowgate-listener-bus".into()).spawn(move || {
            for (targets, event) in rx {
                targets.deliver(&event);
            }
        });
        tx
    })
}

static DROPPED: AtomicU64 = AtomicU64::new(0);

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The query thread's side: posts events, tells the manager when the query ends, feeds the
/// metrics and the web page. Each method is one call from the engine loop.
pub(crate) struct Observer {
    pub(crate) id: String,
    pub(crate) run_id: String,
    pub(crate) name: String,
    targets: Targets,
    manager: Option<super::manager::QueryManager>,
    sinks: Vec<Arc<dyn ProgressSink>>,
    /// When the last idle event was posted; `None` while the query is busy.
    last_idle: Option<Instant>,
}

/// Something fed synchronously with every progress (the metrics registry, the web page's
/// history): cheap work only, it runs on the query thread.
pub(crate) trait ProgressSink: Send + Sync {
    fn progress(&self, p: &QueryProgress);
    fn terminated(&self, error: Option<&Arc<Error>>) {
        let _ = error;
    }
}

impl Observer {
    pub(crate) fn new(
        id: &str,
        run_id: &str,
        name: &str,
        listeners: Vec<Arc<dyn QueryListener>>,
        manager: Option<super::manager::QueryManager>,
        sinks: Vec<Arc<dyn ProgressSink>>,
    ) -> Self {
        Observer {
            id: id.to_string(),
            run_id: run_id.to_string(),
            name: name.to_string(),
            targets: Targets { query: Arc::new(listeners), manager: manager.as_ref().map(|m| m.listeners()) },
            manager,
            sinks,
            last_idle: None,
        }
    }

    fn post(&self, event: impl FnOnce() -> QueryEvent) {
        if !self.targets.any() {
            return;
        }
        match bus().try_send((self.targets.clone(), event())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let n = DROPPED.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(query = %self.name, dropped = n, "listener queue full: an event was dropped");
            }
        }
    }

    /// The query thread started.
    pub(crate) fn started(&self) {
        self.post(|| {
            QueryEvent::Started(QueryStartedEvent {
                id: self.id.clone(),
                run_id: self.run_id.clone(),
                name: self.name.clone(),
                timestamp: now_rfc3339(),
            })
        });
    }

    /// A batch finished.
    pub(crate) fn progress(&mut self, p: &QueryProgress) {
        self.last_idle = None;
        for s in &self.sinks {
            s.progress(p);
        }
        self.post(|| QueryEvent::Progress(Box::new(p.clone())));
    }

    /// A trigger found no new data.
    pub(crate) fn idle(&mut self) {
        if self.last_idle.is_some_and(|t| t.elapsed() < IDLE_EVENT_INTERVAL) {
            return;
        }
        self.last_idle = Some(Instant::now());
        self.post(|| {
            QueryEvent::Idle(QueryIdleEvent {
                id: self.id.clone(),
                run_id: self.run_id.clone(),
                name: self.name.clone(),
                timestamp: now_rfc3339(),
            })
        });
    }

    /// The query is about to say it stopped: the synchronous sinks finish.
    pub(crate) fn stopping(&self, error: Option<&Arc<Error>>) {
        for s in &self.sinks {
            s.terminated(error);
        }
    }

    /// The query stopped (its status already says so).
    pub(crate) fn terminated(&self, error: Option<Arc<Error>>) {
        if let Some(m) = &self.manager {
            m.terminated(&self.run_id, error.clone());
        }
        self.post(|| {
            QueryEvent::Terminated(QueryTerminatedEvent {
                id: self.id.clone(),
                run_id: self.run_id.clone(),
                name: self.name.clone(),
                error,
            })
        });
    }
}

/// One phase of a batch (Spark's `durationMs` keys): a `tracing` span while it runs, and its
/// time in milliseconds when it ends.
pub(crate) struct Phase {
    name: &'static str,
    start: Instant,
    _span: tracing::span::EnteredSpan,
}

impl Phase {
    pub(crate) fn start(name: &'static str) -> Self {
        Phase { name, start: Instant::now(), _span: tracing::debug_span!("phase", phase = name).entered() }
    }

    /// Ends the phase; its milliseconds.
    pub(crate) fn finish(self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Ends the phase, recording its milliseconds under its name.
    pub(crate) fn record(self, durations: &mut std::collections::BTreeMap<String, u64>) {
        let name = self.name;
        durations.insert(name.to_string(), self.finish());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::channel;
    use std::sync::Mutex;

    use super::*;

    struct Record(Mutex<std::sync::mpsc::Sender<String>>);
    impl QueryListener for Record {
        fn on_query_started(&self, e: &QueryStartedEvent) {
            let _ = self.0.lock().unwrap().send(format!("started {}", e.name));
        }
        fn on_query_idle(&self, e: &QueryIdleEvent) {
            let _ = self.0.lock().unwrap().send(format!("idle {}", e.name));
        }
        fn on_query_terminated(&self, e: &QueryTerminatedEvent) {
            let _ = self.0.lock().unwrap().send(format!("terminated {} {:?}", e.name, e.error.is_some()));
        }
    }

    struct Panics;
    impl QueryListener for Panics {
        fn on_query_started(&self, _: &QueryStartedEvent) {
            panic!("listener bug");
        }
    }

    #[test]
    fn events_arrive_in_order_and_a_panicking_listener_does_not_stop_the_others() {
        let (tx, rx) = channel();
        let listeners: Vec<Arc<dyn QueryListener>> = vec![Arc::new(Panics), Arc::new(Record(Mutex::new(tx)))];
        let mut obs = Observer::new("id", "run", "unit", listeners, None, Vec::new());
        obs.started();
        obs.idle();
        obs.idle(); // within IDLE_EVENT_INTERVAL: not posted again
        obs.terminated(Some(Arc::new(Error::User("boom".into()))));
        let got: Vec<String> = (0..3).map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
        assert_eq!(got, ["started unit", "idle unit", "terminated unit true"]);
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "the second idle check posted an event");
    }

    #[test]
    fn a_query_without_listeners_posts_nothing() {
        let obs = Observer::new("id", "run", "quiet", Vec::new(), None, Vec::new());
        // `post` must not build the event when nobody listens.
        obs.post(|| panic!("built an event nobody listens to"));
    }
}
