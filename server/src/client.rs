//! Who is on the other end of a request: the client's address (behind trusted proxies, from
//! their forwarding headers), the key its rate limits are counted under, and whether it came
//! over HTTPS.
//!
//! Forwarding headers are believed only from peers in `--trusted-proxies`: anyone else could
//! write any address into them. `X-Forwarded-For` (or, without it, `Forwarded`) is read from the
//! right, each proxy having appended the address it saw; the first address that is not itself a
//! trusted proxy is the client. An IPv6 client is counted by its /64 (one subscriber's
//! network: it can pick any address in it).

use std::net::{IpAddr, Ipv6Addr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Most forwarding hops read from a header (a longer chain is read from its right end only).
const MAX_HOPS: usize = 16;

/// The client's address: `peer` itself, or, when `peer` is a trusted proxy, the nearest
/// untrusted address its forwarding headers name.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer.map(canonical)?;
    if !is_trusted(peer, trusted) {
        return Some(peer);
    }
    let hops = forwarded_for(headers);
    let mut client = peer;
    for hop in hops.iter().rev().take(MAX_HOPS) {
        client = *hop;
        if !is_trusted(client, trusted) {
            break;
        }
    }
    Some(client)
}

/// True when the request reached the first proxy over HTTPS (`X-Forwarded-Proto: https` or
/// `Forwarded: proto=https`, believed from trusted proxies only).
pub fn forwarded_https(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> bool {
    if !peer.map(canonical).is_some_and(|p| is_trusted(p, trusted)) {
        return false;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(proto) = header("x-forwarded-proto") {
        // The first proxy's view is the leftmost.
        return proto.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    }
    header("forwarded").and_then(|f| f.split(',').next()).is_some_and(|first| {
        first.split(';').filter_map(|kv| kv.trim().split_once('=')).any(|(k, v)| {
            k.trim().eq_ignore_ascii_case("proto") && v.trim().trim_matches('"').eq_ignore_ascii_case("https")
        })
    })
}

/// The host the request was addressed to according to a trusted proxy (`X-Forwarded-Host`,
/// the first proxy's value); `None` from anyone else.
pub fn forwarded_host<'h>(peer: Option<IpAddr>, headers: &'h HeaderMap, trusted: &[IpNet]) -> Option<&'h str> {
    if !peer.map(canonical).is_some_and(|p| is_trusted(p, trusted)) {
        return None;
    }
    let value = headers.get("x-forwarded-host")?.to_str().ok()?;
    value.split(',').next().map(str::trim)
}

/// The key a client's rate limits are counted under: its IPv4 address, or its IPv6 /64.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// The addresses of `X-Forwarded-For`, or of `Forwarded`'s `for=` parameters, left to right.
/// Entries that are not addresses (`unknown`, obfuscated names) end the chain there: nothing
/// left of them can be attributed.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_owned())
            .collect()
    };
    let xff = values("x-forwarded-for");
    let entries: Vec<String> = if xff.is_empty() {
        values("forwarded")
            .iter()
            .filter_map(|element| {
                element.split(';').filter_map(|kv| kv.trim().split_once('=')).find_map(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("for").then(|| v.trim().trim_matches('"').to_owned())
                })
            })
            .collect()
    } else {
        xff
    };
    let mut out = Vec::new();
    for entry in entries.iter().rev().take(MAX_HOPS) {
        match parse_node(entry) {
            Some(ip) => out.push(canonical(ip)),
            None => break,
        }
    }
    out.reverse();
    out
}

/// An address as forwarding headers write it: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:443`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    s.rsplit_once(':').and_then(|(ip, port)| port.parse::<u16>().ok().and(ip.parse().ok()))
}

/// Parses `--trusted-proxies` entries: CIDR ranges (`10.0.0.0/8`, `fd00::/8`) or single
/// addresses.
pub fn parse_trusted(entries: &[String]) -> Result<Vec<IpNet>, String> {
    entries
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("trusted proxy {e:?} is neither an address nor a CIDR range"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("header value"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let trusted = parse_trusted(&["10.0.0.0/8".into(), "192.0.2.1".into()]).expect("valid");
        let h = headers(&[("x-forwarded-for", "203.0.113.7, 10.1.2.3")]);
        // From the balancer: the client is the first untrusted hop from the right.
        assert_eq!(client_ip(Some(ip("10.0.0.1")), &h, &trusted), Some(ip("203.0.113.7")));
        // A visitor writing the header itself is not believed.
        assert_eq!(client_ip(Some(ip("198.51.100.9")), &h, &trusted), Some(ip("198.51.100.9")));
        // A spoofed entry left of the real client does not help the visitor.
        let spoofed = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.7")]);
        assert_eq!(client_ip(Some(ip("192.0.2.1")), &spoofed, &trusted), Some(ip("203.0.113.7")));
        // No header: the proxy itself.
        assert_eq!(client_ip(Some(ip("10.0.0.1")), &HeaderMap::new(), &trusted), Some(ip("10.0.0.1")));
        // `Forwarded`, with IPv6 and ports.
        let f = headers(&[("forwarded", "for=\"[2001:db8::1]:4711\";proto=https, for=10.9.9.9")]);
        assert_eq!(client_ip(Some(ip("10.0.0.1")), &f, &trusted), Some(ip("2001:db8::1")));
        assert!(forwarded_https(Some(ip("10.0.0.1")), &f, &trusted));
        assert!(!forwarded_https(Some(ip("198.51.100.9")), &f, &trusted), "not from a visitor");
        let host = headers(&[("x-forwarded-host", "replay.example, inner")]);
        assert_eq!(forwarded_host(Some(ip("10.0.0.1")), &host, &trusted), Some("replay.example"));
        assert_eq!(forwarded_host(Some(ip("198.51.100.9")), &host, &trusted), None, "not from a visitor");
        let proto = headers(&[("x-forwarded-proto", "https")]);
        assert!(forwarded_https(Some(ip("10.0.0.1")), &proto, &trusted));
        // An unparsable hop ends the chain: nothing left of it is attributed.
        let unknown = headers(&[("x-forwarded-for", "203.0.113.7, unknown, 10.1.1.1")]);
        assert_eq!(client_ip(Some(ip("10.0.0.1")), &unknown, &trusted), Some(ip("10.1.1.1")));
    }

    #[test]
    fn ipv6_clients_are_limited_per_64() {
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa::1")), limit_key(ip("2001:db8:1:2:bbbb::9")));
        assert_ne!(limit_key(ip("2001:db8:1:2::1")), limit_key(ip("2001:db8:1:3::1")));
        assert_eq!(limit_key(ip("::ffff:203.0.113.7")), ip("203.0.113.7"));
        assert_eq!(limit_key(ip("203.0.113.7")), ip("203.0.113.7"));
    }

    #[test]
    fn trusted_proxies_parse_ranges_and_addresses() {
        assert_eq!(parse_trusted(&["10.0.0.0/8".into(), " ::1 ".into()]).expect("valid").len(), 2);
        assert!(parse_trusted(&["nope".into()]).is_err());
    }
}
