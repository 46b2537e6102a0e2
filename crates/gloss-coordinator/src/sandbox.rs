//! Groups of coordinators on loopback, for tests and benchmarks on one machine.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use gloss_core::config::Overrides;

/// A free loopback port (bound, then released: good enough on one machine).
pub fn free_port() -> u16 {
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
