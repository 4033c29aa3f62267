//! Coalescing: queries with the same cache key that arrive while one of
//! them is being relayed wait for that exchange instead of starting their
//! own. The first becomes the leader; its [`Lead`] takes the entry out of
//! the table however the leader ends (answer, error, timeout, cancellation),
//! so the table holds at most one entry per query in flight, and those are
//! bounded by the forwarder's admission limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::cache::Key;

/// What a flight ended with: the answer as relayed (EDNS options dropped),
/// or `None` when no upstream answered or its answer could not be shared.
pub(crate) type Landing = Option<Arc<[u8]>>;

type Board = watch::Receiver<Option<Landing>>;

#[derive(Debug, Default)]
pub(crate) struct Flights {
    table: Mutex<HashMap<Key, (u64, Board)>>,
    serial: std::sync::atomic::AtomicU64,
}

/// The part a query plays.
pub(crate) enum Role<'a> {
    /// Relay it, then [`Lead::land`].
    Lead(Lead<'a>),
    /// Wait for the leader with [`follow`].
    Follow(Board),
}

/// The leader's claim on its table entry.
pub(crate) struct Lead<'a> {
    flights: &'a Flights,
    key: Key,
    serial: u64,
    tx: watch::Sender<Option<Landing>>,
}

impl Flights {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (u64, Board)>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the flight for `key`, or starts one.
    pub(crate) fn join(&self, key: Key) -> Role<'_> {
        let mut table = self.table();
        if let Some((_, board)) = table.get(&key) {
            return Role::Follow(board.clone());
        }
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = watch::channel(None);
        table.insert(key.clone(), (serial, rx));
        Role::Lead(Lead {
            flights: self,
            key,
            serial,
            tx,
        })
    }

    /// Flights in the air.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table().len()
    }
}

impl Lead<'_> {
    /// Tells the followers how the exchange ended.
    pub(crate) fn land(self, landing: Landing) {
        self.tx.send_replace(Some(landing));
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        let mut table = self.flights.table();
        // Only our own entry: a later flight may already use the key.
        if table.get(&self.key).is_some_and(|(s, _)| *s == self.serial) {
            table.remove(&self.key);
        }
    }
}

/// Waits for the leader. `None` when it went away without landing
/// (cancelled): the caller then starts over.
pub(crate) async fn follow(mut board: Board) -> Option<Landing> {
    board
        .wait_for(Option::is_some)
        .await
        .ok()
        .and_then(|landing| landing.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &[u8]) -> Key {
        Key {
            name: name.into(),
            qtype: 1,
            qclass: 1,
            edns: false,
            dnssec_ok: false,
            checking_disabled: false,
        }
    }

    #[tokio::test]
    async fn followers_get_the_leaders_landing_and_the_table_empties() {
        let flights = Flights::default();
        let Role::Lead(lead) = flights.join(key(b"a")) else {
            panic!("the first query leads")
        };
        let Role::Follow(board) = flights.join(key(b"a")) else {
            panic!("the second follows")
        };
        assert!(matches!(flights.join(key(b"b")), Role::Lead(_)));
        assert_eq!(flights.len(), 1, "b's lead was dropped at once");
        let waiter = tokio::spawn(follow(board));
        lead.land(Some(Arc::from(&b"answer"[..])));
        let landing = waiter.await.unwrap();
        assert_eq!(landing, Some(Some(Arc::from(&b"answer"[..]))));
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_leader_frees_its_followers_and_its_entry() {
        let flights = Flights::default();
        let lead = flights.join(key(b"a"));
        let Role::Follow(board) = flights.join(key(b"a")) else {
            panic!("the second follows")
        };
        drop(lead);
        assert_eq!(follow(board).await, None, "start over");
        assert_eq!(flights.len(), 0);
    }
}
