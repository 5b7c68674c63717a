//! Networks between members: `proxy` (per-link TCP proxies) and `netns` (namespaces).

pub mod netns;
