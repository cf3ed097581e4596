//! The web UI's sign-in sessions (control plane): `POST /ui/login` with the right token makes a
//! random session id, and the `umbra_session` cookie carries that id, never the token. The table
//! lives in memory (a restart signs everyone out) and belongs to the token it was made with: when
//! the token in force changes (a reload rotated it), every session ends.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::constant_time_eq;

/// How long a session lasts after sign-in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Sessions kept at most; signing in beyond this ends the oldest.
pub const MAX_SESSIONS: usize = 1024;

/// Session id -> expiry, for one token.
#[derive(Default)]
pub struct Sessions {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    /// The token the sessions were made with.
    token: String,
    expiry: HashMap<String, Instant>,
}

impl Table {
    /// Forgets every session when `token` is not the one they were made with.
    fn follow(&mut self, token: &str) {
        if !constant_time_eq(self.token.as_bytes(), token.as_bytes()) {
            self.expiry.clear();
            self.token = token.to_string();
        }
    }

    fn make_room(&mut self, now: Instant) {
        self.expiry.retain(|_, until| *until > now);
        while self.expiry.len() >= MAX_SESSIONS {
            let Some(oldest) = self
                .expiry
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            self.expiry.remove(&oldest);
        }
    }
}

impl Sessions {
    /// Starts a session for someone who gave `token` (the token in force); returns its id.
    pub fn create(&self, token: &str, now: Instant) -> String {
        let id = random_id();
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.follow(token);
        table.make_room(now);
        table.expiry.insert(id.clone(), now + SESSION_LIFETIME);
        id
    }

    /// Whether `id` is a live session made with `token` (the token in force).
    pub fn is_valid(&self, id: &str, token: &str, now: Instant) -> bool {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.follow(token);
        match table.expiry.get(id) {
            Some(until) if *until > now => true,
            Some(_) => {
                table.expiry.remove(id);
                false
            }
            None => false,
        }
    }

    /// Ends the session `id`, if there is one.
    pub fn end(&self, id: &str) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.expiry.remove(id);
    }

    /// Live and expired-but-unswept sessions (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expiry
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// 256 random bits from a CSPRNG, as hex.
fn random_id() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_and_valid_until_expiry() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let a = s.create("tok", t0);
        let b = s.create("tok", t0);
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(!a.contains("tok"));
        assert!(s.is_valid(&a, "tok", t0 + SESSION_LIFETIME - Duration::from_secs(1)));
        assert!(!s.is_valid(&a, "tok", t0 + SESSION_LIFETIME));
        assert!(!s.is_valid("made-up", "tok", t0));
        s.end(&b);
        assert!(!s.is_valid(&b, "tok", t0));
    }

    #[test]
    fn a_new_token_ends_every_session() {
        let s = Sessions::default();
        let now = Instant::now();
        let a = s.create("old", now);
        assert!(!s.is_valid(&a, "new", now));
        // Going back to the old token does not bring the session back.
        assert!(!s.is_valid(&a, "old", now));
        assert!(s.is_empty());
    }

    #[test]
    fn the_table_is_bounded() {
        let s = Sessions::default();
        let now = Instant::now();
        let first = s.create("t", now);
        for i in 0..MAX_SESSIONS {
            s.create("t", now + Duration::from_millis(i as u64 + 1));
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(!s.is_valid(&first, "t", now), "the oldest went first");
    }
}
