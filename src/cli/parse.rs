//! The parsers for option values (sizes, durations, rates, the lifetime
//! range, fingerprints, addresses and ports) and the checks of
//! `--clients` and `--max-peers` against the open-file limit.

use std::fmt;
use std::time::Duration;

use super::{DEFAULT_PORT, UsageError};
use crate::core::identity::Fingerprint;
use crate::core::swarm::{Lifetime, MAX_RATE};
use crate::os::addr::{IpLiteral, LiteralError};

/// Descriptors a swarm needs besides its clients': the epoll instance,
/// signals, stdio, and slack.
const SWARM_RESERVED_FDS: u64 = 16;

/// `--clients N` must fit under the open-file limit once the soft limit is
/// raised to `hard`: each client holds one descriptor, and one that is
/// leaving may still hold its own while its replacement connects.
pub(super) fn check_clients(clients: usize, hard: Option<u64>) -> Result<(), UsageError> {
    let need = (clients as u64)
        .saturating_mul(2)
        .saturating_add(SWARM_RESERVED_FDS);
    match hard {
        Some(hard) if need > hard => Err(UsageError(format!(
            "--clients {clients} needs {need} open files, and this process may open at most \
             {hard} (RLIMIT_NOFILE's hard limit), so at most --clients {}",
            hard.saturating_sub(SWARM_RESERVED_FDS) / 2
        ))),
        _ => Ok(()),
    }
}

/// Parses `--lifetime MIN..MAX`: two durations, `MIN` above 0 and not
/// above `MAX`.
pub(super) fn parse_lifetime(s: &str) -> Result<Lifetime, String> {
    let (lo, hi) = s
        .split_once("..")
        .ok_or_else(|| format!("'{s}' is not a range (try 1s..5s)"))?;
    let min = parse_duration(lo)?;
    let max = parse_duration(hi)?;
    if min.is_zero() {
        return Err(format!("'{s}' starts at 0; a lifetime must be more than 0"));
    }
    if min > max {
        return Err(format!("'{s}' ends before it starts"));
    }
    Ok(Lifetime { min, max })
}

/// Parses `--rate`: messages per second per client, above 0, at most
/// [`MAX_RATE`].
pub(super) fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= MAX_RATE => Ok(r),
        Ok(r) if r.is_finite() && r > MAX_RATE => {
            Err(format!("'{s}' is over the limit of {MAX_RATE} per client"))
        }
        _ => Err(format!(
            "'{s}' is not a rate (messages per second, more than 0, e.g. 0.5 or 10)"
        )),
    }
}

/// A fingerprint as `duet id` prints it.
pub(super) fn parse_fingerprint(s: &str) -> Result<Fingerprint, String> {
    Fingerprint::parse(s).map_err(|e| e.to_string())
}

/// Descriptors a room server needs besides one per member: the listener,
/// stdin, the tty, signals, the timer, the stop eventfd, the epoll
/// instance, stdout and stderr, a `/send` file, and the connections being
/// turned away (at most 64 at once).
const RESERVED_FDS: u64 = 16 + 64;

/// `--max-peers N` must fit under the open-file limit once the soft limit
/// is raised to `hard` (the loop raises it): a usage error otherwise, so
/// that the room does not find out at its N-th accept. `None` means no
/// limit could be read, or it is unlimited.
pub(super) fn check_max_peers(max_peers: usize, hard: Option<u64>) -> Result<(), UsageError> {
    let need = (max_peers as u64).saturating_add(RESERVED_FDS);
    match hard {
        Some(hard) if need > hard => Err(UsageError(format!(
            "--max-peers {max_peers} needs {need} open files, and this process may open at \
             most {hard} (RLIMIT_NOFILE's hard limit; raise it with ulimit -Hn as root), so at \
             most --max-peers {}",
            hard.saturating_sub(RESERVED_FDS)
        ))),
        _ => Ok(()),
    }
}

/// The largest `--max-message`: messages are held in memory whole.
pub const MAX_MESSAGE_LIMIT: u64 = 4 << 30;

/// Parses `1234`, `64KiB`, `64K`, `16MiB`, `1GiB`, `10kB`, `5MB` (binary
/// suffixes are powers of 1024, `kB`/`MB`/`GB` powers of 1000).
pub(super) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (try 65536, 64KiB, 16MiB)"))?;
    let mult: u64 = match suffix.trim() {
        "" | "B" => 1,
        "K" | "KiB" | "k" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("unknown size suffix '{other}' (use KiB, MiB, GiB)")),
    };
    let v = n
        .checked_mul(mult)
        .filter(|&v| v <= MAX_MESSAGE_LIMIT)
        .ok_or_else(|| format!("'{s}' is over the limit of 4GiB"))?;
    Ok(v)
}

