//! Admission control for new sessions (security review H6 and the global part of H5): who may create a
//! session right now.
//!
//! A plain struct the [`SessionManager`](crate::session::SessionManager) owns (no task): a per-client table with
//! the client's live sessions and a token bucket for its creation rate, and a process-wide memory
//! ceiling read from `/proc`. The table itself is bounded: clients with no live session and a full
//! bucket carry no information and are pruned, and at most [`IDLE_CLIENTS`] entries without a live
//! session are kept, so nothing a client sends makes the gateway hold unbounded state here.
//!
//! A client is an IP address ([`ClientKey`]); IPv6 clients are keyed by their /64, because one host
//! usually owns a whole /64 and could otherwise rotate through 2^64 "clients".

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::session::manager::CreateError;

/// Entries without a live session kept at most (each about 64 bytes with the map's overhead). Over it,
/// entries with a full bucket go first, then those closest to full (their rate debt is forgotten: with
/// that many distinct clients the rate limit is not what protects the gateway, the session cap is).
pub const IDLE_CLIENTS: usize = 16_384;

/// How long a read of the process's resident memory is reused.
const RSS_CACHE_MS: u64 = 100;

/// Retry-After for refusals that free up at no predictable time (per-client cap, memory, table full).
pub const RETRY_AFTER_SECS: u64 = 30;

/// Who creates sessions: an IPv4 address, or the /64 network of an IPv6 address. IPv4-mapped IPv6
/// addresses count as their IPv4 address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn from_ip(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientKey(IpAddr::V6(Ipv6Addr::from(bits)))
                }
            },
        }
    }

    /// The address (for IPv6, the first address of the /64).
    pub fn ip(&self) -> IpAddr {
        self.0
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// An address range in CIDR notation (`10.0.0.0/8`, `::1/128`); a bare address is a single host.
/// Used for `--trusted-proxy`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in the range. IPv4-mapped IPv6 addresses match IPv4 ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| format!("{s:?} is not an address or CIDR range"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => return Err(format!("{s:?}: the prefix length must be 0…{max}")),
            },
        };
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// The client behind a request: the TCP peer, or, when the peer is a trusted proxy, the first address of
/// `X-Forwarded-For` (all of its headers, in order) that is not itself trusted, walking from the right
/// (each proxy appends the address it received the request from, so only entries right of the last
/// untrusted hop are vouched for). A malformed header counts as absent: the peer is the client. If
/// every entry is trusted, the leftmost one is.
pub fn resolve_client<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[Cidr],
) -> ClientKey {
    if !trusted.iter().any(|c| c.contains(peer)) {
        return ClientKey::from_ip(peer);
    }
    let mut hops = Vec::new();
    for header in forwarded_for {
        for entry in header.split(',') {
            match parse_hop(entry.trim()) {
                Some(ip) => hops.push(ip),
                None => return ClientKey::from_ip(peer),
            }
        }
    }
    let client = hops.iter().rev().find(|ip| !trusted.iter().any(|c| c.contains(**ip))).or(hops.first());
    ClientKey::from_ip(client.copied().unwrap_or(peer))
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_hop(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
}

/// `--session-rate`: sustained session creations per client and the burst allowed on top.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SessionRate {
    /// Tokens per millisecond.
    per_ms: f64,
    /// Bucket size.
    pub burst: u32,
}

impl SessionRate {
    pub fn per_second(n: f64, burst: u32) -> SessionRate {
        SessionRate { per_ms: n / 1000.0, burst: burst.max(1) }
    }

    /// Parses `N/s` or `N/m`, optionally `:BURST` (`10/s:1000`); without a burst, the bucket holds one
    /// second's (or one minute's) worth. `0` turns the limit off (`None`).
    pub fn parse(s: &str) -> Result<Option<SessionRate>, String> {
        let s = s.trim();
        if s == "0" || s.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let usage = || format!("{s:?} is not a rate (N/s or N/m, optionally :BURST, e.g. 10/s:1000; 0 = off)");
        let (rate, burst) = match s.split_once(':') {
            Some((r, b)) => (r, Some(b.parse::<u32>().map_err(|_| usage())?)),
            None => (s, None),
        };
        let (n, unit) = rate.split_once('/').ok_or_else(usage)?;
        let n: u32 = n.parse().map_err(|_| usage())?;
        let per_ms = match unit {
            "s" => f64::from(n) / 1000.0,
            "m" => f64::from(n) / 60_000.0,
            _ => return Err(usage()),
        };
        if n == 0 || burst == Some(0) {
            return Err(format!("{s:?}: rate and burst must be positive (0 alone turns the limit off)"));
        }
        Ok(Some(SessionRate { per_ms, burst: burst.unwrap_or(n) }))
    }
}

