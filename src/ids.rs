//! Identifiers every layer passes around. A leaf, so that naming a connection or an account
//! does not pull in the module that happens to create it.

/// One RTMP connection, from accept to close; never reused while the process runs.
pub type ConnId = u64;

/// An account (`users.id` in the store).
pub type UserId = i64;
