//! The Ollama instances behind the router: their health, the requests each
//! has in flight, and the choice of the instance for the next request.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hyper::Uri;
use hyper::http::uri::PathAndQuery;
use tokio::sync::oneshot;

use super::config::BackendAddr;

/// One Ollama instance and what the router knows about it.
#[derive(Debug)]
pub struct Backend {
    addr: BackendAddr,
    /// `http://host:port/api/version`, the health check.
    version_uri: Uri,
    in_flight: AtomicUsize,
    /// Inference requests holding one of its slots (changed under the
    /// pool's queue lock).
    running: AtomicUsize,
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
            running: AtomicUsize::new(0),
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

    /// Inference requests holding a slot of it (in flight, counted apart
    /// from the others: see [`Pool::acquire`]).
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
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

/// How many inference requests the instances take at once, and how many wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Inference requests one instance serves at once (Ollama's
    /// `OLLAMA_NUM_PARALLEL`); 0: no limit, nothing ever waits.
    pub per_instance: usize,
    /// Inference requests that wait for a free instance when all are full;
    /// one more is refused (503).
    pub max_queue: usize,
}

impl Limits {
    /// No limit: every request goes to an instance at once.
    pub const NONE: Limits = Limits {
        per_instance: 0,
        max_queue: 0,
    };
}

/// Why an inference request got no instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No instance is in rotation (or the only ones left were excluded).
    NoHealthyBackend,
    /// Every instance is serving its limit and the queue is full.
    QueueFull,
}

/// A request waiting for an instance, first come first served.
struct Waiter {
    id: u64,
    key: Option<u64>,
    exclude: Option<usize>,
    grant: oneshot::Sender<InFlight>,
}

#[derive(Default)]
struct Queue {
    waiters: VecDeque<Waiter>,
    next_id: u64,
}

/// All instances, the round-robin cursor that breaks ties between them, and
/// the queue of inference requests waiting for a free instance.
///
/// Inference requests (generation, chat, embeddings: the ones Ollama
/// schedules on its `OLLAMA_NUM_PARALLEL` slots) hold a slot of their
/// instance from the choice until their response ends; at most
/// [`Limits::per_instance`] at once, the rest wait in one queue, and a slot
/// that frees goes to the first of them. Every other request (`/api/tags`,
/// `/api/version`, ...) goes to an instance at once. Slots are counted and
/// handed over under the queue's lock, so none is lost or given twice.
pub struct Pool {
    backends: Box<[Backend]>,
    cursor: AtomicUsize,
    limits: Limits,
    /// Affinity's bound: an instance takes a keyed request while it serves
    /// fewer than `load_factor` times the average (consistent hashing with
    /// bounded loads).
    load_factor: f64,
    queue: Mutex<Queue>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("backends", &self.backends)
            .field("limits", &self.limits)
            .field("waiting", &self.waiting())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool of the given instances, all in rotation until a check says
    /// otherwise, with no limit on requests in flight.
    pub fn new(addrs: impl IntoIterator<Item = BackendAddr>) -> Self {
        Pool::with_limits(addrs, Limits::NONE, DEFAULT_LOAD_FACTOR)
    }

    /// A pool whose instances serve at most `limits.per_instance` inference
    /// requests at once, with a queue of `limits.max_queue` behind them.
    pub fn with_limits(
        addrs: impl IntoIterator<Item = BackendAddr>,
        limits: Limits,
        load_factor: f64,
    ) -> Self {
        Pool {
            backends: addrs.into_iter().map(Backend::new).collect(),
            cursor: AtomicUsize::new(0),
            limits,
            load_factor,
            queue: Mutex::new(Queue::default()),
        }
    }

    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// The limits of inference requests.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The healthy instance with the fewest requests in flight, other than
    /// `exclude`; `None` when there is none. For requests that hold no slot.
    pub fn choose(&self, exclude: Option<usize>) -> Option<usize> {
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        least_loaded(self.backends.len(), start, |i| {
            let backend = &self.backends[i];
            (Some(i) != exclude && backend.is_healthy()).then(|| backend.in_flight())
        })
    }