/// The admission settings (from the command line).
#[derive(Clone, Debug, PartialEq)]
pub struct AdmissionConfig {
    /// Live sessions per client; 0 = no cap.
    pub max_per_client: usize,
    /// Creation rate per client; `None` = unlimited.
    pub rate: Option<SessionRate>,
    /// Resident memory above which new sessions are refused, bytes; 0 = off.
    pub max_memory: u64,
}

impl AdmissionConfig {
    /// No limits at all (what a manager built without a config uses).
    pub fn unlimited() -> AdmissionConfig {
        AdmissionConfig { max_per_client: 0, rate: None, max_memory: 0 }
    }
}

#[derive(Debug)]
struct ClientState {
    live: usize,
    tokens: f64,
    /// When `tokens` was last brought up to date (manager clock, ms).
    updated_ms: u64,
}

impl ClientState {
    /// Adds what the bucket earned since the last update.
    fn refill(&mut self, rate: Option<SessionRate>, now_ms: u64) {
        if let Some(r) = rate {
            let earned = now_ms.saturating_sub(self.updated_ms) as f64 * r.per_ms;
            self.tokens = (self.tokens + earned).min(f64::from(r.burst));
        }
        self.updated_ms = now_ms;
    }

    /// A client that can be forgotten without changing any future decision.
    fn is_blank(&self, rate: Option<SessionRate>) -> bool {
        self.live == 0 && rate.is_none_or(|r| self.tokens >= f64::from(r.burst))
    }
}

#[derive(Default)]
struct Table {
    clients: HashMap<ClientKey, ClientState>,
    /// Entries with `live == 0`.
    idle: usize,
}

/// Decides whether a client may create a session now; see the module comment.
pub struct Admission {
    config: AdmissionConfig,
    table: Mutex<Table>,
    /// `--max-memory` as currently in force (see [`Admission::set_max_memory`]).
    max_memory: AtomicU64,
    rss: RssCache,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission").field("config", &self.config).field("clients", &self.clients()).finish()
    }
}

/// One admitted session's place in its client's count. Dropping it gives the place back: the manager
/// keeps it in the session's entry, so a destroyed session (or a creation that failed or panicked)
/// releases its client's slot without any bookkeeping at the call sites.
pub struct AdmitTicket {
    admission: Arc<Admission>,
    client: ClientKey,
}

impl AdmitTicket {
    pub fn client(&self) -> ClientKey {
        self.client
    }
}

impl fmt::Debug for AdmitTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AdmitTicket({})", self.client)
    }
}

impl Drop for AdmitTicket {
    fn drop(&mut self) {
        self.admission.release(self.client);
    }
}

impl Admission {
    pub fn new(config: AdmissionConfig) -> Arc<Admission> {
        Self::with_rss_source(config, read_rss)
    }

    /// Like [`Admission::new`] with another source of the resident memory figure (tests).
    pub fn with_rss_source(config: AdmissionConfig, source: fn() -> Option<u64>) -> Arc<Admission> {
        Arc::new(Admission {
            max_memory: AtomicU64::new(config.max_memory),
            config,
            table: Mutex::new(Table::default()),
            rss: RssCache { source, bytes: AtomicU64::new(0), read_ms: AtomicU64::new(u64::MAX) },
        })
    }

    pub fn config(&self) -> &AdmissionConfig {
        &self.config
    }

    /// Changes the memory ceiling of a running gateway (0 = off); the integration tests use it to put
    /// the ceiling below the current RSS after sessions exist.
    pub fn set_max_memory(&self, bytes: u64) {
        self.max_memory.store(bytes, Ordering::Relaxed);
    }

    /// Clients in the table (live ones and those whose rate debt is remembered).
    pub fn clients(&self) -> usize {
        self.table.lock().clients.len()
    }

    /// Live sessions the table counts for `client`.
    pub fn live(&self, client: ClientKey) -> usize {
        self.table.lock().clients.get(&client).map_or(0, |c| c.live)
    }

