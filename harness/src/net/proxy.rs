//! The proxy network: one TCP proxy per directed link, owned by the harness (tokio tasks).
//!
//! Member `a` reaches member `b` by dialing the proxy of link `a → b`, which forwards to `b`'s
//! peer address. Cutting the link closes every open connection through it (both sockets are
//! dropped, with `SO_LINGER 0` so the peer sees a reset rather than waiting) and refuses new
//! ones (accepted and reset at once) until healed. A link that is not cut may delay each
//! forwarded chunk and drop the connection with a probability per chunk.
//!
//! The proxies bind `127.0.0.1:0` and keep their listeners. Members' ports are chosen below the
//! kernel's ephemeral range (so no outgoing connection can take them) and released just before
//! the member binds them; if another listener takes one in between, the member exits and the
//! runner starts the cluster again on fresh ports.

use super::{Link, LinkControl, LinkFaults, MemberAddrs, Network};
use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The state of one directed link.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct LinkState {
    cut: bool,
    faults: LinkFaults,
}

/// One directed link's proxy; where its source dials is in `MemberAddrs::routes`.
struct ProxyLink {
    state: watch::Sender<LinkState>,
    task: JoinHandle<()>,
}

/// A TCP proxy on every directed link. Dropping it stops every proxy task.
pub struct ProxyNet {
    addrs: BTreeMap<String, MemberAddrs>,
    links: BTreeMap<Link, ProxyLink>,
}

/// The kernel's ephemeral port range (`ip_local_port_range`), where outgoing connections
/// take their source ports.
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().filter_map(|x| x.parse::<u16>().ok());
            Some((it.next()?, it.next()?))
        })
        .unwrap_or((32768, 60999))
}

/// A free port on 127.0.0.1 (bound, then released) for a member to listen on. Chosen below
/// the ephemeral range when there is room, so that no outgoing connection (of the proxies,
/// clients or other programs) can take it between its choice and the member's bind.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    let (low, _) = ephemeral_range();
    if low > 12_000 {
        // Ports are not part of the replayable schedule: two runs with one seed may run at once.
        let mut rng = StdRng::from_entropy();
        for _ in 0..200 {
            let port = rng.gen_range(10_000..low);
            if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                return l.local_addr().context("local address of a fresh listener");
            }
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    l.local_addr().context("local address of a fresh listener")
}

impl ProxyNet {
    /// Starts proxies for every directed link between `ids`; `shared_port` makes each member's
    /// peer address its client address. Must be called inside a tokio runtime. `seed` seeds
    /// the per-link loss rolls.
    pub async fn start(ids: &[String], shared_port: bool, seed: u64) -> anyhow::Result<ProxyNet> {
        let mut base = BTreeMap::new();
        for id in ids {
            let client = free_port()?;
            let peer = if shared_port { client } else { free_port()? };
            base.insert(id.clone(), (client, peer));
        }
        let mut links = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        for (i, from) in ids.iter().enumerate() {
            let mut routes = Vec::new();
            for (j, to) in ids.iter().enumerate() {
                if from == to {
                    continue;
                }
                let upstream = base[to].1;
                let listener = TcpListener::bind("127.0.0.1:0")
                    .await
                    .context("binding a proxy listener on 127.0.0.1")?;
                let listen = listener.local_addr().context("proxy listener address")?;
                let (tx, rx) = watch::channel(LinkState::default());
                let link_seed = splitbrain_workloads::seeds::proxy_link(seed, i, j);
                let task = tokio::spawn(accept_loop(listener, upstream, rx, link_seed));
                links.insert((from.clone(), to.clone()), ProxyLink { state: tx, task });
                routes.push((to.clone(), listen));
            }
            let (client, peer) = base[from];
            addrs.insert(
                from.clone(),
                MemberAddrs {
                    client,
                    peer,
                    routes,
                },
            );
        }
        Ok(ProxyNet { addrs, links })
    }
}

impl Drop for ProxyNet {
    fn drop(&mut self) {
        for l in self.links.values() {
            // Cut first so that connection tasks close their sockets, then stop accepting.
            l.state.send_modify(|s| s.cut = true);
            l.task.abort();
        }
    }
}

impl Network for ProxyNet {
    fn name(&self) -> &'static str {
        "proxy"
    }

    fn addrs(&self, id: &str) -> anyhow::Result<MemberAddrs> {
        self.addrs
            .get(id)
            .cloned()
            .with_context(|| format!("no member {id:?} in the network"))
    }
}

