//! The message network (issue 14): an HTTP-aware relay on every directed peer link that sees
//! each Raft message and applies message-level faults to it. Not yet wired into the CLI,
//! runner or nemesis; this module is self-contained (it uses nothing else of the harness
//! crate) and documents below how to wire it.
//!
//! # Layout
//! - [`wire`]: peer bodies ↔ messages (the node's own serde types), one-line summaries (kind,
//!   from, to, term, index, entry count and terms), the node's body limit and token header.
//! - [`faults`]: the pure, seeded fault engine — `msg-loss`, `msg-dup`, `msg-reorder`,
//!   `msg-replay`, `msg-trim`, `msg-delay` and cut links — with its counters and the
//!   [`faults::WireView`] (terms and leaders as seen on the wire). Generic over
//!   [`faults::WireMessage`], so the Maelstrom router (issue 15) can reuse it.
//! - [`relay`]: the HTTP relay: one listener per directed link, a bounded delivery queue and
//!   task per link, pass-through of everything that is not a Raft message, clean shutdown;
//!   [`relay::RelayControl`] is the run-time handle.
//!
//! # Wiring `--net message` (for the integrator)
//! 1. Choose every member's client and peer address as the proxy network does
//!    (`proxy::free_port`); collect `members: Vec<(id, peer SocketAddr)>`.
//! 2. Inside the runtime: `let mut cfg = RelayConfig::new(members, seed)` with the run's named
//!    seed for the network, `cfg.token = Some(cluster_token)`, then
//!    `let relay = Relay::start(cfg).await?`.
//! 3. Member `a`'s `MemberAddrs`: its own client and peer addresses, and
//!    `routes: relay.routes(a)` (member `a` is started with `--peer b=http://ROUTE`). The
//!    node's forwarded client requests go to that address too and pass through untouched.
//! 4. Link control, through `relay.control()` (`Clone + Send + Sync`, usable from the nemesis
//!    thread):
//!    - partitions: `set_cuts(set of directed links)` replaces the cut set (empty heals), so
//!      every shape the proxy network supports works unchanged; `cuts()` reads it back;
//!    - `LinkControl` (`net/mod.rs`) maps directly: `set_cuts`, `cuts`, `heal`; its per-link
//!      `set_faults(link, LinkFaults { delay, jitter, loss })` needs a small map in the
//!      adapter: keep each link's `LinkFaults` and, for the links that share one setting, call
//!      `set_fault(Fault::delay(delay, jitter).on(LinkSel::Links(links)))` and
//!      `set_fault(Fault::loss(loss).on(LinkSel::Links(links)))`. The engine holds **one active
//!      fault per name** (setting it again replaces it), each with a link selection, so links
//!      with *different* parameters of one fault at once are not supported (the `delay`
//!      nemesis sets one setting on every link, which is);
//!    - message nemeses: at start `set_fault(Fault::parse("msg-loss p=0.2 kinds=append")?)`
//!      (see [`faults::Fault::parse`] for every parameter; errors name the field), at stop
//!      `clear_fault(FaultName::Loss)`; `heal()` clears every fault and cut;
//!    - counters: `counters()` ([`faults::Counters`], `Serialize`) for `results.json` and the
//!      summary: cut, lost, duplicated, reordered, replayed, trimmed (+ entries), delayed,
//!      unparsed (passed through), refused (413/401), queue_full, undelivered;
//!    - aimed nemeses: `view()` / `watch_view()` ([`faults::WireView`]): highest term, the
//!      current leader as seen on the wire (`current_leader()`), when its first append of
//!      the term was seen, every member's last seen term, role and match index (from its
//!      append responses), and two leaders in one term if the wire ever shows them.
//! 5. At the end: `relay.shutdown(deadline).await` (dropping it aborts everything at once).
//!
//! # An aimed schedule for Raft's Figure 8 (what the engine offers; not a nemesis yet)
//! Wait on `watch_view()` for a new leader `L` of term `T`; set
//! `Fault::trim(TrimMode::DropOwnTerm).on(LinkSel::From({L}))` so `L`'s appends carry the
//! old-term entries it holds but not its own term's no-op; once a majority holds them
//! (`WireView::nodes[f].matched`, from their append responses), cut `L` off with `set_cuts`
//! before its no-op commits, then heal. Seeded and
//! replayable: the engine's choices depend only on the seed and each link's messages.
//!
//! # Determinism
//! Every random choice comes from one `StdRng` per directed link, seeded by
//! [`faults::link_seed`]`(seed, link)`; a link's choices depend only on the seed, the
//! messages on that link and the faults active when each arrived. Delivery times are real
//! time, so a run is replayable in its fault decisions, not in its timing.

pub mod faults;
pub mod network;
pub mod relay;
pub mod wire;

pub use faults::{
    Counters, Fault, FaultEngine, FaultError, FaultName, KindFilter, Link, LinkSel, TrimMode,
    WireMessage, WireView,
};
pub use relay::{Batching, EngineCell, Relay, RelayConfig, RelayControl, RelayError};
pub use wire::{Kind, Summary, WireError};