/// The longest duration any option takes: 24 hours. Longer waits are
/// better spelt as "never" (`--heartbeat 0`, `--write-timeout 0`), and the
/// bound keeps every deadline far inside the clock's range.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Parses `--max-message`: a size from 1 byte to [`MAX_MESSAGE_LIMIT`]. A
/// limit of 0 would skip every input record but empty ones and let the
/// peer send nothing else: a mistake, not a setting.
pub fn parse_max_message(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err(format!(
            "'{s}' would refuse every message that is not empty; give at least 1 byte"
        )),
        n => Ok(n),
    }
}

/// Parses a timeout that cannot be "never" (`--handshake-timeout`,
/// `--connect-timeout`): a duration above 0. A zero timeout expires before
/// any peer can answer.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!(
            "'{s}' would expire before any peer can answer; give more than 0"
        )),
        d => Ok(d),
    }
}

/// Parses `10`, `10s`, `250ms`, `1.5s`, `2m`: seconds unless a unit is
/// given, from 0 to [`MAX_DURATION`] (24 hours).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("'{s}' is not a duration (try 10s, 250ms)"))?;
    let secs = match unit {
        "" | "s" => v,
        "ms" => v / 1_000.0,
        "us" | "µs" => v / 1_000_000.0,
        "m" | "min" => v * 60.0,
        other => return Err(format!("unknown duration unit '{other}' (use ms, s, m)")),
    };
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(|| format!("'{s}' is over the limit of 1440m (24 hours)"))
}

/// Splits `host`, `host:port`, `v4:port`, `[v6]:port`, `[v6]` or a bare
/// IPv6 literal into the host and the port if one is given. An IPv6
/// literal may carry a zone (`fe80::1%eth0`), bare or in brackets, and a
/// link-local one must.
pub(super) fn split_host_port(s: &str) -> Result<(String, Option<u16>), UsageError> {
    let bad = |why: &dyn fmt::Display| UsageError(format!("bad server address '{s}': {why}"));
    if s.is_empty() {
        return Err(bad(&"empty"));
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| bad(&"missing ']'"))?;
        match host.parse::<IpLiteral>() {
            Ok(lit) if lit.ip.is_ipv6() => {}
            Ok(_) | Err(LiteralError::NotIp) => {
                return Err(bad(&"not an IPv6 address between [ ]"));
            }
            Err(why) => return Err(bad(&why)),
        }
        let port = match after {
            "" => None,
            p => Some(
                parse_port(p.strip_prefix(':').ok_or_else(|| bad(&"junk after ']'"))?)
                    .map_err(|e| bad(&e))?,
            ),
        };
        return Ok((host.to_string(), port));
    }
    // Two colons or a '%' can only be a bare IPv6 literal.
    if s.matches(':').nth(1).is_some() || s.contains('%') {
        return match s.parse::<IpLiteral>() {
            Ok(_) => Ok((s.to_string(), None)),
            Err(LiteralError::NotIp) => Err(bad(
                &"an IPv6 address with a port must be written [addr]:port",
            )),
            Err(why) => Err(bad(&why)),
        };
    }
    match s.split_once(':') {
        Some(("", _)) => Err(bad(&"no host before ':'")),
        Some((host, port)) => Ok((
            host.to_string(),
            Some(parse_port(port).map_err(|e| bad(&e))?),
        )),
        None => Ok((s.to_string(), None)),
    }
}

/// The client's host and port from `HOST[:PORT]`, the `PORT` argument and
/// `--port` (or `DUET_PORT`). Ports given in more than one of them must be
/// the same.
pub(super) fn client_target(
    host: &str,
    port_arg: Option<u16>,
    port_opt: Option<u16>,
) -> Result<(String, u16), UsageError> {
    let (host, host_port) = split_host_port(host)?;
    let given = [
        (host_port, "in HOST"),
        (port_arg, "as PORT"),
        (port_opt, "in --port or DUET_PORT"),
    ];
    let mut port: Option<(u16, &str)> = None;
    for (p, place) in given {
        let Some(p) = p else { continue };
        match port {
            Some((q, first)) if q != p => {
                return Err(UsageError(format!(
                    "port given twice: {q} {first} and {p} {place}"
                )));
            }
            Some(_) => {}
            None => port = Some((p, place)),
        }
    }
    Ok((host, port.map_or(DEFAULT_PORT, |(p, _)| p)))
}

pub(super) fn parse_port(p: &str) -> Result<u16, String> {
    p.parse::<u16>()
        .map_err(|_| format!("'{p}' is not a port number (0-65535)"))
}

/// Parses `--listen`: an IP address, optionally in brackets, an IPv6 one
/// with a zone if it is link-local.
pub(super) fn parse_listen(s: &str) -> Result<IpLiteral, UsageError> {
    let t = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    t.parse().map_err(|why| {
        let hint = match why {
            LiteralError::NotIp => "give an IP address such as 127.0.0.1 or ::1".to_string(),
            why => why.to_string(),
        };
        UsageError(format!("bad --listen address '{s}': {hint}"))
    })
}
