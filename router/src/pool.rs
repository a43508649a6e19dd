//! The Ollama instances behind the router: their health, the requests each
//! has in flight, and the choice of the instance for the next request.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use hyper::Uri;
use hyper::http::uri::PathAndQuery;

use super::config::BackendAddr;

/// One Ollama instance and what the router knows about it.
#[derive(Debug)]
pub struct Backend {
    addr: BackendAddr,
    /// `http://host:port/api/version`, the health check.
    version_uri: Uri,
    in_flight: AtomicUsize,
    healthy: AtomicBool,
    /// Why it is (or was last) out of rotation, for the 503 message and `/readyz`.
    last_error: Mutex<String>,
}

impl Backend {
    fn new(addr: BackendAddr) -> Self {
        // `addr` is a valid authority and the path is fixed: this cannot fail,
        // but a fallback costs nothing.
        let version_uri = addr
            .uri(Some(&PathAndQuery::from_static("/api/version")))
            .unwrap_or_else(|_| Uri::from_static("http://127.0.0.1/api/version"));
        Backend {
            addr,
            version_uri,
            in_flight: AtomicUsize::new(0),
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(String::new()),
        }
    }

    pub fn addr(&self) -> &BackendAddr {
        &self.addr
    }

    pub(crate) fn version_uri(&self) -> &Uri {
        &self.version_uri
    }

    /// Requests sent to it whose response has not ended yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// In rotation: the last health check passed and no connection failed since.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Why it was last taken out of rotation (empty if never).
    pub fn last_error(&self) -> String {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Takes it out of rotation; logs only the transition.
    pub(crate) fn mark_down(&self, reason: &str) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = reason.to_owned();
        if self.healthy.swap(false, Ordering::AcqRel) {
            tracing::warn!(backend = %self.addr, %reason, "Ollama instance out of rotation");
        }
    }

    /// Puts it back into rotation; logs only the transition.
    pub(crate) fn mark_up(&self) {
        if !self.healthy.swap(true, Ordering::AcqRel) {
            tracing::info!(backend = %self.addr, "Ollama instance back in rotation");
        }
    }
}

/// All instances, and the round-robin cursor that breaks ties between them.
#[derive(Debug)]
pub struct Pool {
    backends: Box<[Backend]>,
    cursor: AtomicUsize,
}

impl Pool {
    /// A pool of the given instances, all in rotation until a check says otherwise.
    pub fn new(addrs: impl IntoIterator<Item = BackendAddr>) -> Self {
        Pool {
            backends: addrs.into_iter().map(Backend::new).collect(),
            cursor: AtomicUsize::new(0),
        }
    }

    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// The healthy instance with the fewest requests in flight, other than
    /// `exclude`; `None` when there is none.
    pub fn choose(&self, exclude: Option<usize>) -> Option<usize> {
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        least_loaded(self.backends.len(), start, |i| {
            let backend = &self.backends[i];
            (Some(i) != exclude && backend.is_healthy()).then(|| backend.in_flight())
        })
    }

    /// Counts a request in flight on instance `index` until the guard drops.
    /// `index` comes from [`Pool::choose`].
    pub fn start(self: &Arc<Self>, index: usize) -> InFlight {
        if let Some(backend) = self.backends.get(index) {
            backend.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        InFlight {
            pool: Arc::clone(self),
            index,
        }
    }

    /// At least one instance is in rotation.
    pub fn any_healthy(&self) -> bool {
        self.backends.iter().any(Backend::is_healthy)
    }

    /// `"127.0.0.1:11434 (connection refused), 127.0.0.1:11435 (timed out)"`:
    /// every instance out of rotation and why.
    pub fn unhealthy_summary(&self) -> String {
        let mut out = String::new();
        for backend in self.backends.iter().filter(|b| !b.is_healthy()) {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(backend.addr.as_str());
            let reason = backend.last_error();
            if !reason.is_empty() {
                out.push_str(" (");
                out.push_str(&reason);
                out.push(')');
            }
        }
        out
    }
}

/// One request in flight on one instance: counted from the choice of the
/// instance until the guard drops, which is when the response body has ended
/// or been dropped (the guard travels inside the streamed body).
#[derive(Debug)]
pub struct InFlight {
    pool: Arc<Pool>,
    index: usize,
}

impl InFlight {
    /// Index of the instance in the pool.
    pub fn index(&self) -> usize {
        self.index
    }