impl LinkControl for ProxyNet {
    fn set_cuts(&self, cuts: &BTreeSet<Link>) -> anyhow::Result<()> {
        for l in cuts {
            anyhow::ensure!(self.links.contains_key(l), "no link {} → {}", l.0, l.1);
        }
        for (link, p) in &self.links {
            let cut = cuts.contains(link);
            p.state.send_if_modified(|s| {
                let changed = s.cut != cut;
                s.cut = cut;
                changed
            });
        }
        Ok(())
    }

    fn cuts(&self) -> BTreeSet<Link> {
        self.links
            .iter()
            .filter(|(_, p)| p.state.borrow().cut)
            .map(|(l, _)| l.clone())
            .collect()
    }

    fn set_faults(&self, link: &Link, faults: LinkFaults) -> anyhow::Result<()> {
        anyhow::ensure!(
            (0.0..=1.0).contains(&faults.loss),
            "loss must be within 0..=1"
        );
        let p = self
            .links
            .get(link)
            .with_context(|| format!("no link {} → {}", link.0, link.1))?;
        p.state.send_modify(|s| s.faults = faults);
        Ok(())
    }

    fn heal(&self) -> anyhow::Result<()> {
        for p in self.links.values() {
            p.state.send_if_modified(|s| {
                let changed = *s != LinkState::default();
                *s = LinkState::default();
                changed
            });
        }
        Ok(())
    }
}

/// Resets a socket on close instead of the orderly FIN (the peer sees the cut at once).
// `set_linger` is deprecated because a non-zero linger blocks the dropping thread; a zero
// linger never blocks: the kernel sends RST at once.
#[allow(deprecated)]
fn reset_on_close(s: &TcpStream) {
    let _ = s.set_linger(Some(std::time::Duration::ZERO));
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    state: watch::Receiver<LinkState>,
    seed: u64,
) {
    let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
    loop {
        let Ok((down, _)) = listener.accept().await else {
            continue;
        };
        if state.borrow().cut {
            reset_on_close(&down);
            drop(down);
            continue;
        }
        let state = state.clone();
        let rng = rng.clone();
        tokio::spawn(async move {
            let connect = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                TcpStream::connect(upstream),
            );
            let up = match connect.await {
                Ok(Ok(up)) => up,
                _ => {
                    reset_on_close(&down);
                    return;
                }
            };
            let _ = down.set_nodelay(true);
            let _ = up.set_nodelay(true);
            relay(down, up, state, rng).await;
        });
    }
}

