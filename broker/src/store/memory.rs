//! The embedded store: a mutex-protected map with expiry and a bound.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::{self, BoxFuture};

use super::{SessionStore, StoreError, Stored};

/// In-memory [`SessionStore`]: the default, for a single broker process.
///
/// Bounded: when `max_entries` live entries exist, new ones are refused with
/// [`StoreError::Full`] (after expired ones are swept), rather than growing
/// without limit under a flood of challenge requests.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    max_entries: usize,
}

#[derive(Debug, Default)]
struct Inner {
    challenges: HashMap<String, Instant>,
    sessions: HashMap<String, (String, Instant)>,
}

impl Inner {
    fn len(&self) -> usize {
        self.challenges.len() + self.sessions.len()
    }

    fn sweep(&mut self, now: Instant) {
        self.challenges.retain(|_, exp| *exp > now);
        self.sessions.retain(|_, (_, exp)| *exp > now);
    }

    fn make_room(&mut self, now: Instant, max: usize) -> Result<(), StoreError> {
        if self.len() >= max {
            self.sweep(now);
        }
        if self.len() >= max {
            return Err(StoreError::Full(max));
        }
        Ok(())
    }
}

impl MemoryStore {
    /// A store holding at most `max_entries` challenges and sessions.
    pub fn new(max_entries: usize) -> Self {
        MemoryStore {
            inner: Mutex::new(Inner::default()),
            max_entries,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner, Instant) -> T) -> T {
        // A poisoned lock means a panic elsewhere while holding it; the maps
        // are still structurally valid, so keep serving.
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard, Instant::now())
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(200_000)
    }
}

impl SessionStore for MemoryStore {
    fn put_challenge<'a>(
        &'a self,
        challenge: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let r = self.with(|s, now| {
            s.make_room(now, self.max_entries)?;
            s.challenges.insert(challenge.to_owned(), now + ttl);
            Ok(())
        });
        Box::pin(future::ready(r))
    }

    fn take_challenge<'a>(&'a self, challenge: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let r = self.with(|s, now| match s.challenges.remove(challenge) {
            Some(exp) => exp > now,
            None => false,
        });
        Box::pin(future::ready(Ok(r)))
    }

    fn create_session<'a>(
        &'a self,
        id: &'a str,
        value: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let r = self.with(|s, now| {
            if matches!(s.sessions.get(id), Some((_, exp)) if *exp > now) {
                return Ok(false);
            }
            s.make_room(now, self.max_entries)?;
            s.sessions
                .insert(id.to_owned(), (value.to_owned(), now + ttl));
            Ok(true)
        });
        Box::pin(future::ready(r))
    }

    fn get_session<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        let r = self.with(|s, now| match s.sessions.get(id) {
            Some((v, exp)) if *exp > now => Some(Stored { value: v.clone() }),
            _ => None,
        });
        Box::pin(future::ready(Ok(r)))
    }

    fn replace_session<'a>(
        &'a self,
        id: &'a str,
        expected: &'a Stored,
        value: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let r = self.with(|s, now| match s.sessions.get_mut(id) {
            Some(entry) if entry.1 > now && entry.0 == expected.value => {
                *entry = (value.to_owned(), now + ttl);
                true
            }
            _ => false,
        });
        Box::pin(future::ready(Ok(r)))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(future::ready(Ok(())))
    }
}
