//! The client's address for per-IP rate limits.
//!
//! Behind the reverse proxy of the deployment guide every request arrives from loopback, so
//! counting by peer address would put all users in one bucket. A request from loopback is
//! therefore counted by the last `X-Forwarded-For` entry — the address the local proxy saw
//! (entries before it are the client's own claims and never trusted). A request from any
//! other address is counted by that address: nobody remote can choose their bucket.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(Self(client_ip(peer, &parts.headers)))
    }
}

fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap) -> IpAddr {
    let peer = peer.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if !peer.is_loopback() {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    #[test]
    fn a_local_proxy_names_the_client_and_nobody_else_can() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let remote: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            client_ip(Some(local), &forwarded("198.51.100.1, 192.0.2.7")),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(Some(local), &HeaderMap::new()), local);
        assert_eq!(client_ip(Some(local), &forwarded("garbage")), local);
        assert_eq!(client_ip(Some(remote), &forwarded("192.0.2.7")), remote, "remote peers cannot pick an address");
    }
}
