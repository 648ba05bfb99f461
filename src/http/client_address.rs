//! The address of the client behind a request: the TCP peer, or, behind a
//! trusted proxy, the address the proxy says it forwarded for.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;

use crate::config::IpRange;

/// The client's address: the TCP peer, or, when the peer is a trusted
/// proxy, the right-most address in `X-Forwarded-For` that is not itself a
/// trusted proxy (entries further left can be forged by the client).
pub fn client_ip(parts: &Parts, trusted_proxies: &[IpRange]) -> Option<IpAddr> {
    client_ip_of(&parts.extensions, &parts.headers, trusted_proxies)
}

pub fn client_ip_of(
    extensions: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
    trusted_proxies: &[IpRange],
) -> Option<IpAddr> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())?;
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|range| range.contains(ip));
    if !trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|item| item.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted(ip))
            .unwrap_or(peer),
    )
}

/// Whether the client reached the service over HTTPS: the service itself
/// speaks plain HTTP, so only a trusted proxy in front of it can say so,
/// with `X-Forwarded-Proto: https` (its first value: the client's side).
pub fn is_https(parts: &Parts, trusted_proxies: &[IpRange]) -> bool {
    let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
        return false;
    };
    trusted_proxies
        .iter()
        .any(|range| range.contains(&peer.ip()))
        && parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(peer: &str, forwarded: Option<&str>) -> Parts {
        let mut builder = Request::builder().uri("/");
        if let Some(forwarded) = forwarded {
            builder = builder.header("x-forwarded-for", forwarded);
        }
        let (mut parts, ()) = builder.body(()).expect("request").into_parts();
        let peer: SocketAddr = peer.parse().expect("address");
        parts.extensions.insert(ConnectInfo(peer));
        parts
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let proxies: [IpRange; 1] = ["10.0.0.0/24".parse().expect("range")];
        let forged = parts("203.0.113.9:5000", Some("1.2.3.4"));
        assert_eq!(client_ip(&forged, &proxies), "203.0.113.9".parse().ok());
        let proxied = parts("10.0.0.1:5000", Some("6.6.6.6, 198.51.100.7, 10.0.0.2"));
        assert_eq!(client_ip(&proxied, &proxies), "198.51.100.7".parse().ok());
        let bare = parts("10.0.0.1:5000", None);
        assert_eq!(client_ip(&bare, &proxies), Some(proxy));
    }

    #[test]
    fn https_is_believed_only_from_trusted_proxies() {
        let proxies: [IpRange; 1] = ["10.0.0.0/24".parse().expect("range")];
        let with_proto = |peer: &str, proto: &str| {
            let mut parts = parts(peer, None);
            parts
                .headers
                .insert("x-forwarded-proto", proto.parse().expect("header"));
            parts
        };
        assert!(is_https(&with_proto("10.0.0.1:5000", "https"), &proxies));
        assert!(is_https(
            &with_proto("10.0.0.1:5000", "HTTPS, http"),
            &proxies
        ));
        assert!(!is_https(&with_proto("10.0.0.1:5000", "http"), &proxies));
        assert!(!is_https(
            &with_proto("203.0.113.9:5000", "https"),
            &proxies
        ));
        assert!(!is_https(&parts("10.0.0.1:5000", None), &proxies));
    }
}
