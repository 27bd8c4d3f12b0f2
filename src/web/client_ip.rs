//! The client's address, for per-address rate limits and caps.
//!
//! Only peers listed in `trusted_proxies` (none by default) may name the client in
//! `X-Forwarded-For`: anyone else could pick their bucket by sending the header. From a
//! trusted peer the header is read from the right, skipping further trusted proxies; the
//! first other address is the one the outermost trusted proxy saw, the entries before it are
//! the client's own claims and never believed.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

use super::AppState;

pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(Self(client_ip(peer, &parts.headers, &state.trusted_proxies)))
    }
}

fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        if peer.is_loopback() && headers.contains_key("x-forwarded-for") {
            warn_untrusted_local_proxy(peer);
        }
        return peer;
    }
    let hops = headers.get_all("x-forwarded-for").iter().rev().flat_map(|v| {
        // A header that is not ASCII names no address, and neither does anything before it.
        v.to_str().unwrap_or("garbage").rsplit(',').map(|hop| hop.trim().parse::<IpAddr>().ok())
    });
    let mut client = peer;
    for hop in hops {
        match hop {
            Some(ip) if is_trusted(&ip) => client = ip,
            Some(ip) => return ip,
            None => return client,
        }
    }
    client
}

/// A local proxy that is not configured as trusted puts every visitor in one bucket (and one
/// set of event-stream and viewer places): say so once, naming the setting.
fn warn_untrusted_local_proxy(peer: IpAddr) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "requests from {peer} carry X-Forwarded-For but {peer} is not in trusted_proxies: all clients behind \
             that proxy share one address for rate limits and caps (set trusted_proxies = [\"{peer}/{}\"])",
            if peer.is_ipv4() { 32 } else { 128 }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn no_peer_names_the_client_unless_it_is_a_trusted_proxy() {
        let local = ip("127.0.0.1");
        let header = forwarded("198.51.100.1, 192.0.2.7");
        assert_eq!(client_ip(Some(local), &header, &[]), local, "loopback is not trusted by default");
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        assert_eq!(client_ip(Some(local), &header, &trusted), ip("192.0.2.7"));
        assert_eq!(client_ip(Some(ip("127.0.0.2")), &header, &trusted), ip("127.0.0.2"), "another local peer");
        assert_eq!(client_ip(Some(local), &HeaderMap::new(), &trusted), local);
        assert_eq!(client_ip(Some(local), &forwarded("garbage"), &trusted), local);
        let remote = ip("203.0.113.9");
        assert_eq!(client_ip(Some(remote), &header, &trusted), remote, "remote peers cannot pick an address");
    }

    #[test]
    fn a_chain_of_trusted_proxies_is_walked_back_to_the_first_untrusted_hop() {
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let header = forwarded("203.0.113.5, 198.51.100.1, 10.1.2.3");
        assert_eq!(client_ip(Some(ip("127.0.0.1")), &header, &trusted), ip("198.51.100.1"));
        let all_trusted = forwarded("10.9.9.9");
        assert_eq!(client_ip(Some(ip("127.0.0.1")), &all_trusted, &trusted), ip("10.9.9.9"));
        let mut two_headers = forwarded("192.0.2.1");
        two_headers.append("x-forwarded-for", "10.0.0.1".parse().unwrap());
        assert_eq!(client_ip(Some(ip("127.0.0.1")), &two_headers, &trusted), ip("192.0.2.1"));
    }
}