    pub fn backend(&self) -> Option<&Backend> {
        self.pool.backends.get(self.index)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(backend) = self.pool.backends.get(self.index) {
            backend.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The index, out of `n`, whose `load` is lowest; `load(i)` is `None` for an
/// instance that may not be chosen. Equal loads go to the first one at or
/// after `start` (mod `n`), so a cursor that advances on every choice spreads
/// an idle pool round-robin.
pub fn least_loaded(
    n: usize,
    start: usize,
    load: impl Fn(usize) -> Option<usize>,
) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let start = start % n;
    let mut best: Option<(usize, usize)> = None;
    for k in 0..n {
        let i = (start + k) % n;
        if let Some(l) = load(i)
            && best.is_none_or(|(_, lowest)| l < lowest)
        {
            best = Some((i, l));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_loaded_choices() {
        /// Loads (`None`: not eligible), start, expected choice.
        type Case = (&'static [Option<usize>], usize, Option<usize>);
        let cases: &[Case] = &[
            (&[], 0, None),
            (&[None, None], 0, None),
            (&[Some(0)], 7, Some(0)),
            (&[Some(0), Some(0)], 0, Some(0)),
            (&[Some(0), Some(0)], 1, Some(1)),
            (&[Some(0), Some(0)], 2, Some(0)),
            (&[Some(0), Some(0), Some(0)], 5, Some(2)),
            (&[Some(3), Some(1), Some(2)], 0, Some(1)),
            (&[Some(3), Some(1), Some(2)], 2, Some(1)),
            (&[Some(1), Some(1), Some(0)], 0, Some(2)),
            (&[None, Some(5)], 0, Some(1)),
            (&[Some(9), None, Some(9)], 1, Some(2)),
            (&[Some(0), Some(0)], usize::MAX, Some(1)),
        ];
        for (loads, start, want) in cases {
            let got = least_loaded(loads.len(), *start, |i| loads[i]);
            assert_eq!(got, *want, "loads {loads:?} start {start}");
        }
    }

    #[test]
    fn an_idle_pool_is_spread_round_robin() {
        let pool =
            Pool::new(["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"].map(|a| a.parse().unwrap()));
        let picks: Vec<_> = (0..6).map(|_| pool.choose(None)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2].map(Some));
    }

    #[test]
    fn in_flight_guards_count_until_dropped() {
        let pool = Arc::new(Pool::new(
            ["127.0.0.1:1", "127.0.0.1:2"].map(|a| a.parse().unwrap()),
        ));
        let a = pool.start(0);
        let b = pool.start(0);
        assert_eq!(pool.backends()[0].in_flight(), 2);
        // The busy one is avoided whatever the cursor says.
        for _ in 0..4 {
            assert_eq!(pool.choose(None), Some(1));
        }
        drop(a);
        drop(b);
        assert_eq!(pool.backends()[0].in_flight(), 0);
    }

    #[test]
    fn unhealthy_and_excluded_instances_are_skipped() {
        let pool = Pool::new(["127.0.0.1:1", "127.0.0.1:2"].map(|a| a.parse().unwrap()));
        assert_eq!(pool.choose(Some(0)), Some(1));
        assert_eq!(pool.choose(Some(1)), Some(0));
        pool.backends()[1].mark_down("connection refused");
        assert!(pool.any_healthy());
        for _ in 0..3 {
            assert_eq!(pool.choose(None), Some(0));
        }
        assert_eq!(pool.choose(Some(0)), None);
        pool.backends()[0].mark_down("timed out");
        assert!(!pool.any_healthy());
        assert_eq!(pool.choose(None), None);
        assert_eq!(
            pool.unhealthy_summary(),
            "127.0.0.1:1 (timed out), 127.0.0.1:2 (connection refused)"
        );
        pool.backends()[1].mark_up();
        assert_eq!(pool.choose(None), Some(1));
        assert_eq!(pool.unhealthy_summary(), "127.0.0.1:1 (timed out)");
    }
}
