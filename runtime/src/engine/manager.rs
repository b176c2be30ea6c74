//! The query manager, after Spark's `StreamingQueryManager` (`spark.streams`): the active
//! queries started under it, found by id or name, a wait for any of them to terminate, and
//! listeners for all of them.
//!
//! A query joins a manager with `.manager(&manager)` on its builder. The manager refuses to
//! start a query while another of its active queries has the same name, or the same checkpoint
//! directory (two queries writing one checkpoint would corrupt it): the check happens before
//! the checkpoint is opened.
//!
//! The manager does not keep queries alive: as everywhere in flowgate, dropping the last
//! [`StreamingQuery`] handle stops the query, and a stopped query leaves the manager's active
//! list when its thread ends.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::listener::{ListenerList, QueryListener};
use super::{Shared, StopGuard, StreamingQuery};
use crate::error::{Error, Result};

/// The queries started under it (see the module docs). Cheap to clone: clones share the
/// same queries and listeners.
#[derive(Clone, Default)]
pub struct QueryManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for QueryManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.lock().slots.iter().map(|s| s.name.clone()).collect();
        write!(f, "QueryManager({names:?})")
    }
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    changed: Condvar,
    listeners: ListenerList,
}

#[derive(Default)]
struct State {
    slots: Vec<Slot>,
    /// The last query to terminate since the last [`QueryManager::reset_terminated`], with its
    /// error.
    terminated: Option<(String, Option<Arc<Error>>)>,
}

/// An active (or starting) query.
struct Slot {
    run_id: String,
    name: String,
    checkpoint: Option<PathBuf>,
    /// Filled once the query has started.
    query: Option<WeakQuery>,
}

/// A handle that does not keep the query running.
struct WeakQuery {
    id: String,
    shared: Arc<Shared>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    guard: Weak<StopGuard>,
}

impl WeakQuery {
    /// A handle, while the query runs (its thread may not have left the manager yet).
    fn upgrade(&self, name: &str) -> Option<StreamingQuery> {
        if !self.shared.lock().active {
            return None;
        }
        Some(StreamingQuery {
            id: self.id.clone(),
            name: name.to_string(),
            shared: self.shared.clone(),
            thread: self.thread.clone(),
            guard: self.guard.upgrade()?,
        })
    }
}

/// A name and checkpoint taken by a query being started; released if the start fails.
pub(crate) struct Reservation {
    manager: QueryManager,
    run_id: String,
    registered: bool,
}

impl Reservation {
    /// The query started: the manager can now hand it out.
    pub(crate) fn register(mut self, query: &StreamingQuery) {
        self.registered = true;
        let mut st = self.manager.lock();
        if let Some(slot) = st.slots.iter_mut().find(|s| s.run_id == self.run_id) {
            slot.query = Some(WeakQuery {
                id: query.id.clone(),
                shared: query.shared.clone(),
                thread: query.thread.clone(),
                guard: Arc::downgrade(&query.guard),
            });
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.registered {
            self.manager.lock().slots.retain(|s| s.run_id != self.run_id);
        }
    }
}

/// The same directory however it was written (relative, with `.` or `..`, through a symlink):
/// absolute, `.`/`..` resolved by their text (the directory may not exist yet), then symlinks
/// resolved when it exists.
fn normalized(dir: &Path) -> PathBuf {
    use std::path::Component;
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut clean = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                clean.pop();
            }
            c => clean.push(c),
        }
    }
    clean.canonicalize().unwrap_or(clean)
}

