//! Where a redirect may lead. A site is not trusted to send the request anywhere it likes: a
//! redirect never moves into loopback, private or link-local address space unless the feed's own
//! url is there already (a feed on the LAN still works), and never reaches a cloud metadata
//! address. Its target is vetted before anything is sent to it, and a host name is resolved
//! here once and the request pinned to the addresses vetted, so that a second DNS answer cannot
//! lead elsewhere.
//!
//! Through a proxy the proxy resolves names, in its own network: only what the url itself says
//! (an address, `localhost`) is judged here, and nothing is resolved.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;
use url::Host;

/// Where the feed's configured url is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Space {
    Public,
    /// Loopback, private or link-local: redirects may stay there.
    Internal,
}

/// The address space of the feed's own url.
pub(super) async fn space_of(url: &Url, proxied: bool) -> Space {
    match addresses(url, proxied).await {
        Ok(found) if found.iter().any(|ip| is_internal(*ip)) => Space::Internal,
        _ => Space::Public,
    }
}

/// Whether to follow a redirect to `target`, when the feed's own url is in `space`: `Ok` with
/// the addresses to connect to (vetted here; `None` where the proxy resolves the name, or the url
/// is an address), or `Err` with why not.
pub(super) async fn vet(target: &Url, space: Space, proxied: bool) -> Result<Option<Vec<SocketAddr>>, String> {
    let found = addresses(target, proxied).await?;
    if let Some(ip) = found.iter().find(|ip| is_metadata(**ip)) {
        return Err(format!("{ip} is a cloud metadata address"));
    }
    if space == Space::Public
        && let Some(ip) = found.iter().find(|ip| is_internal(**ip))
    {
        return Err(format!(
            "{ip} is in loopback, private or link-local address space, and the feed's own url is not"
        ));
    }
    let named = matches!(target.host(), Some(Host::Domain(_)));
    let port = target.port_or_known_default().unwrap_or(80);
    Ok((named && !proxied).then(|| found.into_iter().map(|ip| SocketAddr::new(ip, port)).collect()))
}

/// The addresses `url`'s host stands for: an address as written, `localhost` as loopback, and a
/// name resolved here unless a proxy resolves it (then none are known).
async fn addresses(url: &Url, proxied: bool) -> Result<Vec<IpAddr>, String> {
    match url.host() {
        Some(Host::Ipv4(ip)) => Ok(vec![IpAddr::V4(ip)]),
        Some(Host::Ipv6(ip)) => Ok(vec![IpAddr::V6(ip)]),
        Some(Host::Domain(name)) if is_localhost(name) => {
            Ok(vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)])
        }
        Some(Host::Domain(_)) if proxied => Ok(Vec::new()),
        Some(Host::Domain(name)) => {
            let port = url.port_or_known_default().unwrap_or(80);
            let found: Vec<IpAddr> = tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| format!("its host {name} does not resolve ({e})"))?
                .map(|at| at.ip())
                .collect();
            if found.is_empty() {
                return Err(format!("its host {name} does not resolve"));
            }
            Ok(found)
        }
        None => Err("it names no host".into()),
    }
}

fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Loopback, private, link-local, shared (carrier-grade NAT), unspecified or broadcast.
pub(super) fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => v6.is_loopback() || v6.is_unspecified() || v6.is_unique_local() || v6.is_unicast_link_local(),
        },
    }
}

/// The instance metadata services: EC2's (169.254.169.254, and fd00:ec2::254 over IPv6) and
/// ECS's task metadata (169.254.170.2).
pub(super) fn is_metadata(ip: IpAddr) -> bool {
    const EC2_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    match ip {
        IpAddr::V4(v4) => v4 == Ipv4Addr::new(169, 254, 169, 254) || v4 == Ipv4Addr::new(169, 254, 170, 2),
        IpAddr::V6(v6) => v6 == EC2_V6 || v6.to_ipv4_mapped().is_some_and(|v4| is_metadata(IpAddr::V4(v4))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_and_metadata_addresses() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:192.168.0.1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "100.128.0.1", "2606:4700::1111", "::ffff:1.1.1.1"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
        for metadata in [
            "169.254.169.254",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "169.254.170.2",
        ] {
            assert!(is_metadata(metadata.parse().unwrap()), "{metadata}");
        }
        assert!(!is_metadata("169.254.1.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn redirects_stay_out_of_internal_space_unless_the_feed_is_there() {
        let url = |text: &str| Url::parse(text).unwrap();
        let public = Space::Public;
        for target in [
            "http://127.0.0.1:8080/admin",
            "http://[::1]/",
            "http://localhost/x",
            "http://10.0.0.1/",
        ] {
            assert!(vet(&url(target), public, false).await.is_err(), "{target}");
            assert!(
                vet(&url(target), public, true).await.is_err(),
                "{target} through a proxy"
            );
            assert!(
                vet(&url(target), Space::Internal, false).await.is_ok(),
                "{target} from the LAN"
            );
        }
        let metadata = url("http://169.254.169.254/latest/meta-data/");
        let said = vet(&metadata, Space::Internal, false).await.unwrap_err();
        assert!(said.contains("metadata"), "{said}");
        assert_eq!(vet(&url("http://93.184.216.34/feed"), public, false).await, Ok(None));
        assert_eq!(space_of(&url("http://127.0.0.1:9/feed"), false).await, Space::Internal);
        assert_eq!(space_of(&url("http://feeds.example.test/x"), true).await, Space::Public);
    }
}