    /// Counts a request that holds no slot in flight on instance `index`
    /// until the guard drops. `index` comes from [`Pool::choose`].
    pub fn start(self: &Arc<Self>, index: usize) -> InFlight {
        self.count_in(index, false)
    }

    /// A slot for an inference request: on an instance with a free slot at
    /// once (the one `key` hashes to while it is not overloaded, else the
    /// least busy), or, when all are full, after waiting in the queue.
    /// Returns the guard and how long the request waited.
    pub async fn acquire(
        self: &Arc<Self>,
        key: Option<u64>,
        exclude: Option<usize>,
    ) -> Result<(InFlight, Duration), Refusal> {
        let (id, granted) = {
            let mut queue = self.lock_queue();
            // Nobody may pass those already waiting.
            if queue.waiters.is_empty()
                && let Some(index) = self.choose_slot(key, exclude)
            {
                return Ok((self.count_in(index, true), Duration::ZERO));
            }
            if !self.any_healthy_except(exclude) {
                return Err(Refusal::NoHealthyBackend);
            }
            if queue.waiters.len() >= self.limits.max_queue {
                return Err(Refusal::QueueFull);
            }
            let id = queue.next_id;
            queue.next_id += 1;
            let (grant, granted) = oneshot::channel();
            queue.waiters.push_back(Waiter {
                id,
                key,
                exclude,
                grant,
            });
            (id, granted)
        };
        let queued = Instant::now();
        // Leaves the queue if the request is given up (the client went away).
        let place = QueuePlace { pool: self, id };
        let result = granted.await;
        drop(place);
        match result {
            Ok(in_flight) => Ok((in_flight, queued.elapsed())),
            // The queue was emptied: no instance is left in rotation.
            Err(_) => Err(Refusal::NoHealthyBackend),
        }
    }