    /// Admits one session for `client` at `now_ms` (the manager's clock), or says why not: the memory
    /// ceiling first (it protects everyone), then the client's live-session cap (which costs the client
    /// nothing), then its creation rate (which spends a token).
    pub fn admit(self: &Arc<Self>, client: ClientKey, now_ms: u64) -> Result<AdmitTicket, CreateError> {
        let max_memory = self.max_memory.load(Ordering::Relaxed);
        if max_memory != 0 {
            let rss = self.rss.get(now_ms);
            if rss > max_memory {
                return Err(CreateError::MemoryHigh { rss, limit: max_memory });
            }
        }
        let rate = self.config.rate;
        let mut table = self.table.lock();
        if !table.clients.contains_key(&client) {
            if table.idle >= IDLE_CLIENTS {
                table.prune(rate, now_ms);
            }
            let tokens = rate.map_or(0.0, |r| f64::from(r.burst));
            table.clients.insert(client, ClientState { live: 0, tokens, updated_ms: now_ms });
            table.idle += 1;
            crate::metrics::metrics().admission_clients.set(table.clients.len() as i64);
        }
        let state = table.clients.get_mut(&client).expect("inserted above");
        state.refill(rate, now_ms);
        let max = self.config.max_per_client;
        if max != 0 && state.live >= max {
            return Err(CreateError::ClientCap(max));
        }
        if let Some(r) = rate {
            if state.tokens < 1.0 {
                let wait_ms = ((1.0 - state.tokens) / r.per_ms).ceil() as u64;
                return Err(CreateError::RateLimited { retry_after: Duration::from_millis(wait_ms) });
            }
            state.tokens -= 1.0;
        }
        state.live += 1;
        if state.live == 1 {
            table.idle -= 1;
        }
        Ok(AdmitTicket { admission: self.clone(), client })
    }

    /// A place for a session restored from the registry after a restart: its creator is not known,
    /// so it counts under the unspecified address, past every per-client limit (it was admitted once).
    pub fn restored_ticket(self: &Arc<Self>) -> AdmitTicket {
        let client = ClientKey::from_ip(std::net::Ipv4Addr::UNSPECIFIED.into());
        let mut guard = self.table.lock();
        let table = &mut *guard;
        let state = table.clients.entry(client).or_insert_with(|| {
            // A new client is counted idle until its first live session, as in `admit`.
            table.idle += 1;
            ClientState { live: 0, tokens: 0.0, updated_ms: 0 }
        });
        state.live += 1;
        if state.live == 1 {
            table.idle -= 1;
        }
        drop(guard);
        AdmitTicket { admission: self.clone(), client }
    }

    fn release(&self, client: ClientKey) {
        let mut table = self.table.lock();
        let Some(state) = table.clients.get_mut(&client) else { return };
        state.live = state.live.saturating_sub(1);
        if state.live == 0 {
            table.idle += 1;
        }
    }
}

impl Table {
    /// Forgets blank clients; if that frees less than a quarter of [`IDLE_CLIENTS`], also the idle
    /// clients closest to a full bucket, down to three quarters (so pruning runs at most once per
    /// `IDLE_CLIENTS / 4` new clients).
    fn prune(&mut self, rate: Option<SessionRate>, now_ms: u64) {
        let before = self.clients.len();
        self.clients.retain(|_, c| {
            c.refill(rate, now_ms);
            !c.is_blank(rate)
        });
        self.idle -= before - self.clients.len();
        let target = IDLE_CLIENTS * 3 / 4;
        if self.idle > target {
            let mut idle: Vec<(ClientKey, f64)> =
                self.clients.iter().filter(|(_, c)| c.live == 0).map(|(k, c)| (*k, c.tokens)).collect();
            idle.sort_by(|a, b| b.1.total_cmp(&a.1));
            for (key, _) in idle.into_iter().take(self.idle - target) {
                self.clients.remove(&key);
                self.idle -= 1;
            }
        }
    }
}

/// The process's resident memory, reread at most every [`RSS_CACHE_MS`].
struct RssCache {
    source: fn() -> Option<u64>,
    bytes: AtomicU64,
    /// When `bytes` was read (manager clock, ms); `u64::MAX` = never.
    read_ms: AtomicU64,
}

impl RssCache {
    fn get(&self, now_ms: u64) -> u64 {
        let read = self.read_ms.load(Ordering::Relaxed);
        if read == u64::MAX || now_ms.saturating_sub(read) >= RSS_CACHE_MS || now_ms < read {
            // An unreadable figure (not Linux) never refuses anything.
            let bytes = (self.source)().unwrap_or(0);
            self.bytes.store(bytes, Ordering::Relaxed);
            self.read_ms.store(now_ms, Ordering::Relaxed);
            return bytes;
        }
        self.bytes.load(Ordering::Relaxed)
    }
}

/// Resident memory of this process: `VmRSS` of `/proc/self/status` (in KiB there, so no page size is
/// assumed, unlike `statm`).
pub fn read_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
}

