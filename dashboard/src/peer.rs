//! Who is on the other end of a loopback TCP connection: the socket's inode from
//! `/proc/net/tcp{,6}`, the process holding it from `/proc/*/fd`, and its ancestry
//! from `/proc/<pid>/stat`.
//!
//! Commands Keel runs are the same user as Keel and can read `<store>/ui-token`, so
//! the server asks of every connection whether its peer is such a command (see
//! [`crate::PeerCheck`]). This works for peers in this machine's network namespace;
//! a peer the kernel does not list (another namespace) is not a loopback peer of
//! this server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

/// The pid of a process holding the socket whose local address is `peer` and remote
/// address is `server` (the other end of a connection this server accepted).
/// `Ok(None)` when no process of this machine holds it (or /proc hides it).
pub fn pid_of(peer: SocketAddr, server: SocketAddr) -> std::io::Result<Option<u32>> {
    let Some(inode) = inode_of(Path::new("/proc/net"), peer, server)? else {
        return Ok(None);
    };
    Ok(holder_of(Path::new("/proc"), inode))
}

/// The inode of the TCP socket `local` → `remote`, from the kernel's tables under
/// `net` (`tcp` and `tcp6`).
pub fn inode_of(net: &Path, local: SocketAddr, remote: SocketAddr) -> std::io::Result<Option<u64>> {
    for table in ["tcp", "tcp6"] {
        let text = match std::fs::read_to_string(net.join(table)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(l), Some(r), Some(inode)) = (cols.get(1), cols.get(2), cols.get(9)) else {
                continue;
            };
            if parse_addr(l).map(canonical) == Some(canonical(local))
                && parse_addr(r).map(canonical) == Some(canonical(remote))
                && let Ok(inode) = inode.parse::<u64>()
                && inode != 0
            {
                return Ok(Some(inode));
            }
        }
    }
    Ok(None)
}

/// A v4-mapped IPv6 address as the IPv4 address it is.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

/// Parses the kernel's `HEX_IP:HEX_PORT` (the address as 32-bit words in host byte
/// order, the port big-endian).
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Option<Vec<u32>> = (0..ip.len() / 8)
        .map(|i| {
            ip.get(i * 8..i * 8 + 8)
                .and_then(|w| u32::from_str_radix(w, 16).ok())
        })
        .collect();
    let words = words?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(&bytes);
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The first process under `proc` with a descriptor on socket `inode`.
pub fn holder_of(proc: &Path, inode: u64) -> Option<u32> {
    let target = format!("socket:[{inode}]");
    let entries = std::fs::read_dir(proc).ok()?;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str()) {
                return Some(pid);
            }
        }
    }
    None
}

/// The parent of `pid`, from `/proc/<pid>/stat`.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything; fields follow
    // the last `)`: state, then the parent's pid.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `pid` is `ancestor` or one of its descendants (by the parent links of
/// the processes alive now).
pub fn descends_from(pid: u32, ancestor: u32) -> bool {
    let mut current = pid;
    for _ in 0..4096 {
        if current == ancestor {
            return true;
        }
        match parent_of(current) {
            Some(0) | None => return false,
            Some(parent) if parent == current => return false,
            Some(parent) => current = parent,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn kernel_addresses_parse() {
        let v4 = parse_addr("0100007F:1F90").unwrap();
        assert_eq!(v4, "127.0.0.1:8080".parse().unwrap());
        let v6 = parse_addr("00000000000000000000000001000000:0050").unwrap();
        assert_eq!(v6, "[::1]:80".parse().unwrap());
        let mapped = parse_addr("0000000000000000FFFF00000100007F:0016").unwrap();
        assert_eq!(canonical(mapped), "127.0.0.1:22".parse().unwrap());
        assert_eq!(parse_addr("zz:1"), None);
        assert_eq!(parse_addr("0100007F"), None);
    }

    #[test]
    fn this_process_descends_from_itself_not_from_a_stranger() {
        let me = std::process::id();
        assert!(descends_from(me, me));
        let parent = parent_of(me).unwrap();
        assert!(descends_from(me, parent));
        assert!(!descends_from(parent, me));
    }
}