    /// Inference requests waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.lock_queue().waiters.len()
    }

    /// Inference requests holding a slot, on every instance.
    pub fn running(&self) -> usize {
        self.backends.iter().map(Backend::running).sum()
    }

    /// Takes instance `index` out of rotation. When none is left, the
    /// requests waiting for a slot are answered at once (503) instead of
    /// waiting for an instance that may not come back.
    pub fn mark_down(&self, index: usize, reason: &str) {
        let Some(backend) = self.backends.get(index) else {
            return;
        };
        backend.mark_down(reason);
        if !self.any_healthy() {
            let given_up = std::mem::take(&mut self.lock_queue().waiters);
            // Dropping their senders answers them, outside the lock.
            drop(given_up);
        }
    }

    /// Puts instance `index` back into rotation; its free slots go to the
    /// requests waiting.
    pub fn mark_up(self: &Arc<Self>, index: usize) {
        let Some(backend) = self.backends.get(index) else {
            return;
        };
        backend.mark_up();
        let mut queue = self.lock_queue();
        self.dispatch(&mut queue);
    }

    /// At least one instance is in rotation.
    pub fn any_healthy(&self) -> bool {
        self.backends.iter().any(Backend::is_healthy)
    }

    fn any_healthy_except(&self, exclude: Option<usize>) -> bool {
        self.backends
            .iter()
            .enumerate()
            .any(|(i, b)| Some(i) != exclude && b.is_healthy())
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

    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The instance for an inference request with `key`, among those in
    /// rotation with a free slot, other than `exclude`. Called under the
    /// queue's lock.
    fn choose_slot(&self, key: Option<u64>, exclude: Option<usize>) -> Option<usize> {
        let limit = self.limits.per_instance;
        let eligible = |i: usize| {
            let backend = &self.backends[i];
            Some(i) != exclude && backend.is_healthy() && (limit == 0 || backend.running() < limit)
        };
        if let Some(key) = key {
            let (healthy, running) = self
                .backends
                .iter()
                .filter(|b| b.is_healthy())
                .fold((0, 0), |(n, sum), b| (n + 1, sum + b.running()));
            let bound = affinity_bound(self.load_factor, running, healthy);
            let preferred = (0..self.backends.len())
                .filter(|&i| eligible(i) && self.backends[i].running() < bound)
                .max_by_key(|&i| rendezvous_score(key, i));
            if preferred.is_some() {
                return preferred;
            }
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        least_loaded(self.backends.len(), start, |i| {
            eligible(i).then(|| self.backends[i].running())
        })
    }

    /// Counts a request in flight on `index`, holding a slot if `slot`.
    fn count_in(self: &Arc<Self>, index: usize, slot: bool) -> InFlight {
        if let Some(backend) = self.backends.get(index) {
            backend.in_flight.fetch_add(1, Ordering::Relaxed);
            if slot {
                backend.running.fetch_add(1, Ordering::Relaxed);
            }
        }
        InFlight {
            pool: Arc::clone(self),
            index,
            slot,
        }
    }

    /// Gives free slots to the requests waiting, first come first served.
    /// Called under the queue's lock.
    fn dispatch(self: &Arc<Self>, queue: &mut Queue) {
        while let Some(waiter) = queue.waiters.front() {
            let Some(index) = self.choose_slot(waiter.key, waiter.exclude) else {
                return;
            };
            let Some(waiter) = queue.waiters.pop_front() else {
                return;
            };
            let in_flight = self.count_in(index, true);
            if let Err(unwanted) = waiter.grant.send(in_flight) {
                // The request was given up after all: take the slot back
                // without releasing it through the lock we hold.
                unwanted.uncount();
            }
        }
    }

    /// Frees a slot of instance `index` and hands free slots on.
    fn release_slot(self: &Arc<Self>, index: usize) {
        let mut queue = self.lock_queue();
        if let Some(backend) = self.backends.get(index) {
            backend.running.fetch_sub(1, Ordering::Relaxed);
        }
        self.dispatch(&mut queue);
    }
}

/// The default bound of affinity: an instance serving 25% more than the
/// average takes no more keyed requests (Mirrokni et al., "Consistent
/// Hashing with Bounded Loads", use 1.25 as their example).
pub const DEFAULT_LOAD_FACTOR: f64 = 1.25;

/// How many requests an instance may serve and still take a keyed one:
/// `ceil(load_factor * (running + 1) / healthy)`, at least 1.
pub fn affinity_bound(load_factor: f64, running: usize, healthy: usize) -> usize {
    if healthy == 0 {
        return 0;
    }
    // Loads are small integers: f64 holds them exactly.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let bound = (load_factor * (running + 1) as f64 / healthy as f64).ceil() as usize;
    bound.max(1)
}

/// Rendezvous (highest random weight) hashing: the instance whose score for
/// `key` is highest is the key's home. Adding or removing an instance moves
/// only the keys whose home it is.
pub fn rendezvous_score(key: u64, instance: usize) -> u64 {
    // splitmix64's finalizer over the key and the instance's number.
    let mut x = key
        ^ (instance as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A request's place in the queue: leaves it when dropped, so a request
/// given up while waiting takes no room and no slot.
struct QueuePlace<'a> {
    pool: &'a Arc<Pool>,
    id: u64,
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        let mut queue = self.pool.lock_queue();
        queue.waiters.retain(|w| w.id != self.id);
    }
}

/// One request in flight on one instance: counted from the choice of the
/// instance until the guard drops, which is when the response body has ended
/// or been dropped (the guard travels inside the streamed body). An
/// inference request's guard also holds its slot, which goes to the first
/// request waiting when the guard drops.
#[derive(Debug)]
pub struct InFlight {
    pool: Arc<Pool>,
    index: usize,
    slot: bool,
}

impl InFlight {
    /// Index of the instance in the pool.
    pub fn index(&self) -> usize {
        self.index
    }

    pub fn backend(&self) -> Option<&Backend> {
        self.pool.backends.get(self.index)
    }

    /// Undoes the counts without handing the slot on (the caller holds the
    /// queue's lock and hands slots on itself).
    fn uncount(mut self) {
        if let Some(backend) = self.pool.backends.get(self.index) {
            backend.in_flight.fetch_sub(1, Ordering::Relaxed);
            if self.slot {
                backend.running.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.slot = false;
        self.index = usize::MAX;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(backend) = self.pool.backends.get(self.index) else {
            return;
        };
        backend.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.slot {
            self.pool.release_slot(self.index);
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

    fn limited(n: usize, per_instance: usize, max_queue: usize) -> Arc<Pool> {
        let addrs = (1..=n).map(|port| format!("127.0.0.1:{port}").parse().unwrap());
        Arc::new(Pool::with_limits(
            addrs,
            Limits {
                per_instance,
                max_queue,
            },
            DEFAULT_LOAD_FACTOR,
        ))
    }

    /// Polls `future` once: its output if it is ready.
    fn poll_once<F: std::future::Future + Unpin>(future: &mut F) -> Option<F::Output> {
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        match std::pin::Pin::new(future).poll(&mut cx) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        }
    }

    #[tokio::test]
    async fn slots_are_limited_and_the_queue_is_bounded() {
        let pool = limited(2, 1, 2);
        let (a, waited) = pool.acquire(None, None).await.unwrap();
        assert_eq!(waited, Duration::ZERO);
        let (b, _) = pool.acquire(None, None).await.unwrap();
        assert_ne!(a.index(), b.index());
        assert_eq!(pool.running(), 2);
        // Both full: two wait, the next is refused.
        let mut first = Box::pin(pool.acquire(None, None));
        let mut second = Box::pin(pool.acquire(None, None));
        assert!(poll_once(&mut first).is_none());
        assert!(poll_once(&mut second).is_none());
        assert_eq!(pool.waiting(), 2);
        assert_eq!(
            pool.acquire(None, None).await.err(),
            Some(Refusal::QueueFull)
        );
        // A request without a slot (/api/tags) is not held back.
        assert!(pool.choose(None).is_some());
        // A freed slot goes to the first waiting, on the instance that freed it.
        let freed = b.index();
        drop(b);
        let (granted, _) = poll_once(&mut first).expect("granted").unwrap();
        assert_eq!(granted.index(), freed);
        assert!(poll_once(&mut second).is_none());
        assert_eq!((pool.waiting(), pool.running()), (1, 2));
        drop(a);
        let (c, _) = poll_once(&mut second).expect("granted").unwrap();
        assert_eq!((pool.waiting(), pool.running()), (0, 2));
        drop((granted, c));
        assert_eq!(pool.running(), 0);
        assert!(pool.backends().iter().all(|b| b.in_flight() == 0));
    }

    #[tokio::test]
    async fn a_request_given_up_while_waiting_leaves_no_trace() {
        let pool = limited(1, 1, 4);
        let (held, _) = pool.acquire(None, None).await.unwrap();
        let mut given_up = Box::pin(pool.acquire(None, None));
        assert!(poll_once(&mut given_up).is_none());
        let mut next = Box::pin(pool.acquire(None, None));
        assert!(poll_once(&mut next).is_none());
        assert_eq!(pool.waiting(), 2);
        drop(given_up);
        assert_eq!(pool.waiting(), 1);
        drop(held);
        let (granted, _) = poll_once(&mut next).expect("granted").unwrap();
        assert_eq!(pool.running(), 1);
        drop(granted);
        assert_eq!((pool.running(), pool.waiting()), (0, 0));
    }

    #[tokio::test]
    async fn waiting_requests_are_answered_when_no_instance_is_left() {
        let pool = limited(2, 1, 4);
        let (a, _) = pool.acquire(None, None).await.unwrap();
        let (b, _) = pool.acquire(None, None).await.unwrap();
        let mut waiting = Box::pin(pool.acquire(None, None));
        assert!(poll_once(&mut waiting).is_none());
        pool.mark_down(0, "connection refused");
        // One left: still waiting.
        assert!(poll_once(&mut waiting).is_none());
        pool.mark_down(1, "connection refused");
        assert_eq!(
            poll_once(&mut waiting).expect("answered").err(),
            Some(Refusal::NoHealthyBackend)
        );
        assert_eq!(
            pool.acquire(None, None).await.err(),
            Some(Refusal::NoHealthyBackend)
        );
        drop((a, b));
        // Back up: its free slot is taken at once.
        pool.mark_up(1);
        let (c, _) = pool.acquire(None, None).await.unwrap();
        assert_eq!(c.index(), 1);
    }

    #[tokio::test]
    async fn an_instance_back_in_rotation_serves_those_waiting() {
        let pool = limited(2, 1, 4);
        pool.mark_down(1, "timed out");
        let (a, _) = pool.acquire(None, None).await.unwrap();
        assert_eq!(a.index(), 0);
        let mut waiting = Box::pin(pool.acquire(None, None));
        assert!(poll_once(&mut waiting).is_none());
        pool.mark_up(1);
        let (b, _) = poll_once(&mut waiting).expect("granted").unwrap();
        assert_eq!(b.index(), 1);
    }

    #[tokio::test]
    async fn unlimited_pools_never_queue() {
        let pool = limited(2, 0, 0);
        let mut guards = Vec::new();
        for _ in 0..100 {
            guards.push(pool.acquire(None, None).await.unwrap().0);
        }
        assert_eq!(pool.running(), 100);
        assert_eq!(pool.backends()[0].running(), 50);
    }

    #[tokio::test]
    async fn keyed_requests_stay_home_within_the_bound() {
        let pool = limited(4, 0, 0);
        let key = 42;
        let home = (0..4).max_by_key(|&i| rendezvous_score(key, i)).unwrap();
        // Alone, a key always goes home.
        for _ in 0..5 {
            let (guard, _) = pool.acquire(Some(key), None).await.unwrap();
            assert_eq!(guard.index(), home);
        }
        // Held: home takes keyed requests up to ceil(1.25 * (running + 1) / 4).
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(pool.acquire(Some(key), None).await.unwrap().0);
        }
        let at_home = held.iter().filter(|g| g.index() == home).count();
        assert!((2..8).contains(&at_home), "{at_home} of 8 at home");
        let most = pool.backends().iter().map(Backend::running).max().unwrap();
        assert!(most <= affinity_bound(DEFAULT_LOAD_FACTOR, 7, 4), "{most}");
        // Home out of rotation: another instance, the same one each time.
        pool.mark_down(home, "timed out");
        let others: Vec<usize> = (0..3)
            .map(|_| {
                poll_once(&mut Box::pin(pool.acquire(Some(7), None)))
                    .unwrap()
                    .unwrap()
                    .0
                    .index()
            })
            .collect();
        assert!(others.iter().all(|&i| i != home));
    }

    #[test]
    fn affinity_bounds() {
        let cases = [
            (1.25, 0, 4, 1),
            (1.25, 3, 4, 2),
            (1.25, 7, 4, 3),
            (1.25, 15, 4, 5),
            (1.0, 3, 4, 1),
            (2.0, 3, 2, 4),
            (1.25, 5, 0, 0),
        ];
        for (factor, running, healthy, want) in cases {
            assert_eq!(
                affinity_bound(factor, running, healthy),
                want,
                "{factor} {running} {healthy}"
            );
        }
    }

    #[test]
    fn rendezvous_moves_only_the_keys_of_a_removed_instance() {
        let home = |key: u64, instances: &[usize]| {
            *instances
                .iter()
                .max_by_key(|&&i| rendezvous_score(key, i))
                .unwrap()
        };
        let all = [0, 1, 2, 3];
        let without_2 = [0, 1, 3];
        let mut per_instance = [0usize; 4];
        for key in 0..4000u64 {
            let key = crate::inference::fnv1a(&[&key.to_le_bytes()]);
            let before = home(key, &all);
            per_instance[before] += 1;
            let after = home(key, &without_2);
            if before != 2 {
                assert_eq!(before, after, "key {key} moved");
            }
        }
        // Spread evenly: each instance is home to about a quarter.
        for count in per_instance {
            assert!((800..1200).contains(&count), "{per_instance:?}");
        }
    }
}
