//! Settings for groups of coordinators on loopback, for tests and `gloss bench` on one machine:
//! free fixed ports and each member's overrides. Only settings: nothing here starts a node.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::config::Overrides;

/// Ports handed out by [`free_port`]: below Linux's ephemeral range (32768-60999), so a socket
/// bound to port 0 elsewhere in the process can never take one between the check and its use.
const FIXED_PORTS: std::ops::Range<u32> = 20_000..32_000;

/// A free loopback port for a listener that must be known before it is bound (Raft members
/// list each other's addresses). Ports come from a range the system never picks for port 0,
/// starting at a point that depends on the process id, and each is checked to be free.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = FIXED_PORTS.end - FIXED_PORTS.start;
    let base = (std::process::id().wrapping_mul(7919)) % span;
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIXED_PORTS.start + (base + offset) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Settings of `n` coordinators forming one group under `dir`: node ids 1..=n, fixed internal
/// ports (members must know each other's address up front), public and HTTP ports chosen by the
/// system, data in `dir/n<id>`.
pub fn loopback_group(dir: &Path, n: u64) -> Vec<Overrides> {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let members: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
        .collect();
    let any: Option<SocketAddr> = "127.0.0.1:0".parse().ok();
    ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            let id = i as u64 + 1;
            Overrides {
                node_id: Some(id),
                data_dir: Some(dir.join(format!("n{id}"))),
                listen: any,
                http: any,
                raft_listen: format!("127.0.0.1:{port}").parse().ok(),
                initial_members: Some(members.join(",")),
                ..Overrides::default()
            }
        })
        .collect()
}