/// The default of `--max-memory`: 75 % of the memory this process may use, the lower of `MemTotal`
/// and the cgroup v2 `memory.max` of its cgroup or any ancestor. `None` when neither can be read.
pub fn default_max_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| meminfo_total(&m));
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok().and_then(|c| cgroup_limit(&c));
    let machine = match (total, cgroup) {
        (Some(t), Some(c)) => t.min(c),
        (t, c) => t.or(c)?,
    };
    Some(machine / 4 * 3)
}

/// `MemTotal` of `/proc/meminfo`, bytes.
fn meminfo_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
}

/// The lowest numeric `memory.max` from the process's cgroup v2 directory up to the root.
fn cgroup_limit(proc_self_cgroup: &str) -> Option<u64> {
    let path = proc_self_cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mut dir = std::path::PathBuf::from("/sys/fs/cgroup");
    dir.push(path.trim().trim_start_matches('/'));
    let mut lowest: Option<u64> = None;
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join("memory.max")) {
            if let Ok(n) = text.trim().parse::<u64>() {
                lowest = Some(lowest.map_or(n, |l| l.min(n)));
            }
        }
        if dir == std::path::Path::new("/sys/fs/cgroup") || !dir.pop() {
            break;
        }
    }
    lowest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn key(s: &str) -> ClientKey {
        ClientKey::from_ip(ip(s))
    }

    fn admission(max_per_client: usize, rate: Option<SessionRate>) -> Arc<Admission> {
        Admission::new(AdmissionConfig { max_per_client, rate, max_memory: 0 })
    }

    #[test]
    fn client_keys() {
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("2001:db8:1:2:aaaa::1").to_string(), "2001:db8:1:2::/64");
        assert_eq!(key("192.0.2.7").to_string(), "192.0.2.7");
    }

    #[test]
    fn cidr_matching() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains(ip("10.1.255.3")));
        assert!(c.contains(ip("::ffff:10.1.0.1")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(!c.contains(ip("::1")));
        let host: Cidr = "127.0.0.1".parse().unwrap();
        assert!(host.contains(ip("127.0.0.1")) && !host.contains(ip("127.0.0.2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!("::1/128".parse::<Cidr>().unwrap().contains(ip("::1")));
        for bad in ["", "10.0.0.0/33", "::/129", "10.0.0/8", "x/8", "10.0.0.0/-1", "10.0.0.0/+8"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_used_only_from_trusted_proxies() {
        let trusted: Vec<Cidr> = vec!["127.0.0.1/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let lo = ip("127.0.0.1");
        // Untrusted peer: the header is ignored.
        assert_eq!(resolve_client(ip("198.51.100.1"), ["203.0.113.5"], &trusted), key("198.51.100.1"));
        // Trusted peer: the rightmost untrusted hop.
        assert_eq!(resolve_client(lo, ["203.0.113.5"], &trusted), key("203.0.113.5"));
        assert_eq!(resolve_client(lo, ["1.1.1.1, 203.0.113.5, 10.0.0.3"], &trusted), key("203.0.113.5"));
        assert_eq!(resolve_client(lo, ["1.1.1.1", "203.0.113.5 ,10.0.0.3"], &trusted), key("203.0.113.5"));
        assert_eq!(resolve_client(lo, ["[2001:db8::1]:443, 10.0.0.3:80"], &trusted), key("2001:db8::1"));
        // All trusted: the leftmost. Absent: the peer.
        assert_eq!(resolve_client(lo, ["10.0.0.9, 10.0.0.3"], &trusted), key("10.0.0.9"));
        assert_eq!(resolve_client(lo, [], &trusted), key("127.0.0.1"));
        // Malformed: the peer.
        assert_eq!(resolve_client(lo, ["203.0.113.5, unknown"], &trusted), key("127.0.0.1"));
        assert_eq!(resolve_client(lo, [""], &trusted), key("127.0.0.1"));
        // No trusted proxies: always the peer.
        assert_eq!(resolve_client(lo, ["203.0.113.5"], &[]), key("127.0.0.1"));
    }

    #[test]
    fn rate_format() {
        assert_eq!(SessionRate::parse("0"), Ok(None));
        assert_eq!(SessionRate::parse("10/s:1000"), Ok(Some(SessionRate { per_ms: 0.01, burst: 1000 })));
        assert_eq!(SessionRate::parse("10/s"), Ok(Some(SessionRate { per_ms: 0.01, burst: 10 })));
        assert_eq!(SessionRate::parse("60/m:5"), Ok(Some(SessionRate { per_ms: 0.001, burst: 5 })));
        for bad in ["", "10", "10/h", "x/s", "0/s", "10/s:0", "10/s:", "-1/s", "1.5/s"] {
            assert!(SessionRate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn per_client_cap_counts_live_sessions_and_tickets_release_them() {
        let a = admission(2, None);
        let (x, y) = (key("192.0.2.1"), key("192.0.2.2"));
        let t1 = a.admit(x, 0).unwrap();
        let t2 = a.admit(x, 0).unwrap();
        assert_eq!(a.admit(x, 0).unwrap_err(), CreateError::ClientCap(2));
        let _other = a.admit(y, 0).unwrap();
        assert_eq!(a.live(x), 2);
        drop(t1);
        assert_eq!(a.live(x), 1);
        let _t3 = a.admit(x, 0).unwrap();
        drop(t2);
        assert_eq!(a.live(x), 1);
    }

    #[test]
    fn token_bucket_refills_at_the_rate() {
        let a = admission(0, Some(SessionRate::per_second(10.0, 3)));
        let x = key("192.0.2.1");
        let tickets: Vec<_> = (0..3).map(|_| a.admit(x, 1000).unwrap()).collect();
        match a.admit(x, 1000).unwrap_err() {
            CreateError::RateLimited { retry_after } => assert_eq!(retry_after, Duration::from_millis(100)),
            e => panic!("{e:?}"),
        }
        // Releasing sessions gives back no tokens; time does.
        drop(tickets);
        assert!(a.admit(x, 1050).is_err());
        let _ = a.admit(x, 1100).unwrap();
        assert!(a.admit(x, 1100).is_err());
        // The bucket never holds more than the burst.
        for _ in 0..3 {
            a.admit(x, 100_000).unwrap();
        }
        assert!(a.admit(x, 100_000).is_err());
        // Another client has its own bucket.
        assert!(a.admit(key("192.0.2.2"), 100_000).is_ok());
    }

    #[test]
    fn the_table_is_bounded() {
        let a = admission(0, Some(SessionRate::per_second(1.0, 2)));
        // A client with a live session is always kept.
        let keeper = key("10.255.255.255");
        let ticket = a.admit(keeper, 0).unwrap();
        // Many clients that each spent a token and hold nothing: their debt is remembered up to the bound.
        for i in 0..(IDLE_CLIENTS as u32 * 2) {
            let k = ClientKey::from_ip(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
            drop(a.admit(k, 0).unwrap());
            assert!(a.clients() <= IDLE_CLIENTS + 1, "{} clients after {i}", a.clients());
        }
        assert_eq!(a.live(keeper), 1);
        // Once buckets are full again, the entries carry nothing and go at the next prune.
        let later = 10_000;
        for i in 0..(IDLE_CLIENTS as u32) {
            let k = ClientKey::from_ip(IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i)));
            drop(a.admit(k, later).unwrap());
        }
        assert!(a.clients() <= IDLE_CLIENTS + 1);
        assert_eq!(a.live(keeper), 1);
        drop(ticket);
        assert_eq!(a.live(keeper), 0);
    }

    #[test]
    fn memory_ceiling_uses_a_cached_rss() {
        static RSS: AtomicU64 = AtomicU64::new(500);
        let a = Admission::with_rss_source(AdmissionConfig { max_per_client: 0, rate: None, max_memory: 1000 }, || {
            Some(RSS.load(Ordering::Relaxed))
        });
        let x = key("192.0.2.1");
        assert!(a.admit(x, 0).is_ok());
        RSS.store(2000, Ordering::Relaxed);
        assert!(a.admit(x, 50).is_ok(), "read at most every 100 ms");
        assert_eq!(a.admit(x, 100).unwrap_err(), CreateError::MemoryHigh { rss: 2000, limit: 1000 });
        a.set_max_memory(0);
        assert!(a.admit(x, 100).is_ok(), "0 = off");
        a.set_max_memory(3000);
        assert!(a.admit(x, 100).is_ok());
    }

    #[test]
    fn memory_figures() {
        assert_eq!(meminfo_total("MemTotal:       16384 kB\nMemFree: 1 kB\n"), Some(16384 * 1024));
        assert_eq!(meminfo_total("nothing"), None);
        assert_eq!(cgroup_limit("1:cpu:/x\n"), None);
        let rss = read_rss().expect("Linux");
        assert!(rss > 1 << 20, "{rss}");
        let default = default_max_memory().expect("Linux");
        assert!(default > rss, "{default}");
    }
}