/// Forwards both ways until either side closes, the link is cut, or a loss roll drops it.
async fn relay(
    down: TcpStream,
    up: TcpStream,
    mut state: watch::Receiver<LinkState>,
    rng: Arc<Mutex<StdRng>>,
) {
    reset_on_close(&down);
    reset_on_close(&up);
    let (dr, dw) = down.into_split();
    let (ur, uw) = up.into_split();
    let s1 = state.clone();
    let s2 = state.clone();
    let r1 = rng.clone();
    let forward = pump(dr, uw, s1, r1);
    let backward = pump(ur, dw, s2, rng);
    tokio::select! {
        _ = forward => {}
        _ = backward => {}
        _ = async {
            loop {
                if state.borrow_and_update().cut { break; }
                if state.changed().await.is_err() { break; }
            }
        } => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: watch::Receiver<LinkState>,
    rng: Arc<Mutex<StdRng>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let s = *state.borrow();
        if s.cut {
            return;
        }
        let mut delay = s.faults.delay;
        if !s.faults.jitter.is_zero() {
            // The mutex is never held across an await and never poisoned by a panic here.
            let f: f64 = rng.lock().map(|mut r| r.gen()).unwrap_or(0.0);
            delay += s.faults.jitter.mul_f64(f);
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if s.faults.loss > 0.0 {
            // The mutex is never held across an await and never poisoned by a panic here.
            let roll: f64 = rng.lock().map(|mut r| r.gen()).unwrap_or(0.0);
            if roll < s.faults.loss {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// An echo server standing in for member `b`'s peer port.
    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    /// A two-member proxy net whose `b` peer port is an echo server.
    async fn net_with_echo() -> (ProxyNet, SocketAddr) {
        let ids = vec!["a".to_string(), "b".to_string()];
        let mut net = ProxyNet::start(&ids, true, 7).await.unwrap();
        // Re-point link a→b at an echo server: rebuild its accept loop.
        let echo = echo_server().await;
        let link = ("a".to_string(), "b".to_string());
        let old = net.links.remove(&link).unwrap();
        old.task.abort();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listen = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(LinkState::default());
        let task = tokio::spawn(accept_loop(listener, echo, rx, 1));
        net.links.insert(link, ProxyLink { state: tx, task });
        (net, listen)
    }

    async fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        s.write_all(msg).await?;
        let mut buf = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut buf))
            .await
            .map_err(|_| std::io::Error::other("timeout"))??;
        Ok(buf)
    }

    fn ab() -> BTreeSet<Link> {
        [("a".to_string(), "b".to_string())].into_iter().collect()
    }

    #[tokio::test]
    async fn forwards_bytes_on_a_healthy_link() {
        let (_net, addr) = net_with_echo().await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert_eq!(roundtrip(&mut s, b"hello").await.unwrap(), b"hello");
    }

    #[tokio::test]
    async fn cut_closes_open_connections_and_refuses_new_ones_until_healed() {
        let (net, addr) = net_with_echo().await;
        let mut open = TcpStream::connect(addr).await.unwrap();
        assert_eq!(roundtrip(&mut open, b"before").await.unwrap(), b"before");

        net.set_cuts(&ab()).unwrap();
        assert_eq!(net.cuts(), ab());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            roundtrip(&mut open, b"during").await.is_err(),
            "open connection survived the cut"
        );
        // A new connection is accepted by the kernel but reset before any byte is forwarded.
        match TcpStream::connect(addr).await {
            Err(_) => {}
            Ok(mut s) => assert!(
                roundtrip(&mut s, b"new").await.is_err(),
                "new connection forwarded"
            ),
        }

        net.set_cuts(&BTreeSet::new()).unwrap();
        assert!(net.cuts().is_empty());
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert_eq!(roundtrip(&mut s, b"after").await.unwrap(), b"after");
    }

    #[tokio::test]
    async fn cut_is_directed_and_leaves_the_reverse_link_alone() {
        let (net, _) = net_with_echo().await;
        net.set_cuts(&ab()).unwrap();
        let ba = ("b".to_string(), "a".to_string());
        assert!(!net.cuts().contains(&ba));
        assert!(!net.links[&ba].state.borrow().cut);
        assert!(
            net.links[&("a".to_string(), "b".to_string())]
                .state
                .borrow()
                .cut
        );
    }

    #[tokio::test]
    async fn delay_slows_each_chunk_and_full_loss_drops_the_connection() {
        let (net, addr) = net_with_echo().await;
        let link = ("a".to_string(), "b".to_string());
        net.set_faults(
            &link,
            LinkFaults {
                delay: Duration::from_millis(200),
                jitter: Duration::ZERO,
                loss: 0.0,
            },
        )
        .unwrap();
        let mut s = TcpStream::connect(addr).await.unwrap();
        let t = std::time::Instant::now();
        assert_eq!(roundtrip(&mut s, b"slow").await.unwrap(), b"slow");
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "no delay: {:?}",
            t.elapsed()
        );

        net.set_faults(
            &link,
            LinkFaults {
                delay: Duration::ZERO,
                jitter: Duration::ZERO,
                loss: 1.0,
            },
        )
        .unwrap();
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert!(roundtrip(&mut s, b"lost").await.is_err());

        net.heal().unwrap();
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert_eq!(roundtrip(&mut s, b"ok").await.unwrap(), b"ok");
    }

    #[tokio::test]
    async fn jitter_gives_each_chunk_its_own_delay() {
        let (net, addr) = net_with_echo().await;
        let link = ("a".to_string(), "b".to_string());
        let jitter = Duration::from_millis(300);
        let f = LinkFaults {
            delay: Duration::ZERO,
            jitter,
            loss: 0.0,
        };
        net.set_faults(&link, f).unwrap();
        let mut times = Vec::new();
        for _ in 0..8 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let t = std::time::Instant::now();
            assert_eq!(roundtrip(&mut s, b"j").await.unwrap(), b"j");
            times.push(t.elapsed());
        }
        let (min, max) = (times.iter().min().unwrap(), times.iter().max().unwrap());
        // Both directions of a connection are delayed: a round trip takes up to two jitters.
        assert!(*max < 2 * jitter + Duration::from_millis(150), "{times:?}");
        assert!(
            *max - *min > Duration::from_millis(50),
            "no spread: {times:?}"
        );
    }

    #[tokio::test]
    async fn rejects_cuts_of_unknown_links() {
        let (net, _) = net_with_echo().await;
        let bad: BTreeSet<Link> = [("a".to_string(), "z".to_string())].into_iter().collect();
        assert!(net.set_cuts(&bad).is_err());
    }
}