impl QueryManager {
    /// An empty manager.
    pub fn new() -> Self {
        QueryManager::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent: a poisoned lock still holds good data.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn listeners(&self) -> ListenerList {
        self.inner.listeners.clone()
    }

    /// Registers `listener` for every query of this manager, running or started later
    /// (Spark's `spark.streams.addListener`). Returns it, for [`QueryManager::remove_listener`].
    pub fn add_listener(&self, listener: Arc<dyn QueryListener>) -> Arc<dyn QueryListener> {
        self.inner.listeners.write().unwrap_or_else(|e| e.into_inner()).push(listener.clone());
        listener
    }

    /// Unregisters a listener (compared by pointer).
    pub fn remove_listener(&self, listener: &Arc<dyn QueryListener>) {
        super::listener::remove_from(&self.inner.listeners, listener);
    }

    /// Takes `name` and `checkpoint` for a query about to start, or says which active query
    /// has them.
    pub(crate) fn reserve(&self, run_id: &str, name: &str, checkpoint: Option<&Path>) -> Result<Reservation> {
        let checkpoint = checkpoint.map(normalized);
        let mut st = self.lock();
        if st.slots.iter().any(|s| s.name == name) {
            return Err(Error::Plan(format!(
                "a query named `{name}` is already active in this manager: stop it first, or give this one \
                 another name with `.query_name(..)`"
            )));
        }
        if let Some(dir) = &checkpoint {
            if let Some(other) = st.slots.iter().find(|s| s.checkpoint.as_ref() == Some(dir)) {
                return Err(Error::Plan(format!(
                    "query `{}` is already running on checkpoint {}: two queries cannot share a checkpoint \
                     directory; stop it first, or give this query its own `.checkpoint(..)`",
                    other.name,
                    dir.display()
                )));
            }
        }
        st.slots.push(Slot { run_id: run_id.to_string(), name: name.to_string(), checkpoint, query: None });
        Ok(Reservation { manager: self.clone(), run_id: run_id.to_string(), registered: false })
    }

    /// Called by the query's thread when it ends.
    pub(crate) fn terminated(&self, run_id: &str, error: Option<Arc<Error>>) {
        let mut st = self.lock();
        if let Some(i) = st.slots.iter().position(|s| s.run_id == run_id) {
            let slot = st.slots.remove(i);
            st.terminated = Some((slot.name, error));
        }
        drop(st);
        self.inner.changed.notify_all();
    }

    /// The active queries, in the order they started.
    pub fn active(&self) -> Vec<StreamingQuery> {
        self.lock().slots.iter().filter_map(|s| s.query.as_ref()?.upgrade(&s.name)).collect()
    }

    /// The active query with this id (the stable id kept in its checkpoint).
    pub fn get(&self, id: &str) -> Option<StreamingQuery> {
        let st = self.lock();
        let slot = st.slots.iter().find(|s| s.query.as_ref().is_some_and(|q| q.id == id))?;
        slot.query.as_ref()?.upgrade(&slot.name)
    }

    /// The active query with this name.
    pub fn get_by_name(&self, name: &str) -> Option<StreamingQuery> {
        let st = self.lock();
        let slot = st.slots.iter().find(|s| s.name == name)?;
        slot.query.as_ref()?.upgrade(&slot.name)
    }

    /// Blocks until a query of this manager has terminated since it was created or since the
    /// last [`QueryManager::reset_terminated`] (Spark's `awaitAnyTermination`); returns at once
    /// if one has. A query that failed makes this return its error.
    pub fn await_any_termination(&self) -> Result<()> {
        let mut st = self.lock();
        loop {
            if let Some(t) = &st.terminated {
                return terminated_result(t);
            }
            st = self.inner.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Like [`QueryManager::await_any_termination`] with a limit; returns whether a query
    /// terminated.
    pub fn await_any_termination_timeout(&self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            if let Some(t) = &st.terminated {
                return terminated_result(t).map(|()| true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            st = self.inner.changed.wait_timeout(st, left).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Forgets past terminations, so [`QueryManager::await_any_termination`] waits for a new
    /// one (Spark's `resetTerminated`).
    pub fn reset_terminated(&self) {
        self.lock().terminated = None;
    }
}

fn terminated_result((name, error): &(String, Option<Arc<Error>>)) -> Result<()> {
    match error {
        Some(e) => Err(Error::QueryFailed { name: name.clone(), source: e.clone() }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_checkpoints_are_taken_until_released() {
        let m = QueryManager::new();
        let dir = tempfile::tempdir().unwrap();
        let a = m.reserve("r1", "a", Some(dir.path())).unwrap();
        let e = m.reserve("r2", "a", None).err().unwrap().to_string();
        assert!(e.contains("a query named `a` is already active"), "{e}");
        // The same directory written differently.
        let same = dir.path().join("not-yet").join("..");
        let e = m.reserve("r3", "b", Some(&same)).err().unwrap().to_string();
        assert!(e.contains("query `a` is already running on checkpoint"), "{e}");
        // A failed start gives both back.
        drop(a);
        let _b = m.reserve("r4", "a", Some(dir.path())).unwrap();
    }

    #[test]
    fn await_any_termination_returns_the_failure_until_reset() {
        let m = QueryManager::new();
        let r = m.reserve("r1", "q", None).unwrap();
        std::mem::forget(r); // as if registered
        assert!(!m.await_any_termination_timeout(Duration::from_millis(10)).unwrap());
        m.terminated("r1", Some(Arc::new(Error::User("boom".into()))));
        let e = m.await_any_termination().unwrap_err().to_string();
        assert_eq!(e, "query `q` failed: user code failed: boom");
        m.reset_terminated();
        assert!(!m.await_any_termination_timeout(Duration::from_millis(10)).unwrap());
        assert!(m.reserve("r2", "q", None).is_ok(), "a terminated query's name is free again");
    }
}
