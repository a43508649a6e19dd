//! Files re-read by polling their bytes, for the serving certificate and the
//! `--catalog` files: something is rebuilt only when the bytes changed, and a
//! change is acted on once (loaded, or refused and kept refused) until the
//! bytes change again. Polling rather than inotify, because a mounted Secret
//! or ConfigMap is updated by an atomic swap of a `..data` symlink, which a
//! watch on the file itself never sees.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

/// What one look at the files came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Polled<T> {
    /// The same bytes as last time.
    Unchanged,
    /// New bytes, built into this.
    Changed(T),
    /// New bytes (or unreadable files) that could not be used; whatever was
    /// served before still is.
    Refused(String),
}

/// The bytes last looked at.
#[derive(Debug)]
pub struct LastSeen<B>(Mutex<B>);

impl<B: PartialEq> LastSeen<B> {
    /// Starts from the bytes read at startup.
    pub fn new(bytes: B) -> Self {
        LastSeen(Mutex::new(bytes))
    }

    /// Reads the files with `read`; when their bytes differ from the last
    /// seen, keeps them and returns what `build` makes of them.
    pub fn poll<T>(
        &self,
        read: impl FnOnce() -> Result<B, String>,
        build: impl FnOnce(&B) -> Result<T, String>,
    ) -> Polled<T> {
        let bytes = match read() {
            Ok(bytes) => bytes,
            // Mid-swap or removed: keep serving, look again next time.
            Err(reason) => return Polled::Refused(reason),
        };
        let Ok(mut last) = self.0.lock() else {
            return Polled::Unchanged;
        };
        if *last == bytes {
            return Polled::Unchanged;
        }
        *last = bytes;
        match build(&last) {
            Ok(built) => Polled::Changed(built),
            Err(reason) => Polled::Refused(reason),
        }
    }
}

/// Runs `look` every `interval`, forever; a look that overruns delays the
/// next instead of bunching them up.
pub async fn every<F: Future<Output = ()>>(interval: Duration, mut look: impl FnMut() -> F) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        look().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_change_is_acted_on_once() {
        let seen = LastSeen::new(b"a".to_vec());
        let build = |bytes: &Vec<u8>| match bytes.as_slice() {
            b"bad" => Err("bad bytes".to_owned()),
            other => Ok(String::from_utf8_lossy(other).into_owned()),
        };
        let read = |bytes: &'static [u8]| move || Ok(bytes.to_vec());
        assert_eq!(seen.poll(read(b"a"), build), Polled::Unchanged);
        assert_eq!(seen.poll(read(b"b"), build), Polled::Changed("b".into()));
        assert_eq!(seen.poll(read(b"b"), build), Polled::Unchanged);
        assert_eq!(
            seen.poll(read(b"bad"), build),
            Polled::Refused("bad bytes".into())
        );
        // Refused once, not again until the bytes change.
        assert_eq!(seen.poll(read(b"bad"), build), Polled::Unchanged);
        // Unreadable files change nothing that was seen.
        assert_eq!(
            seen.poll(|| Err("gone".to_owned()), build),
            Polled::Refused("gone".into())
        );
        assert_eq!(seen.poll(read(b"bad"), build), Polled::Unchanged);
        assert_eq!(seen.poll(read(b"c"), build), Polled::Changed("c".into()));
    }
}
