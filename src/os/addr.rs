//! IP address literals as typed on the command line, including IPv6
//! addresses with a zone (`fe80::1%eth0`, `fe80::1%2`), which a link-local
//! address needs to say which interface it is on; and the socket addresses
//! they stand for; resolving a client's target (names are left to the
//! system's resolver) and binding a server's listener.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, ToSocketAddrs};
use std::str::FromStr;

use mio::net::TcpListener;

use crate::os::error::Error;

/// An IP address, with the zone an IPv6 address may carry after `%`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpLiteral {
    pub ip: IpAddr,
    /// An interface name or index; only ever set on an IPv6 address.
    pub zone: Option<String>,
}

impl IpLiteral {
    /// The socket address for `port`. A zone is turned into the interface's
    /// index here, so an interface that does not exist is an error now.
    pub fn socket_addr(&self, port: u16) -> io::Result<SocketAddr> {
        match (self.ip, &self.zone) {
            (IpAddr::V6(ip), Some(zone)) => {
                Ok(SocketAddrV6::new(ip, port, 0, scope_id(zone)?).into())
            }
            (ip, _) => Ok(SocketAddr::new(ip, port)),
        }
    }
}

/// Why a text is not an [`IpLiteral`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiteralError {
    NotIp,
    /// A `%` after something that is not an IPv6 address.
    ZoneNotOnIpv6,
    EmptyZone,
    /// A link-local IPv6 address without a zone: the kernel cannot tell
    /// which link is meant, and would refuse it with "invalid argument".
    NoZone,
}

impl fmt::Display for LiteralError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LiteralError::NotIp => "not an IP address",
            LiteralError::ZoneNotOnIpv6 => "a %zone goes only after an IPv6 address",
            LiteralError::EmptyZone => "empty zone after '%'",
            LiteralError::NoZone => {
                "a link-local address needs a zone naming its interface, as in fe80::1%eth0"
            }
        })
    }
}

impl FromStr for IpLiteral {
    type Err = LiteralError;

    /// `192.0.2.7`, `::1` or `fe80::1%eth0`, without brackets.
    fn from_str(s: &str) -> Result<Self, LiteralError> {
        match s.split_once('%') {
            Some((ip, zone)) => {
                let ip: Ipv6Addr = ip.parse().map_err(|_| LiteralError::ZoneNotOnIpv6)?;
                if zone.is_empty() {
                    return Err(LiteralError::EmptyZone);
                }
                Ok(IpLiteral {
                    ip: IpAddr::V6(ip),
                    zone: Some(zone.to_string()),
                })
            }
            None => match s.parse::<IpAddr>() {
                Ok(IpAddr::V6(v6)) if v6.is_unicast_link_local() => Err(LiteralError::NoZone),
                Ok(ip) => Ok(IpLiteral { ip, zone: None }),
                Err(_) => Err(LiteralError::NotIp),
            },
        }
    }
}

impl fmt::Display for IpLiteral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.zone {
            Some(zone) => write!(f, "{}%{zone}", self.ip),
            None => write!(f, "{}", self.ip),
        }
    }
}

/// The interface index a zone names: a number is taken as the index,
/// anything else as an interface name.
fn scope_id(zone: &str) -> io::Result<u32> {
    if let Ok(index) = zone.parse::<u32>() {
        return Ok(index);
    }
    let no_such = || {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no network interface named '{zone}'"),
        )
    };
    let name = CString::new(zone).map_err(|_| no_such())?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(no_such()),
        index => Ok(index),
    }
}

/// The addresses `host` stands for: an IP literal's one (its zone turned
/// into an interface index), else what the system's resolver says.
pub fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
    let resolved = match host.parse::<IpLiteral>() {
        Ok(lit) => lit.socket_addr(port).map(|addr| vec![addr]),
        Err(_) => (host, port).to_socket_addrs().map(Iterator::collect),
    };
    resolved.map_err(|err| Error::Resolve {
        host: host.to_string(),
        err,
    })
}

/// Shows an IPv4 peer of a dual-stack listener as IPv4, not `::ffff:a.b.c.d`.
pub fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// Binds the listener: the given address, else `[::]` (dual-stack), else
/// `0.0.0.0` when IPv6 is unavailable.
pub fn bind(listen: Option<IpLiteral>, port: u16) -> Result<TcpListener, Error> {
    let bind_one =
        |addr: SocketAddr| TcpListener::bind(addr).map_err(|err| Error::Bind { addr, err });
    match listen {
        Some(lit) => bind_one(lit.socket_addr(port).map_err(|err| Error::Resolve {
            host: lit.to_string(),
            err,
        })?),
        None => match bind_one((Ipv6Addr::UNSPECIFIED, port).into()) {
            Err(Error::Bind { err, .. })
                if matches!(
                    err.raw_os_error(),
                    Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
                ) =>
            {
                bind_one((Ipv4Addr::UNSPECIFIED, port).into())
            }
            other => other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn lit(s: &str) -> Result<IpLiteral, LiteralError> {
        s.parse()
    }

    #[test]
    fn literals_with_and_without_zones() {
        let v6 = |s: &str| IpAddr::V6(s.parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            lit("192.0.2.7"),
            Ok(IpLiteral {
                ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
                zone: None
            })
        );
        assert_eq!(
            lit("::1"),
            Ok(IpLiteral {
                ip: v6("::1"),
                zone: None
            })
        );
        assert_eq!(
            lit("fe80::1%eth0"),
            Ok(IpLiteral {
                ip: v6("fe80::1"),
                zone: Some("eth0".into())
            })
        );
        assert_eq!(lit("fe80::1%2").map(|l| l.zone), Ok(Some("2".into())));
        use LiteralError::*;
        for (bad, why) in [
            ("", NotIp),
            ("host", NotIp),
            ("[::1]", NotIp),
            ("::1:80:x", NotIp),
            ("%eth0", ZoneNotOnIpv6),
            ("host%eth0", ZoneNotOnIpv6),
            ("192.0.2.7%eth0", ZoneNotOnIpv6),
            ("fe80::1%", EmptyZone),
            ("fe80::1", NoZone),
            ("febf::1", NoZone),
        ] {
            assert_eq!(lit(bad), Err(why), "{bad}");
        }
        assert!(lit("fec0::1").is_ok(), "not link-local");
    }

    #[test]
    fn display_gives_back_what_was_parsed() {
        for s in ["192.0.2.7", "::1", "fe80::1%eth0", "fe80::1%2"] {
            assert_eq!(lit(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn zones_become_interface_indices() {
        let addr = |s: &str| lit(s).unwrap().socket_addr(7777);
        let SocketAddr::V6(v6) = addr("fe80::1%3").unwrap() else {
            panic!("not IPv6");
        };
        assert_eq!((v6.scope_id(), v6.port()), (3, 7777));
        // The loopback interface exists on every Linux machine, network
        // namespaces included.
        let SocketAddr::V6(v6) = addr("fe80::1%lo").unwrap() else {
            panic!("not IPv6");
        };
        assert_ne!(v6.scope_id(), 0);
        let err = addr("fe80::1%no-such-if0").unwrap_err();
        assert_eq!(err.to_string(), "no network interface named 'no-such-if0'");
        assert_eq!(
            addr("192.0.2.7").unwrap(),
            "192.0.2.7:7777".parse::<SocketAddr>().unwrap()
        );
    }
}
