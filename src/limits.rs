//! The bounds that protect the server from misbehaving or hostile peers, in one record that
//! the RTMP and HTTP listeners both read. A leaf: plain values and their defaults; the
//! configuration fills it in.

use std::time::Duration;

/// Bounds that protect the server from misbehaving or hostile peers.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Simultaneous RTMP connections, all peers together.
    pub max_connections: usize,
    /// Simultaneous RTMP connections from one IP address (IPv6: one /64), whatever they
    /// do; by default publishers and players together.
    pub max_connections_per_ip: usize,
    /// RTMP connections publishing (on `live`) from one address at once.
    pub max_publishers_per_ip: usize,
    /// RTMP connections playing the program from one address at once. Counted apart from
    /// publishers, so DJs behind a venue's NAT are not refused because viewers there are.
    pub max_players_per_ip: usize,
    /// Time allowed from TCP accept until the RTMP `connect` command.
    pub handshake_timeout: Duration,
    /// A connection that sends nothing for this long (and is not publishing) is closed.
    pub idle_timeout: Duration,
    /// Largest RTMP message accepted (a keyframe of a high-bitrate stream fits easily).
    pub max_message_size: usize,
    /// Publish attempts with a bad key tolerated per IP and minute before refusing outright.
    pub publish_attempts_per_minute: u32,
    /// Login attempts per IP and minute (API and login page together).
    pub login_attempts_per_minute: u32,
    /// Sign-ups and password reset requests per IP and minute.
    pub signup_attempts_per_minute: u32,
    /// Failed logins to one account (from any address) before its logins are refused …
    pub login_failures_per_account: u32,
    /// … until this long after the first of them.
    pub login_failure_window: Duration,
    /// Simultaneous HTTP connections, all peers together; beyond it new ones are closed.
    pub http_max_connections: usize,
    /// Simultaneous HTTP connections from one peer address, so one address cannot take
    /// every place; trusted proxies are exempt (they carry everyone).
    pub http_max_connections_per_ip: usize,
    /// A connection that has not sent a complete request head within this time is closed
    /// (idle keep-alive connections included).
    pub http_header_timeout: Duration,
    /// A request must be answered within this time, its body included: a client trickling
    /// a body gets 408. Long responses (events, `/program.flv`) only need to start in it.
    pub http_request_timeout: Duration,
    /// Open `/api/v1/events` streams per client address.
    pub max_event_streams_per_ip: usize,
    /// Open `/program.flv` viewers per client address.
    pub max_flv_viewers_per_ip: usize,
    /// Largest request body of the JSON API and the forms (the picture upload has its own).
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_connections_per_ip: 8 + 64,
            max_publishers_per_ip: 8,
            max_players_per_ip: 64,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_message_size: 8 * 1024 * 1024,
            publish_attempts_per_minute: 10,
            login_attempts_per_minute: 10,
            signup_attempts_per_minute: 5,
            login_failures_per_account: 10,
            login_failure_window: Duration::from_secs(15 * 60),
            http_max_connections: 4096,
            http_max_connections_per_ip: 256,
            http_header_timeout: Duration::from_secs(10),
            http_request_timeout: Duration::from_secs(60),
            max_event_streams_per_ip: 16,
            max_flv_viewers_per_ip: 8,
            max_body_bytes: 64 * 1024,
        }
    }
}
